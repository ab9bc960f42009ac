// Reads a `$batch` request body back into its operations: the inverse of `Batch.encode`, for the
// round-trip test. The client never reads a request, so this lives with the tests.
import * as Multipart from "../../src/internal/multipart.js"

const requestLine = /^([A-Za-z]+)\s+(\S+)(?:\s+HTTP\/\d+(?:\.\d+)?)?$/

/** An operation of a `$batch` request as read back (the writer's inverse, for tests). */
export interface ParsedRequest {
  readonly method: string
  readonly url: string
  readonly mimeHeaders: Readonly<Record<string, string>>
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly contentId: string | undefined
}

const parseRequestPart = (lines: ReadonlyArray<string>): ParsedRequest | Multipart.ParseError => {
  const { headers: mime, rest } = Multipart.mimeSection(lines)
  const message = Multipart.httpMessage(rest)
  const start = requestLine.exec(message.start)
  if (start === null) {
    return new Multipart.ParseError(`A part does not hold a request line: ${Multipart.excerpt(message.start)}.`)
  }
  return {
    method: start[1]!,
    url: start[2]!,
    mimeHeaders: mime,
    headers: message.headers,
    body: message.body,
    contentId: Multipart.contentIdOf(mime["content-id"] ?? message.headers["content-id"])
  }
}

/** Reads a `$batch` request body: operations, and change sets as arrays of operations. */
export const parseRequest = (
  contentType: string | undefined,
  text: string
):
  | Array<ParsedRequest | { readonly changeSet: ReadonlyArray<ParsedRequest>; readonly contentType: string }>
  | Multipart.ParseError =>
{
  const parts = Multipart.splitParts(Multipart.splitLines(text), Multipart.boundaryOf(contentType))
  if (parts === undefined) return new Multipart.ParseError("The body is not multipart.")
  const result: Array<ParsedRequest | { changeSet: Array<ParsedRequest>; contentType: string }> = []
  for (const part of parts) {
    if (Multipart.isBlank(part)) continue
    const { headers: mime, rest } = Multipart.mimeSection(part)
    if (Multipart.isMultipart(mime["content-type"])) {
      const inner = Multipart.splitParts(rest, Multipart.boundaryOf(mime["content-type"])) ?? []
      const changeSet: Array<ParsedRequest> = []
      for (const innerPart of inner) {
        if (Multipart.isBlank(innerPart)) continue
        const request = parseRequestPart(innerPart)
        if (request instanceof Multipart.ParseError) return request
        changeSet.push(request)
      }
      result.push({ changeSet, contentType: mime["content-type"]! })
    } else {
      const request = parseRequestPart(part)
      if (request instanceof Multipart.ParseError) return request
      result.push(request)
    }
  }
  return result
}

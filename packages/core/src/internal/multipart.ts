/**
 * `multipart/mixed` for `$batch`: a writer that emits the canonical form (CRLF everywhere) and a
 * reader that accepts every variant real services send (wire reference, section 4): quoted or
 * unquoted boundaries, a content type without a boundary, CRLF or LF-only line endings, padding
 * after a delimiter, a missing closing delimiter, status lines with or without a space in the
 * reason phrase, headers with or without a space after the colon, folded headers, `Content-ID`
 * as a MIME header or as a header of the inner HTTP message.
 */
import type * as Batch from "../Batch.js"

/** The line break of everything this module writes. */
export const CRLF = "\r\n"

/** Whether a content type is `multipart/*`. */
export const isMultipart = (contentType: string | undefined): boolean =>
  contentType !== undefined && /^\s*multipart\//i.test(contentType)

/** The `boundary` parameter of a content type, quoted or not. */
export const boundaryOf = (contentType: string | undefined): string | undefined => {
  const match = /(?:^|;)\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(contentType ?? "")
  if (match === null) return undefined
  const boundary = (match[1] ?? match[2])!.trim()
  return boundary === "" ? undefined : boundary
}

/** The boundary of the first delimiter line of a body, for a body whose content type lacks one. */
const detectBoundary = (lines: ReadonlyArray<string>): string | undefined => {
  for (const line of lines) {
    const match = /^--(\S+?)(--)?$/.exec(line.trimEnd())
    if (match !== null) return match[1]
  }
  return undefined
}

/** Splits text into lines, accepting CRLF and LF-only line endings. */
export const splitLines = (text: string): Array<string> => text.split(/\r?\n/)

/**
 * The parts of a multipart body, each as its lines. A delimiter line may carry trailing
 * whitespace; a body without a closing delimiter ends at the end of the text. `undefined` when no
 * delimiter is found at all.
 */
export const splitParts = (
  lines: ReadonlyArray<string>,
  boundary: string | undefined
): Array<Array<string>> | undefined => {
  const split = (b: string): Array<Array<string>> | undefined => {
    const open = `--${b}`
    const close = `--${b}--`
    const parts: Array<Array<string>> = []
    let current: Array<string> | undefined
    let found = false
    for (const line of lines) {
      const trimmed = line.trimEnd()
      if (trimmed === close) {
        if (current !== undefined) parts.push(current)
        return parts
      }
      if (trimmed === open) {
        if (current !== undefined) parts.push(current)
        current = []
        found = true
        continue
      }
      current?.push(line)
    }
    if (current !== undefined) parts.push(current)
    return found ? parts : undefined
  }
  const declared = boundary === undefined ? undefined : split(boundary)
  if (declared !== undefined) return declared
  const detected = detectBoundary(lines)
  return detected === undefined || detected === boundary ? undefined : split(detected)
}

/**
 * A header block: names lower-cased, values trimmed, `name:value` with or without a space, folded
 * continuation lines joined, repeated headers joined with `, `.
 */
export const parseHeaders = (lines: ReadonlyArray<string>): Record<string, string> => {
  const headers: Record<string, string> = {}
  let last: string | undefined
  for (const line of lines) {
    if (/^[ \t]/.test(line) && last !== undefined) {
      headers[last] = `${headers[last]} ${line.trim()}`.trim()
      continue
    }
    const colon = line.indexOf(":")
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
    last = name
  }
  return headers
}

const statusLine = /^HTTP\/\d+(?:\.\d+)?\s+(\d{3})(?:\s+(.*))?$/i
const isStartLine = (line: string) => statusLine.test(line.trim()) || /^[A-Z]+\s+\S+\s+HTTP\/\d/.test(line.trim())

/** `<1>` → `1`: a MIME Content-ID may be written in angle brackets. */
export const contentIdOf = (value: string | undefined): string | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim().replace(/^<(.*)>$/, "$1").trim()
  return trimmed === "" ? undefined : trimmed
}

/** The MIME headers of a part and the lines after them. */
export const mimeSection = (lines: ReadonlyArray<string>) => {
  let i = 0
  // MIME headers end at a blank line; tolerate a start line that follows them directly.
  while (i < lines.length && lines[i]!.trim() !== "" && !isStartLine(lines[i]!)) i++
  const headers = parseHeaders(lines.slice(0, i))
  while (i < lines.length && lines[i]!.trim() === "") i++
  return { headers, rest: lines.slice(i) }
}

/** An HTTP message embedded in a part: start line, headers, body (trailing blank lines dropped). */
export const httpMessage = (lines: ReadonlyArray<string>) => {
  const start = (lines[0] ?? "").trim()
  let i = 1
  while (i < lines.length && lines[i]!.trim() !== "") i++
  const headers = parseHeaders(lines.slice(1, i))
  const body = lines.slice(i + 1).join("\n").replace(/\s+$/, "")
  return { start, headers, body }
}

/** A reason the answer cannot be read. */
export class ParseError {
  constructor(readonly message: string) {}
}

export const excerpt = (line: string) => JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}...` : line)

const parseOperation = (lines: ReadonlyArray<string>): Batch.OperationResponse | ParseError => {
  const { headers: mime, rest } = mimeSection(lines)
  const message = httpMessage(rest)
  const status = statusLine.exec(message.start)
  if (status === null) {
    return new ParseError(`A part of the $batch answer does not hold an HTTP status line: ${excerpt(message.start)}.`)
  }
  return {
    _tag: "OperationResponse",
    contentId: contentIdOf(mime["content-id"] ?? message.headers["content-id"]),
    status: Number(status[1]),
    statusText: (status[2] ?? "").trim(),
    headers: message.headers,
    body: message.body
  }
}

/** Whether a part holds nothing but whitespace (a stray blank part between delimiters). */
export const isBlank = (lines: ReadonlyArray<string>) => lines.every((line) => line.trim() === "")

/**
 * Reads a `$batch` answer into its parts: operation answers, and change-set answers holding
 * theirs.
 */
export const parseResponse = (
  contentType: string | undefined,
  text: string
): Array<Batch.Part> | ParseError => {
  const parts = splitParts(splitLines(text), boundaryOf(contentType))
  if (parts === undefined) {
    return new ParseError(
      `The $batch answer (${contentType ?? "no content type"}) is not multipart: ${excerpt(text.trim())}.`
    )
  }
  const result: Array<Batch.Part> = []
  for (const part of parts) {
    if (isBlank(part)) continue
    const { headers: mime, rest } = mimeSection(part)
    if (isMultipart(mime["content-type"])) {
      const inner = splitParts(rest, boundaryOf(mime["content-type"]))
      if (inner === undefined) {
        return new ParseError(`A change set of the $batch answer has no part (${mime["content-type"]}).`)
      }
      const operations: Array<Batch.OperationResponse> = []
      for (const innerPart of inner) {
        if (isBlank(innerPart)) continue
        const operation = parseOperation(innerPart)
        if (operation instanceof ParseError) return operation
        operations.push(operation)
      }
      result.push({ _tag: "ChangeSetResponse", parts: operations })
    } else {
      const operation = parseOperation(part)
      if (operation instanceof ParseError) return operation
      result.push(operation)
    }
  }
  return result
}

/** One body part to write: its MIME headers and its content (without a trailing line break). */
export interface WritePart {
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly content: string
}

/** A multipart body in the canonical form: CRLF, a closing delimiter, no trailing line break. */
export const writeMultipart = (boundary: string, parts: ReadonlyArray<WritePart>): string => {
  let text = ""
  for (const part of parts) {
    text += `--${boundary}${CRLF}`
    for (const [name, value] of part.headers) text += `${name}: ${value}${CRLF}`
    text += `${CRLF}${part.content}${CRLF}`
  }
  return `${text}--${boundary}--`
}

/** An HTTP request message as the content of an `application/http` part. */
export const writeHttpRequest = (
  method: string,
  target: string,
  headers: ReadonlyArray<readonly [string, string]>,
  body: string | undefined
): string => {
  let text = `${method} ${target} HTTP/1.1${CRLF}`
  for (const [name, value] of headers) text += `${name}: ${value}${CRLF}`
  return `${text}${CRLF}${body ?? ""}`
}

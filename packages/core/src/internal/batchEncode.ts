/**
 * Writing a batch: its plan as a `multipart/mixed` body, each request an `application/http` part.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Encoded, EncodeOptions, Item } from "../Batch.js"
import { DataverseError } from "../DataverseError.js"
import { type Flat, plan } from "./batchPlan.js"
import * as Multipart from "./multipart.js"

const requestTarget = (url: string, webApiUrl: string) =>
  url.startsWith("$") || url.startsWith("/") || /^https?:\/\//i.test(url) ? url : `${webApiUrl}${url}`

const writeOperation = (entry: Flat, webApiUrl: string): Either.Either<Multipart.WritePart, DataverseError> => {
  const { request } = entry
  let body: string | undefined
  if (request.body !== undefined) {
    try {
      body = JSON.stringify(request.body)
    } catch (cause) {
      return Either.left(
        new DataverseError({
          reason: "InvalidInput",
          message: `Request ${entry.index}: the body cannot be written as JSON (${String(cause)}).`,
          cause
        })
      )
    }
  }
  const headers: Array<readonly [string, string]> = []
  const own = Object.entries(request.headers ?? {}).map(([name, value]) => [name, String(value)] as const)
  if (body !== undefined && !own.some(([name]) => name.toLowerCase() === "content-type")) {
    headers.push(["Content-Type", "application/json; type=entry"])
  }
  for (const header of own) headers.push(header)
  return Either.right({
    headers: [
      ["Content-Type", "application/http"],
      ["Content-Transfer-Encoding", "binary"],
      ["Content-ID", entry.contentId]
    ],
    content: Multipart.writeHttpRequest(request.method, requestTarget(request.url, webApiUrl), headers, body)
  })
}

/** `Batch.encode`. */
export const encode = (
  items: ReadonlyArray<Item>,
  options: EncodeOptions = {}
): Effect.Effect<Encoded, DataverseError> => Effect.suspend(() => encodeWith(items, options, () => crypto.randomUUID()))

const encodeWith = (
  items: ReadonlyArray<Item>,
  options: EncodeOptions,
  uuid: () => string
): Either.Either<Encoded, DataverseError> =>
  Either.flatMap(plan(items), ({ flat, groups }) => {
    const webApiUrl = options.webApiUrl ?? "/api/data/v9.2/"
    const boundary = `batch_${uuid()}`
    const parts: Array<Multipart.WritePart> = []
    for (const group of groups) {
      const operations: Array<Multipart.WritePart> = []
      for (const index of group.indices) {
        const part = writeOperation(flat[index]!, webApiUrl)
        if (Either.isLeft(part)) return Either.left(part.left)
        operations.push(part.right)
      }
      if (!group.changeSet) {
        parts.push(operations[0]!)
        continue
      }
      const changeBoundary = `changeset_${uuid()}`
      parts.push({
        headers: [["Content-Type", `multipart/mixed; boundary=${changeBoundary}`]],
        content: Multipart.writeMultipart(changeBoundary, operations)
      })
    }
    return Either.right({
      contentType: `multipart/mixed; boundary=${boundary}`,
      body: `${Multipart.writeMultipart(boundary, parts)}${Multipart.CRLF}`,
      operations: flat.length
    })
  })

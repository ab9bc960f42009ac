/**
 * Reading a batch's answer: its parts (`parse`), then one result per request of the plan
 * (`decodeResponse`), by position and by `Content-ID`.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Item, OperationResponse, Part, RawResponse, Request, Result } from "../Batch.js"
import { decodeErrorResponse } from "../DataverseClient.js"
import { DataverseError } from "../DataverseError.js"
import { type Flat, type Group, type Plan, plan } from "./batchPlan.js"
import * as Multipart from "./multipart.js"
import { recordIdOf } from "./odata.js"

/** `Batch.parse`. */
export const parse = (
  contentType: string | undefined,
  body: string
): Either.Either<ReadonlyArray<Part>, DataverseError> => {
  const parts = Multipart.parseResponse(contentType, body)
  return parts instanceof Multipart.ParseError
    ? Either.left(new DataverseError({ reason: "Decode", message: parts.message, request: "POST $batch" }))
    : Either.right(parts)
}

const describe = (request: Request) => `${request.method} ${request.url.split("?")[0]}`

/** The record id in `.../contacts(<id>)` or `.../t(tid=<id>,partitionid='p')`. */
const idOf = (headers: Readonly<Record<string, string>>): string | undefined => {
  for (const url of [headers["odata-entityid"], headers["location"]]) {
    const id = url === undefined ? undefined : recordIdOf(url)
    if (id !== undefined) return id
  }
  return undefined
}

const jsonBody = (text: string): unknown => {
  if (text.trim() === "") return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const isFailure = (part: Part) => part._tag === "OperationResponse" && part.status >= 400

/** Request ids of the batch, for parts that carry none of their own. */
const requestIds = (headers: Readonly<Record<string, string>>) => {
  const ids: Record<string, string> = {}
  if (headers["x-ms-service-request-id"] !== undefined) {
    ids["x-ms-service-request-id"] = headers["x-ms-service-request-id"]
  }
  if (headers["req_id"] !== undefined) ids["req_id"] = headers["req_id"]
  return ids
}

const mapResults = (
  { flat, groups }: Plan,
  parts: ReadonlyArray<Part>,
  response: RawResponse,
  now: number
): Array<Result> => {
  const results: Array<Result | undefined> = new Array(flat.length).fill(undefined)
  const byContentId = new Map(flat.map((entry) => [entry.contentId, entry.index]))
  const headersOf = (part: OperationResponse) =>
    part.headers["x-ms-service-request-id"] === undefined && part.headers["req_id"] === undefined
      ? { ...requestIds(response.headers), ...part.headers }
      : part.headers
  const errorOf = (request: Request, part: OperationResponse) =>
    decodeErrorResponse(describe(request), part.status, headersOf(part), part.body, now)
  const outcome = (entry: Flat, part: OperationResponse): Result =>
    part.status >= 400
      ? { _tag: "Failure", index: entry.index, request: entry.request, error: errorOf(entry.request, part) }
      : {
        _tag: "Success",
        index: entry.index,
        request: entry.request,
        status: part.status,
        headers: part.headers,
        body: jsonBody(part.body),
        id: idOf(part.headers)
      }
  const unknown = (entry: Flat, message: string, error?: DataverseError): Result => ({
    _tag: "Unknown",
    index: entry.index,
    request: entry.request,
    message,
    error
  })
  const baseOf = (entry: Flat) => ({ index: entry.index, request: entry.request })
  const noPart = "The $batch answer holds no part for this request."
  const pinnedIndex = (part: OperationResponse) =>
    part.contentId === undefined ? undefined : byContentId.get(part.contentId)
  const groupOf = (part: Part): number | undefined => {
    for (const operation of part._tag === "OperationResponse" ? [part] : part.parts) {
      const index = pinnedIndex(operation)
      if (index !== undefined) return flat[index]!.group
    }
    return undefined
  }

  const assign = (group: Group, part: Part) => {
    const entries = group.indices.map((index) => flat[index]!)
    if (part._tag === "OperationResponse") {
      if (!group.changeSet || entries.length === 1) {
        results[entries[0]!.index] = outcome(entries[0]!, part)
        return
      }
      if (part.status >= 400) {
        // A failed change set answers one error: it is every request's, none was applied.
        const failing = pinnedIndex(part)
        const error = errorOf(failing === undefined ? entries[0]!.request : flat[failing]!.request, part)
        for (const entry of entries) results[entry.index] = { ...baseOf(entry), _tag: "Failure", error }
        return
      }
      const target = pinnedIndex(part)
      for (const entry of entries) {
        results[entry.index] = entry.index === target ? outcome(entry, part) : unknown(entry, noPart)
      }
      return
    }
    // A change set's answers: by Content-ID first, then by position for parts without a known one.
    const open = new Set(group.indices)
    const unmatched: Array<OperationResponse> = []
    for (const operation of part.parts) {
      const index = pinnedIndex(operation)
      if (index !== undefined && open.has(index)) {
        results[index] = outcome(flat[index]!, operation)
        open.delete(index)
      } else {
        unmatched.push(operation)
      }
    }
    for (const operation of unmatched) {
      const next = [...open][0]
      if (next === undefined) break
      results[next] = outcome(flat[next]!, operation)
      open.delete(next)
    }
    for (const index of open) results[index] = unknown(flat[index]!, noPart)
  }
  const answered: Array<boolean> = groups.map(() => false)
  let cursor = 0
  let last: { readonly group: number; readonly part: Part; readonly pinned: boolean } | undefined
  for (const part of parts) {
    const pinned = groupOf(part)
    const group = pinned ?? cursor
    if (group >= groups.length || answered[group]) continue
    assign(groups[group]!, part)
    answered[group] = true
    cursor = Math.max(cursor, group + 1)
    last = { group, part, pinned: pinned !== undefined }
  }

  const unanswered = groups.some((_, group) => !answered[group])
  const stopped = last !== undefined && isFailure(last.part) &&
    (response.status >= 400 || groups.some((_, group) => group > last!.group && !answered[group]))
  if (stopped && !last!.pinned && parts.length === 1 && groups.length > 1) {
    // The batch stopped at a failure and answered it alone, without a Content-ID we know: any
    // request may have failed; those before it were applied, those after it did not run.
    const part = last!.part as OperationResponse
    const error = decodeErrorResponse("POST $batch", part.status, headersOf(part), part.body, now)
    const message =
      `The batch stopped at a failure (${part.status}: ${error.message}) and its answer does not say which request failed; ` +
      "the requests before that one were applied, those after it were not run."
    return flat.map((entry) => unknown(entry, message, error))
  }
  if (unanswered) {
    groups.forEach((group, g) => {
      if (answered[g]) return
      for (const index of group.indices) {
        const entry = flat[index]!
        results[index] = !stopped
          ? unknown(entry, noPart)
          : g < last!.group
          ? { ...baseOf(entry), _tag: "Applied" }
          : { ...baseOf(entry), _tag: "NotExecuted" }
      }
    })
  }
  return results.map((result, index) => result ?? unknown(flat[index]!, noPart))
}

/** `Batch.decodeResponse`. */
export const decodeResponse = (
  items: ReadonlyArray<Item>,
  response: RawResponse
): Effect.Effect<ReadonlyArray<Result>, DataverseError> =>
  Effect.gen(function*() {
    const batch = yield* plan(items)
    if (batch.flat.length === 0) return []
    const parts = yield* parse(response.headers["content-type"], response.body)
    if (parts.length === 0) {
      return yield* new DataverseError({
        reason: "Decode",
        status: response.status,
        message: `The $batch answer (${response.status}) holds no part.`,
        request: "POST $batch"
      })
    }
    const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    return mapResults(batch, parts, response, now)
  })

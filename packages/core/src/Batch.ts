/**
 * `$batch`: many operations in one HTTP request, optionally grouped into atomic change sets
 * (wire reference, section 4). `encode` writes the multipart body, `parse` reads the service's
 * answer tolerantly, `decodeResponse` maps that answer back to one result per request, and
 * `send` does all three through the connection.
 *
 * Every request of a batch, in order, has a position (its `index`, from 0). Each is sent with a
 * `Content-ID` equal to its position + 1 (unless it names its own `contentId`), so Content-IDs are
 * unique in the batch, as OData asks: inside a change set, a later request refers to an earlier
 * one as `$<Content-ID>` (`$1` for the first request of a batch that starts with a change set).
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { DataverseClient, decodeErrorResponse } from "./DataverseClient.js"
import { DataverseError } from "./DataverseError.js"
import * as Multipart from "./internal/multipart.js"
import { recordIdOf } from "./internal/odata.js"

// -----------------------------------------------------------------------------
// Requests
// -----------------------------------------------------------------------------

/**
 * An HTTP method a batch part may use.
 *
 * @since 0.1.0
 * @category models
 */
export type Method = "GET" | "POST" | "PATCH" | "PUT" | "DELETE"

/**
 * One operation of a batch.
 *
 * @example
 * ```ts
 * import type { Batch } from "@dv-effect/core"
 * const create: Batch.Request = {
 *   method: "POST",
 *   url: "contacts",
 *   headers: { Prefer: "return=representation" },
 *   body: { firstname: "Ada", lastname: "Lovelace" }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Request {
  readonly method: Method
  /**
   * Relative to the Web API root (`contacts`, `contacts(<id>)`, `contacts/Microsoft.Dynamics.CRM.CreateMultiple`),
   * a reference to an earlier request of the same change set (`$1`, `$1/parentcustomerid_account/$ref`),
   * a path from the host (`/api/data/v9.2/contacts`) or an absolute URL. Query strings are kept.
   */
  readonly url: string
  /** Headers of this part (`Prefer`, `If-Match`, `MSCRM.BypassCustomPluginExecution`, ...). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** A JSON body, sent as `Content-Type: application/json; type=entry` unless `headers` says otherwise. */
  readonly body?: unknown
  /** The `Content-ID` to send instead of the position + 1; must be unique in the batch. */
  readonly contentId?: string | undefined
}

/**
 * Requests that succeed or fail together: the service runs them in one transaction and, when
 * one fails, rolls all back and answers one error, which `send` reports for each of them.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChangeSet {
  readonly _tag: "ChangeSet"
  readonly requests: ReadonlyArray<Request>
}

/**
 * What a batch holds: operations and change sets, in the order they run.
 *
 * @since 0.1.0
 * @category models
 */
export type Item = Request | ChangeSet

/**
 * Groups requests into an atomic change set. No `GET` inside; later requests may refer to
 * earlier ones as `$<Content-ID>`.
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * // Alone in its batch, the account is request 0 (Content-ID 1), so the contact binds to "$1".
 * const items = [
 *   Batch.changeSet([
 *     Batch.post("accounts", { name: "Contoso" }),
 *     Batch.post("contacts", { lastname: "Doe", "parentcustomerid_account@odata.bind": "$1" })
 *   ])
 * ]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const changeSet = (requests: ReadonlyArray<Request>): ChangeSet => ({ _tag: "ChangeSet", requests })

/**
 * Whether an item is a change set.
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * Batch.isChangeSet(Batch.changeSet([])) // true
 * Batch.isChangeSet(Batch.get("WhoAmI")) // false
 * ```
 *
 * @since 0.1.0
 * @category predicates
 */
export const isChangeSet = (item: Item): item is ChangeSet => "_tag" in item && item._tag === "ChangeSet"

/**
 * Per-request options of the constructors.
 *
 * @since 0.1.0
 * @category models
 */
export interface RequestOptions {
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly contentId?: string | undefined
}

const make = (method: Method, url: string, body: unknown, options: RequestOptions | undefined): Request => ({
  method,
  url,
  ...(body === undefined ? {} : { body }),
  ...(options?.headers === undefined ? {} : { headers: options.headers }),
  ...(options?.contentId === undefined ? {} : { contentId: options.contentId })
})

/**
 * A `GET` part.
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * const read = Batch.get("contacts?$select=fullname&$top=10")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const get = (url: string, options?: RequestOptions): Request => make("GET", url, undefined, options)

/**
 * A `POST` part: a create, or an action such as `CreateMultiple`.
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * const create = Batch.post("contacts", { lastname: "Doe" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const post = (url: string, body: unknown, options?: RequestOptions): Request => make("POST", url, body, options)

/**
 * A `PATCH` part: an update or upsert (`If-Match: *` for update only, `If-None-Match: *` for
 * create only).
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * declare const id: string
 * const update = Batch.patch(`contacts(${id})`, { firstname: "Ada" }, { headers: { "If-Match": "*" } })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const patch = (url: string, body: unknown, options?: RequestOptions): Request =>
  make("PATCH", url, body, options)

/**
 * A `PUT` part (a single property value).
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * declare const id: string
 * const set = Batch.put(`contacts(${id})/firstname`, { value: "Ada" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const put = (url: string, body: unknown, options?: RequestOptions): Request => make("PUT", url, body, options)

/**
 * A `DELETE` part.
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * declare const id: string
 * const remove = Batch.delete(`contacts(${id})`)
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
const deleteRequest = (url: string, options?: RequestOptions): Request => make("DELETE", url, undefined, options)

export { deleteRequest as delete }

// -----------------------------------------------------------------------------
// Encoding
// -----------------------------------------------------------------------------

/**
 * The most operations one `$batch` may hold (change-set operations each count).
 *
 * @since 0.1.0
 * @category utils
 */
export const maxOperations = 1000

/**
 * How to write a batch.
 *
 * @since 0.1.0
 * @category models
 */
export interface EncodeOptions {
  /**
   * The Web API root relative URLs are resolved against in the request lines: an absolute URL
   * (`https://contoso.crm.dynamics.com/api/data/v9.2/`, what `send` passes) or a path.
   * Default `/api/data/v9.2/`.
   */
  readonly webApiUrl?: string | undefined
}

/**
 * A written batch: the `Content-Type` of the `$batch` request and its body.
 *
 * @since 0.1.0
 * @category models
 */
export interface Encoded {
  /** `multipart/mixed; boundary=batch_<uuid>`. */
  readonly contentType: string
  readonly body: string
  /** Operations in the batch, change-set operations included. */
  readonly operations: number
}

interface Flat {
  readonly request: Request
  readonly index: number
  readonly group: number
  readonly contentId: string
}

interface Group {
  readonly changeSet: boolean
  readonly indices: ReadonlyArray<number>
}

interface Plan {
  readonly flat: ReadonlyArray<Flat>
  readonly groups: ReadonlyArray<Group>
}

const invalid = (message: string) => new DataverseError({ reason: "InvalidInput", message })

const hasLineBreak = (text: string) => /[\r\n]/.test(text)

const plan = (items: ReadonlyArray<Item>): Either.Either<Plan, DataverseError> => {
  const flat: Array<Flat> = []
  const groups: Array<Group> = []
  const seen = new Set<string>()
  const add = (request: Request, group: number, where: string): DataverseError | undefined => {
    const index = flat.length
    const contentId = request.contentId ?? String(index + 1)
    if (!/^[A-Za-z0-9._~-]+$/.test(contentId)) {
      return invalid(`${where}: the Content-ID '${contentId}' may hold only letters, digits and . _ ~ -.`)
    }
    if (seen.has(contentId)) return invalid(`${where}: the Content-ID '${contentId}' is used twice in the batch.`)
    seen.add(contentId)
    if (typeof request.url !== "string" || request.url.trim() === "" || /\s/.test(request.url)) {
      return invalid(`${where}: the URL must be non-empty without spaces (percent-encode them), got '${request.url}'.`)
    }
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || hasLineBreak(String(value))) {
        return invalid(`${where}: the header '${name}' is not a valid header name and value.`)
      }
    }
    flat.push({ request, index, group, contentId })
    return undefined
  }
  for (const item of items) {
    const group = groups.length
    if (isChangeSet(item)) {
      if (item.requests.length === 0) return Either.left(invalid(`Change set ${group + 1} holds no request.`))
      const indices: Array<number> = []
      for (const request of item.requests) {
        const where = `Request ${flat.length}`
        if (request.method === "GET") {
          return Either.left(invalid(`${where}: a change set cannot hold a GET (${request.url}).`))
        }
        indices.push(flat.length)
        const error = add(request, group, where)
        if (error !== undefined) return Either.left(error)
      }
      groups.push({ changeSet: true, indices })
    } else {
      const index = flat.length
      const error = add(item, group, `Request ${index}`)
      if (error !== undefined) return Either.left(error)
      groups.push({ changeSet: false, indices: [index] })
    }
  }
  if (flat.length > maxOperations) {
    return Either.left(
      invalid(`A $batch holds at most ${maxOperations} operations; this one holds ${flat.length}. Split it.`)
    )
  }
  return Either.right({ flat, groups })
}

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

/**
 * Writes a batch: `multipart/mixed` with a `batch_<uuid>` boundary, CRLF line endings, each
 * operation an `application/http` part with `Content-Transfer-Encoding: binary` and a
 * `Content-ID`, each change set a nested `multipart/mixed` with a `changeset_<uuid>` boundary.
 * Fails with reason `InvalidInput` for more than `maxOperations` operations, an empty change
 * set, a `GET` in a change set, a repeated `Content-ID`, a URL with spaces, a header with a line
 * break, or a body that is not JSON.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Batch } from "@dv-effect/core"
 * const program = Effect.gen(function*() {
 *   const { body, contentType } = yield* Batch.encode([
 *     Batch.post("contacts", { lastname: "Doe" }),
 *     Batch.changeSet([Batch.post("accounts", { name: "Contoso" }), Batch.patch("$2", { telephone1: "555" })])
 *   ], { webApiUrl: "https://contoso.crm.dynamics.com/api/data/v9.2/" })
 *   // POST it to <webApiUrl>$batch with that Content-Type.
 * })
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
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

// -----------------------------------------------------------------------------
// Parsing
// -----------------------------------------------------------------------------

/**
 * The answer to one operation, as read from the batch response.
 *
 * @since 0.1.0
 * @category models
 */
export interface OperationResponse {
  readonly _tag: "OperationResponse"
  /** The part's `Content-ID` (MIME header, or a header of the inner message), when there is one. */
  readonly contentId: string | undefined
  readonly status: number
  /** The reason phrase as sent (`No Content`, `NoContent`, `BadRequest`, or empty). */
  readonly statusText: string
  /** Header names lower-cased. */
  readonly headers: Readonly<Record<string, string>>
  /** The body text, without trailing line breaks; `""` when there is none. */
  readonly body: string
}

/**
 * The answer to a change set that succeeded: one answer per operation.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChangeSetResponse {
  readonly _tag: "ChangeSetResponse"
  readonly parts: ReadonlyArray<OperationResponse>
}

/**
 * A top-level part of a batch response. A change set that failed is answered by a single
 * `OperationResponse` (its error), not a `ChangeSetResponse`.
 *
 * @since 0.1.0
 * @category models
 */
export type Part = OperationResponse | ChangeSetResponse

/**
 * Reads a batch response body into its parts, taking the boundary from `contentType` (or, when
 * it names none, from the first delimiter line). Accepts what real services send: nested
 * boundaries quoted or not, `HTTP/1.1 400 BadRequest` / `204 NoContent` / `204 No Content`,
 * headers with or without a space after the colon, CRLF or LF-only line endings, padding after
 * a delimiter, a missing closing `--`. Fails with reason `Decode` when the body is not
 * multipart or a part holds no status line.
 *
 * @example
 * ```ts
 * import { Batch } from "@dv-effect/core"
 * const parts = Batch.parse(
 *   "multipart/mixed; boundary=batchresponse_1",
 *   "--batchresponse_1\nContent-Type: application/http\n\nHTTP/1.1 204 NoContent\nOData-EntityId:https://x/api/data/v9.2/contacts(00000000-0000-0000-0000-000000000001)\n\n--batchresponse_1"
 * )
 * // Either.right([{ _tag: "OperationResponse", status: 204, statusText: "NoContent", ... }])
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const parse = (
  contentType: string | undefined,
  body: string
): Either.Either<ReadonlyArray<Part>, DataverseError> => {
  const parts = Multipart.parseResponse(contentType, body)
  return parts instanceof Multipart.ParseError
    ? Either.left(new DataverseError({ reason: "Decode", message: parts.message, request: "POST $batch" }))
    : Either.right(parts)
}

// -----------------------------------------------------------------------------
// Results
// -----------------------------------------------------------------------------

interface ResultBase {
  /** The request's position in the batch, from 0, counting the requests of change sets. */
  readonly index: number
  readonly request: Request
}

/**
 * The request succeeded.
 *
 * @since 0.1.0
 * @category models
 */
export interface Success extends ResultBase {
  readonly _tag: "Success"
  readonly status: number
  /** Header names lower-cased. */
  readonly headers: Readonly<Record<string, string>>
  /** The JSON body; undefined when there is none; the text when it is not JSON. */
  readonly body: unknown
  /** The id of the record created or addressed, read from `OData-EntityId` (else `Location`). */
  readonly id: string | undefined
}

/**
 * The request failed, or it belongs to a change set that failed (then every request of the
 * change set carries the same error, and none of them was applied).
 *
 * @since 0.1.0
 * @category models
 */
export interface Failure extends ResultBase {
  readonly _tag: "Failure"
  /** Decoded as for any request: reason, status, code, message, requestId. */
  readonly error: DataverseError
}

/**
 * The request ran and succeeded, but the answer holds no part for it: without
 * continue-on-error, a batch that stops at a failure answers with that failure alone. Use
 * `continueOnError: true` to get every request's status, headers and created id.
 *
 * @since 0.1.0
 * @category models
 */
export interface Applied extends ResultBase {
  readonly _tag: "Applied"
}

/**
 * The request was not run: the batch stopped at an earlier failure (no continue-on-error).
 * Nothing of it was applied; it is safe to send again.
 *
 * @since 0.1.0
 * @category models
 */
export interface NotExecuted extends ResultBase {
  readonly _tag: "NotExecuted"
}

/**
 * What became of the request cannot be told from the answer: the batch stopped at a failure
 * that cannot be pinned to one request (its part carries no known `Content-ID` and came alone),
 * or the answer has no part for the request. `error` is that failure, when there is one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unknown extends ResultBase {
  readonly _tag: "Unknown"
  readonly message: string
  readonly error: DataverseError | undefined
}

/**
 * The outcome of one request of a batch.
 *
 * @since 0.1.0
 * @category models
 */
export type Result = Success | Failure | Applied | NotExecuted | Unknown

/**
 * A raw `$batch` answer: status, headers (lower-case names) and body text.
 *
 * @since 0.1.0
 * @category models
 */
export interface RawResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
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

/**
 * Maps a raw `$batch` answer to one result per request, in request order: by position, and by
 * `Content-ID` (inside change sets, and to place an error part when the batch stopped at the
 * first failure). A failed change set's single error part becomes a `Failure` of each of its
 * requests. Fails with reason `InvalidInput` when `items` cannot be a batch, `Decode` when the
 * answer cannot be read.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Batch } from "@dv-effect/core"
 * // status, headers and body text of a $batch answer obtained by other means
 * declare const response: Batch.RawResponse
 * const items = [Batch.post("contacts", { lastname: "Doe" })]
 * const program = Effect.gen(function*() {
 *   const results = yield* Batch.decodeResponse(items, response)
 *   for (const result of results) if (result._tag === "Success") yield* Effect.log(result.id)
 * })
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
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

// -----------------------------------------------------------------------------
// Execution
// -----------------------------------------------------------------------------

/**
 * How to run a batch.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecuteOptions {
  /**
   * `Prefer: odata.continue-on-error`: run every request whatever fails before it, and answer
   * each. Default false: the service stops at the first failure (then the results say which
   * requests were applied, which failed and which did not run, as far as the answer tells).
   */
  readonly continueOnError?: boolean | undefined
  /** Headers of the `$batch` request itself (e.g. `MSCRM.BypassCustomPluginExecution`). */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/**
 * Posts the batch and reads the answer whatever its status: without continue-on-error a failing
 * batch answers with the failing part's status and that part, which `decodeResponse` maps to its
 * request. An answer that is not multipart is a failure of the batch as a whole. A 429 never
 * comes back here: the connection waits it out and sends the batch again (nothing of it ran).
 */
const postBatch = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.flatMap(DataverseClient, (client) =>
    Effect.scoped(
      Effect.flatMap(client.executeRaw(request), (response) =>
        Effect.flatMap(
          response.text.pipe(
            Effect.mapError((error) =>
              new DataverseError({
                reason: "Transport",
                message:
                  `The $batch answer was cut off: ${error.message}; its requests may or may not have been applied.`,
                request: "POST $batch",
                cause: error
              })
            )
          ),
          (body): Effect.Effect<RawResponse, DataverseError> => {
            const multipart = /^multipart\//i.test(response.headers["content-type"] ?? "")
            if (response.status < 400 || multipart) {
              return Effect.succeed({ status: response.status, headers: response.headers, body })
            }
            return Effect.clockWith((clock) => clock.currentTimeMillis).pipe(
              Effect.flatMap((now) =>
                Effect.fail(decodeErrorResponse("POST $batch", response.status, response.headers, body, now))
              )
            )
          }
        ))
    ))

/**
 * Sends the items as one `POST $batch` through the connection and returns one result per
 * request, in request order (change-set requests included): `Success` (status, headers, JSON
 * body, created `id`), `Failure` (a `DataverseError` decoded as for a single request; every
 * request of a failed change set gets its one error), `Applied` (ran before the failure the
 * batch stopped at; the answer holds nothing more), `NotExecuted` (after it), or `Unknown`.
 *
 * Fails only when the batch as a whole fails: invalid items (`InvalidInput`, before sending,
 * e.g. more than 1,000 operations), no answer (`Timeout`, `Transport`: the batch may have been
 * applied), a refusal of the whole request (401, 413, a JSON error such as a malformed batch),
 * an answer that cannot be read (`Decode`), a throttle wait past the connection's
 * `maxThrottleWait` (`Throttled`). A 429 is waited out and the batch sent again: nothing ran.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Batch } from "@dv-effect/core"
 * const program = Effect.gen(function*() {
 *   const results = yield* Batch.send([
 *     Batch.post("contacts", { lastname: "Doe" }),
 *     Batch.changeSet([
 *       Batch.post("accounts", { name: "Contoso" }),
 *       Batch.post("contacts", { lastname: "Roe", "parentcustomerid_account@odata.bind": "$2" })
 *     ])
 *   ], { continueOnError: true })
 *   for (const result of results) {
 *     if (result._tag === "Success") yield* Effect.log(`${result.index}: created ${result.id}`)
 *     if (result._tag === "Failure") yield* Effect.log(`${result.index}: ${result.error.message}`)
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const send = (
  items: ReadonlyArray<Item>,
  options: ExecuteOptions = {}
): Effect.Effect<ReadonlyArray<Result>, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const encoded = yield* encode(items, { webApiUrl: client.webApiUrl })
    if (encoded.operations === 0) return []
    const prefer = [
      ...Object.entries(options.headers ?? {}).filter(([name]) => name.toLowerCase() === "prefer").map(([, v]) => v),
      ...(options.continueOnError === true ? ["odata.continue-on-error"] : [])
    ]
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (name.toLowerCase() !== "prefer") headers[name] = value
    }
    if (prefer.length > 0) headers["Prefer"] = prefer.join(", ")
    const request = HttpClientRequest.post("$batch").pipe(
      HttpClientRequest.setHeaders(headers),
      HttpClientRequest.bodyText(encoded.body, encoded.contentType)
    )
    return yield* decodeResponse(items, yield* postBatch(request))
  })

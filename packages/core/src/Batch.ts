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
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type { DataverseClient } from "./DataverseClient.js"
import type { DataverseError } from "./DataverseError.js"
import * as internal from "./internal/batch.js"
import * as internalEncode from "./internal/batchEncode.js"
import * as internalPlan from "./internal/batchPlan.js"
import * as internalResults from "./internal/batchResults.js"
import * as internalSend from "./internal/batchSend.js"

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
export const changeSet: (requests: ReadonlyArray<Request>) => ChangeSet = internal.changeSet

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
export const isChangeSet: (item: Item) => item is ChangeSet = internal.isChangeSet

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
export const get: (url: string, options?: RequestOptions) => Request = internal.get

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
export const post: (url: string, body: unknown, options?: RequestOptions) => Request = internal.post

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
export const patch: (url: string, body: unknown, options?: RequestOptions) => Request = internal.patch

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
export const put: (url: string, body: unknown, options?: RequestOptions) => Request = internal.put

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
const deleteRequest: (url: string, options?: RequestOptions) => Request = internal.deleteRequest

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
export const maxOperations: 1000 = internalPlan.maxOperations

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
export const encode: (
  items: ReadonlyArray<Item>,
  options?: EncodeOptions
) => Effect.Effect<Encoded, DataverseError> = internalEncode.encode

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
export const parse: (
  contentType: string | undefined,
  body: string
) => Either.Either<ReadonlyArray<Part>, DataverseError> = internalResults.parse

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
export const decodeResponse: (
  items: ReadonlyArray<Item>,
  response: RawResponse
) => Effect.Effect<ReadonlyArray<Result>, DataverseError> = internalResults.decodeResponse

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
export const send: (
  items: ReadonlyArray<Item>,
  options?: ExecuteOptions
) => Effect.Effect<ReadonlyArray<Result>, DataverseError, DataverseClient> = internalSend.send

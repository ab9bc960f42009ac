/**
 * The one error of this library: a `DataverseError` with a `reason` saying what kind of
 * failure it is, and what the service said (HTTP status, Dataverse code, request id,
 * Retry-After).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Option from "effect/Option"
import * as internal from "./internal/errorRules.js"

/**
 * What kind of failure an error is. Callers branch on this rather than on HTTP statuses.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason =
  /** 429: a service protection limit; wait `retryAfter`. */
  | "Throttled"
  /** 401: missing, invalid or expired token. */
  | "Unauthorized"
  /** 403: the user lacks a privilege. */
  | "Forbidden"
  /** 404: the record, table or resource does not exist. */
  | "NotFound"
  /** 412 with a duplicate key or a matching duplicate-detection rule. */
  | "DuplicateKey"
  /** 412 otherwise: an `If-Match`/`If-None-Match` condition failed. */
  | "PreconditionFailed"
  /**
   * A value was refused: by the service (400, with `status` and `code`), or by the checks of a
   * row against the table's metadata before it was sent (no `status`: too long, wrong type, not
   * a GUID, an unknown column).
   */
  | "Validation"
  /** 413, 414, 431: the request (its body, URL or headers) was too large; send fewer records or values. */
  | "PayloadTooLarge"
  /** No answer in time (client timeout, 408, or a SQL timeout): maybe committed, maybe not. */
  | "Timeout"
  /** The connection failed or was reset after the request was sent: maybe committed, maybe not. */
  | "Transport"
  /** The host could not be reached (name not found, connection refused): nothing was sent. */
  | "Unreachable"
  /** 500 deadlock, 502, 503, 504: the service is busy; retry. */
  | "ServiceUnavailable"
  /** The table does not support the message (e.g. `CreateMultiple`). */
  | "UnsupportedMessage"
  /** The answer could not be understood. */
  | "Decode"
  /**
   * Bad options, or input that cannot be sent at all, on the client side before anything was
   * sent: a row without its id or key values, a `Bulk.InvalidRow`, an unknown table or key column.
   */
  | "InvalidInput"
  /** Any other server error. */
  | "Unknown"

/**
 * A failure talking to Dataverse.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DataverseError, Records } from "@dv-effect/core"
 *
 * const program = Records.create("contact", { lastname: "Doe" }).pipe(
 *   Effect.catchTag("DataverseError", (error) =>
 *     error.reason === "DuplicateKey" ? Effect.succeed(undefined) : Effect.fail(error))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class DataverseError extends Data.TaggedError("DataverseError")<{
  readonly reason: Reason
  /** A sentence a person can act on. */
  readonly message: string
  readonly status?: number | undefined
  /** The Dataverse error code in hex, `0x80040217`; undefined when the service sent none. */
  readonly code?: string | undefined
  /** `x-ms-service-request-id` / `REQ_ID`, to quote to Microsoft support. */
  readonly requestId?: string | undefined
  /** How long the service asked to wait before retrying. */
  readonly retryAfter?: Duration.Duration | undefined
  /** The HTTP method and the URL without its query string. */
  readonly request?: string | undefined
  /**
   * Other properties of the service's error object: the `@Microsoft.PowerApps.CDS.*` annotations
   * (error details, help link, and for elastic bulk messages `...BulkApiErrorDetails`).
   */
  readonly details?: Readonly<Record<string, unknown>> | undefined
  readonly cause?: unknown
}> {}

/**
 * Whether retrying the same request may succeed: throttling, timeouts, transport failures and
 * busy-service errors. Data errors (validation, not found, duplicates) are never transient.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isTransient: (error: DataverseError) => boolean = internal.isTransient

/**
 * Whether an error is a failure of the run, not of a row: no retry of the request cures it, or
 * the retries were spent (an outage), and the bulk engine stops the run on it instead of failing
 * rows (see the README, "Row failures and run failures").
 *
 * - `Unauthorized`: a 401 the connection's one token refresh did not cure (a static token that
 *   expired, a revoked secret, a disabled application user), or a sign-in that failed.
 * - `Forbidden`: a 403, a privilege the identity lacks (0x80040220): its roles must change.
 * - `Throttled`: a wait past the connection's `maxThrottleWait`.
 * - `Decode`: an answer that could not be read (a gateway's page, not the service's).
 * - the transient reasons (`isTransient`) once retried: the service is down or unreachable.
 *
 * @since 0.2.0
 * @category predicates
 */
export const isRunFailure: (error: DataverseError) => boolean = internal.isRunFailure

/**
 * Whether the request may have been applied although it failed: a timeout or a broken
 * connection, or a gateway timeout. Only idempotent requests may be retried blindly after one.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isAmbiguous: (error: DataverseError) => boolean = internal.isAmbiguous

/**
 * Normalises a Dataverse error code to lower-case `0x` hex with 8 digits. Accepts hex with or
 * without `0x` and the signed or unsigned decimal form some clients report. `""` and `0x0`
 * (OData-layer errors) become undefined.
 *
 * @since 0.1.0
 * @category utils
 */
export const normaliseCode: (code: unknown) => string | undefined = internal.normaliseCode

/**
 * Parses a `Retry-After` header: integer or fractional seconds, or an HTTP date (relative to
 * `now`, in milliseconds since the epoch).
 *
 * @since 0.1.0
 * @category conversions
 */
export const parseRetryAfter: (header: string | undefined, now: number) => Option.Option<Duration.Duration> =
  internal.parseRetryAfter

/**
 * The reason for an HTTP error status and Dataverse code.
 *
 * @since 0.1.0
 * @category utils
 */
export const reasonFor: (status: number, code: string | undefined) => Reason = internal.reasonFor

// The rules of DataverseError: which failures are transient, ambiguous or the run's, error codes,
// Retry-After, and the reason for a status and code.
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { DataverseError, Reason } from "../DataverseError.js"

/**
 * Whether retrying the same request may succeed: throttling, timeouts, transport failures and
 * busy-service errors. Data errors (validation, not found, duplicates) are never transient.
 */
export const isTransient = (error: DataverseError): boolean =>
  error.reason === "Throttled" || error.reason === "Timeout" || error.reason === "Transport" ||
  error.reason === "ServiceUnavailable" || error.reason === "Unreachable"

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
 */
export const isRunFailure = (error: DataverseError): boolean =>
  error.reason === "Unauthorized" || error.reason === "Forbidden" || error.reason === "Decode" || isTransient(error)

/**
 * Whether the request may have been applied although it failed: a timeout or a broken
 * connection, or a gateway timeout. Only idempotent requests may be retried blindly after one.
 */
export const isAmbiguous = (error: DataverseError): boolean =>
  error.reason === "Timeout" || error.reason === "Transport" || error.status === 504

/**
 * Normalises a Dataverse error code to lower-case `0x` hex with 8 digits. Accepts hex with or
 * without `0x` and the signed or unsigned decimal form some clients report. `""` and `0x0`
 * (OData-layer errors) become undefined.
 */
export const normaliseCode = (code: unknown): string | undefined => {
  if (typeof code === "number") return normaliseCode(String(code))
  if (typeof code !== "string") return undefined
  const text = code.trim()
  let value: number
  if (/^0x[0-9a-f]+$/i.test(text)) value = parseInt(text.slice(2), 16)
  // Dataverse codes have the high bit set: eight digits starting with 8 are hex without "0x".
  else if (/^8[0-9a-f]{7}$/i.test(text)) value = parseInt(text, 16)
  else if (/^-?\d+$/.test(text)) value = Number(text)
  else return undefined
  if (!Number.isSafeInteger(value) || value === 0) return undefined
  const unsigned = value < 0 ? value + 0x1_0000_0000 : value
  return `0x${unsigned.toString(16).padStart(8, "0")}`
}

/**
 * Parses a `Retry-After` header: integer or fractional seconds, or an HTTP date (relative to
 * `now`, in milliseconds since the epoch).
 */
export const parseRetryAfter = (header: string | undefined, now: number): Option.Option<Duration.Duration> => {
  if (header === undefined) return Option.none()
  const text = header.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Option.some(Duration.millis(Math.round(Number(text) * 1000)))
  const date = Date.parse(text)
  if (Number.isNaN(date)) return Option.none()
  return Option.some(Duration.millis(Math.max(0, date - now)))
}

const codeReasons: Readonly<Record<string, Reason>> = {
  "0x80040237": "DuplicateKey",
  "0x80040333": "DuplicateKey",
  "0x80044150": "ServiceUnavailable",
  "0x80044151": "Timeout",
  "0x80060888": "NotFound",
  "0x80040217": "NotFound",
  "0x80040220": "Forbidden"
}

/**
 * The reason for an HTTP error status and Dataverse code.
 */
export const reasonFor = (status: number, code: string | undefined): Reason => {
  const byCode = code === undefined ? undefined : codeReasons[code]
  if (status === 429) return "Throttled"
  if (status === 401) return "Unauthorized"
  if (status === 403) return "Forbidden"
  // A duplicate is known by its code, whatever the status it comes with.
  if (byCode === "DuplicateKey") return "DuplicateKey"
  if (status === 404) return "NotFound"
  if (status === 412) return "PreconditionFailed"
  // 414 and 431: the URL or the headers were too long (a lookup of many values), the same remedy.
  if (status === 413 || status === 414 || status === 431) return "PayloadTooLarge"
  if (status === 408) return "Timeout"
  if (status === 502 || status === 503 || status === 504) return "ServiceUnavailable"
  if (status >= 500) return byCode === "Timeout" || byCode === "ServiceUnavailable" ? byCode : "Unknown"
  if (status >= 400) return "Validation"
  return "Unknown"
}

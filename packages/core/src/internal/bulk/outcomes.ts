import type * as Effect from "effect/Effect"
import type { Operation, RowOutcome } from "../../Bulk.js"
import type { DataverseClient } from "../../DataverseClient.js"
import { type DataverseError, isTransient } from "../../DataverseError.js"
import type { RunPlan } from "./plan.js"
import type { Prepared } from "./prepare.js"

/** Sends rows by one strategy and answers one outcome per row; fails only with a run failure. */
export type Sender = (
  plan: RunPlan,
  op: Operation,
  items: ReadonlyArray<Prepared>
) => Effect.Effect<Array<RowOutcome>, DataverseError, DataverseClient>

export const succeeded = (op: Operation, item: Prepared, id: string | undefined): RowOutcome => ({
  index: item.index,
  status: op === "create" ? "created" : op === "update" ? "updated" : op === "delete" ? "deleted" : "upserted",
  id
})

export const failedAll = (items: ReadonlyArray<Prepared>, error: DataverseError): Array<RowOutcome> =>
  items.map((item) => ({ index: item.index, status: "failed", error }))

/** Worth sending again: the request may go through next time (or in smaller pieces). */
export const isRetryable = (error: DataverseError) => isTransient(error) || error.reason === "PayloadTooLarge"

/** The service ran out of time or room for the request: fewer rows may go through. */
export const isTooBig = (error: DataverseError) =>
  error.reason === "PayloadTooLarge" || error.code === sqlTimeoutCode || error.reason === "Timeout"

/** A refusal of the request's size, not of its time: send it again in halves. */
export const isSplittable = (error: DataverseError) =>
  error.reason === "PayloadTooLarge" || error.code === sqlTimeoutCode

/** "SQL timeout expired" (wire reference §3): the chunk was too large for the time limit. */
const sqlTimeoutCode = "0x80044151"

/**
 * A failure of the run, not of its rows: it stops the run at once, no row is reported failed for
 * it and none is journalled as finished, so a resumed run sends them again.
 *
 * - `Throttled`: a wait past `maxThrottleWait` (throttling itself is waited out by the connection,
 *   wire reference §6).
 * - `Unauthorized`: a 401 the connection's one token refresh did not cure (a static token that
 *   expired, a revoked secret, a disabled application user), or a sign-in that failed (§5, §9).
 * - `Forbidden`: a 403, a privilege the identity lacks (§5, 0x80040220): its security roles, not
 *   the row, must change.
 * - `Decode`: an answer that could not be read (a gateway's page, not the service's).
 */
export const isRunFailure = (error: DataverseError) => runFailures.has(error.reason)

const runFailures: ReadonlySet<DataverseError["reason"]> = new Set(["Throttled", "Unauthorized", "Forbidden", "Decode"])

/**
 * Stops the run once the retry policy has given up: a run failure, or a transient failure
 * (timeout, broken connection, 5xx, host unreachable) that outlasted the retries: an outage.
 */
export const stopsRun = (error: DataverseError) => isRunFailure(error) || isTransient(error)

/**
 * A duplicate key (wire reference §5: 0x80040237, -2147220937 in decimal, "Cannot insert
 * duplicate key" or "A record with matching key values already exists"), recognised by its code
 * whatever the HTTP status it came with.
 */
export const isDuplicateKey = (error: DataverseError) => error.code === "0x80040237"

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

/** A delete of a record that is not there has done its job: deleted, and said to be absent. */
export const absent = (item: Prepared): RowOutcome => ({
  index: item.index,
  status: "deleted",
  id: item.id,
  absent: true
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
 * A run failure that stops the run at once, without the retries transient failures get (those
 * stop it once the retries are spent: `isRunFailure` of `DataverseError`): a 401 one token
 * refresh did not cure, a 403 (wire reference §5), an unreadable answer, and `Throttled`, a wait
 * past `maxThrottleWait` (throttling itself is waited out by the connection, §6). No row is
 * reported failed for it and none is journalled as finished: a resumed run sends them again.
 */
export const stopsAtOnce = (error: DataverseError) =>
  error.reason === "Unauthorized" || error.reason === "Forbidden" || error.reason === "Decode" ||
  error.reason === "Throttled"

/**
 * A duplicate key (wire reference §5: 0x80040237, -2147220937 in decimal, "Cannot insert
 * duplicate key" or "A record with matching key values already exists"), recognised by its code
 * whatever the HTTP status it came with.
 */
export const isDuplicateKey = (error: DataverseError) => error.code === "0x80040237"

import * as Effect from "effect/Effect"
import type { RowOutcome } from "../../Bulk.js"
import { DataverseError } from "../../DataverseError.js"
import * as Batch from "../batch.js"
import { maxOperations } from "../batchPlan.js"
import { send } from "../batchSend.js"
import { absent, failedAll, type Sender, stopsAtOnce, succeeded } from "./outcomes.js"
import { bodyOf, pathOf } from "./prepare.js"

/**
 * Sends rows as one `$batch` with continue-on-error (wire reference §4): every row gets its own
 * answer. The strategy of tables without the `*Multiple` messages, and how a standard-table chunk
 * refused for one bad row is searched for it. Fails only with a run failure.
 */
export const sendBatch: Sender = (plan, op, items) =>
  items.length <= maxOperations
    ? sendOneBatch(plan, op, items)
    // A `$batch` holds at most 1,000 operations (wire reference §4): a larger chunk (a fixed
    // chunkSize, or a `*Multiple` request searched for its bad row) goes as several, in turn.
    : Effect.map(
      Effect.forEach(slices(items, maxOperations), (slice) => sendOneBatch(plan, op, slice)),
      (outcomes) => outcomes.flat()
    )

const slices = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

const sendOneBatch: Sender = (plan, op, items) =>
  Effect.gen(function*() {
    const { metadata } = plan
    const requests = items.map((item) => {
      const body = bodyOf(item, metadata.primaryIdAttribute)
      switch (op) {
        case "create":
          return Batch.post(metadata.entitySetName, body)
        case "update":
          return Batch.patch(pathOf(metadata, item), body, { headers: { "If-Match": "*" } })
        case "upsert":
          return Batch.patch(pathOf(metadata, item), body)
        case "delete":
          return Batch.deleteRequest(pathOf(metadata, item))
      }
    })
    const results = yield* Effect.either(send(requests, { continueOnError: true, headers: plan.headers }))
    if (results._tag === "Left") {
      if (stopsAtOnce(results.left)) return yield* results.left
      return failedAll(items, results.left)
    }
    return results.right.map((result, i): RowOutcome => {
      const item = items[i]!
      // The id the engine sent is the record's, whatever the answer says.
      if (result._tag === "Success") return succeeded(op, item, item.id ?? result.id)
      // A delete of a record that is already gone has done its job.
      if (result._tag === "Failure" && op === "delete" && result.error.reason === "NotFound") return absent(item)
      const error = result._tag === "Failure"
        ? result.error
        : new DataverseError({
          reason: "Unknown",
          message: `The $batch answer did not say what happened to this row (${result._tag}).`
        })
      return { index: item.index, status: "failed", error }
    })
  })

import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { Operation, RowOutcome } from "../../Bulk.js"
import type { DataverseClient } from "../../DataverseClient.js"
import { type DataverseError, isAmbiguous, isRunFailure } from "../../DataverseError.js"
import type { ChunkSizer } from "./chunking.js"
import { confirmOwnDuplicates, confirmUnseenDuplicates, landedOrNone } from "./exactlyOnce.js"
import { measured } from "./latency.js"
import { failedAll, isRetryable, isSplittable, isTooBig, succeeded } from "./outcomes.js"
import { type RunPlan, sendsWith } from "./plan.js"
import type { Prepared } from "./prepare.js"
import { sendBatch } from "./sendBatch.js"
import { sendMultiple } from "./sendMultiple.js"
import { sendSingle } from "./sendSingle.js"

/** What `sendResilient` needs besides the plan. */
export interface SendContext {
  readonly plan: RunPlan
  readonly sizer: ChunkSizer
  readonly retryPolicy: Schedule.Schedule<unknown, DataverseError>
  /** Counts a request sent again after a transient failure. */
  readonly onRetry: () => void
}

const sendOnce = (plan: RunPlan, op: Operation, items: ReadonlyArray<Prepared>) => {
  switch (sendsWith(plan, op)) {
    case "single":
      return sendSingle(plan, op, items)
    case "multiple":
      return sendMultiple(plan, op, items)
    case "batch":
      return sendBatch(plan, op, items)
  }
}

/**
 * Sends rows until each has a final outcome: retries transient failures by the retry policy
 * (throttling never reaches here: the connection waits it out), halves chunks that are too big,
 * and after an answer that never came sends only the creates that did not land. Each clean
 * answer tells the chunk sizer and the connection's controller its latency. Fails only with a
 * run failure, or a transient failure the retry policy gave up on (an outage).
 */
export const sendResilient = (
  context: SendContext,
  op: Operation,
  items: ReadonlyArray<Prepared>,
  round: number,
  unseenBefore: ReadonlyArray<Prepared> = []
): Effect.Effect<Array<RowOutcome>, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const { plan, sizer } = context
    const controller = plan.client.controller
    const driver = yield* Schedule.driver(context.retryPolicy)
    const final: Array<RowOutcome> = []
    // Rows with their own ids on an elastic table that a lookup did not show landed after a lost
    // answer (this one's, or a stopped run's: `unseenBefore`): a duplicate refusal of them may be
    // of their own write (`confirmUnseenDuplicates`).
    const unseen: Array<Prepared> = [...unseenBefore]
    let pending = items
    while (pending.length > 0) {
      // Whether this request was refused for its rows and searched (`isolate`): the search then
      // told the sizer of these rows, and its time is no clean request's.
      let searched = false
      const watched: ChunkSizer = {
        ...sizer,
        refusing: (rows, ms) => {
          searched = true
          sizer.refusing(rows, ms)
        }
      }
      const [outcomes, elapsed] = yield* measured(controller, sendOnce({ ...plan, sizer: watched }, op, pending))
      const again: Array<Prepared> = []
      let error: DataverseError | undefined
      outcomes.forEach((outcome, i) => {
        if (outcome.status === "failed" && isRetryable(outcome.error)) {
          again.push(pending[i]!)
          error ??= outcome.error
        } else final.push(outcome)
      })
      if (error === undefined) {
        // Latency the client measured itself (wire reference §6), when no Retry-After held the
        // request.
        if (!searched && !outcomes.some((outcome) => outcome.status === "failed")) {
          sizer.observe(pending.length, elapsed)
          if (elapsed !== undefined) yield* controller.observe(round, pending.length, elapsed)
        }
        break
      }
      // The rows of the request that was too big: a part of a searched chunk, or the whole chunk.
      if (isTooBig(error)) sizer.shrink(again.length)
      pending = again
      if (isSplittable(error) && pending.length > 1) {
        const half = Math.ceil(pending.length / 2)
        for (const outcome of yield* sendResilient(context, op, pending.slice(0, half), round)) final.push(outcome)
        for (const outcome of yield* sendResilient(context, op, pending.slice(half), round)) final.push(outcome)
        break
      }
      if (op === "create" && isAmbiguous(error)) {
        // The service may have written them before the answer was lost.
        const found = yield* landedOrNone(plan, pending)
        for (const item of pending) if (found.has(item.id!)) final.push(succeeded(op, item, item.id))
        pending = pending.filter((item) => !found.has(item.id!))
        if (pending.length === 0) break
        if (plan.elastic) { for (const item of pending) if (!item.ownId) unseen.push(item) }
      }
      const next = yield* Effect.either(driver.next(error))
      if (next._tag === "Left") {
        // The retries are spent: an outage stops the run; only a row too large to send fails alone.
        if (isRunFailure(error)) return yield* error
        for (const outcome of failedAll(pending, error)) final.push(outcome)
        break
      }
      context.onRetry()
    }
    // A duplicate of an id the engine chose is a row an earlier attempt already created; one of a
    // row's own id may be, once its record shows.
    if (op === "create") {
      yield* confirmOwnDuplicates(plan, items, final)
      yield* confirmUnseenDuplicates(plan, unseen, final)
    }
    return final
  })

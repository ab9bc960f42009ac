import * as Effect from "effect/Effect"
import type { Operation, RowOutcome } from "../../Bulk.js"
import type { DataverseClient } from "../../DataverseClient.js"
import { DataverseError, reasonFor } from "../../DataverseError.js"
import type { ChunkSizer } from "./chunking.js"
import { measured } from "./latency.js"
import { failedAll, isRetryable, succeeded } from "./outcomes.js"
import type { RunPlan } from "./plan.js"
import type { Prepared } from "./prepare.js"
import { sendBatch } from "./sendBatch.js"

type Resend = (items: ReadonlyArray<Prepared>) => Effect.Effect<Array<RowOutcome>, DataverseError, DataverseClient>

/**
 * Finding the rows a bulk message refused (wire reference §3). A standard table runs the message
 * as one transaction: one bad target fails the request, nothing is written, and the error names
 * no row. The chunk is sent again as a `$batch` with continue-on-error (`batch`, the default:
 * every row answers for itself) or in halves through the same message until each bad row stands
 * alone (`bisect`, through `resend`). Elastic tables apply what they can and list the failures.
 */
export const isolate = (
  plan: RunPlan,
  op: Operation,
  items: ReadonlyArray<Prepared>,
  error: DataverseError,
  resend: Resend,
  refusedMs: number | undefined
): Effect.Effect<Array<RowOutcome>, DataverseError, DataverseClient> => {
  if (plan.elastic) return Effect.succeed(elasticOutcomes(op, items, error))
  if (items.length === 1) {
    // A row refused alone is bad, and needs no search.
    if (plan.isolation === "batch") plan.sizer?.searched(1, 1, undefined)
    return Effect.succeed(failedAll(items, error))
  }
  if (plan.isolation === "batch") return search(plan, op, items, resend, refusedMs)
  const half = Math.ceil(items.length / 2)
  return Effect.zipWith(resend(items.slice(0, half)), resend(items.slice(half)), (a, b) => [...a, ...b])
}

/**
 * The `$batch` search of a refused chunk, told to the run's chunk sizer: the refusal at once with
 * the time it took (the requests formed meanwhile are cut at the smaller size it makes best), then
 * the rows searched, how many were bad and how long the `$batch` took; latency the client measures
 * itself (wire reference §6). A chunk at least twice the chunk size of that moment (which the
 * refusals keep at or below their best; the chunk was formed before) goes again through the
 * message in parts of that size, in turn, and only a refused part is searched by `$batch`: a
 * `$batch` costs execution time for each of its operations (§4). The parts' own refusals tell the
 * sizer of themselves, so the chunk's refusal stops counting when they go.
 */
const search = (
  plan: RunPlan,
  op: Operation,
  items: ReadonlyArray<Prepared>,
  resend: Resend,
  refusedMs: number | undefined
): Effect.Effect<Array<RowOutcome>, DataverseError, DataverseClient> => {
  const sizer = plan.sizer
  if (sizer === undefined) return sendBatch(plan, op, items)
  return Effect.suspend(() => {
    sizer.refusing(items.length, refusedMs)
    const size = sizer.current()
    if (items.length < 2 * size) {
      return searchByBatch(plan, op, items, sizer).pipe(Effect.ensuring(Effect.sync(() => sizer.settled())))
    }
    sizer.settled()
    return Effect.gen(function*() {
      const parts = Math.ceil(items.length / size)
      const partSize = Math.ceil(items.length / parts)
      const outcomes: Array<RowOutcome> = []
      for (let start = 0; start < items.length; start += partSize) {
        const part = items.slice(start, start + partSize)
        const answered = yield* resend(part)
        // A refused part told the sizer of its own search; a clean one, its rows.
        if (!answered.some((outcome) => outcome.status === "failed")) sizer.observe(part.length, undefined)
        for (const outcome of answered) outcomes.push(outcome)
      }
      return outcomes
    })
  })
}

/**
 * The `$batch` of a refused chunk, and its figures for the sizer: the rows it settled and how many
 * of them were bad. A row whose operation failed for a passing reason (a 5xx, a lost connection)
 * is neither: it is sent again, and counted then; nor is the time of a `$batch` that had any.
 */
const searchByBatch = (plan: RunPlan, op: Operation, items: ReadonlyArray<Prepared>, sizer: ChunkSizer) =>
  Effect.map(measured(plan.client.controller, sendBatch(plan, op, items)), ([outcomes, elapsed]) => {
    let bad = 0
    let again = 0
    for (const outcome of outcomes) {
      if (outcome.status !== "failed") continue
      if (isRetryable(outcome.error)) again++
      else bad++
    }
    sizer.searched(items.length - again, bad, again === 0 ? elapsed : undefined)
    return outcomes
  })

/**
 * An elastic table applied every target it could and lists the failed ones in
 * `...BulkApiErrorDetails` (a JSON string or an array of `{RequestIndex, StatusCode, ErrorCode,
 * Message}`; the exact shape is unconfirmed, §3). Targets not listed succeeded; without details
 * the whole chunk failed.
 */
export const elasticOutcomes = (
  op: Operation,
  items: ReadonlyArray<Prepared>,
  error: DataverseError
): Array<RowOutcome> => {
  const raw = Object.entries(error.details ?? {}).find(([name]) => name.endsWith("BulkApiErrorDetails"))?.[1]
  let details: Array<{ RequestIndex?: unknown; StatusCode?: unknown; Message?: unknown; ErrorCode?: unknown }> = []
  try {
    details = typeof raw === "string" ? JSON.parse(raw) : Array.isArray(raw) ? raw : []
  } catch {
    details = []
  }
  if (details.length === 0) return failedAll(items, error)
  const failed = new Map(details.map((d) => [Number(d.RequestIndex), d]))
  return items.map((item, i): RowOutcome => {
    const detail = failed.get(i)
    if (detail === undefined) return succeeded(op, item, item.id)
    const status = Number(detail.StatusCode)
    if (op === "delete" && status === 404) return succeeded(op, item, item.id)
    const code = typeof detail.ErrorCode === "string" ? detail.ErrorCode : error.code
    return {
      index: item.index,
      status: "failed",
      error: new DataverseError({
        reason: reasonFor(Number.isFinite(status) ? status : 400, code),
        status,
        code,
        message: typeof detail.Message === "string" ? detail.Message : error.message,
        requestId: error.requestId
      })
    }
  })
}

import * as Effect from "effect/Effect"
import type { Operation, RowOutcome } from "../../Bulk.js"
import type { DataverseClient } from "../../DataverseClient.js"
import { DataverseError, reasonFor } from "../../DataverseError.js"
import { failedAll, succeeded } from "./outcomes.js"
import type { RunPlan } from "./plan.js"
import type { Prepared } from "./prepare.js"
import { sendBatch } from "./sendBatch.js"

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
  resend: (items: ReadonlyArray<Prepared>) => Effect.Effect<Array<RowOutcome>, DataverseError, DataverseClient>
): Effect.Effect<Array<RowOutcome>, DataverseError, DataverseClient> => {
  if (plan.elastic) return Effect.succeed(elasticOutcomes(op, items, error))
  if (items.length === 1) return Effect.succeed(failedAll(items, error))
  if (plan.isolation === "batch") return sendBatch(plan, op, items)
  const half = Math.ceil(items.length / 2)
  return Effect.zipWith(resend(items.slice(0, half)), resend(items.slice(half)), (a, b) => [...a, ...b])
}

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

import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import type { Operation } from "../../Bulk.js"
import { DataverseError } from "../../DataverseError.js"
import { bodyJson } from "../requestBody.js"
import { isolate } from "./isolation.js"
import { measured } from "./latency.js"
import { failedAll, isRetryable, type Sender, stopsAtOnce, succeeded } from "./outcomes.js"
import { messageOf, type RunPlan } from "./plan.js"
import { partitionOf, pathOf, type Prepared } from "./prepare.js"
import { sendBatch } from "./sendBatch.js"

/**
 * The `*Multiple` request of the rows: every target with the table's `@odata.type`. Built outside
 * the sender's generator, whose frame lives as long as the request: the target objects are
 * garbage once serialised, not kept through the round trip.
 */
const requestOf = (plan: RunPlan, op: Operation, items: ReadonlyArray<Prepared>) => {
  const { metadata } = plan
  const pk = metadata.primaryIdAttribute
  const odataType = `Microsoft.Dynamics.CRM.${metadata.logicalName}`
  const targets = items.map((item) => {
    if (op === "delete") {
      const partition = partitionOf(item.row)
      return {
        "@odata.type": odataType,
        [pk]: item.id,
        ...(partition === undefined ? {} : { partitionid: partition })
      }
    }
    const target: Record<string, unknown> = { "@odata.type": odataType }
    const row = item.row
    for (const name in row) if (!name.startsWith("@odata.")) target[name] = row[name]
    if (item.ownId) target[pk] = item.id
    if (op === "upsert" && item.id === undefined && item.ref !== undefined) {
      target["@odata.id"] = pathOf(metadata, item)
    }
    if (op === "update" && item.id !== undefined) target[pk] = item.id
    return target
  })
  return HttpClientRequest.post(`${metadata.entitySetName}/Microsoft.Dynamics.CRM.${messageOf[op]}${plan.tagQuery}`)
    .pipe(
      HttpClientRequest.setHeaders(plan.headers),
      bodyJson({ Targets: targets })
    )
}

/**
 * Sends rows through the operation's `*Multiple` message (wire reference §3). A refusal for a
 * data error is isolated (`isolate`); a message the table lacks after all switches the rest of an
 * `auto` run to `$batch`. Fails only with a run failure.
 */
export const sendMultiple: Sender = (plan, op, items) =>
  Effect.gen(function*() {
    const { metadata } = plan
    const request = requestOf(plan, op, items)
    const [result, elapsed] = yield* measured(
      plan.client.controller,
      Effect.either(plan.client.executeJson(request, { idempotent: true, retry: false }))
    )
    // Every create carries its id, and that id is the record's, not the position in `Ids`.
    if (result._tag === "Right") return items.map((item) => succeeded(op, item, item.id))
    const error = result.left
    if (stopsAtOnce(error)) return yield* error
    if (error.status === 404 && error.code === "0x80060888") {
      if (plan.strategy === "auto") {
        // The metadata said yes, the service says no: the rest of the run uses $batch.
        plan.multiple[op] = false
        return yield* sendBatch(plan, op, items)
      }
      return failedAll(
        items,
        new DataverseError({
          ...error,
          reason: "UnsupportedMessage",
          message: `Table '${metadata.logicalName}' does not support ${messageOf[op]} (${error.message})`
        })
      )
    }
    if (isRetryable(error) || error.status === undefined) return failedAll(items, error)
    return yield* isolate(plan, op, items, error, (part) => sendMultiple(plan, op, part), elapsed)
  })

import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import type { Operation, RowOutcome } from "../../Bulk.js"
import { idFromEntityUrl } from "../records.js"
import { bodyJson } from "../requestBody.js"
import { absent, type Sender, stopsAtOnce, succeeded } from "./outcomes.js"
import type { RunPlan } from "./plan.js"
import { bodyOf, pathOf, type Prepared } from "./prepare.js"

/** Sends one request per row, one after the other. Fails only with a run failure. */
export const sendSingle: Sender = (plan, op, items) => Effect.forEach(items, (item) => sendOne(plan, op, item))

const sendOne = (plan: RunPlan, op: Operation, item: Prepared) =>
  Effect.gen(function*() {
    const { metadata } = plan
    const body = bodyOf(item, metadata.primaryIdAttribute)
    const request = op === "create"
      ? HttpClientRequest.post(metadata.entitySetName).pipe(bodyJson(body))
      : op === "delete"
      ? HttpClientRequest.del(pathOf(metadata, item))
      : HttpClientRequest.patch(pathOf(metadata, item)).pipe(
        bodyJson(body),
        HttpClientRequest.setHeaders(op === "update" ? { "If-Match": "*" } : {})
      )
    const result = yield* Effect.either(
      plan.client.executeJson(HttpClientRequest.setHeaders(request, plan.headers), { idempotent: true, retry: false })
    )
    if (result._tag === "Right") {
      return succeeded(op, item, item.id ?? idFromEntityUrl(result.right.headers["odata-entityid"]))
    }
    if (stopsAtOnce(result.left)) return yield* result.left
    if (op === "delete" && result.left.reason === "NotFound") return absent(item)
    return { index: item.index, status: "failed", error: result.left } as RowOutcome
  })

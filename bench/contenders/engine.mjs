// dv-effect's engine as a library (`@dv-effect/core`, built dist) with its default options:
// `Bulk.createMany` / `updateMany` / `upsertMany` (by the `dve_sku` alternate key), concurrency
// "auto" (the service's dop hint), the engine's default chunk size, the connection's default
// retry policy. Outcomes are folded with `Bulk.summarize`.
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import { Effect } from "effect"

export const run = async ({ info, scenario, rows }) => {
  const layer = DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken) })
  const program = Effect.gen(function*() {
    const client = yield* DataverseClient.DataverseClient
    const outcomes = scenario.op === "create"
      ? Bulk.createMany(scenario.table, rows)
      : scenario.op === "update"
      ? Bulk.updateMany(scenario.table, rows)
      : Bulk.upsertMany(scenario.table, rows, { key: ["dve_sku"] })
    const summary = yield* Bulk.summarize(outcomes)
    const stats = yield* client.stats
    return { succeeded: summary.succeeded, failed: summary.failed, ...stats }
  })
  return Effect.runPromise(Effect.provide(program, layer))
}

// dv-effect's engine as a library (`@dv-effect/core`, built dist) with its default options (or
// the scenario's `engineOptions`):
// `Bulk.createMany` / `updateMany` / `upsertMany` (by the `dve_sku` alternate key), concurrency
// "auto" (the service's dop hint), the engine's default chunk size, the connection's default
// retry policy. Outcomes are folded with `Bulk.summarize`.
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import { Effect } from "effect"

export const run = async ({ info, scenario, rows }) => {
  const layer = DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken) })
  const program = Effect.gen(function*() {
    const client = yield* DataverseClient.DataverseClient
    // A scenario may set options (bench/bad-rows.mjs: a fixed chunkSize); the matrix sets none.
    const options = scenario.engineOptions ?? {}
    const outcomes = scenario.op === "create"
      ? Bulk.createMany(scenario.table, rows, options)
      : scenario.op === "update"
      ? Bulk.updateMany(scenario.table, rows, options)
      : Bulk.upsertMany(scenario.table, rows, { key: ["dve_sku"], ...options })
    const summary = yield* Bulk.summarize(outcomes)
    const stats = yield* client.stats
    return { succeeded: summary.succeeded, failed: summary.failed, ...stats }
  })
  return Effect.runPromise(Effect.provide(program, layer))
}

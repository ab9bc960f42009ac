// Which way of finding the bad rows of a refused standard-table chunk is faster: a `$batch` with
// continue-on-error (one more request of n operations) or bisection through the same message
// (about 2·log2(n) smaller requests per bad row)? Measured on the emulator's `bench` profile
// with 1% of rows the service refuses (a lookup to an account that does not exist passes the
// client's checks and fails the chunk), chunk sizes 100 and 500, interleaved runs.
//
//   npm run build && node bench/isolation.mjs [rows=5000] [rounds=2]
//
// 2026-11-22, 2-core build machine, 5,000 rows, two rounds: chunk 100: batch 309 rows/s (108
// requests), bisect 40-45 rows/s (802-816 requests, ~50 throttled); chunk 500: batch 214 rows/s
// (23 requests), bisect 22 rows/s (1,124 requests). `$batch` stays the default.
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { Effect } from "effect"

const rows = Number(process.argv[2] ?? 5000)
const rounds = Number(process.argv[3] ?? 2)
const missing = "00000000-0000-4000-8000-00000000dead"
const input = Array.from({ length: rows }, (_, i) =>
  i % 100 === 37
    ? { lastname: `Bad${i}`, "parentcustomerid_account@odata.bind": `/accounts(${missing})` }
    : { lastname: `Row${i}` })

const emulator = await Emulator.start({ identity: false, profile: Model.bench })
const layer = DataverseClient.layerNode({
  url: emulator.info.url,
  credentials: Credentials.staticToken(emulator.info.accessToken)
})

const trial = (isolation, chunkSize) =>
  Effect.gen(function*() {
    emulator.reset()
    const started = Date.now()
    const summary = yield* Bulk.execute("create", "contact", input, { isolation, chunkSize })
    const seconds = (Date.now() - started) / 1000
    return {
      isolation,
      chunkSize,
      seconds: Number(seconds.toFixed(2)),
      rowsPerSecond: Math.round(summary.created / seconds),
      created: summary.created,
      failed: summary.failed,
      requests: summary.requests,
      throttled: summary.throttled
    }
  }).pipe(Effect.provide(layer))

const results = []
for (let round = 0; round < rounds; round++) {
  for (const chunkSize of [100, 500]) {
    for (const isolation of round % 2 === 0 ? ["batch", "bisect"] : ["bisect", "batch"]) {
      const result = await Effect.runPromise(trial(isolation, chunkSize))
      results.push(result)
      console.log(JSON.stringify(result))
    }
  }
}
for (const chunkSize of [100, 500]) {
  const mean = (isolation, key) => {
    const rs = results.filter((r) => r.isolation === isolation && r.chunkSize === chunkSize)
    return rs.reduce((sum, r) => sum + r[key], 0) / rs.length
  }
  console.log(
    `chunk ${chunkSize}: batch ${Math.round(mean("batch", "rowsPerSecond"))} rows/s (${
      Math.round(mean("batch", "requests"))
    } requests), bisect ${Math.round(mean("bisect", "rowsPerSecond"))} rows/s (${
      Math.round(mean("bisect", "requests"))
    } requests): bisect/batch ${(mean("bisect", "rowsPerSecond") / mean("batch", "rowsPerSecond")).toFixed(2)}`
  )
}
await emulator.close()

// Traces one engine run on the emulator's `bench` profile: progress every chunk, to see where the
// time goes (ramp-up, throttling, waits). node bench/trace-engine.mjs [rows=50000]
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { Effect } from "effect"
const rows = Array.from({ length: Number(process.argv[2] ?? 50_000) }, (_, i) => ({ lastname: `T${i}` }))
const emulator = await Emulator.start({ identity: false, profile: Model.bench })
const layer = DataverseClient.layer({
  url: emulator.info.url,
  credentials: Credentials.staticToken(emulator.info.accessToken)
})
const t0 = Date.now()
let last = 0
const summary = await Effect.runPromise(
  Bulk.execute("create", "contact", rows, {
    onProgress: (p) => {
      const t = Date.now() - t0
      if (t - last > 500 || p.throttled > 0 && p.waitingMs > 0) {
        last = t
        console.log(
          `${
            (t / 1000).toFixed(1)
          }s done ${p.succeeded} req ${p.requests} 429 ${p.throttled} conc ${p.concurrency} inflight ${p.inFlight} chunk ${p.chunkSize} wait ${p.waitingMs}`
        )
      }
    }
  }).pipe(Effect.provide(layer))
)
console.log(JSON.stringify({ ...summary, rowsPerSecond: Math.round(rows.length / ((Date.now() - t0) / 1000)) }))
await emulator.close()

// Traces one engine run on the emulator's `bench` profile: progress every chunk, to see where the
// time goes (ramp-up, throttling, waits).
//   node bench/trace-engine.mjs [rows=50000] [servers=1]     (CHUNK=500 for a fixed chunk size,
//   FAULTS=1 for the matrix's seeded faults, JITTER=0.3 for varying request times, SEED=n for another
//   seed, EVERY=ms between lines)
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import { Effect } from "effect"
import { fork } from "node:child_process"
import { traceProfile } from "./lib/profile.mjs"
const rows = Array.from({ length: Number(process.argv[2] ?? 50_000) }, (_, i) => ({ lastname: `T${i}` }))
// The emulator in a process of its own (as the benchmarks run it), so that its CPU is not the
// client's.
const host = fork(new URL("./lib/emulator-host.mjs", import.meta.url), [
  JSON.stringify({
    profile: traceProfile(),
    servers: Number(process.argv[3] ?? 1)
  })
])
const info = await new Promise((resolve) => host.once("message", (m) => resolve(m.info)))
const layer = DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken) })
const t0 = Date.now()
let last = 0
const summary = await Effect.runPromise(
  Bulk.execute("create", "contact", rows, {
    ...(process.env.CHUNK ? { chunkSize: Number(process.env.CHUNK) } : {}),
    onProgress: (p) => {
      const t = Date.now() - t0
      if (t - last > Number(process.env.EVERY ?? 500) || p.throttled > 0 && p.waitingMs > 0) {
        last = t
        console.log(
          `${
            (t / 1000).toFixed(1)
          }s done ${p.succeeded} req ${p.requests} 429 ${p.throttled} retries ${p.retries} conc ${p.concurrency} inflight ${p.inFlight} chunk ${p.chunkSize} wait ${p.waitingMs}`
        )
      }
    }
  }).pipe(Effect.provide(layer))
)
console.log(JSON.stringify({ ...summary, rowsPerSecond: Math.round(rows.length / ((Date.now() - t0) / 1000)) }))
host.kill()

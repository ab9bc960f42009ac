// Every request of one engine run, in order, with when it was sent, how long it took and its
// status: to see what the start of a run costs (metadata, the first chunks) and where faults land.
//   node bench/trace-requests.mjs [rows=20000] [servers=1]   (FAULTS=1: the matrix's seeded faults, JITTER=0.3:
//   varying request times, SEED=n: another seed;
//   FIRST=n: print only the first n requests, JOB=1: the matrix's create rows, with their six columns,
//   instead of a last name alone)
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import { HttpClient } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { fork } from "node:child_process"
import { traceProfile } from "./lib/profile.mjs"
import { jobRows } from "./lib/rows.mjs"

const count = Number(process.argv[2] ?? 20_000)
const rows = process.env.JOB
  ? jobRows({ op: "create", table: "contact" }, count)
  : Array.from({ length: count }, (_, i) => ({ lastname: `T${i}` }))
const host = fork(new URL("./lib/emulator-host.mjs", import.meta.url), [
  JSON.stringify({
    profile: traceProfile(),
    servers: Number(process.argv[3] ?? 1)
  })
])
const info = await new Promise((resolve) => host.once("message", (m) => resolve(m.info)))
const t0 = performance.now()
const log = []
const traced = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, (client) =>
    HttpClient.make((request, url) => {
      const sent = performance.now()
      const path = url.pathname.replace(/^\/api\/data\/v[\d.]+\//, "") + (url.search.length > 0 ? "?…" : "")
      return client.execute(request).pipe(
        Effect.tapBoth({
          onSuccess: (response) =>
            Effect.sync(() =>
              log.push({
                sent,
                ms: performance.now() - sent,
                path,
                status: response.status === 429
                  ? `429 (Retry-After ${response.headers["retry-after"]})`
                  : response.status
              })
            ),
          onFailure: (error) =>
            Effect.sync(() => log.push({ sent, ms: performance.now() - sent, path, status: error._tag }))
        })
      )
    }))
).pipe(Layer.provide(NodeHttpClient.layer))
const layer = DataverseClient.layer({ url: info.url, credentials: Credentials.staticToken(info.accessToken) }).pipe(
  Layer.provide(traced)
)
const summary = await Effect.runPromise(Bulk.execute("create", "contact", rows).pipe(Effect.provide(layer)))
const first = Number(process.env.FIRST ?? 30)
for (const r of log.sort((a, b) => a.sent - b.sent).slice(0, first)) {
  console.log(`${(r.sent - t0).toFixed(0).padStart(6)} ms +${r.ms.toFixed(0).padStart(5)} ms ${r.status} ${r.path}`)
}
console.log(
  JSON.stringify({ ms: Math.round(performance.now() - t0), requests: log.length, throttled: summary.throttled })
)
// What refused, by kind (the emulator's counters per web server): window limits or injected faults.
const stats = await new Promise((resolve) => {
  host.on("message", (m) => m.id === 1 && resolve(m.result))
  host.send({ id: 1, type: "stats" })
})
console.log(JSON.stringify(stats.servers.map((server) => server.throttled ?? server)))
host.kill()

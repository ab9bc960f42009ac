// Sparse bad rows: what the chunk size costs when some rows pass every client check and the
// service refuses them (a lookup to an account that does not exist). A standard table runs a bulk
// message as one transaction, so one such row fails its whole request, and the engine sends the
// chunk again as a `$batch` to find it (wire reference §3), whose every operation costs execution
// time (§4). The engine with its default (adaptive) chunk size runs beside the engine at fixed
// sizes, on a fresh emulator per trial, rows and checks as in bench/matrix.mjs (lib/trial.mjs).
//
//   npm run build && node bench/bad-rows.mjs [--rows 30000] [--every 0,1000,100] [--servers 1]
//                                          [--sizes 100,50] [--reps 1] [--operation-ms 10]
//
// --operation-ms sets the profile's `perOperationMs` (what a `$batch` operation costs; `bench`
// has 10 against 1 per row of a bulk message), a modelling choice the engine must not depend on.
//
// Columns: bad (one row in how many is bad; "-" for none), servers, then per contender rows/s
// (valid rows landed / wall time), requests the web servers counted, 429s per request, lost and
// duplicated valid rows (from the store's markers). "adaptive" is the engine's default; "fixed n"
// is `chunkSize: n`. Results go to bench/results/<timestamp>-bad-rows.json.
import { startLibrary } from "./lib/processes.mjs"
import { describeMachine, fmt, machine, median, parseArgs, table, writeResults } from "./lib/report.mjs"
import { trial } from "./lib/trial.mjs"

const { option } = parseArgs()
const numbers = (name, fallback) => (option(name) ?? fallback).split(",").filter((s) => s !== "").map(Number)
const rows = Number(option("rows") ?? 30_000)
const everies = numbers("every", "0,1000,100")
const servers = numbers("servers", "1")
const sizes = numbers("sizes", "100,50")
const reps = Number(option("reps") ?? 1)
const operationMs = option("operation-ms")
const profile = operationMs === undefined
  ? "bench"
  : { extends: "bench", latency: { baseMs: 20, perRecordMs: 1, perOperationMs: Number(operationMs) } }

const contenders = [
  { id: "adaptive", engineOptions: {} },
  ...sizes.map((n) => ({ id: `fixed ${n}`, engineOptions: { chunkSize: n } }))
]

const results = []
const m = machine()
console.log(describeMachine(m))
for (const every of everies) {
  for (const n of servers) {
    for (const contender of contenders) {
      const runs = []
      for (let rep = 0; rep < reps; rep++) {
        const scenario = {
          op: "create",
          table: "contact",
          rows,
          invalidEvery: every,
          invalidKind: "lookup",
          profile,
          servers: n,
          engineOptions: contender.engineOptions
        }
        const run = await trial(scenario, rows, startLibrary("engine", scenario, rows, { timeoutMs: 1_800_000 }))
        runs.push(run)
        console.error(
          `bad 1/${every || "-"}, ${n} server(s), ${contender.id}: ${
            (run.landed / (run.wallMs / 1000)).toFixed(0)
          } rows/s, ${run.serverRequests} requests, ${run.limitThrottled} throttled, lost ${run.lost}, dup ${run.duplicated}`
        )
      }
      results.push({ every, servers: n, contender: contender.id, runs })
    }
  }
}

const figure = (r) => ({
  rowsPerSecond: median(r.runs.map((run) => run.landed / (run.wallMs / 1000))),
  requests: median(r.runs.map((run) => run.serverRequests)),
  throttledPct: median(r.runs.map((run) => (100 * run.limitThrottled) / Math.max(1, run.serverRequests))),
  lost: Math.max(...r.runs.map((run) => run.lost)),
  duplicated: Math.max(...r.runs.map((run) => run.duplicated))
})
const header = ["bad", "servers", ...contenders.flatMap((c) => [`${c.id} rows/s`, `${c.id} req`, `${c.id} 429`])]
const lines = []
for (const every of everies) {
  for (const n of servers) {
    const cells = contenders.flatMap((c) => {
      const f = figure(results.find((r) => r.every === every && r.servers === n && r.contender === c.id))
      return [fmt(f.rowsPerSecond), fmt(f.requests), `${fmt(f.throttledPct, 1)}%`]
    })
    lines.push([every === 0 ? "-" : `1/${every}`, String(n), ...cells])
  }
}
console.log(
  `${rows.toLocaleString("en-US")} creates of contacts, bench profile${
    operationMs === undefined ? "" : ` with perOperationMs ${operationMs}`
  }, ${reps} repetition(s)`
)
console.log(table(header, lines))
const worst = results.map(figure).reduce(
  (w, f) => ({ lost: Math.max(w.lost, f.lost), dup: Math.max(w.dup, f.duplicated) }),
  {
    lost: 0,
    dup: 0
  }
)
console.log(`lost ${worst.lost}, duplicated ${worst.dup} (worst trial)`)
console.log(`results: ${writeResults("-bad-rows", { machine: m, rows, reps, profile, results })}`)

// The comparative benchmark of issue 7: dv-effect beside what users would otherwise write, on
// the same emulator in the same run, scored against the model optimum.
//
//   npm run bench          # full: 100,000-row jobs, 1,000,000-row import/export, startup figures
//   npm run bench:quick    # CI-sized: 10,000-row jobs, 100,000-row import/export (< 2 min)
//   node bench/run.mjs [--quick] [--only create-1,update-1,import,ingest] [--contenders engine,cli] [--reps 3]
//
// Every trial gets a fresh emulator process (bench/lib/emulator-host.mjs: the emulator library
// from its built dist, with per-server counters and a store we can count), so each contender
// starts with empty windows, and every contender runs as a process of its own
// (bench/lib/runner.mjs for libraries, the `dv-effect` CLI itself), measured by the same probe
// (bench/lib/probe.mjs: CPU and VmHWM at exit). Repetitions go round-robin over scenarios and
// contenders, so machine noise hits all alike; figures are medians over repetitions.
//
// Contenders (each file documents its implementation):
//   engine        @dv-effect/core Bulk.*Many, default options            bench/contenders/engine.mjs
//   cli           dv-effect create <table> --file rows.jsonl -o json      (creates only)
//   dwa-multiple  DynamicsWebApi callAction *Multiple, 500/chunk, dop    bench/contenders/dwa-multiple.mjs
//   dwa-batch     DynamicsWebApi $batch of 1,000, continueOnError, dop   bench/contenders/dwa-batch.mjs
//   dwa-single    DynamicsWebApi one request per row, dop in flight      bench/contenders/dwa-single.mjs
//   naive         fetch, one row at a time                               bench/contenders/naive.mjs
// The last three are capped (their rate is set by the model's request window, 20 requests/s per
// server on `bench`): they run on fewer rows and are marked so; their rows/s is measured on those.
import { optimum } from "@dv-effect/emulator/Optimum"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { measured, startHost, startLibrary } from "./lib/processes.mjs"
import { describeMachine, fmt, machine as describe, median, parseArgs, table, writeResults } from "./lib/report.mjs"
import { expectation, jobRows } from "./lib/rows.mjs"
import { trial as onFreshEmulator } from "./lib/trial.mjs"

const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const cliBin = here("../apps/cli/bin/dv-effect.js")

const { flag, option } = parseArgs()
const quick = flag("quick")
const reps = Number(option("reps") ?? process.env.BENCH_REPS ?? 1)
const only = option("only")?.split(",")
const contenders = option("contenders")?.split(",")
const tmp = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-bench-"))
// The CLI keeps a journal for every write run, as a user gets it: here, not in the real home.
process.env.XDG_STATE_HOME = Path.join(tmp, "state")

// ---------------------------------------------------------------------------------------------
// Scenarios

const N = quick ? 10_000 : 100_000
const big = quick ? 20_000 : 1_000_000
/** Rows the capped contenders get: per-row ones span three request windows in full mode. */
const caps = quick
  ? { "dwa-batch": 1000, "dwa-single": 50, naive: 50 }
  : { "dwa-batch": 20_000, "dwa-single": 1000, naive: 1000 }
const faults = { seed: 7, throttle: 0.05, unavailable: 0.02, resetBeforeCommit: 0.005, resetAfterCommit: 0.005 }
const all = ["engine", "cli", "dwa-multiple", "dwa-batch", "dwa-single", "naive"]
const main = ["engine", "cli", "dwa-multiple"]
const pair = ["engine", "dwa-multiple"]

const scenarios = [
  {
    id: "create-1",
    title: `${N.toLocaleString("en-US")} creates, bench, 1 server`,
    op: "create",
    table: "contact",
    rows: N,
    profile: "bench",
    servers: 1,
    contenders: quick ? ["engine", "cli", "dwa-multiple", "dwa-single", "naive"] : all
  },
  {
    id: "create-2",
    title: `${N.toLocaleString("en-US")} creates, bench, 2 servers`,
    op: "create",
    table: "contact",
    rows: N,
    profile: "bench",
    servers: 2,
    contenders: quick ? pair : all
  },
  {
    id: "invalid-1",
    title: `${N.toLocaleString("en-US")} creates, 1% invalid, bench, 1 server`,
    op: "create",
    table: "contact",
    rows: N,
    invalidEvery: 100,
    profile: "bench",
    servers: 1,
    contenders: quick ? main : all
  },
  {
    id: "faults-1",
    title: `${N.toLocaleString("en-US")} creates, seeded faults, bench, 1 server`,
    op: "create",
    table: "contact",
    rows: N,
    profile: { extends: "bench", faults },
    servers: 1,
    contenders: quick ? pair : ["engine", "cli", "dwa-multiple", "dwa-batch"]
  },
  {
    id: "update-1",
    title: `${N.toLocaleString("en-US")} updates by id, bench, 1 server`,
    op: "update",
    table: "contact",
    rows: N,
    profile: "bench",
    servers: 1,
    contenders: quick ? pair : ["engine", "dwa-multiple", "dwa-batch", "dwa-single", "naive"]
  },
  {
    id: "upsert-1",
    title: `${N.toLocaleString("en-US")} upserts by alternate key (half new), bench, 1 server`,
    op: "upsert",
    table: "dve_product",
    rows: N,
    profile: "bench",
    servers: 1,
    contenders: quick ? pair : ["engine", "dwa-multiple", "dwa-batch", "dwa-single", "naive"]
  }
].filter((s) => only === undefined || only.includes(s.id)).map((s) => ({
  ...s,
  contenders: s.contenders.filter((c) => contenders === undefined || contenders.includes(c))
}))
const runBig = only === undefined || only.includes("import") || only.includes("export")
const runIngest = only === undefined || only.includes("ingest")

// ---------------------------------------------------------------------------------------------
// Processes

const jsonlFiles = new Map()
/** The job's rows as JSON lines, written once per (scenario, count) before any clock starts. */
const jsonlFor = async (scenario, count) => {
  const key = `${scenario.op}-${scenario.invalidEvery ?? 0}-${scenario.invalidKind ?? "length"}-${count}`
  if (jsonlFiles.has(key)) return jsonlFiles.get(key)
  const file = Path.join(tmp, `${key}.jsonl`)
  const stream = Fs.createWriteStream(file)
  const batch = 10_000
  for (let start = 0; start < count; start += batch) {
    const rows = jobRows(scenario, Math.min(count, start + batch)).slice(start)
    if (!stream.write(rows.map((r) => JSON.stringify(r)).join("\n") + "\n")) {
      await new Promise((resolve) => stream.once("drain", resolve))
    }
  }
  await new Promise((resolve) => stream.end(resolve))
  jsonlFiles.set(key, file)
  return file
}

/** The CLI as a contender: `dv-effect create <table> --file rows.jsonl -o json` against the emulator. */
const cliContender = (scenario, file) => ({
  ready: Promise.resolve(),
  run: async (info) => {
    const r = await measured([cliBin, "create", scenario.table, "--file", file, "-o", "json"], {
      env: { DATAVERSE_URL: info.url, DATAVERSE_ACCESS_TOKEN: info.accessToken }
    })
    if (r.code !== 0 && r.code !== 2) throw new Error(`dv-effect create exited ${r.code}: ${r.stderr}`)
    const summary = JSON.parse(r.stdout.trim().split("\n").at(-1))
    return {
      wallMs: r.wallMs,
      cpuMs: r.cpuMs,
      cpuScope: "process",
      peakRssMb: r.peakRssMb,
      succeeded: summary.created,
      failed: summary.failed,
      retries: undefined
    }
  },
  kill: () => {}
})

/** One contender on one fresh emulator: the job, then the server's counters and the store's markers. */
const trial = async (scenario, contender) => {
  const count = Math.min(scenario.rows, caps[contender] ?? Infinity)
  const started = contender === "cli"
    ? cliContender(scenario, await jsonlFor(scenario, count))
    : startLibrary(contender, scenario, count)
  return onFreshEmulator(scenario, count, started)
}

// ---------------------------------------------------------------------------------------------
// Figures

const peers = new Set(["dwa-multiple", "dwa-batch", "dwa-single", "naive"])

const summarise = (scenario, trials) => {
  const profile = trials[0]?.[1]?.profile
  // The ideal client keeps each server's share of the dop hint in flight: beyond it the model
  // slows requests down (Model.serverCapacity).
  const best = profile === undefined ? undefined : optimum(profile, { rows: scenario.rows, servers: scenario.servers })
  const byContender = new Map()
  for (const [contender, t] of trials) {
    if (!byContender.has(contender)) byContender.set(contender, [])
    byContender.get(contender).push(t)
  }
  const rows = [...byContender].map(([contender, ts]) => {
    const wall = median(ts.map((t) => t.wallMs))
    const rowsPerSecond = median(ts.map((t) => (t.rows * 1000) / t.wallMs))
    const pick = (f) => median(ts.map(f))
    return {
      contender,
      repetitions: ts.length,
      rows: ts[0].rows,
      capped: ts[0].capped,
      wallSeconds: wall / 1000,
      rowsPerSecond,
      percentOfOptimum: best === undefined ? undefined : (100 * rowsPerSecond) / best.rowsPerSecond,
      requests: pick((t) => t.requests),
      throttled: pick((t) => t.throttled),
      retries: pick((t) => t.retries),
      faultsInjected: pick((t) => t.faultsInjected),
      cpuSecondsPer100k: pick((t) => (t.cpuMs / 1000) * (100_000 / t.rows)),
      cpuScope: ts[0].cpuScope,
      peakRssMb: pick((t) => t.peakRssMb),
      reportedSucceeded: pick((t) => t.succeeded),
      reportedFailed: pick((t) => t.failed),
      landed: pick((t) => t.landed),
      lost: pick((t) => t.lost),
      duplicated: pick((t) => t.duplicated),
      invalidLanded: pick((t) => t.invalidLanded),
      failedJob: ts.some((t) => t.lost > 0 || t.duplicated > 0)
    }
  })
  const bestPeer = Math.max(...rows.filter((r) => peers.has(r.contender)).map((r) => r.rowsPerSecond))
  for (const r of rows) r.ratioToBestPeer = Number.isFinite(bestPeer) ? r.rowsPerSecond / bestPeer : undefined
  return {
    ...scenario,
    optimum: best &&
      {
        inFlight: best.inFlight,
        chunkSize: best.chunkSize,
        seconds: best.seconds,
        rowsPerSecond: best.rowsPerSecond,
        binding: best.binding,
        sustainedRowsPerSecond: best.sustainedRowsPerSecond
      },
    results: rows
  }
}

const printScenario = (s) => {
  console.log(`\n## ${s.title}`)
  if (s.optimum !== undefined) {
    console.log(
      `model optimum: ${fmt(s.optimum.rowsPerSecond)} rows/s (${
        fmt(s.optimum.seconds, 2)
      } s, chunks of ${s.optimum.chunkSize}, ${s.optimum.inFlight} in flight per server, ` +
        `bound by ${
          s.optimum.binding === "concurrency" ? "requests in flight" : s.optimum.binding
        }; budgets' sustained rate ${fmt(s.optimum.sustainedRowsPerSecond)} rows/s)`
    )
  }
  const header = [
    "contender",
    "rows",
    "wall s",
    "rows/s",
    "% opt",
    "x best peer",
    "requests",
    "429s",
    "retries",
    "CPU s/100k",
    "peak MB",
    "landed",
    "lost",
    "dup",
    ""
  ]
  const lines = s.results.map((r) => [
    r.contender,
    `${fmt(r.rows)}${r.capped ? "*" : ""}`,
    fmt(r.wallSeconds, 1),
    fmt(r.rowsPerSecond),
    fmt(r.percentOfOptimum, 1),
    fmt(r.ratioToBestPeer, 2),
    fmt(r.requests),
    fmt(r.throttled),
    fmt(r.retries),
    `${fmt(r.cpuSecondsPer100k, 1)}${r.cpuScope === "process" ? "p" : ""}`,
    fmt(r.peakRssMb),
    fmt(r.landed),
    fmt(r.lost),
    fmt(r.duplicated),
    r.failedJob ? "FAILED JOB" : ""
  ])
  console.log(table(header, lines))
}

// ---------------------------------------------------------------------------------------------
// The import/export of a big file through the CLI, and the emulator's own ingest

/** Whether the built CLI reads CSV (issue 7 asks for a CSV import; JSON lines until it does). */
const cliReadsCsv = async () => {
  const file = Path.join(tmp, "probe.csv")
  Fs.writeFileSync(file, "firstname,lastname,jobtitle\nAda,\"Lovelace, A.\",m0\n")
  const r = await measured([cliBin, "create", "contact", "--file", file, "--emulator", "-o", "json"])
  try {
    return r.code === 0 && JSON.parse(r.stdout.trim().split("\n").at(-1)).created === 1
  } catch {
    return false
  }
}

/** The big import's rows as CSV (string columns only, so no type coercion is involved). */
const csvFor = async (scenario, count) => {
  const file = Path.join(tmp, `import-${count}.csv`)
  const stream = Fs.createWriteStream(file)
  const columns = ["firstname", "lastname", "emailaddress1", "telephone1", "jobtitle"]
  stream.write(`${columns.join(",")}\n`)
  const batch = 10_000
  for (let start = 0; start < count; start += batch) {
    const rows = jobRows(scenario, Math.min(count, start + batch)).slice(start)
    if (!stream.write(rows.map((r) => columns.map((c) => r[c]).join(",")).join("\n") + "\n")) {
      await new Promise((resolve) => stream.once("drain", resolve))
    }
  }
  await new Promise((resolve) => stream.end(resolve))
  return file
}

const bigImportExport = async () => {
  const scenario = { id: "import", op: "create", table: "contact", rows: big, profile: "fast", servers: 1 }
  const format = process.env.BENCH_IMPORT_FORMAT ?? ((await cliReadsCsv()) ? "csv" : "jsonl")
  const file = format === "csv" ? await csvFor(scenario, big) : await jsonlFor(scenario, big)
  const host = await startHost(scenario)
  try {
    const env = { DATAVERSE_URL: host.info.url, DATAVERSE_ACCESS_TOKEN: host.info.accessToken }
    const imported = await measured([cliBin, "create", "contact", "--file", file, "-o", "json"], { env })
    if (imported.code !== 0) throw new Error(`import exited ${imported.code}: ${imported.stderr}`)
    const summary = JSON.parse(imported.stdout.trim().split("\n").at(-1))
    const check = await host.request("check", { expect: expectation(scenario, big) })
    const exportFile = Path.join(tmp, "export.jsonl")
    const exported = await measured([cliBin, "query", "contact", "-o", "jsonl"], { env, stdoutFile: exportFile })
    if (exported.code !== 0) throw new Error(`export exited ${exported.code}: ${exported.stderr}`)
    let lines = 0
    for await (const _ of Readline.createInterface({ input: Fs.createReadStream(exportFile) })) lines++
    const bytes = Fs.statSync(exportFile).size
    Fs.rmSync(exportFile, { force: true })
    return {
      rows: big,
      format,
      profile: "fast",
      fileMb: Fs.statSync(file).size / 1048576,
      import: {
        wallSeconds: imported.wallMs / 1000,
        rowsPerSecond: (summary.created * 1000) / imported.wallMs,
        created: summary.created,
        failed: summary.failed,
        landed: check.landed,
        lost: check.lost,
        duplicated: check.duplicated,
        cpuSeconds: imported.cpuMs / 1000,
        peakRssMb: imported.peakRssMb
      },
      export: {
        wallSeconds: exported.wallMs / 1000,
        rowsPerSecond: (lines * 1000) / exported.wallMs,
        rowsWritten: lines,
        outputMb: bytes / 1048576,
        cpuSeconds: exported.cpuMs / 1000,
        peakRssMb: exported.peakRssMb
      }
    }
  } finally {
    await host.stop()
  }
}

const emulatorIngest = () =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [here("./emulator.mjs")], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, BENCH_RECORDS: String(big) }
    })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.once("error", reject)
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`bench/emulator.mjs exited ${code}`))
      const rate = Number(/= (\d+) records\/s; target/.exec(out)?.[1])
      const peak = Number(/peak (\d+) MB/.exec(out)?.[1])
      const read = Number(/read back .* = (\d+) records\/s/.exec(out)?.[1])
      resolve({ records: big, recordsPerSecond: rate, peakRssMb: peak, readRecordsPerSecond: read, output: out.trim() })
    })
  })

// ---------------------------------------------------------------------------------------------

const machine = describe()
console.log(`# dv-effect benchmarks (${quick ? "quick" : "full"}, ${reps} repetition${reps === 1 ? "" : "s"})`)
console.log(describeMachine(machine))
const started = performance.now()

const trials = new Map(scenarios.map((s) => [s.id, []]))
for (let rep = 0; rep < reps; rep++) {
  for (const scenario of scenarios) {
    // Rotate the order each repetition so no contender always runs first.
    const order = scenario.contenders.map((_, i, a) => a[(i + rep) % a.length])
    for (const contender of order) {
      // Capped contenders measure a rate the model pins down; one repetition is enough.
      if (rep > 0 && caps[contender] !== undefined) continue
      const t0 = performance.now()
      const result = await trial(scenario, contender)
      trials.get(scenario.id).push([contender, result])
      process.stderr.write(
        `[${((performance.now() - started) / 1000).toFixed(0)} s] ${scenario.id} ${contender} rep ${rep + 1}: ${
          fmt((result.rows * 1000) / result.wallMs)
        } rows/s, landed ${result.landed}/${result.rows}, lost ${result.lost}, dup ${result.duplicated} (${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s)\n`
      )
    }
  }
}

const summaries = scenarios.map((s) => summarise(s, trials.get(s.id)))
for (const s of summaries) printScenario(s)
console.log(
  "\n* capped: run on fewer rows, rows/s measured on those (includes their first-window burst)." +
    "\nCPU s/100k: the job's CPU in the contender's process, scaled to 100,000 rows; p = the whole CLI process (start-up and file parsing included)." +
    "\n% opt: of the model optimum (an ideal client with each server's share of the dop hint in flight)." +
    "\nx best peer: rows/s over the fastest DynamicsWebApi/naive contender of the scenario. FAILED JOB: valid rows lost or duplicated."
)

let bigResult
if (runBig) {
  bigResult = await bigImportExport()
  console.log(
    `\n## ${fmt(big)} rows through the CLI (${
      bigResult.format === "csv" ? "CSV" : "JSON lines"
    }, emulator profile fast)`
  )
  console.log(
    `import  dv-effect create contact --file (${fmt(bigResult.fileMb)} MB): ${
      fmt(bigResult.import.wallSeconds, 1)
    } s, ${fmt(bigResult.import.rowsPerSecond)} rows/s, landed ${fmt(bigResult.import.landed)} lost ${
      fmt(bigResult.import.lost)
    } dup ${fmt(bigResult.import.duplicated)}, CPU ${fmt(bigResult.import.cpuSeconds, 1)} s, peak RSS ${
      fmt(bigResult.import.peakRssMb)
    } MB (target < 300 MB: ${bigResult.import.peakRssMb < 300 ? "met" : "NOT met"})`
  )
  console.log(
    `export  dv-effect query contact -o jsonl: ${fmt(bigResult.export.wallSeconds, 1)} s, ${
      fmt(bigResult.export.rowsPerSecond)
    } rows/s, ${fmt(bigResult.export.rowsWritten)} rows (${fmt(bigResult.export.outputMb)} MB), CPU ${
      fmt(bigResult.export.cpuSeconds, 1)
    } s, peak RSS ${fmt(bigResult.export.peakRssMb)} MB (target < 300 MB: ${
      bigResult.export.peakRssMb < 300 ? "met" : "NOT met"
    })`
  )
}
let ingest
if (runIngest) {
  ingest = await emulatorIngest()
  console.log(`\n## the emulator's own ingest (bench/emulator.mjs, profile fast, ${fmt(big)} records)`)
  console.log(ingest.output)
}

const totalSeconds = (performance.now() - started) / 1000
console.log(`\ntotal ${totalSeconds.toFixed(0)} s`)

const resultFile = writeResults(quick ? "-quick" : "", {
  date: new Date().toISOString(),
  mode: quick ? "quick" : "full",
  repetitions: reps,
  machine,
  totalSeconds,
  scenarios: summaries,
  bigImportExport: bigResult,
  emulatorIngest: ingest && { ...ingest, output: undefined }
})
console.log(`results: ${resultFile}`)
Fs.rmSync(tmp, { recursive: true, force: true })

// The measurement matrix of issue 12: the engine beside two hand-written loops over web servers,
// load-balancer behaviours, the servers' slowdown, silent degradation and seeded faults, every
// cell on a fresh emulator with enough rows to span many throttling windows.
//
//   npm run bench:matrix                       # 150,000 rows per trial, every cell (about half an hour)
//   node bench/matrix.mjs --quick              # 20,000 rows per trial (a few minutes)
//   node bench/matrix.mjs [--rows N] [--cells 1s,faults-2s] [--contenders engine,dwa-loop] [--reps 3]
//
// --reps takes an odd count: figures are medians over repetitions (a seeded cell, faults, random
// spread or jitter, takes seed + repetition), except lost and duplicated
// rows (the worst repetition). It builds nothing: run `npm run build` after changing the library.
//
// The trial machinery is bench/run.mjs's (bench/lib): a fresh emulator process per trial
// (lib/emulator-host.mjs, the cell's profile decoded with `Model.decodeProfile`), the contender
// in a process of its own (lib/runner.mjs, CPU measured around the job alone), rows carrying
// markers that the emulator host counts in its store afterwards (lib/rows.mjs).
//
// Contenders:
//   engine     @dv-effect/core Bulk.createMany / updateMany / upsertMany, default options
//              (contenders/engine.mjs)
//   dwa-loop   the DynamicsWebApi loop of the issue: CreateMultiple (UpdateMultiple,
//              UpsertMultiple) of 500 rows, x-ms-dop-hint workers, each worker waits the
//              Retry-After it was given and resends (contenders/dwa-multiple.mjs, wait "worker")
//   loop-best  the same loop at a fixed configuration: the chunk size of the model optimum for
//              the cell (column "opt chunk"), one 429 gate shared by all workers (wait "shared")
// Neither loop counts 429s towards its 10 tries for 503s and broken connections, so both finish.
//
// Columns (one row per cell; <c> is eng = engine, dwa = dwa-loop, best = loop-best):
//   opt rows/s     the model optimum (@dv-effect/emulator/Optimum: an ideal client that is never
//                  refused, at its best chunk size), rows / its seconds
//   opt chunk      that best chunk size: loop-best's chunk size in the cell
//   <c> rows/s     rows / wall time of the job (from the contender being handed the emulator's
//                  start contract to its job returning)
//   <c> 429        429s / requests, both from the emulator's per-server counters (limits and
//                  injected faults alike), as a percentage
//   <c> req        requests the web servers counted
//   <c> lost/dup   valid rows missing from the store / records beyond one per row, counted
//                  from the markers in the store (the worst repetition)
//   <c> CPU        CPU seconds of the job in the contender's process, per 100,000 rows
//   x best loop    engine rows/s over the faster of dwa-loop and loop-best
//   eng % opt      engine rows/s as a percentage of the model optimum
// A contender that crashed, timed out or gave rows up shows FAILED. The footer checks the
// issue's targets; the 429 target counts the 429s of the limits (injected ones excluded: no
// client can avoid those). Results go to bench/results/<timestamp>-matrix.json.
import { optimum } from "@dv-effect/emulator/Optimum"
import { startLibrary } from "./lib/processes.mjs"
import { resolveProfile, seededFaults } from "./lib/profile.mjs"
import { describeMachine, fmt, machine, median, parseArgs, table, writeResults } from "./lib/report.mjs"
import { trial } from "./lib/trial.mjs"

const { flag, option } = parseArgs()
const usage = (message) => {
  process.stderr.write(`bench/matrix.mjs: ${message}\n`)
  process.exit(2)
}
const list = (name) => option(name)?.split(",").filter((s) => s !== "")
const quick = flag("quick")
const rows = Number(option("rows") ?? (quick ? 20_000 : 150_000))
const reps = Number(option("reps") ?? 1)
if (!Number.isInteger(rows) || rows < 1) usage(`--rows takes a positive integer, not ${option("rows")}`)
if (!Number.isInteger(reps) || reps < 1 || reps % 2 === 0) usage(`--reps takes an odd count, not ${option("reps")}`)

// ---------------------------------------------------------------------------------------------
// Cells and contenders

const bench = (fields) => ({ extends: "bench", ...fields })
const creates = { op: "create", table: "contact" }
const upserts = { op: "upsert", table: "dve_product" }

/** A cell per server count in `servers`, named by `id(n)`. */
const perServers = (servers, id, title, profile, job = creates) =>
  servers.map((n) => ({ id: id(n), title: `${title}, ${n} server${n > 1 ? "s" : ""}`, profile, servers: n, ...job }))

const balancer = (fields) => bench({ balancer: fields })

const allCells = [
  ...perServers([1, 2, 4], (n) => `${n}s`, "bench", "bench"),
  ...perServers([1, 2, 4], (n) => `${n}s-flat`, "bench, slowdown off", bench({ slowdown: { exponent: 0 } })),
  ...perServers([2, 4], (n) => `${n}s-ignored`, "bench, affinity ignored", balancer({ affinity: "ignored" })),
  ...perServers([2, 4], (n) => `${n}s-rotating`, "bench, cookies rotating", balancer({ cookies: "rotating" })),
  ...perServers([2, 4], (n) => `${n}s-random`, "bench, random spread", balancer({ spread: "random", seed: 7 })),
  ...perServers(
    [1, 2],
    (n) => `${n}s-jitter`,
    "bench, request times +-30%",
    bench({ jitter: { spread: 0.3, seed: 7 } })
  ),
  ...perServers([1, 2], (n) => `silent-${n}s`, "silent", "silent"),
  ...perServers([1, 2], (n) => `faults-${n}s`, "bench, seeded faults", bench({ faults: seededFaults })),
  ...perServers([1], () => "update-1s", "updates by id, bench", "bench", { op: "update", table: "contact" }),
  ...perServers([1], () => "upsert-1s", "upserts by key (half new), bench", "bench", upserts)
]

/** Per contender: the module in bench/contenders and the loop configuration it runs with in a cell. */
const allContenders = {
  engine: () => ({ module: "engine" }),
  "dwa-loop": () => ({ module: "dwa-multiple", loop: { chunkSize: 500, wait: "worker" } }),
  "loop-best": (cell) => ({ module: "dwa-multiple", loop: { chunkSize: cell.optimum.chunkSize, wait: "shared" } })
}
const loops = ["dwa-loop", "loop-best"]
/** Column prefixes in the table. */
const short = { engine: "eng", "dwa-loop": "dwa", "loop-best": "best" }

const pick = (all, names, what) => {
  const unknown = (names ?? []).filter((n) => !all.includes(n))
  if (unknown.length > 0) usage(`unknown ${what}: ${unknown.join(", ")} (known: ${all.join(", ")})`)
  return names === undefined ? all : all.filter((n) => names.includes(n))
}
const cellIds = pick(allCells.map((c) => c.id), list("cells"), "cells")
const contenders = pick(Object.keys(allContenders), list("contenders"), "contenders")

/** The cell with its profile resolved and the model optimum, or with the reason it cannot run here. */
const plan = (cell) => {
  const profile = resolveProfile(cell)
  if (typeof profile === "string") return { ...cell, skipped: profile }
  const best = optimum(profile, { rows, servers: cell.servers })
  // Generous: a contender still running at 30 times the optimum (2 minutes at least) has hung.
  return { ...cell, resolved: profile, optimum: best, timeoutMs: Math.max(120_000, 30_000 * best.seconds) }
}
const planned = allCells.filter((c) => cellIds.includes(c.id)).map(plan)
const cells = planned.filter((c) => c.skipped === undefined)
const skipped = planned.filter((c) => c.skipped !== undefined)

// ---------------------------------------------------------------------------------------------
// Trials

const started = performance.now()
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`

/**
 * The cell's profile for repetition `rep`: a seeded draw (faults, random spread, jitter) takes another
 * seed each repetition, the same for every contender, so that repetitions sample the draws instead
 * of repeating one, and a contender is not judged on where one seed's first faults happen to land.
 */
const reseeded = (profile, rep) => {
  if (rep === 0 || typeof profile !== "object") return profile
  const next = (part) => (part?.seed === undefined ? part : { ...part, seed: part.seed + rep })
  return {
    ...profile,
    ...(profile.faults === undefined ? {} : { faults: next(profile.faults) }),
    ...(profile.balancer === undefined ? {} : { balancer: next(profile.balancer) }),
    ...(profile.jitter === undefined ? {} : { jitter: next(profile.jitter) })
  }
}

/** One contender in one cell; a crash or time-out is a result too (`error`), so the run goes on. */
const runTrial = async (cell, name, rep) => {
  const { module, loop } = allContenders[name](cell)
  const { id, title, op, table, servers } = cell
  const profile = reseeded(cell.profile, rep)
  const scenario = { id, title, op, table, profile, servers, rows, loop }
  try {
    return await trial(scenario, rows, startLibrary(module, scenario, rows, { timeoutMs: cell.timeoutMs }))
  } catch (error) {
    return { error: String(error?.message ?? error).split("\n")[0] }
  }
}

const describeTrial = (t) =>
  t.error !== undefined
    ? `FAILED: ${t.error}`
    : `${fmt((t.rows * 1000) / t.wallMs)} rows/s, 429s ${t.throttled}/${t.serverRequests} requests, ` +
      `lost ${t.lost}, dup ${t.duplicated}`

const progress = (cell, name, rep, t, seconds) =>
  process.stderr.write(
    `[${elapsed()}] ${cell.id} ${name} rep ${rep + 1}/${reps}: ${describeTrial(t)} (${seconds.toFixed(1)} s)\n`
  )

const runAll = async () => {
  const trials = new Map(cells.map((c) => [c.id, new Map(contenders.map((n) => [n, []]))]))
  for (let rep = 0; rep < reps; rep++) {
    for (const cell of cells) {
      // Rotate the order each repetition so no contender always runs first.
      for (const name of contenders.map((_, i, a) => a[(i + rep) % a.length])) {
        const t0 = performance.now()
        const t = await runTrial(cell, name, rep)
        trials.get(cell.id).get(name).push(t)
        progress(cell, name, rep, t, (performance.now() - t0) / 1000)
      }
    }
  }
  return trials
}

// ---------------------------------------------------------------------------------------------
// Figures

const worst = (values) => (values.some((v) => v === undefined) ? undefined : Math.max(...values))

/** One contender's figures in one cell, over its repetitions. */
const summariseContender = (trials) => {
  const done = trials.filter((t) => t.error === undefined)
  const mid = (f) => median(done.map(f))
  return {
    repetitions: trials.length,
    completed: done.length === trials.length && done.every((t) => t.failed === 0),
    errors: trials.flatMap((t) => (t.error === undefined ? [] : [t.error])),
    rowsPerSecond: mid((t) => (t.rows * 1000) / t.wallMs),
    wallSeconds: mid((t) => t.wallMs / 1000),
    requests: mid((t) => t.serverRequests),
    throttled: mid((t) => t.throttled),
    throttledPerRequest: mid((t) => t.throttled / t.serverRequests),
    limitThrottledPerRequest: mid((t) => t.limitThrottled / t.serverRequests),
    faultsInjected: mid((t) => t.faultsInjected),
    cpuSecondsPer100k: mid((t) => (t.cpuMs / 1000) * (100_000 / t.rows)),
    peakRssMb: mid((t) => t.peakRssMb),
    reportedFailed: worst(trials.map((t) => t.failed)),
    lost: worst(trials.map((t) => t.lost)),
    duplicated: worst(trials.map((t) => t.duplicated)),
    concurrency: done[0]?.concurrency
  }
}

/** `a / b`, undefined when either is. */
const ratio = (a, b) => (a === undefined || b === undefined ? undefined : a / b)

const summariseCell = (cell, byContender) => {
  const results = Object.fromEntries([...byContender].map(([name, ts]) => [name, summariseContender(ts)]))
  const engine = results.engine
  const loopRates = loops.map((n) => results[n]?.rowsPerSecond).filter((r) => r !== undefined)
  const bestLoop = loopRates.length === 0 ? undefined : Math.max(...loopRates)
  const { chunkSize, inFlight, seconds, rowsPerSecond, binding } = cell.optimum
  return {
    id: cell.id,
    title: cell.title,
    op: cell.op,
    table: cell.table,
    rows,
    profile: cell.profile,
    servers: cell.servers,
    resolvedProfile: cell.resolved,
    optimum: { chunkSize, inFlight, seconds, rowsPerSecond, binding },
    results,
    bestLoopRowsPerSecond: bestLoop,
    engineToBestLoop: ratio(engine?.rowsPerSecond, bestLoop),
    enginePercentOfOptimum: ratio(engine?.rowsPerSecond, rowsPerSecond / 100),
    engineLimit429PerRequest: engine?.limitThrottledPerRequest,
    engineCpuToDwaLoop: ratio(engine?.cpuSecondsPer100k, results["dwa-loop"]?.cpuSecondsPer100k)
  }
}

const cellCount = (n) => `${n} cell${n === 1 ? "" : "s"}`

const geometricMean = (values) =>
  values.length === 0 ? undefined : Math.exp(values.reduce((s, v) => s + Math.log(v), 0) / values.length)

/** The cell where `key` is lowest (`sign` 1) or highest (-1), among those that measured it. */
const extreme = (summaries, key, sign) =>
  summaries.filter((s) => s[key] !== undefined).reduce(
    (a, b) => (a === undefined || sign * (b[key] - a[key]) < 0 ? b : a),
    undefined
  )

/** The targets over the cells: { target, met, figure }; `met` is undefined when not measured. */
const targets = (summaries) => {
  const withEngine = summaries.filter((s) => s.results.engine !== undefined)
  const incomplete = summaries.flatMap((s) =>
    Object.entries(s.results).filter(([, r]) => !r.completed).map(([n]) => `${s.id} ${n}`)
  )
  const notOnce = withEngine.filter((s) => s.results.engine.lost !== 0 || s.results.engine.duplicated !== 0)
  const ratios = summaries.map((s) => s.engineToBestLoop).filter((r) => r !== undefined)
  const geo = geometricMean(ratios)
  /** A target met when the worst cell's `key` passes `check`. */
  const worstCell = (target, key, sign, check, show) => {
    const cell = extreme(summaries, key, sign)
    return cell === undefined
      ? { target, met: undefined, figure: "not measured" }
      : { target, met: check(cell[key]), figure: `${sign > 0 ? "lowest" : "highest"} ${show(cell[key])} (${cell.id})` }
  }
  const times = (v) => `${fmt(v, 2)}x`
  return [
    {
      target: "every contender completes every cell",
      met: summaries.length === 0 ? undefined : incomplete.length === 0,
      figure: incomplete.length === 0 ? "all completed" : `incomplete: ${incomplete.join(", ")}`
    },
    {
      target: "the engine lands every row exactly once in every cell",
      met: withEngine.length === 0 ? undefined : notOnce.length === 0,
      figure: notOnce.length === 0
        ? cellCount(withEngine.length)
        : notOnce.map((s) => `${s.id} lost ${fmt(s.results.engine.lost)} dup ${fmt(s.results.engine.duplicated)}`)
          .join(", ")
    },
    worstCell("engine rows/s >= 0.95x the best loop in every cell", "engineToBestLoop", 1, (v) => v >= 0.95, times),
    {
      target: "engine rows/s >= 1.1x the best loop in geometric mean",
      met: geo === undefined ? undefined : geo >= 1.1,
      figure: geo === undefined ? "not measured" : `${times(geo)} over ${cellCount(ratios.length)}`
    },
    worstCell(
      "429s (of the limits) on <= 2% of the engine's requests, in every cell",
      "engineLimit429PerRequest",
      -1,
      (v) => v <= 0.02,
      (v) => `${fmt(100 * v, 1)}%`
    ),
    worstCell(
      "engine CPU per 100,000 rows <= 1.2x dwa-loop's, in every cell",
      "engineCpuToDwaLoop",
      -1,
      (v) => v <= 1.2,
      times
    )
  ]
}

// ---------------------------------------------------------------------------------------------
// Printing

const contenderColumns = ["rows/s", "429", "req", "lost/dup", "CPU"]

const contenderCells = (r) => {
  if (r === undefined) return contenderColumns.map(() => "-")
  const failed = r.completed ? "" : " FAILED"
  return [
    `${fmt(r.rowsPerSecond)}${failed}`,
    r.throttledPerRequest === undefined ? "-" : `${fmt(100 * r.throttledPerRequest, 1)}%`,
    fmt(r.requests),
    `${fmt(r.lost)}/${fmt(r.duplicated)}`,
    fmt(r.cpuSecondsPer100k, 1)
  ]
}

const printTable = (summaries) => {
  const header = [
    "cell",
    "opt rows/s",
    "opt chunk",
    ...contenders.flatMap((n) => contenderColumns.map((c) => `${short[n]} ${c}`)),
    "x best loop",
    "eng % opt"
  ]
  const lines = summaries.map((s) => [
    s.id,
    fmt(s.optimum.rowsPerSecond),
    fmt(s.optimum.chunkSize),
    ...contenders.flatMap((n) => contenderCells(s.results[n])),
    fmt(s.engineToBestLoop, 2),
    fmt(s.enginePercentOfOptimum, 1)
  ])
  console.log(table(header, lines))
}

const printFooter = (summaries, checked) => {
  console.log(
    "\neng: engine, dwa: dwa-loop, best: loop-best (at the optimum's chunk size, opt chunk)." +
      "\nrows/s: rows / wall time; 429: 429s / requests (per-server counters, injected 429s included);" +
      "\nlost/dup: valid rows missing / records beyond one per row, from the store (worst repetition);" +
      "\nCPU: the job's CPU seconds in the contender's process per 100,000 rows; opt: the model optimum;" +
      "\nx best loop: engine rows/s over max(dwa-loop, loop-best); eng % opt: engine rows/s of the optimum's." +
      " FAILED: crashed, timed out or gave rows up."
  )
  for (const s of summaries) {
    for (const [name, r] of Object.entries(s.results)) {
      for (const error of new Set(r.errors)) console.log(`${s.id} ${name}: ${error}`)
    }
  }
  console.log("\n## Targets (issue 12)")
  for (const t of checked) {
    console.log(`- ${t.met === undefined ? "not measured" : t.met ? "met" : "NOT met"}: ${t.target}: ${t.figure}`)
  }
  if (skipped.length > 0) {
    console.log(`\nNot run (this emulator cannot decode the cell's profile):`)
    for (const c of skipped) console.log(`- ${c.id}: ${c.skipped}`)
  }
}

// ---------------------------------------------------------------------------------------------

const host = machine()
console.log(
  `# dv-effect matrix (${rows.toLocaleString("en-US")} rows per trial, ${reps} repetition${reps === 1 ? "" : "s"})`
)
console.log(describeMachine(host))
for (const c of skipped) process.stderr.write(`skipping ${c.id}: ${c.skipped}\n`)
for (const c of cells) {
  process.stderr.write(
    `${c.id}: ${c.title}; optimum ${fmt(c.optimum.rowsPerSecond)} rows/s at chunks of ${c.optimum.chunkSize}\n`
  )
}

const trials = await runAll()
const summaries = cells.map((c) => summariseCell(c, trials.get(c.id)))
const checked = targets(summaries)
console.log("")
printTable(summaries)
printFooter(summaries, checked)
const totalSeconds = (performance.now() - started) / 1000
console.log(`\ntotal ${totalSeconds.toFixed(0)} s`)
const resultFile = writeResults("-matrix", {
  date: new Date().toISOString(),
  rows,
  repetitions: reps,
  contenders,
  machine: host,
  totalSeconds,
  cells: summaries,
  targets: checked,
  skipped: skipped.map((c) => ({ id: c.id, reason: c.skipped })),
  trials: Object.fromEntries(
    [...trials].map(([id, byContender]) => [
      id,
      Object.fromEntries([...byContender].map(([n, ts]) => [n, ts.map(({ profile: _, ...t }) => t)]))
    ])
  )
})
console.log(`results: ${resultFile}`)

// The engine's own CPU per 100,000 rows, with its writes answered in this process (no socket for
// them, no emulator process competing for the two cores): `Bulk.createMany` / `updateMany` with
// their defaults over the matrix's rows, on a fresh connection each run, which reads the table's
// metadata from an in-process emulator (a few requests, their CPU included, alike for every
// build). What is left is the engine: preparing rows, the stream, the controller, the senders,
// the outcomes; `bench/row-costs.mjs` breaks the per-row part down.
//
// `--against DIR` compares another build of @dv-effect/core with this one: a copy of
// packages/core/dist made before a change, as `bench/builds/<name>/dist` (inside the repository, so
// that it finds node_modules; ignored by git and lint as every `dist`). Runs alternate, A B B A,
// in one process, so that the machine's load falls on both alike. Run it with
// `--single-threaded-gc` and 30 runs for figures that hold: the collector's helper threads
// otherwise move the CPU time by 10% or more. An A/A run so (this build against a copy of
// itself) gave ratios of 1.01 and 1.07 on this 2-core machine: smaller differences are noise.
//
// `--fresh` runs each job in a process of its own instead (the emulator stays in this one), as
// the matrix's contenders run: a first job in a fresh process pays for compiling the engine's and
// Effect's code as it warms up; a second job in that process shows the same work warm.
//
//   node --single-threaded-gc bench/engine-cpu.mjs [--op create|update|upsert] [--runs N] [--against DIR]
//   node bench/engine-cpu.mjs --fresh [--op create|update|upsert] [--runs N] [--rows N]
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Effect, Layer } from "effect"
import * as Path from "node:path"
import { parseArgs } from "node:util"
import { jobRows } from "./lib/rows.mjs"

const { values } = parseArgs({
  options: {
    op: { type: "string", default: "update" },
    runs: { type: "string", default: "12" },
    against: { type: "string" },
    fresh: { type: "boolean", default: false },
    rows: { type: "string", default: "100000" },
    // A --fresh run's child: the emulator's URL and token.
    child: { type: "string" }
  }
})
const operation = values.op
if (!["create", "update", "upsert"].includes(operation)) {
  throw new Error(`--op is create, update or upsert, not ${operation}`)
}
// Upserts go by alternate key to dve_product (the matrix's upsert-1s job); the others to contact.
const table = operation === "upsert" ? "dve_product" : "contact"
// Two warm-up runs, then at least one measured (--fresh: one fresh process at least).
if (!(Number(values.runs) >= (values.fresh ? 1 : 3))) throw new Error(`--runs is too few: ${values.runs}`)
if (values.fresh && values.against !== undefined) throw new Error("--fresh measures this build only, not --against")
const count = Number(values.rows)
if (!(Number.isInteger(count) && count > 0)) throw new Error(`--rows is a positive integer, not ${values.rows}`)
const builds = [{ name: "this build", core: await import("@dv-effect/core") }]
if (values.against !== undefined) {
  builds.push({ name: values.against, core: await import(Path.resolve(values.against, "index.js")) })
}

const { Response } = globalThis
// A --fresh child reads metadata from its parent's emulator.
const emulator = values.child === undefined
  ? await Emulator.start({ port: 0, profile: "fast" })
  : { info: JSON.parse(values.child), close: async () => {} }

/** Reads (metadata) go to the emulator; writes are answered at once, as the service answers them. */
const answering = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, (emulatorClient) =>
    HttpClient.make((request) => {
      if (request.method === "GET") return emulatorClient.execute(request)
      // UpdateMultiple answers 204; CreateMultiple and UpsertMultiple their ids, which the engine
      // does not need (its own ids, or the keys, are the truth), so none are written here.
      const response = operation === "update"
        ? new Response(null, { status: 204 })
        : new Response("{\"Ids\":[]}", { status: 200, headers: { "content-type": "application/json" } })
      return Effect.succeed(HttpClientResponse.fromWeb(request, response))
    }))
).pipe(Layer.provide(NodeHttpClient.layerUndici))

const rows = jobRows({ op: operation, table }, count)

/** One job on a fresh connection; its CPU seconds. */
const cpuOfOneRun = async ({ core }) => {
  const { Bulk, Credentials, DataverseClient } = core
  const layer = DataverseClient.layer({
    url: emulator.info.url,
    credentials: Credentials.staticToken(emulator.info.accessToken)
  }).pipe(Layer.provide(answering))
  const outcomes = operation === "update"
    ? Bulk.updateMany(table, rows)
    : operation === "upsert"
    ? Bulk.upsertMany(table, rows, { key: ["dve_sku"] })
    : Bulk.createMany(table, rows)
  const before = process.cpuUsage()
  const summary = await Effect.runPromise(Bulk.summarize(outcomes).pipe(Effect.provide(layer)))
  const used = process.cpuUsage(before)
  if (summary.succeeded !== count) throw new Error(`${summary.succeeded} of ${count} rows succeeded`)
  return (used.user + used.system) / 1e6
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const per100k = (cpu) => (cpu * 100_000) / count

if (values.child !== undefined) {
  // One job in this fresh process, then the same job warm.
  const cold = await cpuOfOneRun(builds[0])
  const warm = await cpuOfOneRun(builds[0])
  process.stdout.write(`${JSON.stringify({ cold, warm })}\n`)
  process.exit(0)
}

if (values.fresh) {
  const { execFile } = await import("node:child_process")
  const { promisify } = await import("node:util")
  const { fileURLToPath } = await import("node:url")
  const jobs = []
  for (let run = 0; run < Number(values.runs); run++) {
    // Not synchronously: the child reads metadata from this process's emulator.
    const { stdout } = await promisify(execFile)(process.execPath, [
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      "--op",
      operation,
      "--rows",
      String(count),
      "--child",
      JSON.stringify(emulator.info)
    ], { encoding: "utf8" })
    jobs.push(JSON.parse(stdout.trim().split("\n").at(-1)))
  }
  await emulator.close()
  const cold = median(jobs.map((job) => job.cold))
  const warm = median(jobs.map((job) => job.warm))
  console.log(`${operation} of ${count} ${table} rows, writes answered in-process, ${jobs.length} fresh processes`)
  console.log(`first job in a fresh process  CPU median ${per100k(cold).toFixed(3)} s per 100,000 rows`)
  console.log(`second job, same process      CPU median ${per100k(warm).toFixed(3)} s per 100,000 rows`)
  console.log(`first / second: ${(cold / warm).toFixed(2)}x`)
  process.exit(0)
}

const figures = builds.map(() => [])
const runs = Number(values.runs)
for (let run = 0; run < runs; run++) {
  // A B, then B A: each build runs first as often as the other.
  const order = run % 2 === 0 ? builds.map((_, i) => i) : builds.map((_, i) => builds.length - 1 - i)
  for (const i of order) {
    const cpu = await cpuOfOneRun(builds[i])
    // The first two runs warm the compiler.
    if (run >= 2) figures[i].push(cpu)
  }
}
await emulator.close()

console.log(
  `${operation} of ${count} ${table} rows, writes answered in-process, ${runs - 2} runs after two warm-up runs`
)
builds.forEach((build, i) => {
  console.log(
    `${build.name.padEnd(24)} CPU median ${per100k(median(figures[i])).toFixed(3)} s, least ${
      per100k(Math.min(...figures[i])).toFixed(3)
    } s per 100,000 rows`
  )
})
if (builds.length === 2) {
  const ratios = figures[0].map((a, run) => figures[1][run] / a)
  console.log(`${builds[1].name} / this build, median of the runs' ratios: ${median(ratios).toFixed(3)}`)
}

// The engine's own CPU beside the DynamicsWebApi loop's (issue 12's CPU target), in one run:
// 100,000 creates, then 100,000 updates of those records, each contender on its own emulator in
// another process (`fast` profile, so the client is the limit). `--cpu-prof DIR` writes a CPU
// profile of each measured job alone (not its seeding) to DIR, to see where the time goes.
//
// `--profile NAME` runs it on another emulator profile (`bench`: the window-bound runs of the matrix,
// where waiting is part of the job).
//
//   node bench/prof-engine.mjs [create|update|both] [--contenders engine,dwa-multiple] [--rows N] [--reps N]
//     [--profile fast] [--cpu-prof DIR]
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Inspector from "node:inspector/promises"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { parseArgs } from "node:util"
import * as Loop from "./contenders/dwa-multiple.mjs"
import * as Engine from "./contenders/engine.mjs"

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    contenders: { type: "string", default: "engine,dwa-multiple" },
    rows: { type: "string", default: "100000" },
    reps: { type: "string", default: "1" },
    profile: { type: "string", default: "fast" },
    "cpu-prof": { type: "string" }
  }
})
const ops = (positionals[0] ?? "both") === "both" ? ["create", "update"] : [positionals[0]]
const contenders = values.contenders.split(",")
const count = Number(values.rows)

const startEmulator = async () => {
  const child = spawn(process.execPath, [
    "apps/cli/bin/dv-effect.js",
    "emulator",
    "--port",
    "0",
    "--profile",
    values.profile
  ], {
    stdio: ["ignore", "pipe", "ignore"]
  })
  const info = await new Promise((resolve) =>
    Readline.createInterface({ input: child.stdout }).once("line", (l) => resolve(JSON.parse(l)))
  )
  return { info, stop: () => child.kill() }
}

const creates = Array.from(
  { length: count },
  (_, i) => ({ lastname: `L${i}`, firstname: "F", emailaddress1: `e${i}@example.com` })
)

// Each contender as the matrix runs it (bench/contenders): the engine with its defaults, the loop
// at the engine's largest chunk size.
const engineRun = async (info, op, rows) => {
  const result = await Engine.run({ info, scenario: { table: "contact", op }, rows })
  return { done: result.succeeded }
}

const loopRun = async (info, op, rows) => {
  const result = await Loop.run({ info, scenario: { table: "contact", op, loop: { chunkSize: 1000 } }, rows })
  return { done: result.succeeded }
}

/** Creates (not measured), for an update job to have records to update. */
const seed = async (info) => {
  const layer = DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken) })
  const ids = []
  await Effect.runPromise(
    Bulk.execute("create", "contact", creates, { chunkSize: 1000 }, (o) => Effect.sync(() => ids.push(o.id)))
      .pipe(Effect.provide(layer))
  )
  return ids.map((contactid, i) => ({ contactid, lastname: `U${i}` }))
}

const profiler = values["cpu-prof"] === undefined ? undefined : new Inspector.Session()
profiler?.connect()

const measure = async (contender, op, rep) => {
  const emulator = await startEmulator()
  try {
    const rows = op === "update" ? await seed(emulator.info) : creates
    if (profiler) {
      await profiler.post("Profiler.enable")
      await profiler.post("Profiler.start")
    }
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const { done } = await (contender === "engine" ? engineRun : loopRun)(emulator.info, op, rows)
    const cpu = process.cpuUsage(cpu0)
    if (profiler) {
      const { profile } = await profiler.post("Profiler.stop")
      Fs.mkdirSync(values["cpu-prof"], { recursive: true })
      Fs.writeFileSync(Path.join(values["cpu-prof"], `${op}-${contender}-${rep}.cpuprofile`), JSON.stringify(profile))
    }
    return { done, ms: performance.now() - t0, cpuS: (cpu.user + cpu.system) / 1e6 }
  } finally {
    emulator.stop()
  }
}

const per100k = (cpuS) => (cpuS * 100_000) / count
for (const op of ops) {
  const figures = {}
  for (let rep = 0; rep < Number(values.reps); rep++) {
    for (const contender of contenders) {
      const result = await measure(contender, op, rep)
      ;(figures[contender] ??= []).push(per100k(result.cpuS))
      console.log(
        `${op.padEnd(6)} ${contender.padEnd(12)} ${result.done} rows  ${(result.ms / 1000).toFixed(2)} s  CPU ${
          per100k(result.cpuS).toFixed(2)
        } s per 100k rows`
      )
    }
  }
  const best = (name) => Math.min(...figures[name])
  if (figures.engine && figures["dwa-multiple"]) {
    console.log(
      `${op.padEnd(6)} engine CPU / loop CPU (best of each): ${(best("engine") / best("dwa-multiple")).toFixed(2)}x`
    )
  }
}

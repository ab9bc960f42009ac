// The emulator in a process of its own for one trial: the same `@dv-effect/emulator` that
// `dv-effect emulator` runs (built dist), started from its library API because the benchmark
// needs what the HTTP surface does not offer: the per-server counters (requests, 429s by kind,
// faults injected), seeding 100,000 records without spending the model's budgets, and counting
// the markers in the store after a run (and, for runs over several application users, which user
// created each). Driven over the IPC channel of `child_process.fork`.
//
//   fork("bench/lib/emulator-host.mjs", [JSON.stringify({ profile: "bench" | {...profile file}, servers, users, tokenLifetimeSeconds })])
//   -> { type: "ready", info }   then requests { id, type: "seed" | "stats" | "check" } -> { id, result }
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Fs from "node:fs"
import { performance } from "node:perf_hooks"
import { resolveProfile } from "./profile.mjs"
import { seedRows } from "./rows.mjs"

const options = JSON.parse(process.argv[2] ?? "{}")
const profile = resolveProfile(options)
if (typeof profile === "string") throw new Error(profile)
const emulator = await Emulator.start({
  profile,
  identity: false,
  port: 0,
  ...(options.users === undefined ? {} : { users: options.users }),
  ...(options.tokenLifetimeSeconds === undefined ? {} : { tokenLifetimeSeconds: options.tokenLifetimeSeconds })
})

const peakRssMb = () => Number(/VmHWM:\s+(\d+) kB/.exec(Fs.readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) / 1024

const handlers = {
  seed: ({ scenario }) => {
    const rows = seedRows(scenario)
    for (let i = 0; i < rows.length; i += 5000) emulator.seed(scenario.table, rows.slice(i, i + 5000))
    return { seeded: rows.length, recordsWritten: emulator.counters.recordsWritten }
  },
  token: ({ lifetimeSeconds }) => emulator.issueToken({ lifetimeSeconds }),
  stats: () => ({
    counters: { ...emulator.counters },
    servers: JSON.parse(JSON.stringify(emulator.servers)),
    peakRssMb: peakRssMb(),
    // This process's CPU time and event-loop use so far: the driver takes the difference over a
    // job to tell whether the emulator (one thread) was the bottleneck rather than the client.
    cpuMs: (({ user, system }) => (user + system) / 1000)(process.cpuUsage()),
    eventLoop: performance.eventLoopUtilization()
  }),
  // Counts the markers `<prefix><i>` in `column`: rows landed (distinct valid indices), lost
  // (valid indices missing), duplicated (records beyond one per index), invalid rows that landed.
  // With `byCreator`, also the marked records per creating systemuser (`createdby`), by userId.
  check: ({ expect, byCreator = false }) => {
    const table = emulator.store.table(expect.table)
    const seen = new Uint8Array(expect.count)
    let records = 0, marked = 0, duplicated = 0, invalidLanded = 0
    const createdBy = new Map()
    for (const record of table.scan()) {
      records++
      const value = record.values[expect.column]
      if (typeof value !== "string" || !value.startsWith(expect.prefix)) continue
      const i = Number(value.slice(expect.prefix.length))
      if (!Number.isInteger(i) || i < 0 || i >= expect.count) continue
      marked++
      if (byCreator) {
        const by = record.values.createdby?.id ?? "nobody"
        createdBy.set(by, (createdBy.get(by) ?? 0) + 1)
      }
      if (seen[i]++ > 0) duplicated++
      else if (expect.invalidEvery > 0 && i % expect.invalidEvery === expect.invalidEvery - 1) invalidLanded++
    }
    let landed = 0
    for (let i = 0; i < expect.count; i++) {
      if (seen[i] > 0 && !(expect.invalidEvery > 0 && i % expect.invalidEvery === expect.invalidEvery - 1)) landed++
    }
    return {
      records,
      marked,
      landed,
      lost: expect.valid - landed,
      duplicated,
      invalidLanded,
      ...(byCreator ? { createdBy: Object.fromEntries(createdBy) } : {})
    }
  }
}

process.on("message", async (message) => {
  let reply
  try {
    reply = { id: message.id, result: await handlers[message.type](message) }
  } catch (error) {
    reply = { id: message.id, error: String(error?.stack ?? error) }
  }
  process.send(reply)
})
// Nothing to flush (no data directory): exit at once rather than wait for kept-alive sockets.
process.on("disconnect", () => process.exit(0))
process.send({ type: "ready", info: emulator.info, profile: { ...profile } })

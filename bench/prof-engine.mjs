// Profiles the engine's own CPU: 100,000 creates against an emulator in another process (fast profile).
import { Bulk, Credentials, DataverseClient } from "@dv-effect/core"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as Readline from "node:readline"
const child = spawn(process.execPath, ["apps/cli/bin/dv-effect.js", "emulator", "--port", "0", "--profile", "fast"], {
  stdio: ["ignore", "pipe", "ignore"]
})
const info = await new Promise((resolve) =>
  Readline.createInterface({ input: child.stdout }).once("line", (l) => resolve(JSON.parse(l)))
)
const op = process.argv[2] ?? "create"
const rows = Array.from(
  { length: 100_000 },
  (_, i) => ({ lastname: `L${i}`, firstname: "F", emailaddress1: `e${i}@example.com` })
)
const layer = DataverseClient.layer({ url: info.url, credentials: Credentials.staticToken(info.accessToken) })
let s
let cpu0 = process.cpuUsage()
let t0 = Date.now()
if (op === "update") {
  const created = []
  await Effect.runPromise(
    Bulk.execute(
      "create",
      "contact",
      rows,
      { chunkSize: 1000, concurrency: 4 },
      (o) => Effect.sync(() => created.push(o.id))
    ).pipe(Effect.provide(layer))
  )
  const updates = created.map((contactid, i) => ({ contactid, lastname: `U${i}` }))
  cpu0 = process.cpuUsage()
  t0 = Date.now()
  s = await Effect.runPromise(
    Bulk.execute("update", "contact", updates, { chunkSize: 1000, concurrency: 4 }).pipe(Effect.provide(layer))
  )
} else {
  s = await Effect.runPromise(
    Bulk.execute("create", "contact", rows, { chunkSize: 1000, concurrency: 4 }).pipe(Effect.provide(layer))
  )
}
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({ done: s.succeeded, ms: Date.now() - t0, cpuS: (cpu.user + cpu.system) / 1e6 }))
child.kill()

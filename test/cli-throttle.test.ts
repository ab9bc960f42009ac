/**
 * Throttling through the CLI: a service that keeps refusing requests for longer than
 * `--max-throttle-wait` stops the run as a run failure (exit 1, one line naming the cause and the
 * resume command, no row in the rejects file), and the resumed run lands every row exactly once.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import { run, startEmulatorFixture } from "./support/cli.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let close: () => Promise<void>

beforeAll(async () => {
  ;({ emulator, dir, env, close } = await startEmulatorFixture({
    identity: false,
    // Twelve requests every three seconds: the metadata and a few chunks go, then Retry-After
    // waits of seconds.
    profile: { ...Model.fast, windowSeconds: 3, requestsPerWindow: 12 }
  }, "dv-throttle-"))
})
afterAll(() => close())

it("stops past --max-throttle-wait blaming no row, and --resume lands every row once", async () => {
  const rows = Path.join(dir, "rows.jsonl")
  Fs.writeFileSync(rows, Array.from({ length: 150 }, (_, i) => JSON.stringify({ lastname: `W${i}` })).join("\n"))
  const journal = Path.join(dir, "load.journal")
  const rejects = Path.join(dir, "rejects.jsonl")
  const common = ["create", "contact", "--file", rows, "--journal", journal, "--rejects", rejects, "--chunk-size", "10"]
  const first = await run([...common, "--concurrency", "1", "--max-throttle-wait", "1s"], { env })
  expect(first.code).toBe(1)
  const lastLine = first.stderr.trim().split("\n").at(-1)!
  expect(lastLine).toMatch(/^dv-effect: The service kept refusing requests for longer than .*maxThrottleWait/)
  expect(lastLine).toContain(`Resume with the same input and --journal ${journal} --resume.`)
  const rejected = Fs.existsSync(rejects) ? Fs.readFileSync(rejects, "utf8").trim() : ""
  expect(rejected).toBe("")
  const landed = emulator.store.table("contact")!.size
  expect(landed).toBeGreaterThan(0)
  expect(landed).toBeLessThan(150)

  const second = await run([...common, "--resume", "-o", "json"], { env })
  expect(second.code).toBe(0)
  const summary = JSON.parse(second.stdout.trim().split("\n").at(-1)!)
  expect(summary).toMatchObject({ created: 150 - landed, resumed: landed, failed: 0 })
  const names = emulator.store.table("contact")!.scan().map((record) => String(record.values.lastname))
  expect(names).toHaveLength(150)
  expect(new Set(names).size).toBe(150)
})

it("refuses a --max-throttle-wait it cannot read, naming the flag", async () => {
  const result = await run(["create", "contact", "--max-throttle-wait", "soon"], { env })
  expect(result.code).toBe(1)
  expect(result.stderr.trim()).toBe(
    "dv-effect: --max-throttle-wait takes a duration such as 90s, 30m or 1h, got 'soon'."
  )
})

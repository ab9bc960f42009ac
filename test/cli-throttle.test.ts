/**
 * Throttling through the CLI: a service that keeps refusing requests for longer than
 * `--max-throttle-wait` stops the run as a run failure (exit 1, one line naming the cause and the
 * resume command, no row in the rejects file), and the resumed run lands every row exactly once,
 * with a journal of the user's or the job's default one (found again by `--resume` alone).
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest"
import { run, startEmulatorFixture } from "./support/cli.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let runsDir: string
let close: () => Promise<void>

beforeAll(async () => {
  ;({ emulator, dir, env, runsDir, close } = await startEmulatorFixture({
    identity: false,
    // Twelve requests every three seconds: the metadata and a few chunks go, then Retry-After
    // waits of seconds.
    profile: { ...Model.fast, windowSeconds: 3, requestsPerWindow: 12 }
  }, "dv-throttle-"))
})
afterAll(() => close())
// Each test starts with an empty table and fresh service protection windows.
beforeEach(() => emulator.reset())

/** Rows finished (ok or failed) in a journal file. */
const finishedIn = (journal: string) => {
  let count = 0
  for (const line of Fs.readFileSync(journal, "utf8").split("\n").slice(1)) {
    if (line.trim() === "") continue
    const entry = JSON.parse(line) as { ok?: Array<[number, number]>; failed?: Array<[number, number]> }
    for (const [first, last] of [...(entry.ok ?? []), ...(entry.failed ?? [])]) count += last - first + 1
  }
  return count
}

it("stops past --max-throttle-wait blaming no row, and --resume lands every row once", async () => {
  const rows = Path.join(dir, "rows.jsonl")
  Fs.writeFileSync(rows, Array.from({ length: 150 }, (_, i) => JSON.stringify({ lastname: `W${i}` })).join("\n"))
  const journal = Path.join(dir, "load.journal")
  const rejects = Path.join(dir, "rejects.jsonl")
  const common = ["create", "contact", "--file", rows, "--journal", journal, "--rejects", rejects, "--chunk-size", "10"]
  const first = await run([...common, "--concurrency", "1", "--max-throttle-wait", "1s", "-o", "json"], { env })
  expect(first.code).toBe(1)
  const lastLine = first.stderr.trim().split("\n").at(-1)!
  expect(lastLine).toMatch(
    /^dv-effect: The service asked to wait [123]s \(Retry-After\), longer than a run waits for throttling \(1s: maxThrottleWait, --max-throttle-wait\)/
  )
  // The cause, then the command that resumes the run, on one line.
  expect(lastLine).toContain(
    `--max-throttle-wait): Number of requests exceeded the limit of 12 over time window of 3 seconds. Resume with: dv-effect create contact --file ${rows} --rejects ${rejects} --chunk-size 10 --concurrency 1 --max-throttle-wait 1s -o json --journal ${journal} --resume`
  )
  expect(lastLine.endsWith("--resume")).toBe(true)
  expect(first.stderr.trim().split("\n").filter((line) => line.startsWith("dv-effect:"))).toHaveLength(1)
  expect(Fs.existsSync(runsDir) ? Fs.readdirSync(runsDir) : []).toEqual([])
  const rejected = Fs.existsSync(rejects) ? Fs.readFileSync(rejects, "utf8").trim() : ""
  expect(rejected).toBe("")
  const landed = emulator.store.table("contact")!.size
  expect(landed).toBeGreaterThan(0)
  expect(landed).toBeLessThan(150)
  // Before the stop line, what the run did: every row it finished landed, and the request that
  // waited for its Retry-After may not have (a 429 did nothing).
  expect(first.stderr.trim().split("\n").at(-2)).toBe(`Stopped: ${landed} rows finished.`)
  // With -o json, the same on stdout for a script, with the command that resumes the run.
  expect(JSON.parse(first.stdout)).toEqual({
    table: "contact",
    operation: "create",
    stopped: "failed",
    error: lastLine.slice("dv-effect: ".length, lastLine.indexOf(" Resume with: ")),
    succeeded: landed,
    failed: 0,
    rowsInFlight: 0,
    resumed: 0,
    journal,
    resume: lastLine.slice(lastLine.indexOf("Resume with: ") + "Resume with: ".length),
    resumeNeeds: []
  })

  const second = await run([...common, "--resume", "-o", "json"], { env })
  expect(second.code).toBe(0)
  const summary = JSON.parse(second.stdout.trim().split("\n").at(-1)!)
  expect(summary).toMatchObject({ created: 150 - landed, resumed: landed, failed: 0 })
  const names = emulator.store.table("contact")!.scan().map((record) => String(record.values.lastname))
  expect(names).toHaveLength(150)
  expect(new Set(names).size).toBe(150)
})

it("keeps the default journal of a stopped run, prints a resume command without the token (last, with --verbose too), and --resume alone finishes", async () => {
  const rows = Path.join(dir, "default.jsonl")
  Fs.writeFileSync(rows, Array.from({ length: 150 }, (_, i) => JSON.stringify({ lastname: `D${i}` })).join("\n"))
  // The token on the command line, not in the environment: it must not be repeated.
  const token = emulator.info.accessToken
  const { DATAVERSE_ACCESS_TOKEN: _token, ...signedOut } = env
  const common = ["create", "contact", "-f", rows, "--chunk-size", "10", "--access-token", token]
  // With --verbose: the cause in full first, the stop line still last.
  const first = await run([...common, "--concurrency", "1", "--max-throttle-wait", "1s", "--verbose"], {
    env: signedOut
  })
  expect(first.code).toBe(1)
  expect(first.stderr).not.toContain(token)
  // The cause once: no fiber of the run logs it again as unhandled.
  expect(first.stderr.match(/^ *DataverseError: /gm)).toHaveLength(1)
  expect(first.stderr).not.toContain("Fiber terminated")
  const journals = Fs.readdirSync(runsDir)
  expect(journals).toEqual([expect.stringMatching(/^create-contact-[0-9a-f]{12}\.journal$/)])
  const journal = Path.join(runsDir, journals[0]!)
  expect(Fs.statSync(journal).mode & 0o777).toBe(0o600)
  expect(Fs.statSync(runsDir).mode & 0o777).toBe(0o700)
  const lastLine = first.stderr.trim().split("\n").at(-1)!
  expect(lastLine).toMatch(/^dv-effect: The service asked to wait [123]s \(Retry-After\), longer than a run waits/)
  expect(lastLine).toMatch(
    new RegExp(
      ` Resume with: dv-effect create contact -f ${rows} --chunk-size 10 --concurrency 1 --max-throttle-wait 1s --verbose --journal ${journal} --resume \\(with the same sign-in\\)$`
    )
  )
  const landed = emulator.store.table("contact")!.size
  expect(landed).toBeGreaterThan(0)
  expect(landed).toBeLessThan(150)

  // The same job without --resume is refused: it would send the landed rows again.
  const again = await run(common, { env: signedOut })
  expect(again.code).toBe(1)
  expect(again.stderr.trim()).toBe(
    `dv-effect: An unfinished run of this job is recorded in ${journal} (${
      finishedIn(journal)
    } rows finished): add --resume to continue it, or delete that file to start over.`
  )
  expect(again.stderr).not.toContain(token)
  expect(emulator.store.table("contact")!.size).toBe(landed)

  // A resume that fails before its load (a token refused as the table's metadata is read) still
  // says how to resume, and keeps the journal.
  const refused = await run(
    ["create", "contact", "-f", rows, "--chunk-size", "10", "--access-token", "not-a-token", "--resume", "-o", "json"],
    { env: signedOut }
  )
  expect(refused.code).toBe(1)
  const resumeCommand = `dv-effect create contact -f ${rows} --chunk-size 10 -o json --journal ${journal} --resume`
  expect(refused.stderr.trim().split("\n").at(-1)).toMatch(
    new RegExp(`^dv-effect: The user is not authenticated.* Resume with: ${resumeCommand} \\(with the same sign-in\\)$`)
  )
  expect(refused.stderr + refused.stdout).not.toContain("not-a-token")
  expect(Fs.existsSync(journal)).toBe(true)
  // -o json: the stop object, with nothing done by this run.
  expect(JSON.parse(refused.stdout)).toMatchObject({
    stopped: "failed",
    succeeded: 0,
    rowsInFlight: 0,
    journal,
    resume: resumeCommand,
    resumeNeeds: ["the same sign-in"]
  })

  // --resume alone finds the job's journal, lands every other row once, and removes the journal.
  const second = await run([...common, "--resume", "-o", "json"], { env: signedOut })
  expect(second.code, second.stderr).toBe(0)
  const summary = JSON.parse(second.stdout.trim().split("\n").at(-1)!)
  expect(summary.created + summary.resumed).toBe(150)
  expect(summary).not.toHaveProperty("journal")
  const names = emulator.store.table("contact")!.scan().map((record) => String(record.values.lastname))
  expect(names).toHaveLength(150)
  expect(new Set(names).size).toBe(150)
  expect(Fs.readdirSync(runsDir)).toEqual([])
  expect(second.stderr).not.toContain(token)

  // Nothing left to resume: one line naming the directory.
  const nothing = await run([...common, "--resume"], { env: signedOut })
  expect(nothing.code).toBe(1)
  expect(nothing.stderr.trim()).toMatch(
    new RegExp(`^dv-effect: --resume: no stopped run of this job is recorded in ${runsDir} `)
  )
})

it("without a journal, says what a new run would create a second time", async () => {
  const rows = Path.join(dir, "unjournalled.jsonl")
  Fs.writeFileSync(rows, Array.from({ length: 150 }, (_, i) => JSON.stringify({ lastname: `U${i}` })).join("\n"))
  const result = await run(
    [
      "create",
      "contact",
      "-f",
      rows,
      "--chunk-size",
      "10",
      "--concurrency",
      "1",
      "--max-throttle-wait",
      "1s",
      "--no-journal"
    ],
    { env }
  )
  expect(result.code).toBe(1)
  const landed = emulator.store.table("contact")!.size
  expect(landed).toBeGreaterThan(0)
  const [stopped, last] = result.stderr.trim().split("\n").slice(-2)
  expect(stopped).toMatch(
    new RegExp(
      `^Stopped: ${landed} rows finished\\. The ${landed} created would be created a second time by a new run \\(unless the rows carry their own ids\\)\\.$`
    )
  )
  expect(last).toMatch(/^dv-effect: The service asked to wait .* Without a journal a new run sends every row again\.$/)
})

it("refuses a --max-throttle-wait it cannot read, naming the flag", async () => {
  const result = await run(["create", "contact", "--max-throttle-wait", "soon"], { env })
  expect(result.code).toBe(1)
  expect(result.stderr.trim()).toBe(
    "dv-effect: --max-throttle-wait takes a duration such as 90s, 30m or 1h, got 'soon'."
  )
})

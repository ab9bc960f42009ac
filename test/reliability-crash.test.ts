/**
 * Reliability under crashes: one import, killed with SIGKILL at several seeded points (after a
 * number of finished chunks, or while a request is in flight), resumed from its journal each time
 * until it completes; and stopped with SIGINT, cleanly, then resumed. The store must end exactly
 * right, and the journal must stay consistent with the store at every stop.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { run, startEmulatorFixture, writeFile } from "./support/cli.js"
import { expectKilled, importArgs, interrupt, journalReaches, readJournal, startCli } from "./support/reliability.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let close: () => Promise<void>

beforeAll(async () => {
  ;({ emulator, dir, env, close } = await startEmulatorFixture({
    identity: false,
    // Some latency, so that requests are in flight when the process is stopped.
    profile: { ...Model.fast, latency: { baseMs: 15, perRecordMs: 0.2, perOperationMs: 0.2 } }
  }, "dv-crash-"))
})
afterAll(() => close())
beforeEach(() => emulator.reset())

/** mulberry32: the kill points of a seed are the same on every run. */
const random = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const file = (name: string, text: string) => writeFile(dir, name, text)

/** Starts an import, in this process's environment with the fixture's over it. */
const startImport = (args: ReadonlyArray<string>) => startCli(args, env, process.env)

/** The store and the journal agree: every row the journal finished as ok is stored, and every stored row was sent. */
const expectConsistent = (journal: string, stored: ReadonlySet<number>) => {
  const view = readJournal(journal)
  expect(view.entries[0]).toMatchObject({ journal: "dv-effect", operation: "create", table: "contact" })
  for (const index of view.ok) expect(stored.has(index), `row ${index} is ok in the journal`).toBe(true)
  for (const index of stored) {
    expect(view.ok.has(index) || view.sent.has(index), `row ${index} is stored but was never sent`).toBe(true)
  }
  for (const index of view.failed) expect(stored.has(index), `row ${index} failed but is stored`).toBe(false)
}

const rowCount = 3000
/** Rows 500, 1500 and 2500 are refused before sending (lastname over 50 characters). */
const bad = new Set([500, 1500, 2500])
const rows = Array.from({ length: rowCount }, (_, i) => ({
  lastname: bad.has(i) ? "x".repeat(51) : `K${i}`,
  firstname: `F${i % 97}`,
  emailaddress1: `k${i}@crash.example.com`
}))
const input = () => file("rows.jsonl", rows.map((row) => JSON.stringify(row)).join("\n") + "\n")

/** Positions of the stored contacts, failing on a row stored twice or a value that is wrong. */
const storedRows = (): Set<number> => {
  const out = new Set<number>()
  for (const record of emulator.store.table("contact")!.scan()) {
    const index = Number(String(record.values.lastname).slice(1))
    expect(out.has(index), `row ${index} is stored twice`).toBe(false)
    const row = rows[index]!
    expect(record.values).toMatchObject(row)
    out.add(index)
  }
  return out
}

const expectComplete = () => {
  const stored = storedRows()
  expect(stored.size).toBe(rowCount - bad.size)
  for (const index of bad) expect(stored.has(index)).toBe(false)
}

/** The rejects file names only bad rows, by their line (`complete`: every one of them). */
const expectRejects = (path: string, complete = true) => {
  const entries = Fs.readFileSync(path, "utf8").trim().split("\n").map((line) => JSON.parse(line))
  const named = entries.map((entry) => entry.row as string)
  const expected = new Set([...bad].map((i) => `line ${i + 1}`))
  if (complete) expect(new Set(named)).toEqual(expected)
  else for (const name of named) expect(expected.has(name), name).toBe(true)
  for (const entry of entries) {
    expect(entry).toMatchObject({ status: "failed", reason: "Validation" })
    expect(entry.message).toContain("lastname")
  }
  return named
}

/** A stopped run: not every row is stored, and the store and the journal agree. */
const expectStoppedConsistent = (journal: string) => {
  const stored = storedRows()
  expect(stored.size).toBeLessThan(rowCount - bad.size)
  expectConsistent(journal, stored)
}

/** The last resume: exit 2 (the bad rows), every row counted, the store complete and as the journal says. */
const expectResumeCompletes = async (args: ReadonlyArray<string>, journal: string) => {
  const resumed = await run([...args, "--resume", "-o", "json"], { env })
  expect(resumed.code, resumed.stderr).toBe(2)
  const summary = JSON.parse(resumed.stdout)
  expect(summary.resumed + summary.total).toBe(rowCount)
  expectComplete()
  expectConsistent(journal, storedRows())
}

describe("SIGKILL at seeded points of one import, resumed from the journal each time", () => {
  it.each([7, 42])("seed %i: every row lands exactly once, every bad row is rejected", async (seed) => {
    const next = random(seed)
    const source = input()
    const journal = Path.join(dir, `kill-${seed}.journal`)
    const rejects = Path.join(dir, `kill-${seed}.rejects.jsonl`)
    const args = importArgs(source, journal, rejects)
    let kills = 0
    for (let attempt = 0; attempt < 4; attempt++) {
      const before = readJournal(journal)
      const import_ = startImport(attempt === 0 ? args : [...args, "--resume"])
      // Half of the points: after 1 to 6 more finished chunks; the other half: while a request is in flight.
      const more = 1 + Math.floor(next() * 6)
      const inFlight = next() < 0.5
      const reached = await journalReaches(
        import_,
        journal,
        (view) => view.okLines >= before.okLines + more && (!inFlight || view.inFlight)
      )
      if (!reached) {
        // The run finished before the point: it must have finished well.
        expect((await import_.exited).code, import_.stderr()).toBe(2)
        break
      }
      await expectKilled(import_)
      kills++
      expectStoppedConsistent(journal)
    }
    expect(kills).toBeGreaterThanOrEqual(3)
    await expectResumeCompletes(args, journal)
    const view = readJournal(journal)
    expect(view.ok.size).toBe(rowCount - bad.size)
    expect(view.failed).toEqual(bad)
    // Whether each bad row also reached the rejects file depends on where the kills fell: see the
    // test "a row the journal finished as failed ..." below for the gap.
    expectRejects(rejects, false)
    // Resuming a finished run sends nothing and changes nothing.
    const again = await run([...args, "--resume", "-o", "json"], { env })
    expect(JSON.parse(again.stdout)).toMatchObject({ total: 0, resumed: rowCount, requests: 0 })
    expectComplete()
  })
})

describe("SIGINT", () => {
  it("stops cleanly (exit 130) twice, leaves a consistent journal each time, and the resume completes", async () => {
    const source = input()
    const journal = Path.join(dir, "int.journal")
    const rejects = Path.join(dir, "int.rejects.jsonl")
    const args = importArgs(source, journal, rejects)
    for (const [attempt, more] of [[0, 3], [1, 5]] as const) {
      const before = readJournal(journal)
      const import_ = startImport(attempt === 0 ? args : [...args, "--resume"])
      expect(await journalReaches(import_, journal, (view) => view.okLines >= before.okLines + more)).toBe(true)
      await interrupt(import_, { journal })
      expectStoppedConsistent(journal)
    }
    await expectResumeCompletes(args, journal)
    // Only bad rows are in the rejects file, each once. Not necessarily all of them: a Ctrl-C can also
    // fall between the journal and the rejects file (see "rejects across a stop" below).
    const named = expectRejects(rejects, false)
    expect(new Set(named).size).toBe(named.length)
  })
})

describe("rejects across a stop", () => {
  /**
   * A chunk whose rows are all invalid finishes at once (nothing to send) and is journaled as
   * failed, while its outcomes wait behind the chunks before it, still in flight: the process is
   * stopped right then, with the journal saying "finished" and the rejects file not yet written.
   */
  const stopBetweenJournalAndRejects = async (signal: NodeJS.Signals) => {
    const allBad = new Set(Array.from({ length: 100 }, (_, i) => 1000 + i))
    const lines = Array.from(
      { length: 2000 },
      (_, i) => JSON.stringify({ lastname: allBad.has(i) ? "y".repeat(51) : `K${i}` })
    )
    const source = file(`gap-${signal}.jsonl`, lines.join("\n") + "\n")
    const journal = Path.join(dir, `gap-${signal}.journal`)
    const rejects = Path.join(dir, `gap-${signal}.rejects.jsonl`)
    const all = importArgs(source, journal, rejects)
    const first = startImport(all)
    const rejected = () => (Fs.existsSync(rejects) ? Fs.readFileSync(rejects, "utf8") : "")
    // Stop the moment the journal finishes the failed chunk: its rejects must already be written.
    const reached = await journalReaches(first, journal, (view) => view.failed.has(1000))
    expect(reached, "the run ended before the journal finished the failed chunk").toBe(true)
    first.child.kill(signal)
    await first.exited
    const finishedAsFailed = [...readJournal(journal).failed]
    const writtenBeforeStop = rejected()
    expect(finishedAsFailed.filter((i) => !writtenBeforeStop.includes(`"line ${i + 1}"`))).toEqual([])
    const resumed = await run([...all, "--resume"], { env })
    // Rows an earlier run rejected keep the load from having fully succeeded.
    expect(resumed.code).toBe(2)
    expect(emulator.store.table("contact")!.size).toBe(1900)
    // Every row the journal finished as failed is in the rejects file: nothing else will ever report it.
    const named = new Set(
      rejected().split("\n").filter((line) => line !== "").map((line) => JSON.parse(line).row)
    )
    expect([...allBad].filter((i) => !named.has(`line ${i + 1}`))).toEqual([])
  }

  // The engine journals a chunk as finished only after its outcomes reached onOutcome, which writes
  // the rejects file; otherwise a kill in between would lose those rejects for good, since the
  // resumed run skips rows the journal finished.
  it("a row the journal finished as failed reaches the rejects file even when SIGKILL comes in between", () =>
    stopBetweenJournalAndRejects("SIGKILL"))
})

/**
 * One load shared by four machines (README "Running on many machines"): four `dv-effect create
 * --partition i/4` processes at once against one emulator, each signed in as its own application
 * user. The union of what they land is every row exactly once, each partition's summary counts its
 * share, each record is created by the user of its partition; and a partition stopped with Ctrl-C
 * is resumed alone, with the same end.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { run, startEmulatorFixture, writeFile } from "./support/cli.js"
import { type Cli, exitWithin, interrupt, journalReaches, readJournal, startCli } from "./support/reliability.js"

const parts = 4
const rowCount = 4000
/** Each partition's share: the rows whose position p has p % 4 === i - 1. */
const share = rowCount / parts

let emulator: Emulator.RunningEmulator
let dir: string
let stateDir: string
let close: () => Promise<void>

beforeAll(async () => {
  let env: Record<string, string>
  ;({ emulator, dir, env, close } = await startEmulatorFixture({
    // Static tokens only: no identity endpoint needed.
    identity: false,
    users: parts,
    // Some latency, so that a run is still going when it is stopped.
    profile: { ...Model.fast, latency: { baseMs: 5, perRecordMs: 0.05, perOperationMs: 0 } }
  }, "dv-partitions-"))
  stateDir = env.XDG_STATE_HOME!
})
afterAll(() => close())
// An explicit journal is kept after its run (and a new run over it refused): each test starts afresh.
beforeEach(() => {
  emulator.reset()
  for (let part = 1; part <= parts; part++) {
    Fs.rmSync(journalOf(part), { force: true })
    Fs.rmSync(rejectsOf(part), { force: true })
  }
})

/** The application users, one per partition (partition i signs in as user i - 1). */
const users = () => {
  const list = emulator.info.users
  expect(list).toHaveLength(parts)
  expect(new Set(list.map((user) => user.userId)).size).toBe(parts)
  return list
}

/** The input: one CSV of `rowCount` rows, lastnames unique (`P<position>`). */
const input = () =>
  writeFile(
    dir,
    "big.csv",
    "lastname,firstname,emailaddress1\n" +
      Array.from({ length: rowCount }, (_, i) => `P${i},F${i % 97},p${i}@partitions.example.com\n`).join("")
  )

const journalOf = (part: number) => Path.join(dir, `part-${part}.journal`)
const rejectsOf = (part: number) => Path.join(dir, `rejects-${part}.jsonl`)

/** The command a worker runs for `part` (1-based), and what it adds. */
const partArgs = (source: string, part: number, extra: ReadonlyArray<string> = []) => [
  "create",
  "contact",
  "--file",
  source,
  "--partition",
  `${part}/${parts}`,
  "--journal",
  journalOf(part),
  "--rejects",
  rejectsOf(part),
  "-o",
  "json",
  ...extra
]

/** A worker's environment: the org, the token of its own user, the state directory. */
const envOf = (part: number) => ({
  DATAVERSE_URL: emulator.info.url,
  DATAVERSE_ACCESS_TOKEN: users()[part - 1]!.accessToken,
  XDG_STATE_HOME: stateDir
})

const startPart = (source: string, part: number, extra: ReadonlyArray<string> = []) =>
  startCli(partArgs(source, part, extra), envOf(part))

/** The partition (1-based) of a position. */
const partOf = (position: number) => (position % parts) + 1

/** Positions of the stored contacts, failing on a row stored twice or with wrong values. */
const storedPositions = (): Set<number> => {
  const out = new Set<number>()
  for (const record of emulator.store.table("contact")!.scan()) {
    const position = Number(String(record.values.lastname).slice(1))
    expect(out.has(position), `row ${position} is stored twice`).toBe(false)
    expect(record.values).toMatchObject({
      firstname: `F${position % 97}`,
      emailaddress1: `p${position}@partitions.example.com`
    })
    out.add(position)
  }
  return out
}

const expectEveryRowOnce = () => {
  const stored = storedPositions()
  expect(stored.size).toBe(rowCount)
  for (let i = 0; i < rowCount; i++) expect(stored.has(i), `row ${i} is stored`).toBe(true)
}

/** Every contact, through the Web API as users see it, with who created it. */
const createdBy = async (): Promise<Map<number, unknown>> => {
  const out = new Map<number, unknown>()
  let url: string | undefined = `${emulator.info.webApiUrl}contacts?$select=lastname,_createdby_value`
  while (url !== undefined) {
    const response: Response = await fetch(url, {
      headers: { Authorization: `Bearer ${emulator.info.accessToken}`, Prefer: "odata.maxpagesize=5000" }
    })
    expect(response.status, await response.clone().text()).toBe(200)
    const body = (await response.json()) as { value: Array<Record<string, unknown>>; "@odata.nextLink"?: string }
    for (const row of body.value) out.set(Number(String(row.lastname).slice(1)), row._createdby_value)
    url = body["@odata.nextLink"]
  }
  return out
}

/** Each record was created by the application user of its partition. */
const expectCreatedByTheirPartition = async () => {
  const byUser = users().map((user) => user.userId)
  const creators = await createdBy()
  expect(creators.size).toBe(rowCount)
  for (const [position, creator] of creators) {
    expect(creator, `row ${position} (partition ${partOf(position)})`).toBe(byUser[partOf(position) - 1])
  }
}

/** A worker that finished: exit 0, the JSON summary on stdout. */
const finished = async (cli: Cli, part: number) => {
  const exit = await exitWithin(cli, 180_000, `partition ${part}`)
  expect(exit.code, `partition ${part}: ${cli.stderr()}`).toBe(0)
  return JSON.parse(cli.stdout()) as Record<string, unknown>
}

/** No row failed: every rejects file is there, and empty. */
const expectNoRejects = () => {
  for (let part = 1; part <= parts; part++) expect(Fs.readFileSync(rejectsOf(part), "utf8")).toBe("")
}

/** The partition's journal finished every row of its slice. */
const expectJournalComplete = (part: number) => expect(readJournal(journalOf(part)).ok.size).toBe(share)

describe("four machines, one input: dv-effect create --partition i/4, each as its own user", () => {
  it("four processes at once land every row exactly once, each its share, as its user", async () => {
    const source = input()
    const workers = [1, 2, 3, 4].map((part) => startPart(source, part))
    const summaries = await Promise.all(workers.map((cli, k) => finished(cli, k + 1)))
    for (const summary of summaries) {
      expect(summary).toMatchObject({
        table: "contact",
        operation: "create",
        total: share,
        succeeded: share,
        created: share,
        failed: 0,
        resumed: 0
      })
    }
    expectEveryRowOnce()
    for (const part of [1, 2, 3, 4]) expectJournalComplete(part)
    expectNoRejects()
    await expectCreatedByTheirPartition()
  }, 240_000)

  it("a partition stopped with Ctrl-C while the others finish is resumed alone: every row exactly once", async () => {
    const source = input()
    // Partition 3 in small chunks, one at a time, so that it is still running when it is stopped.
    const slow = ["--chunk-size", "10", "--concurrency", "1"]
    const workers = [1, 2, 3, 4].map((part) => startPart(source, part, part === 3 ? slow : []))
    const third = workers[2]!
    expect(await journalReaches(third, journalOf(3), (view) => view.ok.size >= 100, "partition 3 landing rows"))
      .toBe(true)
    await interrupt(third, { journal: journalOf(3), timeoutMs: 60_000 })
    for (const part of [1, 2, 4]) {
      expect(await finished(workers[part - 1]!, part)).toMatchObject({ total: share, created: share, failed: 0 })
    }

    // The others are complete; partition 3 only in part, and nothing twice.
    const stopped = storedPositions()
    for (let i = 0; i < rowCount; i++) {
      if (partOf(i) !== 3) expect(stopped.has(i), `row ${i} is stored`).toBe(true)
    }
    const thirdLanded = [...stopped].filter((i) => partOf(i) === 3).length
    expect(thirdLanded).toBeGreaterThanOrEqual(100)
    expect(thirdLanded).toBeLessThan(share)

    // Only partition 3 is run again, with --resume: it sends only what did not land.
    const resumed = await run(partArgs(source, 3, ["--resume"]), { env: envOf(3) })
    expect(resumed.code, resumed.stderr).toBe(0)
    const summary = JSON.parse(resumed.stdout) as Record<string, number>
    expect(summary.failed).toBe(0)
    expect(summary.resumed).toBeGreaterThanOrEqual(100)
    expect(summary.resumed + summary.total).toBe(share)
    expectEveryRowOnce()
    expectJournalComplete(3)
    expectNoRejects()
    await expectCreatedByTheirPartition()
  }, 240_000)
})

import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { pipe } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import { estimateBytes, groupAdaptively, makeChunkSizer } from "../src/internal/bulk/chunking.js"
import type { ChunkSizer } from "../src/internal/bulk/chunking.js"
import { deterministicId } from "../src/internal/bulk/ids.js"
import { planRun } from "../src/internal/bulk/plan.js"
import type { Prepared } from "../src/internal/bulk/prepare.js"
import { bestSize, costPerRow, makeRefusedRowsModel, requestWorthMs } from "../src/internal/bulk/refusedRows.js"
import { inputHead } from "../src/internal/bulk/sameInput.js"
import { sendMultiple } from "../src/internal/bulk/sendMultiple.js"
import * as Journal from "../src/Journal.js"
import * as Records from "../src/Records.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import { frontDoor } from "./support/frontDoor.js"

describe("chunking", () => {
  it.effect("groups by count and by bytes, reading the size as each group starts", () =>
    Effect.gen(function*() {
      let size = 3
      const groups = yield* Stream.runCollect(
        groupAdaptively(Stream.range(1, 10), () => size++, 1000, () => 1)
      )
      expect(Chunk.toReadonlyArray(groups).map((g) => g.length)).toEqual([3, 4, 3])
      const byBytes = yield* Stream.runCollect(groupAdaptively(Stream.range(1, 10), () => 100, 25, () => 10))
      expect(Chunk.toReadonlyArray(byBytes).map((g) => g.length)).toEqual([2, 2, 2, 2, 2])
      // The size is told how many items went before: the tail of 10 shared by 2 workers.
      const seen: Array<number> = []
      const tail = yield* Stream.runCollect(
        groupAdaptively(
          Stream.range(1, 10),
          (grouped) => {
            seen.push(grouped)
            return Math.min(4, Math.ceil((10 - grouped) / 2))
          },
          1000,
          () => 1
        )
      )
      expect(Chunk.toReadonlyArray(tail).map((g) => g.length)).toEqual([4, 3, 2, 1])
      expect(seen).toEqual([0, 4, 7, 9])
    }))

  it("grows while fast, shrinks when slow or refused, and stays below a refused size", () => {
    const sizer = makeChunkSizer({ start: 100, max: 1000, targetMs: 10_000 })
    // 100 rows in 1 s: half the target holds 500 rows at that cost.
    sizer.observe(100, 1000)
    expect(sizer.current()).toBe(400) // at most fourfold per answer
    sizer.observe(400, 1000)
    expect(sizer.current()).toBe(1000)
    sizer.observe(5, 1) // a small tail chunk says nothing
    expect(sizer.current()).toBe(1000)
    sizer.observe(1000, 20_000) // too slow: two thirds
    expect(sizer.current()).toBe(670)
    sizer.shrink(670) // refused: half, and never above that again
    expect(sizer.current()).toBe(335)
    for (let i = 0; i < 5; i++) sizer.observe(sizer.current(), 10)
    expect(sizer.current()).toBe(335)
    // The requests in flight with it, of the same size and refused alike, halve it once in all.
    for (let i = 0; i < 7; i++) sizer.shrink(670)
    expect(sizer.current()).toBe(335)
    sizer.shrink(335) // a refusal of the halved size halves it again
    expect(sizer.current()).toBe(167)
  })

  it("sizes chunks by the rows the service refuses: clean runs untouched, sparse bad rows smaller chunks", () => {
    // A clean request: 20 ms plus 1 ms a row; a refused one and its `$batch`: 40 ms plus 11 ms a row.
    const costs = { fixedMs: 20, perRowMs: 1, isolationFixedMs: 40, isolationPerRowMs: 11 }
    expect(bestSize({ ...costs, badRate: 0 }, 1000)).toBe(1000)
    // One bad row in 1,000: chunks of 1,000 nearly all fail; about 100 is best, where the
    // execution time and the requests (at 200 ms each, §6's default limits) cost alike.
    const sparse = bestSize({ ...costs, badRate: 0.001 }, 1000)
    expect(sparse).toBeGreaterThanOrEqual(80)
    expect(sparse).toBeLessThanOrEqual(125)
    expect(costPerRow({ ...costs, badRate: 0.001 }, sparse)).toBeLessThan(
      costPerRow({ ...costs, badRate: 0.001 }, 1000) / 3
    )
    // More bad rows, smaller chunks; but never so small that the requests cost more than the rows.
    const dense = bestSize({ ...costs, badRate: 0.01 }, 1000)
    expect(dense).toBeLessThan(sparse)
    expect(dense).toBeGreaterThanOrEqual(10)
    expect(requestWorthMs / dense).toBeLessThan(costPerRow({ ...costs, badRate: 0.01 }, dense) * 1.0001)
    // Every row bad: the search is the cost whatever the size, and large requests amortise it.
    expect(bestSize({ ...costs, badRate: 1 }, 1000)).toBe(1000)

    // Learnt from the answers: no refusal, no change.
    const model = makeRefusedRowsModel()
    for (const rows of [100, 400, 1000, 1000, 1000, 250, 60]) model.clean(rows, 20 + rows)
    model.clean(1000, undefined) // held by a Retry-After: rows, not a cost
    expect(model.best(1000)).toBe(1000)
    // A refusal counts a bad row at once; until a search is timed, a `$batch` row is taken to
    // cost what a row of the message costs (the least it can): a mild limit.
    model.refusing(1000, undefined)
    const atOnce = model.best(1000)
    expect(atOnce).toBeLessThan(1000)
    expect(atOnce).toBeGreaterThan(160)
    // A search held by a Retry-After teaches the rate, not the cost.
    model.searched(1000, 1, undefined)
    model.settled()
    expect(model.best(1000)).toBe(atOnce)
    // A timed one: a `$batch` row costs ten a message row; about 100 is best now.
    model.refusing(1000, 1020)
    model.searched(1000, 1, 20 + 10 * 1000)
    model.settled()
    const learnt = model.best(1000)
    expect(learnt).toBeGreaterThanOrEqual(80)
    expect(learnt).toBeLessThanOrEqual(160)
    // Clean rows since: the rate decays and the size grows back.
    for (let i = 0; i < 200; i++) model.clean(learnt, 20 + learnt)
    expect(model.best(1000)).toBeGreaterThan(learnt)

    // The sizer: grows as before while nothing is refused, then keeps below the best size.
    const sizer = makeChunkSizer({ start: 100, max: 1000, targetMs: 10_000 })
    sizer.observe(100, 120)
    sizer.observe(400, 420)
    sizer.observe(1000, 1020)
    expect(sizer.current()).toBe(1000)
    for (let i = 0; i < 2; i++) {
      sizer.refusing(1000, 1020)
      sizer.searched(1000, 1, 10_020)
      sizer.settled()
    }
    expect(sizer.current()).toBeLessThanOrEqual(160)
    // Every chunk refused (one bad row in each 100, chunks of 100): the refused requests' times
    // stand in for a clean one's, and the size still comes down.
    const everyChunk = makeRefusedRowsModel()
    for (let i = 0; i < 20; i++) {
      everyChunk.refusing(100, 120)
      everyChunk.searched(100, 1, 20 + 10 * 100)
      everyChunk.settled()
    }
    expect(everyChunk.best(1000)).toBeLessThan(80)
    expect(everyChunk.best(1000)).toBeGreaterThanOrEqual(10)
    const fixed = makeChunkSizer({ fixed: 500 })
    fixed.refusing(500, 520)
    fixed.searched(500, 1, 5_000)
    expect(fixed.current()).toBe(500)
  })

  it("estimates a row's JSON size without serialising it", () => {
    const row = { lastname: "Smith", count: 3, ok: true, none: null }
    const actual = JSON.stringify(row).length
    expect(Math.abs(estimateBytes(row) - actual)).toBeLessThan(actual * 0.5)
  })

  it("gives each row of a run its own stable, well-formed id", () => {
    const a = deterministicId("run-1", 0)
    expect(a).toBe(deterministicId("run-1", 0))
    expect(a).not.toBe(deterministicId("run-1", 1))
    expect(a).not.toBe(deterministicId("run-2", 0))
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-000000000000$/)
    expect(deterministicId("run-1", 255).endsWith("0000000000ff")).toBe(true)
  })
})

const clientOf = (options: Partial<DataverseClient.ClientOptions> = {}) =>
  Layer.unwrapEffect(
    Effect.map(Emulator.Emulator, ({ info }) =>
      DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken), ...options }))
  )
const fastRetries = { retryPolicy: RetryPolicy.make({ baseDelay: "1 millis", maxRetries: 20 }) }
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`
const contacts = (n: number, prefix = "R") => Array.from({ length: n }, (_, i) => ({ lastname: `${prefix}${i}` }))
/** A client of an emulator that advertises a dop hint of 3. */
const withHint3 = clientOf(fastRetries).pipe(Layer.provideMerge(Emulator.layer({ identity: false, dopHint: 3 })))
/** The `dve_name` of every `dve_reading` record. */
const readingNames = (emulator: Emulator.RunningEmulator) =>
  emulator.store.table("dve_reading")!.scan().map((record) => String(record.values.dve_name))
/** Every reading in the store once: `count` records, no name twice. */
const expectEachReadingOnce = (emulator: Emulator.RunningEmulator, count: number) => {
  const names = readingNames(emulator)
  expect(names).toHaveLength(count)
  expect(new Set(names).size).toBe(count)
}
/** A connection of its own to the emulator, or to a front door at `url`. */
const connectionTo = (emulator: Emulator.RunningEmulator, url = emulator.info.url) =>
  DataverseClient.layerNode({ url, credentials: Credentials.staticToken(emulator.info.accessToken), ...fastRetries })
/**
 * Creates readings one request at a time (the client reads every answer before its next request)
 * over `connectionTo(emulator, url)`, pushing each failed outcome to `failed`.
 */
const createReadingsOneByOne = (
  emulator: Emulator.RunningEmulator,
  url: string,
  rows: ReadonlyArray<Record<string, unknown>>,
  failed: Array<Bulk.RowOutcome>,
  concurrency = 1
) =>
  Bulk.execute(
    "create",
    "dve_reading",
    rows,
    { chunkSize: 20, concurrency },
    (outcome) => Effect.sync(() => outcome.status === "failed" && failed.push(outcome))
  ).pipe(Effect.provide(connectionTo(emulator, url)))
const lastnames = (emulator: Emulator.RunningEmulator) =>
  emulator.store.table("contact")!.scan().map((r) => String(r.values.lastname)).sort()

layer(withHint3, { excludeTestServices: true })("the engine, plain", (it) => {
  it.effect("follows the dop hint, sums up every status, and names its requests", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      let mostInFlight = 0
      let ceiling = 0
      const summary = yield* Bulk.execute("create", "contact", contacts(500), {
        chunkSize: 20,
        onProgress: (p) => {
          mostInFlight = Math.max(mostInFlight, p.inFlight)
          ceiling = Math.max(ceiling, p.concurrency)
        }
      })
      expect(ceiling).toBe(3)
      expect(mostInFlight).toBeLessThanOrEqual(3)
      expect(summary).toMatchObject({ total: 500, succeeded: 500, created: 500, failed: 0, requests: 25, retries: 0 })
      expect(emulator.store.table("contact")!.size).toBe(500)
    }))

  it.effect("gives creates the engine's ids, the same for the same run and row", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const journal = Journal.memory()
      const outcomes = yield* Stream.runCollect(Bulk.createMany("contact", contacts(3), { journal }))
      const session = yield* Effect.scoped(journal.open({ operation: "create", table: "contact" }))
      expect(Chunk.toReadonlyArray(outcomes).map((o) => o.status === "created" && o.id)).toEqual(
        [0, 1, 2].map((i) => deterministicId(session.state.runId, i))
      )
      expect(emulator.store.table("contact")!.ids().sort()).toEqual(
        [0, 1, 2].map((i) => deterministicId(session.state.runId, i)).sort()
      )
    }))

  it.effect("sends one request per row with the single strategy", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", [{ contactid: id(1), lastname: "One" }])
      const summary = yield* Bulk.execute("update", "contact", [
        { contactid: id(1), lastname: "Uno" },
        { contactid: id(2), lastname: "Nobody" }
      ], { strategy: "single" })
      expect(summary).toMatchObject({ updated: 1, failed: 1, requests: 2 })
      expect(lastnames(emulator)).toEqual(["Uno"])
    }))

  it.effect("keeps each request under the byte budget", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const rows = contacts(100).map((_, i) => ({ name: `B${i}`, description: "y".repeat(1000) }))
      const summary = yield* Bulk.execute("create", "account", rows, { chunkSize: 100, maxRequestBytes: 20_000 })
      expect(summary.created).toBe(100)
      // About 1,050 bytes a row: at most 19 rows a request.
      expect(summary.requests).toBeGreaterThanOrEqual(6)
    }))
})

layer(
  clientOf(fastRetries).pipe(Layer.provideMerge(Emulator.layer({ identity: false, maxBodyBytes: 40_000 }))),
  { excludeTestServices: true }
)("the engine, small requests only", (it) => {
  it.effect("halves a chunk refused with 413 until it fits, and remembers the smaller size", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const rows = contacts(300).map((_, i) => ({ name: `C${i}`, description: "z".repeat(400) }))
      let smallest = Infinity
      const summary = yield* Bulk.execute("create", "account", rows, {
        // Two workers: the even split of the last rows would otherwise make requests small.
        concurrency: 2,
        onProgress: (p) => (smallest = Math.min(smallest, p.chunkSize))
      })
      expect(summary).toMatchObject({ created: 300, failed: 0 })
      expect(emulator.store.table("account")!.size).toBe(300)
      expect(smallest).toBeLessThan(100)
    }))
})

layer(
  clientOf({ ...fastRetries, timeout: "150 millis" }).pipe(
    Layer.provideMerge(
      Emulator.layer({
        identity: false,
        // 2 ms a record: a request of 100 rows takes 220 ms, past the client's 150 ms timeout.
        profile: { ...Model.fast, latency: { baseMs: 20, perRecordMs: 2, perOperationMs: 0 } }
      })
    )
  ),
  { excludeTestServices: true }
)("the engine, slow service", (it) => {
  it.effect("shrinks the chunk size on timeouts, and creates every row once though the service wrote them", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const sizes: Array<number> = []
      const summary = yield* Bulk.execute("create", "contact", contacts(400, "S"), {
        concurrency: 2,
        onProgress: (p) => void sizes.push(p.chunkSize)
      })
      expect(summary).toMatchObject({ created: 400, failed: 0 })
      // 100 rows timed out; halves of 50 (120 ms) answer in time, and the size stays below 100.
      const afterShrinking = sizes.slice(sizes.findIndex((size) => size < 100))
      expect(afterShrinking.at(-1)).toBeLessThanOrEqual(50)
      expect(Math.max(...afterShrinking)).toBeLessThan(100)
      const names = lastnames(emulator)
      expect(names).toHaveLength(400)
      expect(new Set(names).size).toBe(400)
    }))
})

layer(
  clientOf(fastRetries).pipe(
    Layer.provideMerge(
      Emulator.layer({
        identity: false,
        // Two web servers, each with 1,000 ms of execution time a second: one request in flight
        // all the time. A request of 10 rows takes 110 ms (4 in flight on each server, its share
        // of the dop hint 8), long enough that they exceed the budget even when the client is
        // slowed by a loaded machine.
        profile: {
          ...Model.fast,
          servers: 2,
          windowSeconds: 1,
          executionMsPerWindow: 1000,
          latency: { baseMs: 100, perRecordMs: 1, perOperationMs: 0 }
        }
      })
    )
  ),
  { excludeTestServices: true }
)("the engine, execution-time budget", (it) => {
  it.effect("waits out every 429, sends no cookie, and creates every row once", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const summary = yield* Bulk.execute("create", "contact", contacts(600, "E"), { chunkSize: 10, concurrency: 8 })
      expect(summary).toMatchObject({ created: 600, failed: 0 })
      const names = lastnames(emulator)
      expect(names).toHaveLength(600)
      expect(new Set(names).size).toBe(600)
      const refused = emulator.servers.reduce((n, server) => n + server.throttled.executionTime, 0)
      expect(refused).toBeGreaterThan(0)
      expect(summary.throttled).toBe(refused)
      // No affinity cookie goes back: the load balancer spreads the requests over both servers.
      const [first, second] = emulator.servers.map((server) => server.requests)
      expect(Math.min(first!, second!) / (first! + second!)).toBeGreaterThan(0.4)
    }))
})

describe("the engine, throttled past maxThrottleWait", () => {
  // Twelve requests every three seconds: the metadata and a few chunks, then a Retry-After of
  // seconds, longer than the first run may wait.
  const windowed = Emulator.layer({
    identity: false,
    profile: { ...Model.fast, windowSeconds: 3, requestsPerWindow: 12 }
  })
  const connect = (info: Emulator.StartInfo, maxThrottleWait?: Duration.DurationInput) =>
    DataverseClient.layerNode({
      url: info.url,
      credentials: Credentials.staticToken(info.accessToken),
      ...(maxThrottleWait === undefined ? {} : { maxThrottleWait })
    })

  it.live("stops the run without failing a row, and a resumed run lands every row once", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const journal = Journal.memory()
      const rows = contacts(200, "T")
      const failed: Array<number> = []
      const stopped = yield* Effect.flip(
        Bulk.execute("create", "contact", rows, { chunkSize: 10, concurrency: 1, journal }, (outcome) =>
          Effect.sync(() =>
            outcome.status === "failed" && failed.push(outcome.index)
          )).pipe(
            Effect.provide(connect(emulator.info, "500 millis"))
          )
      )
      expect(stopped.reason).toBe("Throttled")
      expect(stopped.message).toContain("maxThrottleWait")
      expect(failed).toEqual([])
      const landed = emulator.store.table("contact")!.size
      expect(landed).toBeGreaterThan(0)
      expect(landed).toBeLessThan(200)
      const session = yield* Effect.scoped(journal.open({ operation: "create", table: "contact" }))
      expect(session.state.finishedBefore).toEqual({ succeeded: landed, failed: 0 })
      const resumed = yield* Bulk.execute("create", "contact", rows, { chunkSize: 10, concurrency: 1, journal }).pipe(
        Effect.provide(connect(emulator.info))
      )
      expect(resumed).toMatchObject({ resumed: landed, created: 200 - landed, failed: 0 })
      expect(resumed.throttled).toBeGreaterThan(0)
      const names = lastnames(emulator)
      expect(names).toHaveLength(200)
      expect(new Set(names).size).toBe(200)
    }).pipe(Effect.provide(windowed)))
})

describe("the engine's lookups under throttling", () => {
  it.live("waits out the 429s of smart mode's lookups and writes alike, failing no row", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.seed("contact", Array.from({ length: 30 }, (_, i) => ({ contactid: id(i), lastname: `Old${i}` })))
      const rows = Array.from(
        { length: 60 },
        (_, i) => ({ contactid: id(i), lastname: i < 15 ? `Old${i}` : `New${i}` })
      )
      const summary = yield* Bulk.execute("upsert", "contact", rows, { chunkSize: 10, concurrency: 2, smart: true })
        .pipe(
          Effect.provide(
            DataverseClient.layerNode({
              url: emulator.info.url,
              credentials: Credentials.staticToken(emulator.info.accessToken)
            })
          )
        )
      expect(summary).toMatchObject({ unchanged: 15, updated: 15, created: 30, failed: 0 })
      expect(summary.throttled).toBeGreaterThan(0)
      expect(emulator.servers[0]!.throttled.requests).toBe(summary.throttled)
    }).pipe(
      Effect.provide(
        Emulator.layer({ identity: false, profile: { ...Model.fast, windowSeconds: 1, requestsPerWindow: 8 } })
      )
    ))
})

/** Answers CreateMultiple with its `Ids` in reverse order. */
const reversingIds = (url: string, status: number, body: string) => {
  if (!url.includes("Microsoft.Dynamics.CRM.CreateMultiple") || status !== 200) return body
  const parsed = JSON.parse(body) as { Ids: Array<string> }
  return JSON.stringify({ ...parsed, Ids: [...parsed.Ids].reverse() })
}

describe("the engine and the ids it sent", () => {
  it.live("reports each created row with the id it sent, whatever the order of the answer's Ids", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const proxy = yield* frontDoor(emulator.info.url, { rewrite: reversingIds })
      const journal = Journal.memory()
      const outcomes = yield* Stream.runCollect(
        Bulk.createMany("contact", contacts(30, "I"), { chunkSize: 10, journal })
      ).pipe(
        Effect.provide(
          DataverseClient.layerNode({ url: proxy.url, credentials: Credentials.staticToken(emulator.info.accessToken) })
        )
      )
      const session = yield* journal.open({ operation: "create", table: "contact" })
      const byIndex = [...Chunk.toReadonlyArray(outcomes)].sort((a, b) => a.index - b.index)
      expect(byIndex.map((o) => o.status === "created" && o.id)).toEqual(
        Array.from({ length: 30 }, (_, i) => deterministicId(session.state.runId, i))
      )
      const table = emulator.store.table("contact")!
      for (const outcome of byIndex) {
        expect(outcome.status === "created" && table.get(outcome.id!)?.values.lastname).toBe(`I${outcome.index}`)
      }
    })).pipe(Effect.provide(Emulator.layer({ identity: false }))))
})

describe("the search of a refused chunk under a passing failure", () => {
  it.live("counts no bad row for a $batch that failed for a passing reason, and a run lands every good row once", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      let batches = 0
      // The first $batch (a refused chunk's search) meets a 503; the rest pass.
      const proxy = yield* frontDoor(emulator.info.url, {
        refuse: (request) => request.url?.endsWith("$batch") === true && batches++ === 0
      })
      const layer = DataverseClient.layerNode({
        url: proxy.url,
        credentials: Credentials.staticToken(emulator.info.accessToken),
        ...fastRetries
      })
      const told: Array<string> = []
      const sizer: ChunkSizer = {
        adaptive: true,
        current: () => 1000,
        observe: () => {},
        shrink: () => {},
        refusing: () => told.push("refusing"),
        settled: () => told.push("settled"),
        searched: (rows, bad, ms) => told.push(`searched ${rows} ${bad} ${ms}`)
      }
      const missing = "/accounts(00000000-0000-4000-8000-00000000dead)"
      const items = Array.from({ length: 50 }, (_, i): Prepared => ({
        index: i,
        row: i === 7 ? { lastname: `Bad`, "parentcustomerid_account@odata.bind": missing } : { lastname: `P${i}` },
        ref: undefined,
        id: id(30_000 + i),
        ownId: true
      }))
      const outcomes = yield* Effect.gen(function*() {
        const plan = { ...(yield* planRun("create", "contact", {})), sizer }
        return yield* sendMultiple(plan, "create", items)
      }).pipe(Effect.provide(layer))
      // Every row failed for the 503, to be sent again: neither settled nor bad, and no cost.
      expect(outcomes.map((o) => o.status === "failed" && o.error.status)).toEqual(items.map(() => 503))
      expect(told).toEqual(["refusing", "searched 0 0 undefined", "settled"])

      // Through the engine: the same 503 on the first search, and every good row lands once.
      emulator.reset()
      batches = 0
      const rows = Array.from(
        { length: 400 },
        (_, i) =>
          i === 150 ? { lastname: "Bad", "parentcustomerid_account@odata.bind": missing } : { lastname: `E${i}` }
      )
      const summary = yield* Bulk.execute("create", "contact", rows, { concurrency: 1 }).pipe(Effect.provide(layer))
      expect(batches).toBeGreaterThanOrEqual(2)
      expect(summary).toMatchObject({ total: 400, created: 399, failed: 1 })
      expect(summary.retries).toBeGreaterThanOrEqual(1)
      expect(emulator.store.table("contact")!.size).toBe(399)
      expect(new Set(lastnames(emulator)).size).toBe(399)
    })).pipe(Effect.provide(Emulator.layer({ identity: false }))))
})

const faults = (rates: Partial<Model.FaultRates>) =>
  Emulator.layer({
    identity: false,
    profile: { ...Model.fast, faults: { ...Model.fast.faults, timeoutMs: 50, ...rates } }
  })

layer(
  clientOf(fastRetries).pipe(
    Layer.provideMerge(
      faults({ seed: 11, unavailable: 0.05, resetBeforeCommit: 0.05, resetAfterCommit: 0.1, timeout: 0.05 })
    )
  ),
  { excludeTestServices: true }
)("the engine under faults", (it) => {
  it.effect("creates every row exactly once through resets after commit and timeouts", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const summary = yield* Bulk.execute("create", "contact", contacts(1000, "F"), { chunkSize: 25, concurrency: 4 })
      expect(summary).toMatchObject({ created: 1000, failed: 0 })
      expect(summary.retries).toBeGreaterThan(0)
      const names = lastnames(emulator)
      expect(names.length).toBe(1000)
      expect(new Set(names).size).toBe(1000)
    }))

  it.effect("a row whose own id names a record that was there before is no create, though its answer was lost", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      // 200 records that exist before the run; the run creates rows of the same ids (each a
      // duplicate, refused) beside 200 new ones, and answers go missing after the service acted.
      emulator.seed("contact", Array.from({ length: 200 }, (_, i) => ({ contactid: id(i), lastname: `Before${i}` })))
      const rows = [
        ...Array.from({ length: 200 }, (_, i) => ({ contactid: id(i), lastname: `Again${i}` })),
        ...Array.from({ length: 200 }, (_, i) => ({ contactid: id(1000 + i), lastname: `Own${i}` }))
      ]
      const outcomes = Chunk.toReadonlyArray(
        yield* Stream.runCollect(Bulk.createMany("contact", rows, { chunkSize: 20, concurrency: 4 }))
      )
      const failed = outcomes.filter((o) => o.status === "failed")
      expect(failed.map((o) => o.index).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i))
      expect(failed.every((o) => o.status === "failed" && o.error.code === "0x80040237")).toBe(true)
      expect(outcomes.filter((o) => o.status === "created").map((o) => o.index).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 200 }, (_, i) => 200 + i)
      )
      const names = lastnames(emulator)
      expect(names.filter((name) => name.startsWith("Before")).length).toBe(200)
      expect(names.filter((name) => name.startsWith("Own")).length).toBe(200)
      expect(names.some((name) => name.startsWith("Again"))).toBe(false)
    }))

  it.effect("on an elastic table too, a row whose own id names an earlier record is no create", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const readings = () => readingNames(emulator)
      // As above, on the elastic table: a bulk message there is not one transaction, so the
      // duplicates fail alone and the other rows of their request land (wire reference §8b).
      emulator.seed(
        "dve_reading",
        Array.from(
          { length: 100 },
          (_, i) => ({ dve_readingid: id(i), partitionid: `p${i % 3}`, dve_name: `Before${i}` })
        )
      )
      const rows = [
        ...Array.from(
          { length: 100 },
          (_, i) => ({ dve_readingid: id(i), partitionid: `p${i % 3}`, dve_name: `Again${i}` })
        ),
        ...Array.from(
          { length: 200 },
          (_, i) => ({ dve_readingid: id(1000 + i), partitionid: `p${i % 3}`, dve_name: `Own${i}` })
        )
      ]
      const outcomes = Chunk.toReadonlyArray(
        yield* Stream.runCollect(Bulk.createMany("dve_reading", rows, { chunkSize: 20, concurrency: 4 }))
      )
      const failed = outcomes.filter((o) => o.status === "failed")
      expect(failed.map((o) => o.index).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i))
      expect(failed.every((o) => o.status === "failed" && o.error.code === "0x80040237")).toBe(true)
      expect(outcomes.filter((o) => o.status === "created").map((o) => o.index).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 200 }, (_, i) => 100 + i)
      )
      const names = readings()
      expect(names.filter((name) => name.startsWith("Before")).length).toBe(100)
      expect(names.filter((name) => name.startsWith("Own")).length).toBe(200)
      expect(names.some((name) => name.startsWith("Again"))).toBe(false)
    }))

  it.effect("updates, upserts and deletes through the same faults, idempotently", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", Array.from({ length: 300 }, (_, i) => ({ contactid: id(i), lastname: `Old${i}` })))
      const updated = yield* Bulk.execute(
        "update",
        "contact",
        Array.from({ length: 300 }, (_, i) => ({ contactid: id(i), lastname: `New${i}` })),
        { chunkSize: 20, concurrency: 4 }
      )
      expect(updated).toMatchObject({ updated: 300, failed: 0 })
      expect(lastnames(emulator).every((name) => name.startsWith("New"))).toBe(true)
      const deleted = yield* Bulk.execute(
        "delete",
        "contact",
        Array.from({ length: 150 }, (_, i) => ({ contactid: id(i) })),
        { chunkSize: 20, concurrency: 4 }
      )
      expect(deleted).toMatchObject({ deleted: 150, failed: 0 })
      expect(emulator.store.table("contact")!.size).toBe(150)
    }))
})

layer(
  clientOf(fastRetries).pipe(
    Layer.provideMerge(
      Emulator.layer({
        identity: false,
        // Reads of the elastic table without a recent enough MSCRM.SessionToken do not see
        // records created in the last second; a third of the requests land, then lose their answer.
        profile: {
          ...Model.fast,
          elasticReadLagMs: 1_000,
          faults: { ...Model.fast.faults, seed: 5, resetAfterCommit: 0.3 }
        }
      })
    )
  ),
  { excludeTestServices: true }
)("the engine on an elastic table that reads its own writes only with the session token", (it) => {
  it.effect("asks which rows landed in their partition with the latest session token, and creates each once", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const checks: Array<{ readonly url: string; readonly token: string | undefined; readonly delivered: number }> = []
      // Session tokens in answers the client received (a reset answer delivers none).
      const delivered: Array<string> = []
      const proxy = yield* frontDoor(emulator.info.url, {
        seen: (request) => {
          if (request.method === "GET" && request.url?.includes("dve_readings?") === true) {
            const token = request.headers["mscrm.sessiontoken"]
            checks.push({
              url: decodeURIComponent(request.url),
              token: typeof token === "string" ? token : undefined,
              delivered: delivered.length
            })
          }
        },
        delivered: (headers) => {
          const token = headers["x-ms-session-token"]
          if (typeof token === "string") delivered.push(token)
        }
      })
      // Every other row carries its own id: its record is compared with it, not only found.
      const rows = Array.from(
        { length: 200 },
        (_, i) => ({
          ...(i % 2 === 0 ? { dve_readingid: id(5000 + i) } : {}),
          dve_name: `L${i}`,
          partitionid: `p${i % 3}`,
          dve_value: i
        })
      )
      const failed: Array<Bulk.RowOutcome> = []
      const summary = yield* createReadingsOneByOne(emulator, proxy.url, rows, failed)
      // Every row counts as created once. A row with its own id whose answer was lost is compared
      // with a record the lookup may not see yet (its write's session token was lost with the
      // answer): it is sent again and refused as a duplicate, and then compared again until its
      // record shows (here within the emulator's second of lag), not failed as a duplicate.
      expect(failed).toEqual([])
      expect(summary.created).toBe(200)
      expect(summary.retries).toBeGreaterThan(0)
      expectEachReadingOnce(emulator, 200)
      // Every existence check (and comparison) names one partition and sends the latest session
      // token the client had received (none before the first).
      expect(checks.some((check) => check.delivered > 0)).toBe(true)
      expect(checks.some((check) => check.url.includes("$select=dve_readingid,"))).toBe(true)
      for (const check of checks) {
        expect(check.url).toMatch(
          /\(partitionid eq 'p[012]'\) and \(Microsoft\.Dynamics\.CRM\.In\(PropertyName='dve_readingid'/
        )
        expect(check.token).toBe(check.delivered === 0 ? undefined : delivered[check.delivered - 1])
      }
    })))
})

layer(
  clientOf(fastRetries).pipe(
    Layer.provideMerge(
      Emulator.layer({
        identity: false,
        // Records created in the last hour stay out of reads without a new enough session token:
        // on the test's clock, which only the test moves, they never show.
        profile: {
          ...Model.fast,
          elasticReadLagMs: 3_600_000,
          faults: { ...Model.fast.faults, seed: 5, resetAfterCommit: 0.3 }
        }
      })
    )
  )
)("the engine on an elastic table whose lost writes do not show", (it) => {
  /** How many comparisons (reads selecting dve_name) named each id, through a front door. */
  const countingComparisons = (emulator: Emulator.RunningEmulator) =>
    Effect.gen(function*() {
      const compared = new Map<string, number>()
      const proxy = yield* frontDoor(emulator.info.url, {
        seen: (request) => {
          const url = decodeURIComponent(request.url ?? "")
          if (request.method !== "GET" || !url.includes("dve_readings?") || !url.includes("dve_name")) return
          for (const [match] of url.matchAll(/00000000-0000-4000-8000-\d{12}/g)) {
            compared.set(match, (compared.get(match) ?? 0) + 1)
          }
        }
      })
      return { compared, url: proxy.url }
    })
  /** 200 readings with their own ids (from `id(first)`) over three partitions, named `prefix<i>`. */
  const ownIdReadings = (first: number, prefix: string) =>
    Array.from(
      { length: 200 },
      (_, i) => ({ dve_readingid: id(first + i), dve_name: `${prefix}${i}`, partitionid: `p${i % 3}` })
    )
  /** Runs `run` to its end, moving the test's clock (its waits are on it). */
  const onTestClock = <A, E>(run: Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(run)
      while (Option.isNone(yield* Fiber.poll(fiber))) {
        yield* TestClock.adjust("50 millis")
        yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      }
      return yield* Fiber.join(fiber)
    })

  it.effect("compares a row refused as a duplicate for about 16 s of waiting, then leaves it failed, never lost", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const { compared, url } = yield* countingComparisons(emulator)
      const rows = ownIdReadings(6000, "S")
      const failed: Array<Bulk.RowOutcome> = []
      const started = yield* Clock.currentTimeMillis
      const done = yield* onTestClock(createReadingsOneByOne(emulator, url, rows, failed))
      // Each row lands once; the rows whose answers were lost fail as the duplicates the service
      // called them, as their records never show to a read.
      expectEachReadingOnce(emulator, 200)
      expect(done.created + done.failed).toBe(200)
      expect(failed.length).toBeGreaterThan(0)
      expect(failed.every((o) => o.status === "failed" && o.error.code === "0x80040237")).toBe(true)
      // Each failed row was compared after its lost answer, then once more and again after each of
      // six waits (250 ms doubling: 15.75 s); a read whose answer was lost too goes again.
      for (const o of failed) expect(compared.get(id(6000 + o.index))).toBeGreaterThanOrEqual(8)
      const chunksFailed = new Set(failed.map((o) => Math.floor(o.index / 20))).size
      expect((yield* Clock.currentTimeMillis) - started).toBeGreaterThanOrEqual(chunksFailed * 15_750)
    })))

  it.effect("shows a lost write to a comparison once a later write's session token covers it", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const { compared, url } = yield* countingComparisons(emulator)
      const rows = ownIdReadings(7000, "N")
      const failed: Array<Bulk.RowOutcome> = []
      // Two at a time: while one request's rows wait to be compared again, the other slot's writes
      // bring newer session tokens.
      const done = yield* onTestClock(createReadingsOneByOne(emulator, url, rows, failed, 2))
      expectEachReadingOnce(emulator, 200)
      expect(done.created + done.failed).toBe(200)
      // Records whose writes lost their answers show to no read without a newer token (an hour of
      // lag, on a clock only the test moves): a row compared twice or more and created was seen
      // through a later write's token.
      const failedIds = new Set(failed.map((o) => id(7000 + o.index)))
      const seenThroughLaterToken = [...compared].filter(([rowId, times]) => times >= 2 && !failedIds.has(rowId))
      expect(seenThroughLaterToken.length).toBeGreaterThan(0)
      // Those that fail are duplicates the service called so, each in the store once (above).
      expect(failed.every((o) => o.status === "failed" && o.error.code === "0x80040237")).toBe(true)
    })))
})

layer(
  clientOf(fastRetries).pipe(
    Layer.provideMerge(
      Emulator.layer({ identity: false, profile: { ...Model.fast, elasticReadLagMs: 1_000 } })
    )
  ),
  { excludeTestServices: true }
)("resuming on an elastic table whose reads lag", (it) => {
  it.effect("a row the stopped run wrote, which no read shows yet, is created once, not failed as a duplicate", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const rows = Array.from(
        { length: 100 },
        (_, i) => ({ dve_readingid: id(8000 + i), dve_name: `R${i}`, partitionid: `p${i % 3}` })
      )
      // A run that recorded rows 0-49 as sent and died before their answer, after the service
      // wrote them: its session tokens died with it, and for a second no read shows those records.
      const journal = Journal.memory()
      const session = yield* Effect.scoped(journal.open({ operation: "create", table: "dve_reading" }))
      yield* session.sent(Array.from({ length: 50 }, (_, i) => i))
      const written = yield* Bulk.execute("create", "dve_reading", rows.slice(0, 50)).pipe(
        Effect.provide(connectionTo(emulator))
      )
      expect(written.created).toBe(50)
      const resumed = yield* Bulk.execute("create", "dve_reading", rows, { chunkSize: 50, concurrency: 1, journal })
        .pipe(Effect.provide(connectionTo(emulator)))
      expect(resumed).toMatchObject({ created: 100, failed: 0 })
      expectEachReadingOnce(emulator, 100)
    }))
})

layer(clientOf(fastRetries).pipe(Layer.provideMerge(Emulator.layer({ identity: false }))), {
  excludeTestServices: true
})("resuming from a journal", (it) => {
  it.scoped("a run stopped midway and resumed writes every row exactly once", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-journal-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const path = Path.join(dir, "load.journal")
      const rows = contacts(2000, "J")
      // The first run stops after 600 outcomes; requests still in flight are cut off.
      const first = yield* Stream.runCollect(
        Stream.take(
          Bulk.createMany("contact", rows, { chunkSize: 50, concurrency: 4, journal: Journal.file(path) }),
          600
        )
      )
      expect(first.length).toBe(600)
      const landed = emulator.store.table("contact")!.size
      expect(landed).toBeGreaterThanOrEqual(600)
      // A kill can tear the last line.
      Fs.appendFileSync(path, "{\"ok\":[[1")
      const second = yield* Bulk.execute("create", "contact", rows, {
        chunkSize: 50,
        concurrency: 4,
        journal: Journal.file(path)
      })
      // The request whose outcomes ended the take is not journalled finished (the consumer did not
      // pull past it): the resume hands its rows out again.
      expect(second.resumed).toBeGreaterThanOrEqual(550)
      expect(second.resumed + second.created).toBe(2000)
      expect(second.failed).toBe(0)
      const names = lastnames(emulator)
      expect(names.length).toBe(2000)
      expect(new Set(names).size).toBe(2000)
      // Resuming a finished run sends nothing.
      const third = yield* Bulk.execute("create", "contact", rows, { journal: Journal.file(path) })
      expect(third).toMatchObject({ resumed: 2000, total: 0, requests: 0 })
    }))

  it.effect("asks which rows of unanswered requests landed before sending them again", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const journal = Journal.memory()
      const rows = contacts(100, "U")
      // A run that recorded rows 0-49 as sent and then died before the answer, after the server wrote them.
      const session = yield* Effect.scoped(journal.open({ operation: "create", table: "contact" }))
      yield* session.sent(Array.from({ length: 50 }, (_, i) => i))
      emulator.seed(
        "contact",
        rows.slice(0, 50).map((row, i) => ({ ...row, contactid: deterministicId(session.state.runId, i) }))
      )
      const summary = yield* Bulk.execute("create", "contact", rows, { chunkSize: 50, concurrency: 1, journal })
      expect(summary).toMatchObject({ created: 100, failed: 0 })
      expect(emulator.store.table("contact")!.size).toBe(100)
    }))

  it.effect("on resume, a row's own id naming a record of other values is sent again, not taken as landed", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const journal = Journal.memory()
      // Rows 0-9 carry ids of records that were there before (other values); rows 10-19 carry
      // new ids, and the run before wrote them. Both sent by a run that died before the answer.
      // Each row also gives a fullname, which the service computes itself whatever a create says:
      // not a difference.
      const rows = Array.from({ length: 20 }, (_, i) => ({
        contactid: id(5000 + i),
        lastname: `Row${i}`,
        fullname: `Row${i}, as the file says`
      }))
      emulator.seed("contact", rows.slice(0, 10).map((row, i) => ({ ...row, lastname: `Before${i}` })))
      emulator.seed("contact", rows.slice(10))
      const session = yield* Effect.scoped(journal.open({ operation: "create", table: "contact" }))
      yield* session.sent(Array.from({ length: 20 }, (_, i) => i))
      const outcomes = Chunk.toReadonlyArray(yield* Stream.runCollect(Bulk.createMany("contact", rows, { journal })))
      const byIndex = [...outcomes].sort((a, b) => a.index - b.index)
      expect(byIndex.map((o) => o.status === "failed" ? o.error.code : o.status)).toEqual([
        ...Array.from({ length: 10 }, () => "0x80040237"),
        ...Array.from({ length: 10 }, () => "created")
      ])
      expect(lastnames(emulator).filter((name) => name.startsWith("Before")).length).toBe(10)
      expect(emulator.store.table("contact")!.size).toBe(20)
      expect(emulator.store.table("contact")!.get(id(5010))?.values.fullname).not.toBe("Row10, as the file says")
    }))

  it.effect("refuses a journal of another job", () =>
    Effect.gen(function*() {
      const journal = Journal.memory()
      yield* Bulk.execute("create", "contact", [], { journal })
      const error = yield* Effect.flip(Bulk.execute("update", "contact", [], { journal }))
      expect(error.message).toContain("belongs to a create on 'contact'")
    }))

  it.scoped("refuses a resume over an input whose first rows differ, before any row is sent", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-journal-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const path = Path.join(dir, "daily.journal")
      const monday = yield* Bulk.execute("create", "contact", contacts(300, "Mon"), { journal: Journal.file(path) })
      expect(monday).toMatchObject({ created: 300, failed: 0 })
      // Tuesday's rows with Monday's journal: before, 300 of them were skipped as finished.
      const error = yield* Effect.flip(
        Bulk.execute("create", "contact", contacts(500, "Tue"), { journal: Journal.file(path) })
      )
      expect(error).toMatchObject({ _tag: "JournalError", reason: "Mismatch", path })
      expect(error.message).toContain("its first rows differ")
      expect(emulator.store.table("contact")!.size).toBe(300)
      // The same input grown at its end resumes: only the new rows are sent.
      const grown = yield* Bulk.execute("create", "contact", contacts(400, "Mon"), { journal: Journal.file(path) })
      expect(grown).toMatchObject({ resumed: 300, created: 100, failed: 0 })
      expect(lastnames(emulator)).toEqual(contacts(400, "Mon").map((row) => row.lastname).sort())
      // A stream is checked alike.
      const streamed = yield* Effect.flip(
        Bulk.execute("create", "contact", Stream.fromIterable(contacts(10, "Tue")), { journal: Journal.file(path) })
      )
      expect(streamed).toMatchObject({ _tag: "JournalError", reason: "Mismatch" })
      expect(emulator.store.table("contact")!.size).toBe(400)
      // An input named on one run only: neither the name nor the first rows can be compared.
      const named = Path.join(dir, "named.journal")
      yield* Bulk.execute("create", "contact", contacts(50, "Wed"), {
        journal: Journal.file(named),
        inputIdentity: "wed"
      })
      const unnamed = yield* Effect.flip(
        Bulk.execute("create", "contact", contacts(60, "Thu"), { journal: Journal.file(named) })
      )
      expect(unnamed.message).toContain("records a run over wed, and this one names no inputIdentity")
      const later = yield* Effect.flip(
        Bulk.execute("create", "contact", contacts(60, "Thu"), { journal: Journal.file(path), inputIdentity: "thu" })
      )
      expect(later.message).toContain("records a run without an inputIdentity, and this one names its input thu")
      expect(emulator.store.table("contact")!.size).toBe(450)
    }))

  it.scoped("refuses a resume over an input that differs further in than its first rows, before any row is sent", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-journal-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const path = Path.join(dir, "stdin.journal")
      const rows = contacts(600, "Mon")
      // The first run read the first 400 rows (stdin, say, before the rest was piped in).
      const first = yield* Bulk.execute("create", "contact", rows.slice(0, 400), { journal: Journal.file(path) })
      expect(first).toMatchObject({ created: 400, failed: 0 })
      // The rows with one inserted at row 101: the first eight rows are the same, every row after
      // it has moved. Before, the resume skipped rows 1 to 400 as finished (the inserted row among
      // them, never sent) and created the first run's row 400 again, moved to row 401.
      const inserted = [...rows.slice(0, 100), { lastname: "Inserted" }, ...rows.slice(100)]
      const error = yield* Effect.flip(Bulk.execute("create", "contact", inserted, { journal: Journal.file(path) }))
      expect(error).toMatchObject({ _tag: "JournalError", reason: "Mismatch", path })
      expect(error.message).toContain("row 129 differs from the row an earlier run read there")
      // A row removed, read as a stream in small chunks: refused alike.
      const removed = Stream.rechunk(Stream.fromIterable([...rows.slice(0, 300), ...rows.slice(301)]), 7)
      const fromStream = yield* Effect.flip(Bulk.execute("create", "contact", removed, { journal: Journal.file(path) }))
      expect(fromStream.message).toContain("row 321 differs")
      expect(emulator.store.table("contact")!.size).toBe(400)
      // An input cut shorter than the rows the first run finished: nothing is missing.
      expect(yield* Bulk.execute("create", "contact", rows.slice(0, 300), { journal: Journal.file(path) }))
        .toMatchObject({ resumed: 300, total: 0 })
      // The same rows, in other chunks, resume: the last 200 are sent, each once.
      const same = yield* Bulk.execute("create", "contact", Stream.rechunk(Stream.fromIterable(rows), 13), {
        journal: Journal.file(path)
      })
      expect(same).toMatchObject({ resumed: 400, created: 200, failed: 0 })
      expect(lastnames(emulator)).toEqual(rows.map((row) => row.lastname).sort())
      // Every 32nd row and the last of each 256 read (299 by the shorter run) was recorded once, by
      // the run that first read it.
      const entries = Fs.readFileSync(path, "utf8").trim().split("\n").map((line) => JSON.parse(line))
      const positions = entries.flatMap((entry) => (entry.marks ?? []).map((mark: [number, string]) => mark[0]))
      expect([...positions].sort((a, b) => a - b)).toEqual(
        [...Array.from({ length: 19 }, (_, i) => i * 32), 255, 299, 399, 511, 599].sort((a, b) => a - b)
      )
      expect(new Set(positions).size).toBe(positions.length)
    }))

  it.scoped("records the input's first rows in a journal an older version wrote without them", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-journal-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const path = Path.join(dir, "old.journal")
      Fs.writeFileSync(
        path,
        `${
          JSON.stringify({
            journal: "dv-effect",
            version: 1,
            runId: "0123456789abcdef",
            operation: "create",
            table: "contact"
          })
        }\n`
      )
      const first = yield* Bulk.execute("create", "contact", contacts(20, "Old"), { journal: Journal.file(path) })
      expect(first).toMatchObject({ created: 20, resumed: 0 })
      const entries = Fs.readFileSync(path, "utf8").trim().split("\n").map((line) => JSON.parse(line))
      expect(entries.filter((entry) => typeof entry.inputHead === "string")).toHaveLength(1)
      const other = yield* Effect.flip(
        Bulk.execute("create", "contact", contacts(20, "New"), { journal: Journal.file(path) })
      )
      expect(other.reason).toBe("Mismatch")
    }))

  it.scoped("replays rows journalled as not sent after all as rows a resume need not look up", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-journal-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const path = Path.join(dir, "unsent.journal")
      const header = {
        journal: "dv-effect",
        version: 1,
        runId: "0123456789abcdef",
        operation: "create",
        table: "contact"
      }
      const entries = [header, { sent: [[0, 9]] }, { ok: [[0, 2]], failed: [] }, { unsent: [[5, 9]] }, {
        sent: [[10, 11]]
      }]
      Fs.writeFileSync(path, entries.map((entry) => `${JSON.stringify(entry)}\n`).join(""))
      const session = yield* Journal.file(path).open({ operation: "create", table: "contact" })
      expect([...session.state.unanswered].sort((a, b) => a - b)).toEqual([3, 4, 10, 11])
      // A memory journal replays it the same way.
      const memory = Journal.memory()
      const first = yield* memory.open({ operation: "create", table: "contact" })
      yield* first.sent([0, 1, 2, 3])
      yield* first.unsent!([2, 3])
      const again = yield* memory.open({ operation: "create", table: "contact" })
      expect([...again.state.unanswered].sort((a, b) => a - b)).toEqual([0, 1])
    }))

  it.effect("journals a streamed request's rows finished only once the consumer has pulled past them", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const journal = Journal.memory()
      // Row 30 fails for its own fault (too long a last name).
      const rows = contacts(100, "P").map((row, i) => i === 30 ? { lastname: "x".repeat(51) } : row)
      const options = { journal, chunkSize: 50, concurrency: 1 }
      const first = yield* Stream.runCollect(Stream.take(Bulk.createMany("contact", rows, options), 20))
      expect(first.length).toBe(20)
      // The resume hands out every row the first consumer did not take, row 30's failure too.
      const seen: Array<Bulk.RowOutcome> = []
      const second = yield* Bulk.execute("create", "contact", rows, options, (o) => Effect.sync(() => seen.push(o)))
      expect(seen.find((o) => o.index === 30)?.status).toBe("failed")
      expect(second.resumed + seen.length).toBe(100)
      const names = lastnames(emulator)
      expect(names).toHaveLength(99)
      expect(new Set(names).size).toBe(99)
    }))

  it.effect("sends a fixed chunk over 1,000 rows as several $batch requests (at most 1,000 operations each)", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const rows = Array.from({ length: 1500 }, (_, i) => ({ subject: `T${i}` }))
      // `task` has no CreateMultiple: the chunk goes through $batch.
      const summary = yield* Bulk.execute("create", "task", rows, { chunkSize: 1500, concurrency: 1 })
      expect(summary).toMatchObject({ created: 1500, failed: 0, requests: 2 })
      expect(emulator.store.table("task")!.size).toBe(1500)
    }))

  it("fingerprints rows without what a read record carried", () => {
    const read = (etag: string) => [{ "@odata.etag": `W/"${etag}"`, contactid: id(1), jobtitle: "X" }]
    expect(inputHead(read("2"))).toBe(inputHead(read("201")))
    expect(inputHead(read("2"))).toBe(inputHead([{ jobtitle: "X", contactid: id(1) }]))
    expect(inputHead(read("2"))).not.toBe(inputHead([{ contactid: id(1), jobtitle: "Y" }]))
  })

  it.effect("a memory journal refuses another input too", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const journal = Journal.memory()
      yield* Bulk.execute("create", "contact", contacts(30, "A"), { journal })
      const error = yield* Effect.flip(Bulk.execute("create", "contact", contacts(30, "B"), { journal }))
      expect(error).toMatchObject({ _tag: "JournalError", reason: "Mismatch" })
      const again = yield* Bulk.execute("create", "contact", contacts(30, "A"), { journal })
      expect(again).toMatchObject({ resumed: 30, total: 0 })
      expect(emulator.store.table("contact")!.size).toBe(30)
      // The same first rows, then one left out: its last row read (row 30) is checked.
      const shifted = [...contacts(30, "A").slice(0, 20), ...contacts(40, "A").slice(21)]
      const moved = yield* Effect.flip(Bulk.execute("create", "contact", shifted, { journal }))
      expect(moved.message).toContain("row 30 differs")
      expect(emulator.store.table("contact")!.size).toBe(30)
      // An input whose last line was cut off (its reader could not read it) resumes with that line
      // whole, and more: a row that could not be read is not compared.
      const cut = Journal.memory()
      const torn = [...contacts(31, "C"), new Bulk.InvalidRow({ message: "line 33: cut off" })]
      expect(yield* Bulk.execute("create", "contact", torn, { journal: cut })).toMatchObject({ created: 31, failed: 1 })
      const whole = yield* Bulk.execute("create", "contact", contacts(40, "C"), { journal: cut })
      expect(whole).toMatchObject({ resumed: 32, created: 8, failed: 0 })
      // A stopped run, resumed over its input cut shorter: the rows it lacks are said, not skipped
      // in silence. The first run took 100 of 400 rows' outcomes, then stopped.
      const stopped = Journal.memory()
      const all = contacts(400, "D")
      const options = { journal: stopped, chunkSize: 50, concurrency: 1 }
      yield* Stream.runDrain(Stream.take(Bulk.createMany("contact", all, options), 100))
      const short = yield* Effect.flip(Bulk.execute("create", "contact", all.slice(0, 200), options))
      expect(short).toMatchObject({ _tag: "JournalError", reason: "Mismatch" })
      expect(short.message).toContain("This input ends at row 200, and an earlier run of the journal read 400 rows")
      // The whole input then completes the load, each row once.
      yield* Bulk.execute("create", "contact", all, options)
      const names = lastnames(emulator).filter((name) => name.startsWith("D"))
      expect([names.length, new Set(names).size]).toEqual([400, 400])
    }))

  it.effect("with inputIdentity, rows that carry values of their run resume (no fingerprint)", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const journal = Journal.memory()
      const stamped = (run: string) => contacts(40, "S").map((row) => ({ ...row, jobtitle: `loaded ${run}` }))
      const options = { journal, inputIdentity: "contacts.csv 2026-12-07", chunkSize: 10, concurrency: 1 }
      const first = yield* Stream.runCollect(Stream.take(Bulk.createMany("contact", stamped("09:00"), options), 20))
      expect(first.length).toBe(20)
      const resumed = yield* Bulk.execute("create", "contact", stamped("09:05"), options)
      expect(resumed.resumed + resumed.created).toBe(40)
      expect(lastnames(emulator)).toEqual(contacts(40, "S").map((row) => row.lastname).sort())
    }))
})

layer(clientOf(fastRetries).pipe(Layer.provideMerge(Emulator.layer({ identity: false }))), {
  excludeTestServices: true
})("smart mode", (it) => {
  it.effect("leaves unchanged rows alone, updates only what differs, creates what is missing", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", [
        { contactid: id(1), lastname: "Same", firstname: "Ann", creditlimit: 2 },
        { contactid: id(2), lastname: "Old", firstname: "Bob" }
      ])
      const before = emulator.store.table("contact")!.get(id(1))!.values.modifiedon
      const outcomes = Chunk.toReadonlyArray(
        yield* Stream.runCollect(
          Bulk.upsertMany("contact", [
            { contactid: id(1), lastname: "Same", firstname: "Ann", creditlimit: 2 },
            { contactid: id(2), lastname: "New", firstname: "Bob" },
            { contactid: id(3), lastname: "Fresh" }
          ], { smart: true })
        )
      )
      expect(outcomes.map((o) => o.status)).toEqual(["unchanged", "updated", "created"])
      expect(emulator.store.table("contact")!.get(id(1))!.values.modifiedon).toEqual(before)
      expect(emulator.store.table("contact")!.get(id(2))!.values.lastname).toBe("New")
      expect(emulator.store.table("contact")!.get(id(3))!.values.lastname).toBe("Fresh")
    }))

  it.effect("updates an elastic record found without its partition in the row, in the record's partition", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("dve_reading", [
        { dve_readingid: id(1), partitionid: "north", dve_name: "Old" },
        { dve_readingid: id(2), partitionid: "south", dve_name: "Same" }
      ])
      // The rows name their records by id alone: the lookup finds them in any partition, and the
      // update must name the partition (wire reference §8b), which the emulator enforces (404).
      const outcomes = Chunk.toReadonlyArray(
        yield* Stream.runCollect(
          Bulk.updateMany("dve_reading", [
            { dve_readingid: id(1), dve_name: "New" },
            { dve_readingid: id(2), dve_name: "Same" }
          ], { smart: true })
        )
      )
      expect(outcomes.map((o) => o.status)).toEqual(["updated", "unchanged"])
      const stored = emulator.store.table("dve_reading")!.scan().map((r) => [r.values.partitionid, r.values.dve_name])
      expect(stored.sort()).toEqual([["north", "New"], ["south", "Same"]])
    }))

  it.effect("finds records by alternate key, and skips creates and updates when told", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      yield* Bulk.execute("create", "dve_product", [{ dve_sku: "A", dve_name: "Apple" }])
      const rows = [{ dve_sku: "A", dve_name: "Apricot" }, { dve_sku: "B", dve_name: "Banana" }]
      const noCreate = yield* Bulk.execute("update", "dve_product", rows, {
        key: ["dve_sku"],
        smart: { create: false }
      })
      expect(noCreate).toMatchObject({ updated: 1, skipped: 1 })
      const noUpdate = yield* Bulk.execute("update", "dve_product", [{ dve_sku: "A", dve_name: "Avocado" }], {
        key: ["dve_sku"],
        smart: { update: false }
      })
      expect(noUpdate).toMatchObject({ skipped: 1, updated: 0 })
      expect(emulator.store.table("dve_product")!.scan().map((r) => [r.values.dve_sku, r.values.dve_name])).toEqual([
        ["A", "Apricot"]
      ])
    }))
})

layer(withHint3, { excludeTestServices: true })("Bulk.parallel, the general form", (it) => {
  it.effect("pipes, takes the dop hint under \"auto\", holds a controller slot per chunk, and hands results on as chunks finish", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const client = yield* DataverseClient.DataverseClient
      const ids = Array.from({ length: 40 }, (_, n) => id(n + 1))
      emulator.seed("contact", ids.map((contactid, n) => ({ contactid, lastname: `P${n}` })))
      const finished = yield* Deferred.make<void>()
      let done = 0
      let mostSlots = 0
      const results = yield* pipe(
        ids,
        Bulk.parallel(
          { chunkSize: 10, concurrency: "auto" },
          (chunk: ReadonlyArray<string>, index: number) =>
            Effect.gen(function*() {
              mostSlots = Math.max(mostSlots, client.controller.state().inFlight)
              // The first chunk waits until every other chunk has finished: it must not hold them back.
              if (index === 0) yield* Deferred.await(finished)
              const names = yield* Effect.forEach(
                chunk,
                (contactid) =>
                  Effect.map(Records.retrieve("contact", contactid, { select: ["lastname"] }), (r) => r.lastname)
              )
              if (index !== 0 && ++done === 3) yield* Deferred.succeed(finished, undefined)
              return { index, names }
            })
        ),
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray)
      )
      // Every chunk's records, the first one last.
      expect(results.map((r) => r.index).at(-1)).toBe(0)
      expect(results.flatMap((r) => r.names).sort()).toEqual(ids.map((_, n) => `P${n}`).sort())
      // Each chunk ran in a slot of the connection's controller, whose ceiling is the hint (3).
      expect(mostSlots).toBeGreaterThan(0)
      expect(client.controller.state().ceiling).toBe(3)
      expect(mostSlots).toBeLessThanOrEqual(3)
    }))

  it.effect("keeps input order when asked", () =>
    Effect.gen(function*() {
      const indexes = yield* Bulk.parallel(
        Array.from({ length: 50 }, (_, n) => n),
        { chunkSize: 5, concurrency: 4, ordered: true },
        (chunk, index) => Effect.as(Effect.yieldNow(), { index, first: chunk[0] })
      ).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
      expect(indexes.map((r) => r.index)).toEqual(Array.from({ length: 10 }, (_, n) => n))
      expect(indexes.map((r) => r.first)).toEqual(Array.from({ length: 10 }, (_, n) => n * 5))
    }))
})

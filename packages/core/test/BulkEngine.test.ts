import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
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
import { DataverseError } from "../src/DataverseError.js"
import { makeExecutionBudget, parseExecutionLimit } from "../src/internal/bulk/budget.js"
import { estimateBytes, groupAdaptively, makeChunkSizer } from "../src/internal/bulk/chunking.js"
import { type Gate, makeGate } from "../src/internal/bulk/gate.js"
import { deterministicId } from "../src/internal/bulk/ids.js"
import { makeLanes } from "../src/internal/bulk/lanes.js"
import { makeLimiter } from "../src/internal/bulk/limiter.js"
import * as Journal from "../src/Journal.js"
import * as RetryPolicy from "../src/RetryPolicy.js"

const throttled = (seconds: number) =>
  new DataverseError({ reason: "Throttled", status: 429, message: "slow down", retryAfter: Duration.seconds(seconds) })

describe("the throttle gate (TestClock)", () => {
  it.effect("holds every worker exactly for the Retry-After, extended by a later 429", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      yield* gate.hold(throttled(7))
      const waiting = yield* Effect.fork(pass(gate))
      yield* TestClock.adjust("6999 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* gate.hold(throttled(3)) // at 6.999 s: now the wait ends at 9.999 s
      yield* TestClock.adjust("1 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(waiting)
      expect(gate.remaining(yield* TestClockNow)).toBe(0)
    }))

  it.effect("ignores errors other than 429", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      yield* gate.hold(new DataverseError({ reason: "ServiceUnavailable", message: "busy" }))
      const waiting = yield* Effect.fork(pass(gate))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(waiting)
    }))

  it.effect("after a spent window lets one probe go; a refused probe holds the others for its Retry-After", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      gate.spent()
      const order: Array<string> = []
      const answer = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(
        gate.pass(Effect.zipRight(Deferred.await(answer), Effect.sync(() => order.push("probe"))), () => throttled(2))
      )
      yield* Effect.yieldNow()
      const follower = yield* Effect.fork(gate.pass(Effect.sync(() => order.push("follower")), () => undefined))
      yield* TestClock.adjust("100 millis")
      expect(order).toEqual([])
      yield* Deferred.succeed(answer, undefined)
      yield* Fiber.join(probe)
      yield* TestClock.adjust("1999 millis")
      expect(order).toEqual(["probe"])
      yield* TestClock.adjust("2 millis")
      yield* Fiber.join(follower)
      expect(order).toEqual(["probe", "follower"])
    }))

  it.effect("lets the others go once a probe has not been refused within the grace", () =>
    Effect.gen(function*() {
      const gate = makeGate({ probeGrace: "250 millis" })
      gate.spent()
      const probe = yield* Effect.fork(gate.pass(Effect.sleep("10 seconds"), () => undefined))
      yield* Effect.yieldNow()
      let followed = false
      const follower = yield* Effect.fork(gate.pass(Effect.sync(() => (followed = true)), () => undefined))
      yield* TestClock.adjust("249 millis")
      expect(followed).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      expect(followed).toBe(true)
      yield* Fiber.interrupt(probe)
    }))
})

const pass = (gate: Gate) => gate.pass(Effect.void, () => undefined)

const TestClockNow = Effect.clockWith((clock) => clock.currentTimeMillis)

describe("the adaptive limiter", () => {
  it.effect("halves once per overload round, and grows back one at a time, slowly after a throttle", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 8, adaptive: true })
      expect(limiter.current()).toBe(8)
      yield* limiter.throttled(0)
      expect(limiter.current()).toBe(4)
      // A second 429 from a request that started before the cut is the same overload.
      yield* limiter.throttled(0)
      expect(limiter.current()).toBe(4)
      yield* limiter.throttled(1)
      expect(limiter.current()).toBe(2)
      // After a throttle, one more slot per four rounds of successes at the current limit.
      for (let i = 0; i < 7; i++) yield* limiter.succeeded
      expect(limiter.current()).toBe(2)
      yield* limiter.succeeded
      expect(limiter.current()).toBe(3)
      for (let i = 0; i < 1000; i++) yield* limiter.succeeded
      expect(limiter.current()).toBe(8)
    }))

  it.effect("never lets more than the current limit run at once", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 6, adaptive: true })
      yield* limiter.throttled(0) // 3
      let running = 0
      let most = 0
      yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        () =>
          limiter.withSlot(() =>
            Effect.gen(function*() {
              running++
              most = Math.max(most, running)
              yield* Effect.sleep("10 millis")
              running--
            })
          ),
        { concurrency: "unbounded" }
      ).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("1 second")), Effect.flatMap(Fiber.join))
      expect(most).toBe(3)
    }))
})

describe("the execution-time budget", () => {
  const message =
    "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time window of 300 seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later."

  it("reads the budget and the window from the service's message", () => {
    expect(parseExecutionLimit(message)).toEqual({ budgetMs: 1_200_000, windowMs: 300_000 })
    expect(parseExecutionLimit("Number of requests exceeded the limit of 6000 over time window of 300 seconds."))
      .toBeUndefined()
  })

  it("holds nothing before a 429 named the budget, then waits until the oldest charges leave the window", () => {
    const budget = makeExecutionBudget()
    budget.record(1_000, 600_000)
    budget.record(2_000, 700_000)
    expect(budget.delay(3_000, 1)).toBe(0)
    expect(budget.learn("Number of concurrent requests exceeded the limit of 52.")).toBe(false)
    expect(budget.learn(message)).toBe(true)
    // 1,300,000 ms charged: the first charge must leave the window (at 301,000) for room.
    expect(budget.delay(3_000, 1)).toBe(298_001)
    // Two web servers have twice the budget.
    expect(budget.delay(3_000, 2)).toBe(0)
    expect(budget.delay(301_000, 1)).toBe(0)
  })

  it.effect("waits on the clock until the window has room (TestClock)", () =>
    Effect.gen(function*() {
      const budget = makeExecutionBudget()
      budget.learn(message)
      budget.record(0, 1_250_000)
      const fiber = yield* Effect.fork(budget.wait(() => 1))
      yield* TestClock.adjust("299 seconds")
      yield* Effect.yieldNow()
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
    }))
})

describe("lanes, one per web server", () => {
  const hints = (ids: ReadonlyArray<string>) => ({
    dopHint: Option.none(),
    requestsRemaining: Option.none(),
    executionRemainingMs: Option.none(),
    webServers: Math.max(1, ids.length),
    webServerIds: ids
  })

  it.effect("sends to the least busy server that is not held, and lets the load balancer choose before any is known", () =>
    Effect.gen(function*() {
      const lanes = makeLanes()
      expect(lanes.pick(0, hints([])).server).toBeUndefined()
      const a = lanes.pick(0, hints(["a", "b"]))
      expect(a.server).toBe("a")
      a.inFlight = 2
      const b = lanes.pick(0, hints(["a", "b"]))
      expect(b.server).toBe("b")
      b.inFlight = 3
      expect(lanes.pick(0, hints(["a", "b"])).server).toBe("a")
      // A 429 from a holds only a: b takes the requests, however busy, until a's Retry-After ends.
      yield* a.gate.hold(throttled(2))
      expect(lanes.pick(1000, hints(["a", "b"])).server).toBe("b")
      expect(lanes.waiting(1000)).toBe(0)
      expect(lanes.pick(2000, hints(["a", "b"])).server).toBe("a")
      // Both held (from the clock's 0: a until 3 s, b until 5 s): the run waits for the first.
      yield* b.gate.hold(throttled(5))
      yield* a.gate.hold(throttled(3))
      expect(lanes.waiting(2000)).toBe(1000)
    }))

  it("teaches every server's lane the execution-time budget, also servers seen later", () => {
    const lanes = makeLanes()
    const a = lanes.pick(0, hints(["a"]))
    a.budget.record(0, 900)
    lanes.learn(
      "Combined execution time of incoming requests exceeded limit of 1,000 milliseconds over time window of 1 seconds."
    )
    expect(a.budget.delay(10, 1)).toBe(0)
    a.budget.record(10, 200)
    // 1,100 ms charged: room once the first charge leaves the window, at 1,000 ms.
    expect(a.budget.delay(20, 1)).toBe(981)
    a.inFlight = 1
    const b = lanes.pick(20, hints(["a", "b"]))
    expect(b.server).toBe("b")
    b.budget.record(20, 1200)
    expect(b.budget.delay(30, 1)).toBe(991)
  })
})

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
    sizer.shrink() // refused: half, and never above that again
    expect(sizer.current()).toBe(335)
    for (let i = 0; i < 5; i++) sizer.observe(sizer.current(), 10)
    expect(sizer.current()).toBe(335)
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
      DataverseClient.layer({ url: info.url, credentials: Credentials.staticToken(info.accessToken), ...options }))
  )
const fastRetries = { retryPolicy: RetryPolicy.make({ baseDelay: "1 millis", maxRetries: 20 }) }
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`
const contacts = (n: number, prefix = "R") => Array.from({ length: n }, (_, i) => ({ lastname: `${prefix}${i}` }))
const lastnames = (emulator: Emulator.RunningEmulator) =>
  emulator.store.table("contact")!.scan().map((r) => String(r.values.lastname)).sort()

layer(clientOf(fastRetries).pipe(Layer.provideMerge(Emulator.layer({ identity: false, dopHint: 3 }))), {
  excludeTestServices: true
})("the engine, plain", (it) => {
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
      let largest = 0
      let latest = Infinity
      const summary = yield* Bulk.execute("create", "contact", contacts(400, "S"), {
        concurrency: 2,
        onProgress: (p) => {
          largest = Math.max(largest, p.chunkSize)
          latest = p.chunkSize
        }
      })
      expect(summary).toMatchObject({ created: 400, failed: 0 })
      // 100 rows timed out; halves of 50 (120 ms) answer in time, and the size stays below 100.
      expect(latest).toBeLessThanOrEqual(50)
      expect(largest).toBeLessThan(100)
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
  it.effect("learns the budget of two web servers from the first execution-time 429 and creates every row once", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const client = yield* DataverseClient.DataverseClient
      const summary = yield* Bulk.execute("create", "contact", contacts(600, "E"), { chunkSize: 10, concurrency: 8 })
      expect(summary).toMatchObject({ created: 600, failed: 0 })
      expect((yield* client.hints).webServers).toBe(2)
      const names = lastnames(emulator)
      expect(names).toHaveLength(600)
      expect(new Set(names).size).toBe(600)
      const refused = emulator.servers.reduce((n, server) => n + server.throttled.executionTime, 0)
      expect(refused).toBeGreaterThan(0)
      // Requests are spread over both servers on purpose (by their affinity cookies).
      const [first, second] = emulator.servers.map((server) => server.requests)
      expect(Math.min(first!, second!) / (first! + second!)).toBeGreaterThan(0.35)
    }))
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
      expect(second.resumed).toBeGreaterThanOrEqual(600)
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

  it.effect("refuses a journal of another job", () =>
    Effect.gen(function*() {
      const journal = Journal.memory()
      yield* Bulk.execute("create", "contact", [], { journal })
      const error = yield* Effect.flip(Bulk.execute("update", "contact", [], { journal }))
      expect(error.message).toContain("belongs to a create on 'contact'")
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

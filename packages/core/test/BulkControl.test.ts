import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { DataverseError } from "../src/DataverseError.js"
import { makeController } from "../src/internal/bulk/controller.js"
import { makeGate } from "../src/internal/bulk/gate.js"
import { makeLatencySignal } from "../src/internal/bulk/latency.js"
import { makeLimiter } from "../src/internal/bulk/limiter.js"
import { makePacer } from "../src/internal/bulk/pacer.js"

/** A result the gate reads: a 429 with its Retry-After in ms (and code), or an admission. */
type Answer = { readonly retryAfterMs?: number; readonly code?: string }
const refusal = (answer: Answer) =>
  answer.retryAfterMs === undefined ? undefined : { retryAfterMs: answer.retryAfterMs, code: answer.code }
/** What a request sent through the gate answers: refused with a Retry-After, or admitted (at once or later). */
const refusedWith = (retryAfterMs: number, code?: string): Effect.Effect<Answer> =>
  Effect.succeed(code === undefined ? { retryAfterMs } : { retryAfterMs, code })
const admittedNow: Effect.Effect<Answer> = Effect.succeed({})
const admittedAfter = (duration: Duration.DurationInput): Effect.Effect<Answer> => Effect.as(Effect.sleep(duration), {})

describe("the Retry-After gate (TestClock)", () => {
  it.effect("sends the request after a refusal alone; refused too, it holds every request for its Retry-After", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      // A refusal of a request that was not a probe holds nothing yet.
      yield* gate.pass(refusedWith(7000), refusal)
      expect(gate.heldUntil()).toBe(0)
      const order: Array<string> = []
      const answer = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(
        gate.pass(
          Effect.zipRight(
            Deferred.await(answer),
            Effect.sync((): Answer => (order.push("probe"), { retryAfterMs: 3000 }))
          ),
          refusal
        )
      )
      yield* Effect.yieldNow()
      const follower = yield* Effect.fork(gate.pass(Effect.sync((): Answer => (order.push("follower"), {})), refusal))
      yield* TestClock.adjust("10 millis")
      expect(order).toEqual([])
      yield* Deferred.succeed(answer, undefined)
      yield* Fiber.join(probe)
      // Refused at 10 ms: every request waits until 3,010 ms, then one probes again.
      expect(gate.heldUntil()).toBe(3010)
      yield* TestClock.adjust("2999 millis")
      expect(order).toEqual(["probe"])
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      expect(order).toEqual(["probe", "follower"])
    }))

  it.effect("lets the others go once the probe was not refused within the grace: nothing is held", () =>
    Effect.gen(function*() {
      const gate = makeGate({ minProbeGrace: "250 millis" })
      yield* gate.pass(refusedWith(1000), refusal)
      const probe = yield* Effect.fork(gate.pass(admittedAfter("10 seconds"), refusal))
      yield* Effect.yieldNow()
      let followed = false
      const follower = yield* Effect.fork(gate.pass(Effect.sync((): Answer => (followed = true, {})), refusal))
      yield* TestClock.adjust("249 millis")
      expect(followed).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      expect(followed).toBe(true)
      expect(gate.heldUntil()).toBe(0)
      yield* Fiber.interrupt(probe)
    }))

  it.effect("waits at least twice the slowest recent refusal for a probe's answer", () =>
    Effect.gen(function*() {
      const gate = makeGate({ minProbeGrace: "50 millis" })
      // A refusal that took 400 ms to come back: the grace becomes 800 ms.
      yield* gate.pass(Effect.as(Effect.sleep("400 millis"), { retryAfterMs: 1000 } as Answer), refusal).pipe(
        Effect.fork,
        Effect.tap(() => TestClock.adjust("400 millis")),
        Effect.flatMap(Fiber.join)
      )
      const probe = yield* Effect.fork(gate.pass(admittedAfter("10 seconds"), refusal))
      yield* Effect.yieldNow()
      let followed = false
      const follower = yield* Effect.fork(gate.pass(Effect.sync((): Answer => (followed = true, {})), refusal))
      yield* TestClock.adjust("799 millis")
      expect(followed).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      yield* Fiber.interrupt(probe)
    }))

  it.effect("lets a slow refusal count for half as much with each refusal after it", () =>
    Effect.gen(function*() {
      const gate = makeGate({ minProbeGrace: "50 millis" })
      const refusedAfter = (ms: number) =>
        gate.pass(Effect.as(Effect.sleep(Duration.millis(ms)), { retryAfterMs: 1000 } as Answer), refusal).pipe(
          Effect.fork,
          Effect.tap(() => TestClock.adjust(Duration.millis(ms))),
          Effect.flatMap(Fiber.join)
        )
      // A refusal of 400 ms (a connection opened for it), then two of 10 ms, each probe after
      // them admitted at once: the slowest recent refusal is 400, then 200, then 100 ms.
      yield* refusedAfter(400)
      yield* gate.pass(admittedNow, refusal)
      yield* refusedAfter(10)
      yield* gate.pass(admittedNow, refusal)
      yield* refusedAfter(10)
      expect(gate.heldUntil()).toBe(0)
      const probe = yield* Effect.fork(gate.pass(admittedAfter("10 seconds"), refusal))
      yield* Effect.yieldNow()
      let followed = false
      const follower = yield* Effect.fork(gate.pass(Effect.sync((): Answer => (followed = true, {})), refusal))
      // The grace is twice 100 ms, not twice the 400 ms of the first refusal.
      yield* TestClock.adjust("199 millis")
      expect(followed).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      expect(followed).toBe(true)
      yield* Fiber.interrupt(probe)
    }))

  it.effect("after a probe sent at once was refused, holds everything at once for the next refusals", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      const refuse = (ms: number) => gate.pass(refusedWith(ms), refusal)
      yield* refuse(1000)
      // The probe sent at once is refused: a hold.
      yield* refuse(1000)
      expect(gate.heldUntil()).toBe(1000)
      yield* TestClock.adjust("1 second")
      // After the hold the probe is admitted.
      yield* gate.pass(admittedNow, refusal)
      // The next refusal holds at once, without a probe first.
      yield* refuse(2000)
      expect(gate.heldUntil()).toBe(3000)
      yield* TestClock.adjust("2 seconds")
      yield* gate.pass(admittedNow, refusal)
      // The one after gets a probe first again, and once it is admitted that stays so.
      yield* refuse(1000)
      expect(gate.heldUntil()).toBe(3000)
      yield* gate.pass(admittedNow, refusal)
      yield* refuse(1000)
      expect(gate.heldUntil()).toBe(3000)
    }))
  it.effect("learns which refusals hold everything per 429 code", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      const refuse = (ms: number, code: string) => gate.pass(refusedWith(ms, code), refusal)
      // An execution-time refusal, and the probe sent at once refused too: those hold everything.
      yield* refuse(1000, "0x80072321")
      yield* refuse(1000, "0x80072321")
      yield* TestClock.adjust("1 second")
      yield* gate.pass(admittedNow, refusal)
      // A refusal of the request-count limit says nothing of that: it gets a probe first.
      yield* refuse(1000, "0x80072322")
      expect(gate.heldUntil()).toBe(1000)
      yield* gate.pass(admittedNow, refusal)
      // The next execution-time refusal holds at once.
      yield* refuse(2000, "0x80072321")
      expect(gate.heldUntil()).toBe(3000)
    }))

  it.effect("counts a probe sent at once as admitted when its grace passes, before its answer", () =>
    Effect.gen(function*() {
      let admitted = 0
      const gate = makeGate({
        minProbeGrace: "50 millis",
        onProbeAdmitted: (early) => Effect.sync(() => early && admitted++)
      })
      yield* gate.pass(refusedWith(1000), refusal)
      const probe = yield* Effect.fork(gate.pass(admittedAfter("1 second"), refusal))
      yield* Effect.yieldNow()
      const follower = yield* Effect.fork(gate.pass(admittedNow, refusal))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(follower)
      expect(admitted).toBe(1)
      // Its answer does not count it again.
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(probe)
      expect(admitted).toBe(1)
    }))

  it.effect("gives a refusal that comes while an admitted probe is still under way a probe of its own", () =>
    Effect.gen(function*() {
      const gate = makeGate({ minProbeGrace: "50 millis" })
      yield* gate.pass(refusedWith(1000), refusal)
      // The probe takes ten seconds; a follower's grace finds it admitted at 50 ms.
      const slowProbe = yield* Effect.fork(gate.pass(admittedAfter("10 seconds"), refusal))
      yield* Effect.yieldNow()
      const follower = yield* Effect.fork(gate.pass(admittedNow, refusal))
      yield* TestClock.adjust("50 millis")
      yield* Fiber.join(follower)
      // Another request is refused at 50 ms: the slow probe was sent before it and says nothing of it.
      yield* gate.pass(refusedWith(1000), refusal)
      const order: Array<string> = []
      const answer = yield* Deferred.make<Answer>()
      const probe = yield* Effect.fork(
        gate.pass(Effect.zipRight(Effect.sync(() => order.push("probe")), Deferred.await(answer)), refusal)
      )
      yield* Effect.yieldNow()
      const next = yield* Effect.fork(gate.pass(Effect.sync((): Answer => (order.push("next"), {})), refusal))
      yield* TestClock.adjust("49 millis")
      // The next request went alone, and the others wait for its answer.
      expect(order).toEqual(["probe"])
      // Refused too: everything is held for its Retry-After.
      yield* Deferred.succeed(answer, { retryAfterMs: 2000 })
      yield* Fiber.join(probe)
      expect(gate.heldUntil()).toBe(2099)
      yield* TestClock.adjust("1999 millis")
      expect(order).toEqual(["probe"])
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(next)
      expect(order).toEqual(["probe", "next"])
      yield* Fiber.interrupt(slowProbe)
    }))

  it.effect("lets another request probe when the probe is interrupted", () =>
    Effect.gen(function*() {
      const admissions: Array<boolean> = []
      const gate = makeGate({
        minProbeGrace: "50 millis",
        onProbeAdmitted: (early) => Effect.sync(() => admissions.push(early))
      })
      yield* gate.pass(refusedWith(1000), refusal)
      const probe = yield* Effect.fork(gate.pass(Effect.as(Effect.never, {} as Answer), refusal))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(probe)
      // The next request is the probe: sent at once, its answer (a refusal) holds everything.
      yield* gate.pass(refusedWith(2000), refusal)
      expect(gate.heldUntil()).toBe(2000)
      expect(admissions).toEqual([])
    }))

  it.effect("tells when the probe after a hold is admitted, and still holds that code's next refusal at once", () =>
    Effect.gen(function*() {
      const admissions: Array<boolean> = []
      const gate = makeGate({
        minProbeGrace: "50 millis",
        onProbeAdmitted: (early) => Effect.sync(() => admissions.push(early))
      })
      const code = "0x80072321"
      // A refusal, then the probe sent at once refused too: a hold until 1 s.
      yield* gate.pass(refusedWith(1000, code), refusal)
      yield* gate.pass(refusedWith(1000, code), refusal)
      expect(gate.heldUntil()).toBe(1000)
      // After it, a probe that takes a second and a follower: the follower's grace passes.
      const probe = yield* Effect.fork(gate.pass(admittedAfter("1 second"), refusal))
      yield* Effect.yieldNow()
      const follower = yield* Effect.fork(gate.pass(admittedNow, refusal))
      yield* TestClock.adjust("1050 millis")
      yield* Fiber.join(follower)
      expect(admissions).toEqual([false])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(probe)
      expect(admissions).toEqual([false])
      // The window's refusals were learned to hold everything: the next one holds at once.
      yield* gate.pass(refusedWith(1000, code), refusal)
      expect(gate.heldUntil()).toBe(3050)
    }))
})

describe("the adaptive limiter", () => {
  it.effect("starts with a few and adds one per healthy answer up to the ceiling", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 8 })
      expect(limiter.current()).toBe(2)
      for (let i = 0; i < 3; i++) yield* limiter.increase
      expect(limiter.current()).toBe(5)
      for (let i = 0; i < 10; i++) yield* limiter.increase
      expect(limiter.current()).toBe(8)
    }))

  it.effect("cuts an eighth on a window 429, once per round and at least by one, then grows one per round", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 8, initial: 8 })
      const answers = (n: number) => Effect.forEach(Array.from({ length: n }), () => limiter.increase)
      yield* limiter.throttled(0, "0x80072321")
      expect(limiter.current()).toBe(7)
      // A sign from a request that started before the cut is the same congestion.
      yield* limiter.throttled(0, "0x80072322")
      expect(limiter.current()).toBe(7)
      yield* limiter.throttled(1, undefined)
      expect(limiter.current()).toBe(6)
      for (let round = 2; round < 9; round++) yield* limiter.throttled(round, "0x80072321")
      expect(limiter.current()).toBe(1)
      // No plateau: one more per round of answers at the current limit.
      yield* answers(1)
      expect(limiter.current()).toBe(2)
      yield* answers(1)
      expect(limiter.current()).toBe(2)
      yield* answers(1)
      expect(limiter.current()).toBe(3)
    }))

  it.effect("goes back at once when the service admitted a request after the window's 429s, not after a plateau cut", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 8, initial: 8 })
      yield* limiter.throttled(0, "0x80072322")
      yield* limiter.throttled(1, "0x80072322")
      expect(limiter.current()).toBe(6)
      // Both window cuts (8 to 7, the window still full after its hold, 7 to 6) are undone.
      yield* limiter.recover
      expect(limiter.current()).toBe(8)
      // Once only: a cut after it goes back to where that one started.
      yield* limiter.throttled(2, "0x80072322")
      yield* limiter.recover
      yield* limiter.recover
      expect(limiter.current()).toBe(8)
      // Grown back by a round of healthy answers: nothing left to undo.
      yield* limiter.throttled(3, "0x80072322")
      yield* Effect.forEach(Array.from({ length: 7 }), () => limiter.increase)
      expect(limiter.current()).toBe(8)
      // Partly grown back: the admission undoes the rest.
      yield* limiter.throttled(4, "0x80072322")
      yield* limiter.throttled(5, "0x80072322")
      yield* Effect.forEach(Array.from({ length: 6 }), () => limiter.increase)
      expect(limiter.current()).toBe(7)
      yield* limiter.recover
      expect(limiter.current()).toBe(8)
      // The concurrent-request limit cuts to a plateau: an admission after it undoes nothing.
      yield* limiter.throttled(6, "0x80072326")
      expect(limiter.current()).toBe(4)
      yield* limiter.recover
      expect(limiter.current()).toBe(4)
    }))

  it.effect("halves on the concurrent-request limit and on slow answers cuts a quarter, then probes above ever more slowly", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 8, initial: 8, probeRounds: 2 })
      const answers = (n: number) => Effect.forEach(Array.from({ length: n }), () => limiter.increase)
      yield* limiter.throttled(0, "0x80072326")
      expect(limiter.current()).toBe(4)
      // 4 is a plateau: the fifth slot takes two rounds of answers.
      yield* answers(7)
      expect(limiter.current()).toBe(4)
      yield* answers(1)
      expect(limiter.current()).toBe(5)
      // The probe meets slow answers: back to 3 (a new plateau), and the next probe waits four rounds.
      yield* limiter.slow(1)
      expect(limiter.current()).toBe(3)
      yield* answers(11)
      expect(limiter.current()).toBe(3)
      yield* answers(1)
      expect(limiter.current()).toBe(4)
    }))

  it.effect("never lets more than the current limit run at once, and follows a lower ceiling", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 6, initial: 6 })
      yield* limiter.setCeiling(3)
      expect(limiter.current()).toBe(3)
      let running = 0
      let most = 0
      yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        () =>
          limiter.withSlot(() =>
            Effect.gen(function*() {
              running++
              most = Math.max(most, running, limiter.inFlight())
              yield* Effect.sleep("10 millis")
              running--
            })
          ),
        { concurrency: "unbounded" }
      ).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("1 second")), Effect.flatMap(Fiber.join))
      expect(most).toBe(3)
      expect(limiter.inFlight()).toBe(0)
    }))
})

describe("the latency signal", () => {
  it("compares latency per row with the fastest seen at about the same size", () => {
    const latency = makeLatencySignal()
    latency.observe(100, 120, true)
    expect(latency.ratio()).toBe(1)
    expect(latency.baselinePerRow(100)).toBeCloseTo(1.2)
    // 1,000 rows are compared with the 100-row baseline until they have their own: faster per row.
    latency.observe(1000, 1020, true)
    expect(latency.ratio()).toBeLessThan(1)
    expect(latency.baselinePerRow(1000)).toBeCloseTo(1.02)
    // Four answers at four times the baseline: the moving average passes 2.
    for (let i = 0; i < 4; i++) latency.observe(1000, 4080, true)
    expect(latency.ratio()).toBeGreaterThan(2)
    // Slow answers never become the baseline.
    expect(latency.baselinePerRow(1000)).toBeCloseTo(1.02)
    latency.restart()
    expect(latency.ratio()).toBe(1)
    // An answer that judges an older limit does not move the average.
    latency.observe(1000, 9000, false)
    expect(latency.ratio()).toBe(1)
  })
})

const throttledError = (seconds: number) =>
  new DataverseError({
    reason: "Throttled",
    status: 429,
    code: "0x80072321",
    message: "Combined execution time of incoming requests exceeded limit",
    retryAfter: Duration.seconds(seconds)
  })

describe("the pacer (TestClock)", () => {
  /** Sends `count` requests at once through the pacer; the virtual times each went. */
  const sendAll = (pacer: ReturnType<typeof makePacer>, count: number, limit: number) =>
    Effect.gen(function*() {
      const sentAt: Array<number> = []
      const fiber = yield* Effect.fork(
        Effect.forEach(
          Array.from({ length: count }, (_, i) => i),
          () =>
            Effect.flatMap(
              pacer.next(limit, () => 0),
              () => Effect.map(Clock.currentTimeMillis, (t) => sentAt.push(t))
            ),
          { concurrency: "unbounded" }
        )
      )
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      return sentAt
    })

  it.effect("lets requests go at once until a refusal was seen", () =>
    Effect.gen(function*() {
      const pacer = makePacer()
      pacer.admitted(1000)
      expect(yield* sendAll(pacer, 4, 8)).toEqual([0, 0, 0, 0])
    }))

  it.effect("then spaces them by twice the time a refusal takes, at most half an even spread", () =>
    Effect.gen(function*() {
      const pacer = makePacer()
      pacer.admitted(1000)
      pacer.refused(20)
      // 40 ms apart: a request sent after another knows whether that one was refused.
      expect(yield* sendAll(pacer, 4, 8)).toEqual([0, 40, 80, 120])
      // Refusals slow to come back: never more than half of 1,000 ms over 10 in flight.
      const slow = makePacer()
      slow.admitted(1000)
      slow.refused(500)
      const from = yield* Clock.currentTimeMillis
      expect((yield* sendAll(slow, 3, 10)).map((t) => t - from)).toEqual([0, 50, 100])
    }))

  it.effect("lets the requests that waited out a hold take their turns after it", () =>
    Effect.gen(function*() {
      const pacer = makePacer()
      pacer.admitted(1000)
      pacer.refused(20)
      const sentAt: Array<number> = []
      const fiber = yield* Effect.fork(Effect.forEach(
        [0, 1, 2],
        () => Effect.zipRight(pacer.next(8, () => 5000), Effect.map(Clock.currentTimeMillis, (t) => sentAt.push(t))),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      expect(sentAt).toEqual([5000, 5040, 5080])
    }))
})

describe("the connection's pacing (TestClock)", () => {
  it.effect("spaces the requests of a connection that has seen a refusal, in slots or not", () =>
    Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, initial: 8, maxThrottleWait: Duration.hours(1) })
      const send = (answer: Effect.Effect<DataverseError | undefined>) =>
        controller.throttled(answer, (result) => Effect.succeed(result))
      const sentAt: Array<number> = []
      const admittedNow = Effect.map(Clock.currentTimeMillis, (t) => (sentAt.push(t), undefined))
      // Before any refusal, four at once go at once.
      const start = yield* Clock.currentTimeMillis
      yield* Effect.forEach([0, 1, 2, 3], () => send(admittedNow), { concurrency: "unbounded" })
      expect(sentAt.map((t) => t - start)).toEqual([0, 0, 0, 0])
      // A write answered in a second, then a refusal answered in 20 ms (its Retry-After, 1 s,
      // waited out; sent again, it is admitted).
      const first = yield* Effect.fork(send(Effect.as(Effect.sleep("1 second"), undefined)))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(first)
      let refused = 0
      const refusedOnce = Effect.suspend(() =>
        refused++ === 0 ? Effect.as(Effect.sleep("20 millis"), throttledError(1)) : Effect.succeed(undefined)
      )
      const second = yield* Effect.fork(send(refusedOnce))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(second)
      // Now four at once take turns 40 ms apart: twice the refusal's 20 ms, under half an even
      // spread (about 750 ms of latency over 8).
      sentAt.length = 0
      const from = yield* Clock.currentTimeMillis
      const admittedInASecond = Effect.zipLeft(admittedNow, Effect.sleep("1 second"))
      const four = yield* Effect.fork(
        Effect.forEach([0, 1, 2, 3], () => send(admittedInASecond), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(four)
      expect(sentAt.map((t) => t - from)).toEqual([0, 40, 80, 120])
    }))
})

describe("the connection's controller (TestClock)", () => {
  it.effect("waits out each 429 and sends again, cutting the requests in flight until one is admitted after the hold", () =>
    Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, initial: 8, maxThrottleWait: Duration.hours(1) })
      const answers = [throttledError(3), throttledError(2), undefined]
      let sent = 0
      // In a slot, as the engine sends: the 429s judge the run's parallelism. The third answer
      // takes a second, as a write does.
      const fiber = yield* Effect.fork(
        controller.withSlot(() =>
          controller.throttled(
            Effect.suspend(() => {
              const answer = answers[sent++]
              return answer === undefined ? Effect.as(Effect.sleep("1 second"), answer) : Effect.succeed(answer)
            }),
            (answer) => Effect.succeed(answer)
          )
        )
      )
      yield* TestClock.adjust("1 millis")
      // Refused at 0: nothing is cut yet, the request sent next goes alone first.
      expect(controller.state()).toMatchObject({ throttled: 1, requests: 1, limit: 8, heldUntil: 0 })
      yield* TestClock.adjust("4998 millis")
      expect(fiber.unsafePoll()).toBeNull()
      // Sent again alone at 3 s and refused again: the congestion is confirmed, every request
      // is held until 5 s and an eighth fewer go in flight.
      expect(controller.state()).toMatchObject({ throttled: 2, requests: 2, limit: 7, heldUntil: 5000 })
      // Sent at 5 s and admitted: the window has room again, and the cut goes back.
      yield* TestClock.adjust("1 millis")
      expect(controller.state()).toMatchObject({ requests: 3, limit: 7 })
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBeUndefined()
      expect(controller.state()).toMatchObject({ requests: 3, limit: 8 })
    }))

  it.effect("says it waits for a Retry-After while every request it has waits its own, and tells listeners at once", () =>
    Effect.scoped(Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, initial: 8, maxThrottleWait: Duration.hours(1) })
      const told: Array<number> = []
      yield* controller.onHold((until) => told.push(until))
      // Two requests sent together and refused (each answered in 10 ms): no probe goes (none is
      // left to send), so no hold starts, yet both wait 40 s.
      const answers = [throttledError(40), throttledError(40), undefined, undefined]
      let sent = 0
      const send = controller.withSlot(() =>
        controller.throttled(
          Effect.suspend(() => Effect.as(Effect.sleep("10 millis"), answers[sent++])),
          (answer) => Effect.succeed(answer)
        )
      )
      const both = yield* Effect.fork(Effect.all([send, send], { concurrency: 2 }))
      yield* TestClock.adjust("10 millis")
      expect(controller.state()).toMatchObject({ throttled: 2, heldUntil: 0, waitingUntil: 40_010 })
      expect(told).toEqual([40_010, 40_010])
      // Sent again after their wait (one first, as a probe) and admitted.
      yield* TestClock.adjust("40 seconds")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(both)
      expect(controller.state()).toMatchObject({ requests: 4, waitingUntil: 0 })
      // One refused request waits while another slot is busy between its requests (its chunk's
      // rows prepared, its outcomes handed on): the run is not waiting.
      const refusedOnce = [throttledError(3), undefined]
      let i = 0
      const waiting = yield* Effect.fork(
        controller.withSlot(() =>
          controller.throttled(Effect.sync(() => refusedOnce[i++]), (answer) => Effect.succeed(answer))
        )
      )
      const busy = yield* Effect.fork(controller.withSlot(() => Effect.sleep("5 seconds")))
      yield* TestClock.adjust("1 millis")
      expect(controller.state()).toMatchObject({ throttled: 3, waitingUntil: 0 })
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(waiting)
      yield* Fiber.join(busy)
    })))

  it.effect("cuts nothing for a lone 429 whose next request is admitted, nor for a 429 outside a slot", () =>
    Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, initial: 8, maxThrottleWait: Duration.hours(1) })
      const answers = [throttledError(1), undefined]
      let sent = 0
      const fiber = yield* Effect.fork(
        controller.withSlot(() =>
          controller.throttled(Effect.sync(() => answers[sent++]), (answer) => Effect.succeed(answer))
        )
      )
      yield* TestClock.adjust("500 millis")
      // The refused request waits its Retry-After; the limit is untouched while nothing is confirmed.
      expect(controller.state()).toMatchObject({ throttled: 1, limit: 8, heldUntil: 0 })
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(fiber)
      expect(controller.state()).toMatchObject({ requests: 2, limit: 8 })
      // A 429 of a request outside the slots (metadata) holds but does not cut.
      const outside = [throttledError(1), undefined]
      let i = 0
      const metadata = yield* Effect.fork(
        controller.throttled(Effect.sync(() => outside[i++]), (answer) => Effect.succeed(answer))
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(metadata)
      expect(controller.state()).toMatchObject({ limit: 8, throttled: 2 })
    }))

  it.effect("halves at once on the concurrent-request limit's 429, without waiting for a probe", () =>
    Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, initial: 8, maxThrottleWait: Duration.hours(1) })
      const answers = [
        new DataverseError({
          reason: "Throttled",
          status: 429,
          code: "0x80072326",
          message: "Number of concurrent requests exceeded the limit of 52.",
          retryAfter: Duration.seconds(1)
        }),
        undefined
      ]
      let sent = 0
      const fiber = yield* Effect.fork(
        controller.withSlot(() =>
          controller.throttled(Effect.sync(() => answers[sent++]), (answer) => Effect.succeed(answer))
        )
      )
      yield* TestClock.adjust("1 millis")
      expect(controller.state()).toMatchObject({ throttled: 1, limit: 4 })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      // A cut to a plateau: an admitted request does not undo it.
      expect(controller.state()).toMatchObject({ requests: 2, limit: 4 })
    }))

  it.effect("fails with Throttled once a request would wait past maxThrottleWait", () =>
    Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, maxThrottleWait: Duration.seconds(10) })
      let sent = 0
      const fiber = yield* Effect.fork(
        controller.throttled(Effect.sync(() => (sent++, throttledError(4))), (answer) => Effect.succeed(answer))
      )
      yield* TestClock.adjust("20 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      // Refused at 0, 4 and 8 s: the next wait would end at 12 s, past the 10 s allowed.
      expect(sent).toBe(3)
      expect(error.reason).toBe("Throttled")
      expect(error.code).toBe("0x80072321")
      expect(error.message).toMatch(
        /^The service refused a request for 8s and asked to wait 4s more, longer than a run waits for throttling \(10s: maxThrottleWait, --max-throttle-wait\): /
      )
      // A first Retry-After already past the limit stops at once, and says so.
      const once = yield* Effect.fork(
        controller.throttled(Effect.sync(() => throttledError(40)), (answer) => Effect.succeed(answer))
      )
      yield* TestClock.adjust("1 millis")
      expect((yield* Effect.flip(Fiber.join(once))).message).toMatch(
        /^The service asked to wait 40s \(Retry-After\), longer than a run waits for throttling \(10s: /
      )
    }))

  it.effect("cuts on latency well above the baseline and grows while answers are healthy", () =>
    Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, maxThrottleWait: Duration.hours(1) })
      yield* controller.observe(0, 100, 100)
      yield* controller.observe(0, 100, 100)
      expect(controller.state().limit).toBe(4)
      yield* controller.observe(0, 100, 100)
      yield* controller.observe(0, 100, 100)
      expect(controller.state().limit).toBe(6)
      // Four times slower: the average passes the threshold after a few answers and cuts once.
      for (let i = 0; i < 6; i++) yield* controller.observe(0, 100, 400)
      expect(controller.state().limit).toBe(4)
    }))
})

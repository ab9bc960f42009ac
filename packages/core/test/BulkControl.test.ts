import { describe, expect, it } from "@effect/vitest"
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

const now = Effect.clockWith((clock) => clock.currentTimeMillis)

/** A result the gate reads: a 429 with its Retry-After in ms, or an admission. */
type Answer = { readonly retryAfterMs?: number }
const refusal = (answer: Answer) => answer.retryAfterMs

describe("the Retry-After gate (TestClock)", () => {
  it.effect("holds every request for the Retry-After, lengthened by a later refusal", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      // A request sent before the hold, still in flight: it is refused at 6.999 s for 3 s more.
      const late = yield* Effect.fork(
        gate.pass(Effect.as(Effect.sleep("6999 millis"), { retryAfterMs: 3000 } as Answer), refusal)
      )
      yield* Effect.yieldNow()
      yield* gate.pass(Effect.succeed<Answer>({ retryAfterMs: 7000 }), refusal)
      expect(gate.heldUntil()).toBe(7000)
      const waiting = yield* Effect.fork(gate.pass(Effect.succeed<Answer>({}), refusal))
      yield* TestClock.adjust("6999 millis")
      yield* Fiber.join(late)
      expect(waiting.unsafePoll()).toBeNull()
      expect(gate.heldUntil()).toBe(9999)
      yield* TestClock.adjust("1 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2999 millis")
      yield* Fiber.join(waiting)
      expect(yield* now).toBe(9999)
    }))

  it.effect("after a hold lets one probe go first; a refused probe holds the others for its Retry-After", () =>
    Effect.gen(function*() {
      const gate = makeGate()
      yield* gate.pass(Effect.succeed<Answer>({ retryAfterMs: 1000 }), refusal)
      const order: Array<string> = []
      const answer = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(
        gate.pass(
          Effect.zipRight(
            Deferred.await(answer),
            Effect.sync((): Answer => (order.push("probe"), { retryAfterMs: 2000 }))
          ),
          refusal
        )
      )
      yield* TestClock.adjust("1000 millis")
      const follower = yield* Effect.fork(
        gate.pass(Effect.sync((): Answer => (order.push("follower"), {})), refusal)
      )
      yield* TestClock.adjust("100 millis")
      expect(order).toEqual([])
      yield* Deferred.succeed(answer, undefined)
      yield* Fiber.join(probe)
      // Refused at 1,100 ms: the follower waits until 3,100 ms, then probes itself.
      yield* TestClock.adjust("1999 millis")
      expect(order).toEqual(["probe"])
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      expect(order).toEqual(["probe", "follower"])
    }))

  it.effect("lets the others go once the probe was not refused within the grace", () =>
    Effect.gen(function*() {
      const gate = makeGate({ minProbeGrace: "250 millis" })
      yield* gate.pass(Effect.succeed<Answer>({ retryAfterMs: 1000 }), refusal)
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.fork(gate.pass(Effect.as(Effect.sleep("10 seconds"), {} as Answer), refusal))
      yield* Effect.yieldNow()
      let followed = false
      const follower = yield* Effect.fork(gate.pass(Effect.sync((): Answer => (followed = true, {})), refusal))
      yield* TestClock.adjust("249 millis")
      expect(followed).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      expect(followed).toBe(true)
      yield* Fiber.interrupt(probe)
    }))

  it.effect("waits at least twice the slowest refusal measured for a probe's answer", () =>
    Effect.gen(function*() {
      const gate = makeGate({ minProbeGrace: "250 millis" })
      // A refusal that took 400 ms to come back: the grace becomes 800 ms.
      yield* gate.pass(Effect.as(Effect.sleep("400 millis"), { retryAfterMs: 1000 } as Answer), refusal).pipe(
        Effect.fork,
        Effect.tap(() => TestClock.adjust("400 millis")),
        Effect.flatMap(Fiber.join)
      )
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.fork(gate.pass(Effect.as(Effect.sleep("10 seconds"), {} as Answer), refusal))
      yield* Effect.yieldNow()
      let followed = false
      const follower = yield* Effect.fork(gate.pass(Effect.sync((): Answer => (followed = true, {})), refusal))
      yield* TestClock.adjust("799 millis")
      expect(followed).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(follower)
      yield* Fiber.interrupt(probe)
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

  it.effect("cuts once per round, never below what was sustained, and at least by one", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 8, initial: 8 })
      yield* limiter.decrease(0, 0.5, 0)
      expect(limiter.current()).toBe(4)
      // A sign from a request that started before the cut is the same congestion.
      yield* limiter.decrease(0, 0.5, 0)
      expect(limiter.current()).toBe(4)
      // The service sustained 3.6 requests at once: the cut goes to 3, not 2.
      yield* limiter.decrease(1, 0.5, 3.6)
      expect(limiter.current()).toBe(3)
      // Sustained as many as allowed: still one less.
      yield* limiter.decrease(2, 0.5, 3)
      expect(limiter.current()).toBe(2)
      yield* limiter.decrease(3, 0.5, 0)
      expect(limiter.current()).toBe(1)
      yield* limiter.decrease(4, 0.5, 0)
      expect(limiter.current()).toBe(1)
    }))

  it.effect("grows one per two rounds after a cut, and probes a plateau ever more slowly", () =>
    Effect.gen(function*() {
      const limiter = yield* makeLimiter({ ceiling: 8, initial: 6, growthRounds: 2 })
      const answers = (n: number) => Effect.forEach(Array.from({ length: n }), () => limiter.increase)
      yield* limiter.decrease(0, 0.5, 4)
      expect(limiter.current()).toBe(4)
      // Two rounds of four answers for the fifth slot.
      yield* answers(7)
      expect(limiter.current()).toBe(4)
      yield* answers(1)
      expect(limiter.current()).toBe(5)
      // Congestion again at 5, below the 6 of last time: a plateau. The next probe takes four rounds.
      yield* limiter.decrease(1, 0.5, 4)
      expect(limiter.current()).toBe(4)
      yield* answers(15)
      expect(limiter.current()).toBe(4)
      yield* answers(1)
      expect(limiter.current()).toBe(5)
      // Growth past the plateau without congestion: the next cut above it probes quickly again.
      yield* answers(5 * 4 + 6 * 4)
      expect(limiter.current()).toBe(7)
      yield* limiter.decrease(2, 0.5, 5)
      expect(limiter.current()).toBe(5)
      yield* answers(10)
      expect(limiter.current()).toBe(6)
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

describe("the connection's controller (TestClock)", () => {
  it.effect("waits out each 429 and sends again, cutting the requests in flight", () =>
    Effect.gen(function*() {
      const controller = yield* makeController({ ceiling: 8, initial: 8, maxThrottleWait: Duration.hours(1) })
      const answers = [throttledError(3), throttledError(2), undefined]
      let sent = 0
      const fiber = yield* Effect.fork(
        controller.throttled(Effect.sync(() => answers[sent++]), (answer) => Effect.succeed(answer))
      )
      yield* TestClock.adjust("4999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBeUndefined()
      expect(sent).toBe(3)
      // The resent request was refused again, under the cut limit: the service is still overloaded.
      expect(controller.state()).toMatchObject({ throttled: 2, requests: 3, limit: 2, heldUntil: 5000 })
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
      expect(error.message).toContain("maxThrottleWait")
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

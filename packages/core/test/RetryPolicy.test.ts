import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import { DataverseError } from "../src/DataverseError.js"
import * as RetryPolicy from "../src/RetryPolicy.js"

const throttled = (seconds: number) =>
  new DataverseError({ reason: "Throttled", status: 429, message: "throttled", retryAfter: Duration.seconds(seconds) })

/** An effect that fails with `errors` in turn, then succeeds; counts its attempts. */
const failingWith = (errors: ReadonlyArray<DataverseError>) =>
  Effect.gen(function*() {
    const attempts = yield* Ref.make(0)
    const effect = Ref.getAndUpdate(attempts, (n) => n + 1).pipe(
      Effect.flatMap((n) => (n < errors.length ? Effect.fail(errors[n]!) : Effect.succeed("done")))
    )
    return { attempts, effect }
  })

describe("RetryPolicy", () => {
  it.effect("waits exactly what Retry-After says, and follows it when it grows", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failingWith([throttled(5), throttled(12)])
      const fiber = yield* Effect.fork(Effect.retry(effect, RetryPolicy.make()))
      yield* TestClock.adjust("4999 millis")
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(attempts)).toBe(2)
      yield* TestClock.adjust("11999 millis")
      expect(yield* Ref.get(attempts)).toBe(2)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("done")
      expect(yield* Ref.get(attempts)).toBe(3)
    }))

  it.effect("never retries a data error", () =>
    Effect.gen(function*() {
      const validation = new DataverseError({ reason: "Validation", status: 400, message: "bad value" })
      const { attempts, effect } = yield* failingWith([validation])
      const error = yield* Effect.flip(Effect.retry(effect, RetryPolicy.make()))
      expect(error.reason).toBe("Validation")
      expect(yield* Ref.get(attempts)).toBe(1)
    }))

  it.effect("backs off with jitter within bounds when the service gives no Retry-After", () =>
    Effect.gen(function*() {
      const unavailable = new DataverseError({ reason: "ServiceUnavailable", status: 503, message: "busy" })
      const { attempts, effect } = yield* failingWith([unavailable])
      const fiber = yield* Effect.fork(Effect.retry(effect, RetryPolicy.make({ baseDelay: "1 second" })))
      // Effect's jitter scales a delay by a factor in [0.8, 1.2).
      yield* TestClock.adjust("799 millis")
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* TestClock.adjust("401 millis")
      expect(yield* Ref.get(attempts)).toBe(2)
      expect(yield* Fiber.join(fiber)).toBe("done")
    }))

  it.effect("gives up after maxRetries", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failingWith(Array.from({ length: 10 }, () => throttled(1)))
      const fiber = yield* Effect.fork(Effect.flip(Effect.retry(effect, RetryPolicy.make({ maxRetries: 3 }))))
      yield* TestClock.adjust("1 minute")
      const error = yield* Fiber.join(fiber)
      expect(error.reason).toBe("Throttled")
      expect(yield* Ref.get(attempts)).toBe(4)
    }))

  it.effect("fails instead of waiting longer than maxRetryAfter", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failingWith([throttled(600)])
      const error = yield* Effect.flip(Effect.retry(effect, RetryPolicy.make({ maxRetryAfter: "5 minutes" })))
      expect(error.retryAfter).toEqual(Duration.seconds(600))
      expect(yield* Ref.get(attempts)).toBe(1)
    }))
})

describe("RetryPolicy for unreachable hosts", () => {
  it.effect("retries a refused connection only twice", () =>
    Effect.gen(function*() {
      const unreachable = new DataverseError({ reason: "Unreachable", message: "Cannot reach x: connection refused" })
      const { attempts, effect } = yield* failingWith(Array.from({ length: 10 }, () => unreachable))
      const fiber = yield* Effect.fork(Effect.flip(Effect.retry(effect, RetryPolicy.make())))
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(fiber)).reason).toBe("Unreachable")
      expect(yield* Ref.get(attempts)).toBe(3)
    }))
})

import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { parseDuration } from "../src/Flags.js"

describe("a duration flag", () => {
  it.effect("takes hours, minutes and seconds, whole or not, or plain seconds; at least a second", () =>
    Effect.gen(function*() {
      const seconds = (text: string) =>
        Effect.map(Effect.either(parseDuration("--max-throttle-wait", text)), Either.map(Duration.toSeconds))
      expect(yield* seconds("90s")).toEqual(Either.right(90))
      expect(yield* seconds("1h30m")).toEqual(Either.right(5400))
      expect(yield* seconds("1.5m")).toEqual(Either.right(90))
      expect(yield* seconds("0.5h")).toEqual(Either.right(1800))
      expect(yield* seconds(" 45 ")).toEqual(Either.right(45))
      expect(yield* seconds("2.5")).toEqual(Either.right(2.5))
      for (const bad of ["soon", "0.5s", "0", "", "1.m", "m", "-5s", "1h 30m"]) {
        const result = yield* Effect.either(parseDuration("--max-throttle-wait", bad))
        expect(Either.isLeft(result) && result.left.message, bad).toBe(
          `--max-throttle-wait takes a duration such as 90s, 30m or 1h, got '${bad}'.`
        )
      }
    }))
})

import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { DataverseError } from "../src/DataverseError.js"
import { lookUpInGroups } from "../src/internal/bulk/lookupGroups.js"

const tooLong = new DataverseError({ reason: "PayloadTooLarge", message: "HTTP 414", status: 414 })

describe("lookups in groups", () => {
  it.effect("look every value up once, in order, halving a group refused as too large", () =>
    Effect.gen(function*() {
      const asked: Array<ReadonlyArray<number>> = []
      const passed: Array<ReadonlyArray<number>> = []
      yield* lookUpInGroups([[1, 2, 3, 4, 5, 6, 7], [8, 9]], (group) =>
        Effect.suspend(() => {
          asked.push(group)
          if (group.length > 2) return Effect.fail(tooLong)
          passed.push(group)
          return Effect.void
        }))
      expect(passed).toEqual([[1, 2], [3, 4], [5, 6], [7], [8, 9]])
      expect(asked.length).toBe(8)
    }))

  it.effect("fail with a refusal of one value, or with any other error, at once", () =>
    Effect.gen(function*() {
      const alone = yield* Effect.flip(lookUpInGroups([[1]], () => Effect.fail(tooLong)))
      expect(alone.reason).toBe("PayloadTooLarge")
      let calls = 0
      const other = new DataverseError({ reason: "Forbidden", message: "HTTP 403", status: 403 })
      const forbidden = yield* Effect.flip(lookUpInGroups([[1, 2, 3], [4]], () => (calls++, Effect.fail(other))))
      expect(forbidden.reason).toBe("Forbidden")
      expect(calls).toBe(1)
    }))
})

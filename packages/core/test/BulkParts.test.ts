import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { DataverseError, reasonFor } from "../src/DataverseError.js"
import { currentExposure, followed, isExposed, makeExposure } from "../src/internal/bulk/exposure.js"
import { deterministicId, idMaker, newRunId } from "../src/internal/bulk/ids.js"
import { elasticOutcomes } from "../src/internal/bulk/isolation.js"
import { isDuplicateKey } from "../src/internal/bulk/outcomes.js"
import { makePasses } from "../src/internal/bulk/passes.js"
import { bodyOf, makePrepare, pathOf, type Prepared, recordIdentity } from "../src/internal/bulk/prepare.js"
import { makeSeenIdentities } from "../src/internal/bulk/seen.js"
import { makeChunkSource } from "../src/internal/bulk/source.js"
import { isStream, mapInput, toStream } from "../src/internal/input.js"
import type { ColumnMetadata, TableMetadata } from "../src/Metadata.js"

describe("the chunk source", () => {
  it.scoped("cuts each request when it is asked for, at the size of that moment", () =>
    Effect.gen(function*() {
      let size = 3
      const asked: Array<number> = []
      const source = yield* makeChunkSource(Stream.range(1, 10), {
        size: (handedOut) => (asked.push(handedOut), size),
        maxBytes: 1000,
        bytesOf: () => 1,
        counts: () => true
      })
      const first = yield* source.next
      size = 5
      const second = yield* source.next
      const third = yield* source.next
      expect([first, second, third].map((c) => Option.getOrThrow(c))).toEqual([[1, 2, 3], [4, 5, 6, 7, 8], [9, 10]])
      expect(asked).toEqual([0, 3, 8])
      expect(yield* source.next).toEqual(Option.none())
    }))

  it.scoped("keeps requests under the byte budget, and carries rows that are not sent without counting them", () =>
    Effect.gen(function*() {
      const source = yield* makeChunkSource(Stream.make(1, -2, 3, 4, 5, -6, 7), {
        size: () => 2,
        maxBytes: 25,
        // Negative items are rows that will not be sent: no bytes, not counted.
        bytesOf: (n) => (n < 0 ? 0 : 10),
        counts: (n) => n > 0
      })
      const chunks: Array<ReadonlyArray<number>> = []
      for (let next = yield* source.next; Option.isSome(next); next = yield* source.next) chunks.push(next.value)
      expect(chunks).toEqual([[1, -2, 3], [4, 5], [-6, 7]])
    }))

  it.scoped("hands out each item once to requests formed at the same time", () =>
    Effect.gen(function*() {
      const source = yield* makeChunkSource(Stream.range(1, 1000), {
        size: () => 7,
        maxBytes: Infinity,
        bytesOf: () => 1,
        counts: () => true
      })
      const seen = yield* Effect.all(
        Array.from({ length: 8 }, () =>
          Effect.gen(function*() {
            const mine: Array<number> = []
            for (let next = yield* source.next; Option.isSome(next); next = yield* source.next) {
              for (const item of next.value) mine.push(item)
            }
            return mine
          })),
        { concurrency: "unbounded" }
      )
      const all = seen.flat().sort((a, b) => a - b)
      expect(all).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1))
    }))
})

describe("whether a request's rows may have landed", () => {
  /** A request's exposure, and what it told (true: may have landed; false: not any more). */
  const tracked = () => {
    const told: Array<boolean> = []
    return { told, exposure: makeExposure((exposed) => Effect.sync(() => told.push(exposed))) }
  }
  // As the connection reads an answer: a 429 or a 401 did nothing.
  const refused = (status: number) => status === 429 || status === 401
  it.effect("may while a write is on the wire, and not after a 429 or a 401: it did nothing", () =>
    Effect.gen(function*() {
      const { exposure, told } = tracked()
      const answer = yield* Deferred.make<number>()
      const attempt = yield* Effect.fork(
        Effect.locally(followed(Deferred.await(answer), refused), currentExposure, exposure)
      )
      yield* Effect.yieldNow()
      expect(isExposed(exposure)).toBe(true)
      yield* Deferred.succeed(answer, 429)
      yield* Fiber.join(attempt)
      expect(isExposed(exposure)).toBe(false)
      expect(told).toEqual([true, false])
      yield* Effect.locally(followed(Effect.succeed(401), refused), currentExposure, exposure)
      expect(isExposed(exposure)).toBe(false)
      expect(told).toEqual([true, false, true, false])
    }))

  it.effect("may after any other answer, a failure or an interruption on the wire, whatever comes after", () =>
    Effect.gen(function*() {
      for (const attempt of [Effect.succeed(200), Effect.succeed(503), Effect.fail("reset"), Effect.interrupt]) {
        const { exposure, told } = tracked()
        yield* Effect.exit(Effect.locally(followed(attempt, refused), currentExposure, exposure))
        // A later attempt refused with a 429 does not undo it: the first may have landed.
        yield* Effect.locally(followed(Effect.succeed(429), refused), currentExposure, exposure)
        expect(isExposed(exposure)).toBe(true)
        expect(told).toEqual([true])
      }
    }))

  it.effect("is not followed outside a run's request", () =>
    Effect.gen(function*() {
      const { exposure, told } = tracked()
      // A request's exposure around it, and a write outside any request (none set) within.
      const outside = Effect.locally(followed(Effect.succeed(200), refused), currentExposure, undefined)
      expect(yield* Effect.locally(outside, currentExposure, exposure)).toBe(200)
      expect([isExposed(exposure), told]).toEqual([false, []])
      // The same write inside the request is followed.
      yield* Effect.locally(followed(Effect.succeed(200), refused), currentExposure, exposure)
      expect([isExposed(exposure), told]).toEqual([true, [true]])
    }))
})

describe("passes", () => {
  it("lets the first occurrence of a record go now and keeps the others for later passes, in order", () => {
    const passes = makePasses<string>((row) => row.split(":")[0])
    const rows = ["a:1", "b:1", "a:2", "c:1", "a:3", "b:2", "d:1"]
    const now = rows.filter((row) => passes.admit(row, row.split(":")[0]))
    expect(now).toEqual(["a:1", "b:1", "c:1", "d:1"])
    expect(passes.next()).toEqual(["a:2", "b:2"])
    expect(passes.next()).toEqual(["a:3"])
    expect(passes.next()).toEqual([])
  })

  it("tell every record of a large run from every other, and each repeat from its first", () => {
    const seen = makeSeenIdentities()
    const ids = Array.from({ length: 200_000 }, (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`)
    expect(ids.filter((id) => seen.add(id))).toHaveLength(ids.length)
    expect(ids.filter((id) => seen.add(id))).toHaveLength(0)
    // Key identities and ids that differ only in case are other strings (identityOf lower-cases).
    expect([seen.add("k:[\"sku-1\"]"), seen.add("k:[\"SKU-1\"]"), seen.add("k:[\"sku-1\"]")]).toEqual([
      true,
      true,
      false
    ])
    expect(seen.add("")).toBe(true)
    expect(seen.add("")).toBe(false)
  })
})

/**
 * SQL Server's order of `uniqueidentifier`s as far as these ids differ: the last group (bytes
 * 10-15), then the fourth (bytes 8-9).
 */
const sqlServerKey = (id: string) => `${id.slice(24)}${id.slice(19, 23)}`

describe("the ids the engine gives created rows", () => {
  it("are stable per run and row, well-formed, and increase in SQL Server's order within a run and across runs", () => {
    const earlier = newRunId(Date.parse("2026-12-01T10:00:00Z"))
    const later = newRunId(Date.parse("2026-12-01T10:00:01Z"))
    expect(earlier).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    const a = idMaker(earlier)
    expect(a(0)).toBe(deterministicId(earlier, 0))
    const wellFormed = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
    const indexes = [0, 1, 2, 16_383, 16_384, 16_385, 1_000_000, 4_000_000_000]
    for (const i of indexes) expect(a(i)).toMatch(wellFormed)
    const keys = indexes.map((i) => sqlServerKey(a(i)))
    expect([...keys].sort()).toEqual(keys)
    expect(new Set(indexes.map(a)).size).toBe(indexes.length)
    // A later run's first row sorts after an earlier run's four-billionth.
    expect(sqlServerKey(idMaker(later)(0)) > sqlServerKey(a(4_000_000_000))).toBe(true)
    // Two runs of the same second differ in their first groups.
    const twin = newRunId(Date.parse("2026-12-01T10:00:00Z"))
    expect(idMaker(twin)(0).slice(0, 18)).not.toBe(a(0).slice(0, 18))
  })

  it("are the ids earlier versions gave, in any order of rows (a resume asks for any row's id)", () => {
    // Written by the engine before its ids were cached group by group (2026-12-06).
    const expected: ReadonlyArray<readonly [number, string]> = [
      [16_384, "83727277-bb6f-8ecb-8000-2695740c0001"],
      [0, "83727277-bb6f-8ecb-8000-2695740c0000"],
      [4_000_000_000, "83727277-bb6f-8ecb-a800-2695740fb9ac"],
      [1, "83727277-bb6f-8ecb-8001-2695740c0000"],
      [1_000_000, "83727277-bb6f-8ecb-8240-2695740c003d"],
      [16_383, "83727277-bb6f-8ecb-bfff-2695740c0000"],
      [16_384, "83727277-bb6f-8ecb-8000-2695740c0001"]
    ]
    const idOf = idMaker("01950c5a-3f00-7abc-8def-0123456789ab")
    expect(expected.map(([index]) => idOf(index))).toEqual(expected.map(([, id]) => id))
    const old = idMaker("5b0c1b1e-2f4a-4c3e-9a55-0d8a7c6f1e22")
    expect([old(70_000), old(0)]).toEqual([
      "af08088e-45d2-83a5-9565-000000011170",
      "af08088e-45d2-83a5-9565-000000000000"
    ])
  })

  it("keep the layout of run ids written before (random UUIDs), so their runs resume with the same ids", () => {
    const old = "5b0c1b1e-2f4a-4c3e-9a55-0d8a7c6f1e22"
    expect(deterministicId(old, 0)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-000000000000$/)
    expect(deterministicId(old, 255).endsWith("0000000000ff")).toBe(true)
  })
})

describe("duplicates", () => {
  it("are known by their code, whatever the status", () => {
    for (const status of [400, 409, 412, 500]) {
      expect(reasonFor(status, "0x80040237")).toBe("DuplicateKey")
      expect(
        isDuplicateKey(
          new DataverseError({
            reason: reasonFor(status, "0x80040237"),
            status,
            code: "0x80040237",
            message: "Cannot insert duplicate key."
          })
        )
      ).toBe(true)
    }
    expect(isDuplicateKey(new DataverseError({ reason: "DuplicateKey", code: "0x80040333", message: "rule" }))).toBe(
      false
    )
  })
})

const column = (
  logicalName: string,
  type: ColumnMetadata["type"],
  extra: Partial<ColumnMetadata> = {}
): ColumnMetadata => ({
  logicalName,
  type,
  typeName: undefined,
  requiredLevel: "None",
  maxLength: undefined,
  minValue: undefined,
  maxValue: undefined,
  options: undefined,
  targets: undefined,
  isPrimaryId: false,
  isValidForCreate: true,
  isValidForUpdate: true,
  ...extra
})

const widgets: TableMetadata = {
  logicalName: "dve_widget",
  entitySetName: "dve_widgets",
  primaryIdAttribute: "dve_widgetid",
  primaryNameAttribute: "dve_name",
  tableType: "Standard",
  objectTypeCode: undefined,
  columns: [
    column("dve_widgetid", "Uniqueidentifier", { isPrimaryId: true }),
    column("dve_name", "String", { maxLength: 5 }),
    column("dve_code", "String", { maxLength: 10 })
  ],
  lookups: [],
  keys: [{ logicalName: "dve_code_key", keyAttributes: ["dve_code"], status: "Active" }],
  messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
}

describe("preparing rows", () => {
  const id = "5B0C1B1E-2F4A-4C3E-9A55-0D8A7C6F1E22"
  it("gives a create its own id, or the engine's, and names a bad column", () => {
    const prepare = makePrepare({
      operation: "create",
      metadata: widgets,
      key: undefined,
      smart: false,
      idFor: (i) => `own-${i}`
    })
    expect(prepare({ dve_name: "a" }, 3)).toMatchObject({ index: 3, id: "own-3", ownId: true, ref: undefined })
    expect(prepare({ dve_widgetid: id, dve_name: "a" }, 4)).toMatchObject({ id: id.toLowerCase(), ownId: false })
    const bad = prepare({ dve_name: "too long" }, 5)
    expect(bad).toBeInstanceOf(DataverseError)
    expect((bad as DataverseError).message).toContain("dve_name")
    // An undefined value is left out of the body by JSON: nothing to check.
    expect(prepare({ dve_name: "a", dve_code: undefined }, 6)).toMatchObject({ index: 6 })
  })

  it("takes a date for a date-only column (an Edm.Date), and refuses a date and time or a Date", () => {
    const dated: TableMetadata = {
      ...widgets,
      columns: [
        ...widgets.columns,
        column("dve_madeon", "DateTime", { dateTimeBehavior: "DateOnly" }),
        column("dve_soldat", "DateTime", { dateTimeBehavior: "UserLocal" })
      ]
    }
    const prepare = makePrepare({ operation: "create", metadata: dated, key: undefined, smart: false, idFor: String })
    const problem = (row: Record<string, unknown>) => {
      const prepared = prepare({ dve_name: "a", ...row }, 0)
      return prepared instanceof DataverseError ? prepared.message : "ok"
    }
    expect(problem({ dve_madeon: "2024-02-29", dve_soldat: "2024-02-29T10:00:00Z" })).toBe("ok")
    expect(problem({ dve_madeon: "2024-02-29T00:00:00Z" })).toBe(
      `column 'dve_madeon' holds a date only: give it as "2024-02-29", got "2024-02-29T00:00:00Z"`
    )
    expect(problem({ dve_madeon: new Date("2024-02-29T00:00:00Z") })).toBe(
      `column 'dve_madeon' holds a date only: give it as text such as "2024-01-31", not a Date (which goes as a date and time, refused for this column)`
    )
    expect(problem({ dve_madeon: "2023-02-29" })).toBe(
      `column 'dve_madeon' must be an ISO date (2024-01-31), got "2023-02-29"`
    )
    expect(problem({ dve_madeon: 20240229 })).toBe(
      `column 'dve_madeon' must be an ISO date (2024-01-31), got 20240229`
    )
    expect(problem({ dve_madeon: "1752-12-31" })).toBe(
      "column 'dve_madeon' is 1752-12-31; the earliest Dataverse stores is 1753-01-01"
    )
    // A date and time column takes either form, and a Date, from 1753 on.
    expect(problem({ dve_soldat: "2024-02-29" })).toBe("ok")
    expect(problem({ dve_soldat: new Date("2024-02-29T10:00:00Z") })).toBe("ok")
    expect(problem({ dve_soldat: "1752-12-31T23:59:59" })).toBe(
      "column 'dve_soldat' is 1752-12-31T23:59:59; the earliest Dataverse stores is 1753-01-01 00:00 UTC"
    )
    expect(problem({ dve_soldat: new Date("1752-06-01T00:00:00Z") })).toBe(
      "column 'dve_soldat' is 1752-06-01T00:00:00.000Z; the earliest Dataverse stores is 1753-01-01 00:00 UTC"
    )
  })

  it("requires on create what the service does not fill in: not a choice, a yes/no or a lookup", () => {
    const parts: TableMetadata = {
      ...widgets,
      columns: [
        ...widgets.columns,
        column("dve_serial", "String", { requiredLevel: "SystemRequired" }),
        column("dve_active", "Boolean", { requiredLevel: "SystemRequired" }),
        column("dve_kind", "Picklist", { requiredLevel: "SystemRequired", options: [{ value: 1, label: "A" }] })
      ]
    }
    const prepare = makePrepare({ operation: "create", metadata: parts, key: undefined, smart: false, idFor: String })
    expect((prepare({ dve_name: "a" }, 0) as DataverseError).message).toBe("column 'dve_serial' is required")
    expect(prepare({ dve_name: "a", dve_serial: "S1" }, 1)).toMatchObject({ index: 1 })
    // Every value that does not fit, and every required column missing, in one message.
    expect((prepare({ dve_name: "abcdef", dve_code: "x".repeat(11) }, 2) as DataverseError).message).toBe(
      "column 'dve_name' is 6 characters long; the most is 5; column 'dve_code' is 11 characters long; the most is 10; column 'dve_serial' is required"
    )
  })

  it("addresses an update by its primary key or by the key columns, and refuses a row with neither", () => {
    const byId = makePrepare({ operation: "update", metadata: widgets, key: undefined, smart: false, idFor: String })
    const item = byId({ dve_widgetid: id, dve_name: "b" }, 0) as Prepared
    expect(pathOf(widgets, item)).toBe(`dve_widgets(${id.toLowerCase()})`)
    expect((byId({ dve_name: "b" }, 1) as DataverseError).message).toBe(
      "the row has no 'dve_widgetid' to name its record by (or name records by alternate-key columns: the key option, --key in the CLI)"
    )
    const byKey = makePrepare({
      operation: "update",
      metadata: widgets,
      key: ["dve_code"],
      smart: false,
      idFor: String
    })
    const keyed = byKey({ dve_code: "W-1", dve_name: "c" }, 0) as Prepared
    expect([pathOf(widgets, keyed), keyed.id]).toEqual(["dve_widgets(dve_code='W-1')", undefined])
    expect((byKey({ dve_name: "c" }, 1) as DataverseError).message).toBe("the key column 'dve_code' has no value")
    // An empty text names no record either (as an empty CSV field, which is left out).
    expect((byKey({ dve_code: "", dve_name: "c" }, 2) as DataverseError).message).toBe(
      "the key column 'dve_code' has no value"
    )
  })

  it("tell a record by its lower-cased id or key values, and give a record the engine creates none", () => {
    const update = makePrepare({ operation: "update", metadata: widgets, key: undefined, smart: false, idFor: String })
    const byId = update({ dve_widgetid: id, dve_name: "b" }, 0) as Prepared
    expect(recordIdentity("update", byId, undefined)).toBe(id.toLowerCase())
    const byKey = makePrepare({
      operation: "upsert",
      metadata: widgets,
      key: ["dve_code"],
      smart: false,
      idFor: String
    })
    const keyed = byKey({ dve_code: "W-1", dve_name: "c" }, 0) as Prepared
    expect(recordIdentity("upsert", keyed, ["dve_code"])).toBe("k:[\"w-1\"]")
    const create = makePrepare({ operation: "create", metadata: widgets, key: undefined, smart: false, idFor: String })
    const own = create({ dve_widgetid: id, dve_name: "a" }, 0) as Prepared
    const engines = create({ dve_name: "a" }, 1) as Prepared
    // A create is its own record by id, even with key columns given; a new id names no earlier record.
    expect([recordIdentity("create", own, ["dve_code"]), recordIdentity("create", engines, undefined)]).toEqual([
      id.toLowerCase(),
      undefined
    ])
  })

  it("writes a row without read-back annotations, with the engine's id", () => {
    const item = { index: 0, row: { dve_name: "a", "@odata.etag": "W/\"1\"" }, ref: undefined, id: "x", ownId: true }
    expect(bodyOf(item, "dve_widgetid")).toEqual({ dve_name: "a", dve_widgetid: "x" })
  })

  it("drops every annotation a row read back carries, formatted values included, before it validates", () => {
    const prepare = makePrepare({ operation: "create", metadata: widgets, key: undefined, smart: false, idFor: String })
    const item = prepare({
      dve_name: "a",
      "@odata.etag": "W/\"1\"",
      "dve_name@OData.Community.Display.V1.FormattedValue": "a"
    }, 0) as Prepared
    expect(item.row).toEqual({ dve_name: "a" })
  })
})

describe("the rows a bulk function takes", () => {
  it.effect("an array stays an array (its length known), an iterable stays lazy, a Stream maps", () =>
    Effect.gen(function*() {
      const double = (n: number) => n * 2
      const array = mapInput([1, 2, 3], double)
      expect(array).toEqual([2, 4, 6])
      let read = 0
      const lazy = mapInput(
        {
          *[Symbol.iterator]() {
            for (const n of [1, 2]) {
              read++
              yield n
            }
          }
        },
        double
      )
      expect(read).toBe(0)
      expect(isStream(lazy) ? [] : [...lazy]).toEqual([2, 4])
      const stream = mapInput(Stream.make(1, 2), double)
      expect(isStream(stream)).toBe(true)
      expect(yield* Stream.runCollect(toStream(stream)).pipe(Effect.map((chunk) => [...chunk]))).toEqual([2, 4])
    }))
})

describe("the stream of an input", () => {
  const chunksOf = <A>(stream: Stream.Stream<A>) =>
    Stream.runCollect(Stream.mapChunks(stream, (chunk) => Chunk.of(Chunk.toReadonlyArray(chunk)))).pipe(
      Effect.map((chunks) => [...chunks])
    )

  it.effect("goes in chunks of at most the size asked, every row once and in order, from an array or an iterable", () =>
    Effect.gen(function*() {
      const rows = Array.from({ length: 10 }, (_, i) => i)
      expect(yield* chunksOf(toStream(rows, 4))).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
      expect(yield* chunksOf(toStream(new Set(rows), 4))).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
      expect(yield* chunksOf(toStream([], 4))).toEqual([])
      // A stream keeps its own chunks.
      expect(yield* chunksOf(toStream(Stream.fromIterable(rows), 4))).toEqual([rows])
    }))
})

describe("elastic partial failures", () => {
  const items = [0, 1, 2].map((index) => ({
    index: index + 10,
    row: {},
    ref: undefined,
    id: `id-${index}`,
    ownId: true
  }))
  const refusal = (details: unknown) =>
    new DataverseError({
      reason: "Validation",
      status: 400,
      code: "0x80044331",
      message: "first failure",
      details: { "@Microsoft.PowerApps.CDS.ErrorDetails.BulkApiErrorDetails": details }
    })

  it("land every target the details do not list, and give each listed one its own error", () => {
    const outcomes = elasticOutcomes(
      "create",
      items,
      refusal(JSON.stringify([
        {
          RequestIndex: 1,
          StatusCode: 412,
          ErrorCode: "0x80040237",
          Message: "A record with matching key values already exists."
        }
      ]))
    )
    expect(outcomes.map((o) => o.status)).toEqual(["created", "failed", "created"])
    const failed = outcomes[1]!
    expect(failed.status === "failed" && [failed.index, failed.error.reason, failed.error.code]).toEqual([
      11,
      "DuplicateKey",
      "0x80040237"
    ])
  })

  it("fail the whole chunk when the details are missing or unreadable", () => {
    expect(elasticOutcomes("create", items, refusal("not json")).every((o) => o.status === "failed")).toBe(true)
    expect(elasticOutcomes("create", items, refusal(undefined)).every((o) => o.status === "failed")).toBe(true)
  })
})

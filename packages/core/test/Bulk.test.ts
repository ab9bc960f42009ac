import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { expect, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import type { ChunkSizer } from "../src/internal/bulk/chunking.js"
import { planRun } from "../src/internal/bulk/plan.js"
import type { Prepared } from "../src/internal/bulk/prepare.js"
import { sendMultiple } from "../src/internal/bulk/sendMultiple.js"
import * as RetryPolicy from "../src/RetryPolicy.js"

const clientOf = (options: Partial<DataverseClient.ClientOptions> = {}) =>
  Layer.unwrapEffect(
    Effect.map(Emulator.Emulator, ({ info }) =>
      DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken), ...options }))
  )
const Live = clientOf().pipe(Layer.provideMerge(Emulator.layer({ identity: false })))
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`
const collect = <E, R>(stream: Stream.Stream<Bulk.RowOutcome, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.toReadonlyArray(chunk))

layer(Live, { excludeTestServices: true })("the bulk engine", (it) => {
  it.effect("lands every good row of a chunk the service refused, and names each bad one", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", [{ contactid: id(5), lastname: "Taken" }])
      // Row 2 reuses an existing id: valid for the client, refused by the service, failing its chunk.
      const rows = [1, 2, 3, 4].map((n) => ({ contactid: id(n === 2 ? 5 : n), lastname: `Row ${n}` }))
      const outcomes = yield* collect(Bulk.createMany("contact", rows, { chunkSize: 10, concurrency: 1 }))
      expect(outcomes.map((o) => o.status)).toEqual(["created", "failed", "created", "created"])
      const failed = outcomes[1]!
      expect(failed.status === "failed" && [failed.error.reason, failed.error.code]).toEqual([
        "DuplicateKey",
        "0x80040237"
      ])
      expect(emulator.store.table("contact")!.size).toBe(4)
    }))

  it.effect("searches a refused chunk larger than the refusals make best in parts through the message, and only a refused part by $batch", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const told: Array<string> = []
      // A sizer for which 100 rows are best now: what the refusals of the run made it.
      const sizer: ChunkSizer = {
        adaptive: true,
        current: () => 100,
        observe: (rows, ms) => told.push(`observe ${rows} ${ms}`),
        shrink: () => {},
        refusing: () => told.push("refusing"),
        settled: () => told.push("settled"),
        searched: (rows, bad) => told.push(`searched ${rows} ${bad}`)
      }
      const plan = { ...(yield* planRun("create", "contact", {})), sizer }
      const missing = "/accounts(00000000-0000-4000-8000-00000000dead)"
      const items = Array.from({ length: 1000 }, (_, i): Prepared => ({
        index: i,
        row: i === 437
          ? { lastname: `Bad ${i}`, "parentcustomerid_account@odata.bind": missing }
          : { lastname: `Row ${i}` },
        ref: undefined,
        id: id(10_000 + i),
        ownId: true
      }))
      const before = emulator.counters.requests
      const outcomes = yield* sendMultiple(plan, "create", items)
      // The refused request, ten parts of 100, and one `$batch` of the refused part.
      expect(emulator.counters.requests - before).toBe(12)
      expect(outcomes.filter((o) => o.status === "created").length).toBe(999)
      const failed = outcomes.filter((o) => o.status === "failed")
      expect(failed.map((o) => o.index)).toEqual([437])
      expect(failed[0]!.status === "failed" && failed[0]!.error.code).toBe("0x80040217")
      expect(emulator.store.table("contact")!.size).toBe(999)
      // The chunk's refusal counts until the parts go, which tell of themselves.
      expect(told).toEqual([
        "refusing",
        "settled",
        ...Array.from({ length: 4 }, () => "observe 100 undefined"),
        "refusing",
        "searched 100 1",
        "settled",
        ...Array.from({ length: 5 }, () => "observe 100 undefined")
      ])
      // A chunk under twice the best size goes to `$batch` whole, as the wire reference advises.
      told.length = 0
      const small = items.slice(400, 550).map((item) => ({ ...item, id: id(20_000 + item.index) }))
      const afterFirst = emulator.counters.requests
      const smallOutcomes = yield* sendMultiple(plan, "create", small)
      expect(emulator.counters.requests - afterFirst).toBe(2)
      expect(smallOutcomes.filter((o) => o.status === "failed").map((o) => o.index)).toEqual([437])
      expect(told).toEqual(["refusing", "searched 150 1", "settled"])
    }))

  it.effect("updates, upserts by alternate key and deletes, reporting each row", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", [{ contactid: id(1), lastname: "One" }, { contactid: id(2), lastname: "Two" }])
      const updated = yield* collect(
        Bulk.updateMany("contact", [{ contactid: id(1), lastname: "Uno" }, { contactid: id(9), lastname: "Nobody" }])
      )
      expect(updated.map((o) => o.status)).toEqual(["updated", "failed"])
      expect(emulator.store.table("contact")!.get(id(1))!.values.lastname).toBe("Uno")
      expect(emulator.store.table("contact")!.get(id(2))!.values.lastname).toBe("Two")

      const upserted = yield* collect(
        Bulk.upsertMany(
          "dve_product",
          [{ dve_sku: "S-1", dve_name: "First" }, { dve_sku: "S-2", dve_name: "Second" }],
          { key: ["dve_sku"] }
        )
      )
      expect(upserted.map((o) => o.status)).toEqual(["upserted", "upserted"])
      yield* collect(
        Bulk.upsertMany("dve_product", [{ dve_sku: "S-1", dve_name: "First, renamed" }], { key: ["dve_sku"] })
      )
      expect(emulator.store.table("dve_product")!.scan().map((r) => [r.values.dve_sku, r.values.dve_name])).toEqual([
        ["S-1", "First, renamed"],
        ["S-2", "Second"]
      ])

      const deleted = yield* collect(Bulk.deleteMany("contact", [{ contactid: id(1) }, { contactid: id(9) }]))
      // A record already gone counts as deleted: deletes are idempotent. It is said to be absent.
      expect(deleted.map((o) => [o.status, "absent" in o ? o.absent : undefined])).toEqual([
        ["deleted", undefined],
        ["deleted", true]
      ])
      expect(emulator.store.table("contact")!.ids()).toEqual([id(2)])
      for (const strategy of ["batch", "single"] as const) {
        const summary = yield* Bulk.execute("delete", "contact", [{ contactid: id(2) }, { contactid: id(8) }], {
          strategy
        })
        expect(summary).toMatchObject({ deleted: 2, absent: strategy === "batch" ? 1 : 2, failed: 0 })
      }
      // A delete's id is checked before sending, as an update's is.
      const notAnId = yield* collect(Bulk.deleteMany("contact", [{ contactid: "abc", lastname: 7 }]))
      expect(notAnId.map((o) => o.status === "failed" && [o.error.reason, o.error.message])).toEqual([
        ["Validation", `column 'contactid' must be a GUID, got "abc"`]
      ])
      // By key, the key columns name the record: an id the delete does not use is not checked.
      const byKey = yield* collect(
        Bulk.deleteMany("dve_product", [{ dve_sku: "S-2", dve_productid: "not-used" }], { key: ["dve_sku"] })
      )
      expect(byKey.map((o) => o.status)).toEqual(["deleted"])
      // A bigint where a number belongs fails its row, naming it, instead of the run.
      const big = yield* collect(Bulk.createMany("contact", [{ lastname: "Big", creditlimit: 10n }]))
      expect(big.map((o) => o.status === "failed" && o.error.message)).toEqual([
        "column 'creditlimit' must be a number, got 10"
      ])
    }))

  it.effect("writes records read back with their annotations, through every strategy", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", [1, 2, 3].map((n) => ({ contactid: id(n), lastname: `L${n}` })))
      // As a query with annotations returns them: an etag and formatted values.
      const readBack = (n: number) => ({
        "@odata.etag": "W/\"1\"",
        contactid: id(n),
        lastname: `Read ${n}`,
        "lastname@OData.Community.Display.V1.FormattedValue": `L${n}`,
        "statuscode@OData.Community.Display.V1.FormattedValue": "Active"
      })
      for (const strategy of ["multiple", "batch", "single"] as const) {
        const outcomes = yield* collect(Bulk.updateMany("contact", [1, 2, 3].map(readBack), { strategy }))
        expect(outcomes.map((o) => o.status)).toEqual(["updated", "updated", "updated"])
      }
      const stored = emulator.store.table("contact")!.scan().map((r) => r.values.lastname)
      expect(stored).toEqual(["Read 1", "Read 2", "Read 3"])
    }))

  it.effect("never puts one record in two requests: later occurrences run in a later pass and win", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", [{ contactid: id(1), lastname: "Start" }])
      // One record in three spellings of its id (braces, upper case): still one record.
      const rows = [
        { contactid: id(1), lastname: "first" },
        { contactid: `{${id(1).toUpperCase()}}`, lastname: "second" },
        { contactid: `{${id(1)}}`, lastname: "third" }
      ]
      const outcomes = yield* collect(Bulk.updateMany("contact", rows, { chunkSize: 10, concurrency: 4 }))
      expect(outcomes.map((o) => [o.index, o.status])).toEqual([[0, "updated"], [1, "updated"], [2, "updated"]])
      expect(outcomes.map((o) => o.status === "updated" && o.id)).toEqual([id(1), id(1), id(1)])
      expect(emulator.store.table("contact")!.get(id(1))!.values.lastname).toBe("third")
    }))

  it.effect("reads a stream in small chunks: repeats across chunks wait their pass, bad rows fail alone, the last valid occurrence wins", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("contact", Array.from({ length: 50 }, (_, n) => ({ contactid: id(n + 1), lastname: "Start" })))
      // 300 rows over 50 records, six times each, in 3-row chunks; every 7th row too long, every
      // 11th already refused by its reader.
      const rows: Array<Bulk.RowInput> = Array.from({ length: 300 }, (_, i) =>
        i % 11 === 10
          ? new Bulk.InvalidRow({ message: `row ${i} unreadable` })
          : { contactid: id((i % 50) + 1), lastname: i % 7 === 6 ? "x".repeat(51) : `v${i}` })
      const input = Stream.rechunk(Stream.fromIterable(rows), 3)
      const outcomes = yield* collect(Bulk.updateMany("contact", input, { chunkSize: 20, concurrency: 4 }))
      expect(outcomes.map((o) => o.index).sort((a, b) => a - b)).toEqual(rows.map((_, i) => i))
      const bad = (i: number) => i % 11 === 10 || i % 7 === 6
      expect(outcomes.filter((o) => o.status === "failed").map((o) => o.index).sort((a, b) => a - b)).toEqual(
        rows.map((_, i) => i).filter(bad)
      )
      for (let n = 0; n < 50; n++) {
        const last = Math.max(...rows.map((_, i) => i).filter((i) => i % 50 === n && !bad(i)))
        expect(emulator.store.table("contact")!.get(id(n + 1))!.values.lastname).toBe(`v${last}`)
      }
    }))

  it.effect("checks rows against the table's metadata before sending", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      // The table's metadata and the parallelism hint, read once per connection: read now, so
      // that what follows counts only writes, whichever test ran first.
      yield* Bulk.dryRun("create", "contact", [])
      const requests = emulator.counters.requests
      const outcomes = yield* collect(
        Bulk.createMany("contact", [
          { lastname: "x".repeat(51) },
          { lastname: "ok", nosuch: 1 },
          { lastname: "ok", gendercode: 9 },
          { lastname: "ok", creditlimit: "lots" },
          { lastname: "ok", birthdate: "0001-01-01" },
          { lastname: "ok", birthdate: "1752-12-31T23:59:59Z" },
          // Without an offset a date-time is UTC, whatever this machine's time zone.
          { lastname: "ok", birthdate: "1752-12-31T23:59:59" },
          // Not a real date, and not the Web API's form: Date.parse would read both.
          { lastname: "ok", birthdate: "2024-02-30" },
          { lastname: "ok", birthdate: "06/01/2024" },
          // birthdate is date-only (an Edm.Date): the service refuses a date and time for it.
          { lastname: "ok", birthdate: "1990-05-01T10:00:00Z" },
          { lastname: "ok", creditlimit: Number.NaN },
          { lastname: "ok", birthdate: new Date("1752-06-01T00:00:00Z") },
          // A lookup written by its column's name, or as it reads back.
          { lastname: "ok", "parentcustomerid@odata.bind": "/accounts(00000000-0000-0000-0000-000000000001)" },
          { lastname: "ok", _parentcustomerid_value: "00000000-0000-0000-0000-000000000001" }
        ])
      )
      const messages = outcomes.map((o) => (o.status === "failed" ? o.error.message : o.status))
      expect(messages).toEqual([
        "column 'lastname' is 51 characters long; the most is 50",
        "column 'nosuch' does not exist in contact",
        "column 'gendercode' is 9, not one of the options 1 (Male), 2 (Female)",
        `column 'creditlimit' must be a number, got "lots"`,
        "column 'birthdate' is 0001-01-01; the earliest Dataverse stores is 1753-01-01",
        "column 'birthdate' is 1752-12-31T23:59:59Z; the earliest Dataverse stores is 1753-01-01",
        "column 'birthdate' is 1752-12-31T23:59:59; the earliest Dataverse stores is 1753-01-01",
        `column 'birthdate' must be an ISO date (2024-01-31), got "2024-02-30"`,
        `column 'birthdate' must be an ISO date (2024-01-31), got "06/01/2024"`,
        `column 'birthdate' holds a date only: give it as "1990-05-01", got "1990-05-01T10:00:00Z"`,
        "column 'creditlimit' must be a number, got NaN",
        `column 'birthdate' holds a date only: give it as text such as "2024-01-31", not a Date (which goes as a date and time, refused for this column)`,
        "'parentcustomerid@odata.bind' names no navigation property of contact; the lookup 'parentcustomerid' is bound through parentcustomerid_account@odata.bind or parentcustomerid_contact@odata.bind",
        `column '_parentcustomerid_value' is how the lookup 'parentcustomerid' reads back; write it as parentcustomerid_account@odata.bind or parentcustomerid_contact@odata.bind with "/<entity set>(<id>)"`
      ])
      expect(emulator.counters.requests).toBe(requests)
      // A date-only column's date is stored as written, no time zone in between.
      const dated = yield* collect(Bulk.createMany("contact", [{ lastname: "Dated", birthdate: "1990-05-01" }]))
      expect(dated.map((o) => o.status)).toEqual(["created"])
      expect(emulator.store.table("contact")!.scan()[0]!.values.birthdate).toBe("1990-05-01")
    }))

  it.effect("requires a create, and only a create, to give the system-required columns", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const outcomes = yield* collect(
        Bulk.createMany("dve_product", [{ dve_sku: "A" }, { dve_name: "Named", dve_sku: "B" }, { dve_sku: "C" }])
      )
      expect(outcomes.map((o) => (o.status === "failed" ? o.error.message : o.status))).toEqual([
        "column 'dve_name' is required",
        "created",
        "column 'dve_name' is required"
      ])
      const products = emulator.store.table("dve_product")!
      expect(products.scan().map((r) => r.values.dve_sku)).toEqual(["B"])
      const [created] = products.ids()
      const updated = yield* collect(Bulk.updateMany("dve_product", [{ dve_productid: created!, dve_sku: "B2" }]))
      expect(updated.map((o) => o.status)).toEqual(["updated"])
      expect(products.get(created!)!.values).toMatchObject({ dve_name: "Named", dve_sku: "B2" })
    }))

  it.effect("reads elastic partial failures: good targets land, failed ones carry their own error", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      emulator.seed("dve_reading", [{ dve_readingid: id(2), partitionid: "p", dve_value: 1 }])
      const rows = [1, 2, 3].map((n) => ({ dve_readingid: id(n), partitionid: "p", dve_value: n }))
      const outcomes = yield* collect(Bulk.createMany("dve_reading", rows, { chunkSize: 10 }))
      expect(outcomes.map((o) => o.status)).toEqual(["created", "failed", "created"])
      const failed = outcomes[1]!
      expect(failed.status === "failed" && failed.error.status).toBe(412)
      expect(emulator.store.table("dve_reading")!.size).toBe(3)
    }))

  it.effect("names each elastic record's partition in every strategy's updates and deletes", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      // A record created with a partitionid is found only by a request that names it (wire
      // reference §8b): by id alone, the service finds none.
      for (const strategy of ["multiple", "batch", "single"] as const) {
        emulator.reset()
        emulator.seed(
          "dve_reading",
          [1, 2, 3, 4].map((n) => ({ dve_readingid: id(n), partitionid: `p${n % 2}`, dve_value: 0 }))
        )
        const readings = emulator.store.table("dve_reading")!
        const updated = yield* collect(
          Bulk.updateMany(
            "dve_reading",
            [1, 2, 3, 4].map((n) => ({ dve_readingid: id(n), partitionid: `p${n % 2}`, dve_value: n })),
            { strategy }
          )
        )
        expect(updated.map((o) => o.status), strategy).toEqual(["updated", "updated", "updated", "updated"])
        expect(readings.scan().map((r) => r.values.dve_value), strategy).toEqual([1, 2, 3, 4])
        // Smart mode sends only the changed columns, and the partition with them.
        const smart = yield* collect(
          Bulk.updateMany(
            "dve_reading",
            [1, 2, 5].map((n) => ({ dve_readingid: id(n), partitionid: `p${n % 2}`, dve_value: n === 1 ? 1 : 10 })),
            { strategy, smart: true }
          )
        )
        expect(smart.map((o) => o.status), strategy).toEqual(["unchanged", "updated", "created"])
        expect(readings.scan().map((r) => [r.values.partitionid, r.values.dve_value]), strategy).toEqual([
          ["p1", 1],
          ["p0", 10],
          ["p1", 3],
          ["p0", 4],
          ["p1", 10]
        ])
        const deleted = yield* collect(
          Bulk.deleteMany(
            "dve_reading",
            [1, 2].map((n) => ({ dve_readingid: id(n), partitionid: `p${n % 2}` })),
            { strategy }
          )
        )
        expect(deleted.map((o) => o.status), strategy).toEqual(["deleted", "deleted"])
        expect(readings.ids(), strategy).toEqual([id(3), id(4), id(5)])
      }
    }))
})

layer(
  clientOf({ retryPolicy: RetryPolicy.make({ baseDelay: "1 millis" }) }).pipe(
    Layer.provideMerge(
      Emulator.layer({
        identity: false,
        profile: { ...Model.fast, requestsPerWindow: 3, windowSeconds: 1, retryAfterPenaltySeconds: 1 }
      })
    )
  ),
  { excludeTestServices: true }
)("throttling", (it) => {
  it.effect("waits out the Retry-After instead of pushing: a sequential run is refused at most once per overflow", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      let seen = 0
      const rows = Array.from({ length: 12 }, (_, i) => ({ lastname: `T${i}` }))
      // Six requests, three allowed per second (the table's metadata requests share the window):
      // a client that pushed on after a 429 would collect one refusal after another.
      const outcomes = yield* collect(
        Bulk.createMany("contact", rows, { chunkSize: 2, concurrency: 1, onProgress: (p) => (seen = p.throttled) })
      )
      expect(outcomes.every((o) => o.status === "created")).toBe(true)
      expect(emulator.store.table("contact")!.size).toBe(12)
      expect(seen).toBeGreaterThanOrEqual(1)
      expect(seen).toBeLessThanOrEqual(2)
    }))

  it.effect("lands every row with concurrent workers under throttling", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const rows = Array.from({ length: 12 }, (_, i) => ({ lastname: `C${i}` }))
      const outcomes = yield* collect(Bulk.createMany("contact", rows, { chunkSize: 2, concurrency: 4 }))
      expect(outcomes.every((o) => o.status === "created")).toBe(true)
      expect(emulator.store.table("contact")!.size).toBe(12)
    }))
})

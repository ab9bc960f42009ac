import * as Emulator from "@dv-effect/emulator/Emulator"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import { parseBind } from "../src/internal/odata.js"
import * as Records from "../src/Records.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import { frontDoor } from "./support/frontDoor.js"

const client = Layer.unwrapEffect(
  Effect.map(Emulator.Emulator, ({ info }) =>
    DataverseClient.layerNode({
      url: info.url,
      credentials: Credentials.staticToken(info.accessToken),
      retryPolicy: RetryPolicy.make({ baseDelay: "1 millis", maxRetries: 20 })
    }))
)
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`
const upper = (guid: string) => guid.toUpperCase()

describe("parseBind", () => {
  it("reads binds by id and by alternate key, encoded or not", () => {
    expect(parseBind(`/accounts(${upper(id(1))})`)).toEqual({ entitySet: "accounts", id: id(1) })
    expect(parseBind(`https://org.example/api/data/v9.2/accounts(${id(1)})`)).toEqual({
      entitySet: "accounts",
      id: id(1)
    })
    expect(parseBind("/accounts(accountnumber='A%202')")).toEqual({
      entitySet: "accounts",
      key: [["accountnumber", { quoted: true, text: "A 2" }]]
    })
    expect(parseBind("accounts(a='O''Hara, Ltd',b=42)")).toEqual({
      entitySet: "accounts",
      key: [["a", { quoted: true, text: "O'Hara, Ltd" }], ["b", { quoted: false, text: "42" }]]
    })
    expect(parseBind("/accounts(not-a-guid)")).toBeUndefined()
    expect(parseBind("/accounts(a='open)")).toBeUndefined()
    expect(parseBind("accounts")).toBeUndefined()
  })
})

layer(client.pipe(Layer.provideMerge(Emulator.layer({ identity: false }))), { excludeTestServices: true })(
  "smart mode and lookups",
  (it) => {
    /** Accounts A-1 (id 1), "A 2" (id 2) and A-3 (id 3), a contact with the id of account 1 (id 1). */
    const seed = (emulator: Emulator.RunningEmulator) => {
      emulator.reset()
      emulator.seed("account", [
        { accountid: id(1), name: "One", accountnumber: "A-1" },
        { accountid: id(2), name: "Two", accountnumber: "A 2" },
        { accountid: id(3), name: "Three", accountnumber: "A-3" }
      ])
      emulator.seed("contact", [{ contactid: id(1), lastname: "Twin of account one" }])
    }
    const supplierOf = (emulator: Emulator.RunningEmulator, sku: string) => {
      const record = emulator.store.table("dve_product")!.scan().find((r) => r.values.dve_sku === sku)
      return record?.values.dve_supplierid as { table: string; id: string } | null | undefined
    }

    it.effect("sees every row of an identical re-run unchanged, whatever form its lookups take", () =>
      Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        seed(emulator)
        const bindByKey = yield* Records.lookup("dve_product", "dve_supplierid", "account", { accountnumber: "A 2" })
        const products = [
          { dve_sku: "P1", dve_name: "By id", "dve_supplierid@odata.bind": `/accounts(${upper(id(1))})` },
          { dve_sku: "P2", dve_name: "By key", "dve_supplierid@odata.bind": "/accounts(accountnumber='A-1')" },
          // Encoded as `Records.bind` writes it: `/accounts(accountnumber='A%202')`.
          { dve_sku: "P3", dve_name: "By encoded key", ...bindByKey },
          {
            dve_sku: "P4",
            dve_name: "By key, other case",
            "dve_supplierid@odata.bind": "/accounts(accountnumber='a-3')"
          },
          {
            dve_sku: "P5",
            dve_name: "By primary key column",
            "dve_supplierid@odata.bind": `/accounts(accountid=${id(3)})`
          },
          { dve_sku: "P6", dve_name: "None", "dve_supplierid@odata.bind": null }
        ]
        const contacts = [
          // The polymorphic lookup by id, by key, and to the other table.
          { contactid: id(11), lastname: "A", "parentcustomerid_account@odata.bind": `/accounts(${id(2)})` },
          { contactid: id(12), lastname: "B", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')" },
          { contactid: id(13), lastname: "C", "parentcustomerid_contact@odata.bind": `/contacts(${id(1)})` }
        ]
        const first = yield* Bulk.execute("upsert", "dve_product", products, { key: ["dve_sku"], smart: true })
        expect(first).toMatchObject({ created: 6, failed: 0 })
        expect(yield* Bulk.execute("upsert", "contact", contacts, { smart: true })).toMatchObject({
          created: 3,
          failed: 0
        })
        expect(supplierOf(emulator, "P3")).toEqual({ table: "account", id: id(2) })

        const written = emulator.counters.recordsWritten
        const again = yield* Bulk.execute("upsert", "dve_product", products, { key: ["dve_sku"], smart: true })
        expect(again).toMatchObject({ unchanged: 6, updated: 0, created: 0, failed: 0 })
        const againContacts = yield* Bulk.execute("upsert", "contact", contacts, { smart: true })
        expect(againContacts).toMatchObject({ unchanged: 3, updated: 0, created: 0, failed: 0 })
        expect(emulator.counters.recordsWritten).toBe(written)
      }))

    it.effect("updates exactly the row whose lookup points elsewhere, sending its bind as given", () =>
      Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        seed(emulator)
        const products = [
          { dve_sku: "P1", dve_name: "One", "dve_supplierid@odata.bind": "/accounts(accountnumber='A-1')" },
          { dve_sku: "P2", dve_name: "Two", "dve_supplierid@odata.bind": "/accounts(accountnumber='A-1')" },
          { dve_sku: "P3", dve_name: "Three", "dve_supplierid@odata.bind": `/accounts(${id(1)})` }
        ]
        yield* Bulk.execute("upsert", "dve_product", products, { key: ["dve_sku"], smart: true })
        const changed = [
          products[0]!,
          { ...products[1]!, "dve_supplierid@odata.bind": "/accounts(accountnumber='A-3')" },
          products[2]!
        ]
        const written = emulator.counters.recordsWritten
        const outcomes = Chunk.toReadonlyArray(
          yield* Stream.runCollect(Bulk.upsertMany("dve_product", changed, { key: ["dve_sku"], smart: true }))
        )
        expect(outcomes.map((o) => o.status)).toEqual(["unchanged", "updated", "unchanged"])
        expect(emulator.counters.recordsWritten).toBe(written + 1)
        expect(supplierOf(emulator, "P1")).toEqual({ table: "account", id: id(1) })
        expect(supplierOf(emulator, "P2")).toEqual({ table: "account", id: id(3) })

        // The same id in another table of a polymorphic lookup is a change (the service names the table).
        yield* Bulk.execute("create", "contact", [
          { contactid: id(11), lastname: "A", "parentcustomerid_account@odata.bind": `/accounts(${id(1)})` }
        ])
        const moved = yield* Bulk.execute("upsert", "contact", [
          { contactid: id(11), lastname: "A", "parentcustomerid_contact@odata.bind": `/contacts(${id(1)})` }
        ], { smart: true })
        expect(moved).toMatchObject({ updated: 1, unchanged: 0 })
        expect(emulator.store.table("contact")!.get(id(11))!.values.parentcustomerid).toEqual({
          table: "contact",
          id: id(1)
        })
      }))

    it.effect("lets a row whose key names no record go, to fail or be created as without smart mode", () =>
      Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        seed(emulator)
        yield* Bulk.execute("create", "dve_product", [
          { dve_sku: "P1", dve_name: "One", "dve_supplierid@odata.bind": "/accounts(accountnumber='A-1')" }
        ])
        const outcomes = Chunk.toReadonlyArray(
          yield* Stream.runCollect(Bulk.upsertMany("dve_product", [
            { dve_sku: "P1", dve_name: "One", "dve_supplierid@odata.bind": "/accounts(accountnumber='NOPE')" },
            { dve_sku: "P2", dve_name: "Two", "dve_supplierid@odata.bind": "/accounts(accountnumber='NOPE')" }
          ], { key: ["dve_sku"], smart: true }))
        )
        expect(outcomes.map((o) => o.status)).toEqual(["failed", "failed"])
        // What the service said, not a verdict of smart mode.
        for (const outcome of outcomes) {
          if (outcome.status === "failed") expect(outcome.error.message).toContain("does not exist in account")
        }
        expect(supplierOf(emulator, "P1")).toEqual({ table: "account", id: id(1) })
      }))

    it.effect("knows a record by its key values as each column compares them, not as the row spells them", () =>
      Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        seed(emulator)
        emulator.seed("dve_product", [
          { dve_name: "Widget", dve_launchedon: "2024-05-01T10:00:00Z", dve_quantity: 7, dve_sku: "W-1" }
        ])
        // The same date-time without an offset (UTC), a number as text: the record is found, and
        // the row is unchanged; by one key column (In) and by two (a filter of ands) alike.
        for (const key of [["dve_launchedon"], ["dve_name", "dve_launchedon"], ["dve_quantity", "dve_launchedon"]]) {
          const summary = yield* Bulk.execute("upsert", "dve_product", [
            { dve_name: "Widget", dve_launchedon: "2024-05-01T10:00:00", dve_quantity: 7 }
          ], { key, smart: true })
          expect([summary.unchanged, summary.created], key.join(",")).toEqual([1, 0])
        }
        expect(emulator.store.table("dve_product")!.scan()).toHaveLength(1)
      }))

    it.effect("fails a row whose key values match several records, and changes none of them", () =>
      Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        seed(emulator)
        emulator.seed("dve_product", [
          { dve_name: "Gamma", dve_sku: "G-1", dve_quantity: 1 },
          { dve_name: "Gamma", dve_sku: "G-2", dve_quantity: 1 },
          { dve_name: "Delta", dve_sku: "D-1", dve_quantity: 1 }
        ])
        // dve_name is no alternate key: smart mode may look records up by it, but not guess.
        const outcomes = Chunk.toReadonlyArray(
          yield* Stream.runCollect(Bulk.upsertMany("dve_product", [
            { dve_name: "Gamma", dve_quantity: 9 },
            { dve_name: "Delta", dve_quantity: 9 }
          ], { key: ["dve_name"], smart: true }))
        )
        expect(outcomes.map((o) => o.status)).toEqual(["failed", "updated"])
        expect(outcomes[0]!.status === "failed" && outcomes[0]!.error.message).toBe(
          "its dve_name value matches 2 records of dve_product: smart mode cannot tell which to change (name records by a key that is unique)"
        )
        const quantities = emulator.store.table("dve_product")!.scan().map((r) =>
          `${r.values.dve_sku} ${r.values.dve_quantity}`
        )
        expect(quantities.sort()).toEqual(["D-1 9", "G-1 1", "G-2 1"])
      }))

    it.effect("looks each key up once a run, one query per target table and chunk", () =>
      Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        seed(emulator)
        const rows = Array.from({ length: 200 }, (_, i) => ({
          dve_sku: `S${i}`,
          dve_name: `N${i}`,
          "dve_supplierid@odata.bind": `/accounts(accountnumber='${i % 2 === 0 ? "A-1" : "A-3"}')`
        }))
        yield* Bulk.execute("create", "dve_product", rows)
        const requests = emulator.counters.requests
        const written = emulator.counters.recordsWritten
        const summary = yield* Bulk.execute("upsert", "dve_product", rows, {
          key: ["dve_sku"],
          smart: true,
          chunkSize: 50,
          concurrency: 1
        })
        expect(summary).toMatchObject({ unchanged: 200, failed: 0 })
        expect(emulator.counters.recordsWritten).toBe(written)
        // Four chunks: four queries of the products, and one of the accounts (then cached).
        expect(emulator.counters.requests - requests).toBe(5)
      }))

    it.effect("looks up 1,000 ids in three GETs, the URLs within the service's 32 KB", () =>
      Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        emulator.reset()
        const rows = Array.from({ length: 1000 }, (_, i) => ({ contactid: id(i), lastname: `L${i}` }))
        emulator.seed("contact", rows.slice(0, 500))
        const requests = emulator.counters.requests
        const summary = yield* Bulk.execute("upsert", "contact", rows, { smart: true, chunkSize: 1000 })
        expect(summary).toMatchObject({ unchanged: 500, created: 500, failed: 0 })
        // Three lookups of about 17 KB URLs (Node's default would refuse past 16 KB), one write.
        expect(emulator.counters.requests - requests).toBe(4)
      }))
  }
)

layer(client.pipe(Layer.provideMerge(Emulator.layer({ identity: false }))), { excludeTestServices: true })(
  "lookups behind a shorter URL limit",
  (it) => {
    it.effect("split a lookup refused as too long (414) until it passes, and lose no row", () =>
      Effect.scoped(Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        emulator.reset()
        const rows = Array.from({ length: 300 }, (_, i) => ({ contactid: id(i), lastname: `L${i}` }))
        emulator.seed("contact", rows.slice(0, 150))
        const lookups: Array<{ readonly length: number; readonly refused: boolean }> = []
        const proxy = yield* frontDoor(emulator.info.url, {
          maxUrl: 2000,
          seen: (request) => {
            const url = request.url ?? ""
            if (request.method === "GET" && url.includes("contacts?")) {
              lookups.push({ length: url.length, refused: url.length > 2000 })
            }
          }
        })
        const summary = yield* Bulk.execute("upsert", "contact", rows, { smart: true, chunkSize: 300 }).pipe(
          Effect.provide(
            DataverseClient.layerNode({
              url: proxy.url,
              credentials: Credentials.staticToken(emulator.info.accessToken),
              retryPolicy: RetryPolicy.make({ baseDelay: "1 millis" })
            })
          )
        )
        expect(summary).toMatchObject({ unchanged: 150, created: 150, failed: 0 })
        expect(emulator.store.table("contact")!.size).toBe(300)
        // One GET of 300 ids (13 KB) refused, then halves of it, until eight of 37 or 38 ids pass:
        // seven refused, none sent twice once it passed.
        expect(lookups.filter((l) => l.refused).length).toBe(7)
        expect(lookups.filter((l) => !l.refused).length).toBe(8)
      })))
  }
)

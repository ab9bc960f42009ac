import * as Emulator from "@dv-effect/emulator/Emulator"
import { defaultSchema, type TableDefinition } from "@dv-effect/emulator/TableSchema"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import { formatKeyValue, type KeyKind, keySegment } from "../src/internal/keys.js"
import * as Metadata from "../src/Metadata.js"
import * as Records from "../src/Records.js"

/** A standard table with a two-column key (a string and a number) and a lookup to account. */
const ticket: TableDefinition = {
  logicalName: "dve_ticket",
  entitySetName: "dve_tickets",
  schemaName: "dve_Ticket",
  objectTypeCode: 10010,
  primaryIdAttribute: "dve_ticketid",
  primaryNameAttribute: "dve_name",
  tableType: "Standard",
  columns: [
    { logicalName: "dve_name", type: "String", maxLength: 100 },
    { logicalName: "dve_region", type: "String", maxLength: 20 },
    { logicalName: "dve_number", type: "Integer", minValue: 0, maxValue: 1_000_000 },
    { logicalName: "dve_day", type: "DateTime", dateTimeBehavior: "DateOnly" },
    {
      logicalName: "dve_accountid",
      type: "Lookup",
      targets: [{ table: "account", navigationProperty: "dve_AccountId" }]
    }
  ],
  keys: [
    { logicalName: "dve_region_number", keyAttributes: ["dve_region", "dve_number"] },
    { logicalName: "dve_name_day", keyAttributes: ["dve_name", "dve_day"] }
  ],
  messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
}

interface Sent {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  /** What the operation told `executeJson` (undefined: the default, idempotent). */
  readonly idempotent: boolean | undefined
}

/** Every operation request (metadata requests go through the client's own cache, unrecorded). */
const sent: Array<Sent> = []
const lastSent = () => sent.at(-1)!

const Client = Layer.unwrapEffect(
  Effect.map(
    Emulator.Emulator,
    ({ info }) =>
      DataverseClient.layerNode({ url: info.webApiUrl, credentials: Credentials.staticToken(info.accessToken) })
  )
)

const Recording = Layer.effect(
  DataverseClient.DataverseClient,
  Effect.map(DataverseClient.DataverseClient, (client) => ({
    ...client,
    executeJson: (request: HttpClientRequest.HttpClientRequest, options?: { readonly idempotent?: boolean }) => {
      sent.push({ method: request.method, url: request.url, headers: request.headers, idempotent: options?.idempotent })
      return client.executeJson(request, options)
    }
  }))
)

const Live = Recording.pipe(
  Layer.provide(Client),
  Layer.provideMerge(Emulator.layer({ identity: false, schema: { tables: [...defaultSchema.tables, ticket] } }))
)

const stored = (table: string, id: string) =>
  Effect.map(Emulator.Emulator, (emulator) => emulator.store.table(table)!.get(id)?.values)

layer(Live, { excludeTestServices: true })("Records against the emulator", (it) => {
  it.effect("retrieves by primary key and by alternate key, quoting and encoding the key value", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const number = "A'1 &%#/?+"
      const [id] = emulator.seed("account", [{ name: "Contoso", accountnumber: number }])
      const byId = yield* Records.retrieve("account", `{${id!.toUpperCase()}}`, { select: ["name"] })
      expect(byId).toMatchObject({ accountid: id, name: "Contoso" })
      expect(lastSent()).toMatchObject({ method: "GET", url: `accounts(${id})?$select=name` })
      const byKey = yield* Records.retrieve("account", { accountnumber: number })
      expect(byKey).toMatchObject({ accountid: id, accountnumber: number })
      expect(lastSent().url).toBe("accounts(accountnumber='A''1%20%26%25%23%2F%3F%2B')")
      const missing = yield* Effect.flip(Records.retrieve("account", crypto.randomUUID()))
      expect(missing).toMatchObject({ reason: "NotFound", status: 404, code: "0x80040217" })
      const missingKey = yield* Effect.flip(Records.retrieve("account", { accountnumber: "nobody" }))
      expect(missingKey.reason).toBe("NotFound")
    }))

  it.effect("refuses what cannot address a record before sending anything", () =>
    Effect.gen(function*() {
      yield* Metadata.table("account")
      const before = sent.length
      const notGuid = yield* Effect.flip(Records.retrieve("account", "A-1"))
      expect(notGuid.reason).toBe("InvalidInput")
      expect(notGuid.message).toContain("'A-1' is not a GUID")
      const empty = yield* Effect.flip(Records.update("account", {}, { name: "x" }))
      expect(empty.message).toContain("at least one column")
      const badName = yield* Effect.flip(Records.delete("account", { "accountnumber) or (x": "1" }))
      expect(badName.message).toContain("is not a column name")
      const badExpand = yield* Effect.flip(
        Records.retrieve("account", crypto.randomUUID(), { expand: ["primarycontactid($select=x)"] })
      )
      expect(badExpand.reason).toBe("InvalidInput")
      expect(sent.length).toBe(before)
    }))

  it.effect("writes multi-part keys as the columns' types say: strings quoted, numbers bare", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const id = yield* Records.upsert("dve_ticket", { dve_region: "North'East", dve_number: "7" }, { dve_name: "T7" })
      expect(lastSent().url).toBe("dve_tickets(dve_region='North''East',dve_number=7)")
      const created = Option.getOrThrow(id)
      // A record created by alternate key carries the key's values.
      expect(yield* stored("dve_ticket", created)).toMatchObject({
        dve_name: "T7",
        dve_region: "North'East",
        dve_number: 7
      })
      const row = yield* Records.retrieve("dve_ticket", { dve_number: 7, dve_region: "North'East" })
      expect(row.dve_ticketid).toBe(created)
      const wrongType = yield* Effect.flip(Records.retrieve("dve_ticket", { dve_region: "N", dve_number: "seven" }))
      expect(wrongType.message).toContain("is not a number")
    }))

  it.effect("writes a date-only key column as the day, in URLs, bulk requests and smart mode's lookups", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const key = { dve_name: "Launch", dve_day: "2024-01-31" }
      const id = Option.getOrThrow(yield* Records.upsert("dve_ticket", key, { dve_number: 1 }))
      expect(lastSent().url).toBe("dve_tickets(dve_name='Launch',dve_day=2024-01-31)")
      expect(yield* stored("dve_ticket", id)).toMatchObject({ dve_name: "Launch", dve_day: "2024-01-31" })
      yield* Records.update("dve_ticket", key, { dve_number: 2 })
      expect((yield* Records.retrieve("dve_ticket", key)).dve_number).toBe(2)
      // A date and time names no day of a date-only column: refused before anything is sent.
      const timed = yield* Effect.flip(Records.retrieve("dve_ticket", { ...key, dve_day: "2024-01-31T00:00:00Z" }))
      expect(timed.message).toContain("is not a date such as 2024-01-31 (the column holds a date only)")

      const rows = [{ ...key, dve_number: 3 }, { dve_name: "Launch", dve_day: "2024-02-01", dve_number: 4 }]
      for (const strategy of ["multiple", "batch", "single"] as const) {
        const summary = yield* Bulk.execute("upsert", "dve_ticket", rows, { key: ["dve_name", "dve_day"], strategy })
        expect(summary.succeeded, strategy).toBe(2)
      }
      // Smart mode looks a composite key up with the day bare (quoted, it is an Edm.String).
      const smartRows = [{ ...key, dve_number: 3 }, { ...key, dve_name: "New", dve_number: 5 }]
      const smart = yield* Bulk.execute("upsert", "dve_ticket", smartRows, {
        key: ["dve_name", "dve_day"],
        smart: true
      })
      expect([smart.unchanged, smart.created]).toEqual([1, 1])
      const days = emulator.store.table("dve_ticket")!.scan().map((r) => `${r.values.dve_name} ${r.values.dve_day}`)
        .sort()
      expect(days).toEqual(["Launch 2024-01-31", "Launch 2024-02-01", "New 2024-01-31"])
    }))

  it.effect("updates an existing record only, with If-Match: * or the record's ETag", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const [id] = emulator.seed("contact", [{ firstname: "Ada", lastname: "Lovelace" }])
      yield* Records.update("contact", id!, { lastname: "Byron" })
      expect(lastSent()).toMatchObject({ method: "PATCH", headers: { "if-match": "*" }, idempotent: true })
      expect(yield* stored("contact", id!)).toMatchObject({ firstname: "Ada", lastname: "Byron" })

      const row = yield* Records.retrieve("contact", id!, { select: ["lastname"] })
      const etag = row["@odata.etag"] as string
      expect(etag).toMatch(/^W\/"\d+"$/)
      // A row read back (etag and all) can be sent again: annotations are dropped from the body.
      yield* Records.update("contact", id!, { ...row, lastname: "King" }, { etag })
      expect(lastSent()).toMatchObject({ headers: { "if-match": etag }, idempotent: false })
      expect((yield* stored("contact", id!))?.lastname).toBe("King")
      const stale = yield* Effect.flip(Records.update("contact", id!, { lastname: "Stale" }, { etag }))
      expect(stale).toMatchObject({ reason: "PreconditionFailed", status: 412, code: "0x80060882" })
      expect((yield* stored("contact", id!))?.lastname).toBe("King")

      const ghost = crypto.randomUUID()
      const missing = yield* Effect.flip(Records.update("contact", ghost, { lastname: "Nobody" }))
      expect(missing).toMatchObject({ reason: "NotFound", status: 404 })
      expect(yield* stored("contact", ghost)).toBeUndefined()
    }))

  it.effect("upserts: creates or updates, create-only refuses an existing record, update-only a missing one", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const accounts = emulator.store.table("account")!
      const first = Option.getOrThrow(yield* Records.upsert("account", { accountnumber: "A-1" }, { name: "Contoso" }))
      expect(lastSent()).toMatchObject({ method: "PATCH", idempotent: true })
      expect(lastSent().headers["if-match"]).toBeUndefined()
      expect(lastSent().headers["if-none-match"]).toBeUndefined()
      const again = yield* Records.upsert("account", { accountnumber: "A-1" }, { name: "Contoso Ltd" })
      expect(again).toEqual(Option.some(first))
      expect(accounts.size).toBe(1)
      expect(yield* stored("account", first)).toMatchObject({ name: "Contoso Ltd", accountnumber: "A-1" })

      const duplicate = yield* Effect.flip(
        Records.upsert("account", { accountnumber: "A-1" }, { name: "Other" }, { mode: "createOnly" })
      )
      expect(lastSent().headers["if-none-match"]).toBe("*")
      expect(duplicate).toMatchObject({ reason: "DuplicateKey", status: 412, code: "0x80040237" })
      const own = crypto.randomUUID()
      expect(yield* Records.upsert("account", own, { name: "Own id" }, { mode: "createOnly" })).toEqual(
        Option.some(own)
      )
      expect(yield* stored("account", own)).toMatchObject({ name: "Own id" })

      const missing = yield* Effect.flip(
        Records.upsert("account", { accountnumber: "A-404" }, { name: "Nobody" }, { mode: "updateOnly" })
      )
      expect(lastSent().headers["if-match"]).toBe("*")
      expect(missing.reason).toBe("NotFound")
      expect(accounts.size).toBe(2)
    }))

  it.effect("deletes, and counts a missing record as done only when asked", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const [a, b] = emulator.seed("account", [{ name: "A", accountnumber: "D-1" }, {
        name: "B",
        accountnumber: "D-2"
      }])
      expect(yield* Records.delete("account", a!)).toBe(true)
      expect(lastSent()).toMatchObject({ method: "DELETE", url: `accounts(${a})`, idempotent: true })
      expect(yield* stored("account", a!)).toBeUndefined()
      const again = yield* Effect.flip(Records.delete("account", a!))
      expect(again).toMatchObject({ reason: "NotFound", status: 404, code: "0x80040217" })
      expect(yield* Records.delete("account", a!, { ifMissing: "ignore" })).toBe(false)

      const stale = yield* Effect.flip(Records.delete("account", { accountnumber: "D-2" }, { etag: "W/\"0\"" }))
      expect(stale.reason).toBe("PreconditionFailed")
      expect(yield* Records.delete("account", { accountnumber: "D-2" })).toBe(true)
      expect(yield* stored("account", b!)).toBeUndefined()
    }))

  it.effect("addresses records of an elastic table with their partition", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const id = yield* Records.create("dve_reading", { dve_name: "r1", partitionid: "device-1", dve_value: 1.5 })
      const row = yield* Records.retrieve("dve_reading", id, { partitionId: "device-1", select: ["dve_value"] })
      expect(lastSent().url).toBe(`dve_readings(dve_readingid=${id},partitionid='device-1')?$select=dve_value`)
      expect(row.dve_value).toBe(1.5)
      const elsewhere = yield* Effect.flip(Records.retrieve("dve_reading", id, { partitionId: "device-2" }))
      expect(elsewhere.reason).toBe("NotFound")
      yield* Records.update("dve_reading", id, { dve_value: 2.5 }, { partitionId: "device-1" })
      expect((yield* stored("dve_reading", id))?.dve_value).toBe(2.5)
      expect(yield* Records.delete("dve_reading", id, { partitionId: "device-2", ifMissing: "ignore" })).toBe(false)
      expect(yield* Records.delete("dve_reading", id, { partitionId: "device-1" })).toBe(true)
      expect(yield* stored("dve_reading", id)).toBeUndefined()
    }))

  it.effect("binds lookups by id or alternate key through the navigation property metadata names", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const [account] = emulator.seed("account", [{ name: "Contoso", accountnumber: "A-1" }])
      expect(Records.bind("accounts", account!)).toBe(`/accounts(${account})`)
      expect(Records.bind("accounts", { accountnumber: "A-1" })).toBe("/accounts(accountnumber='A-1')")
      const accountMetadata = yield* Metadata.table("account")
      expect(Records.bind(accountMetadata, { accountnumber: "A-1" })).toBe("/accounts(accountnumber='A-1')")

      const parent = yield* Records.lookup("contact", "parentcustomerid", "account", { accountnumber: "A-1" })
      expect(parent).toEqual({ "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')" })
      const contact = yield* Records.create("contact", { lastname: "Doe", ...parent })
      expect(yield* stored("contact", contact)).toMatchObject({ parentcustomerid: { table: "account", id: account } })

      // The navigation property differs from the column name here.
      const owner = yield* Records.lookup("dve_ticket", "dve_accountid", "account", account!)
      expect(owner).toEqual({ "dve_AccountId@odata.bind": `/accounts(${account})` })
      const ticketId = yield* Records.create("dve_ticket", { dve_name: "T", ...owner })
      expect(yield* stored("dve_ticket", ticketId)).toMatchObject({ dve_accountid: { table: "account", id: account } })
      const read = yield* Records.retrieve("dve_ticket", ticketId, { select: ["dve_accountid"] })
      expect(read._dve_accountid_value).toBe(account)

      const wrong = yield* Effect.flip(Records.lookup("contact", "parentcustomerid", "task", account!))
      expect(wrong.reason).toBe("InvalidInput")
    }))

  it.effect("retries what is safe to repeat, and not a create without its own id", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      yield* Records.create("contact", { lastname: "No id" })
      expect(lastSent()).toMatchObject({ method: "POST", idempotent: false })
      yield* Records.create("contact", { contactid: crypto.randomUUID(), lastname: "Own id" })
      expect(lastSent().idempotent).toBe(true)
    }))
})

describe("key segments", () => {
  layer(Layer.empty)((it) => {
    it.effect("quote strings with ' doubled, leave GUIDs and numbers bare, add the partition", () =>
      Effect.gen(function*() {
        const id = "5D1D2F3E-6A1B-4C8D-9E0F-112233445566"
        expect(yield* keySegment(id)).toBe("(5d1d2f3e-6a1b-4c8d-9e0f-112233445566)")
        expect(yield* keySegment(`{${id}}`)).toBe("(5d1d2f3e-6a1b-4c8d-9e0f-112233445566)")
        expect(yield* keySegment({ accountnumber: "O'Neil" })).toBe("(accountnumber='O''Neil')")
        expect(yield* keySegment({ firstname: "Jo", emailaddress1: "j@x.org" })).toBe(
          "(firstname='Jo',emailaddress1='j%40x.org')"
        )
        expect(yield* keySegment({ code: 42, big: 9007199254740993n, active: true })).toBe(
          "(code=42,big=9007199254740993,active=true)"
        )
        expect(yield* keySegment({ when: new Date("2024-05-01T10:00:00Z") })).toBe(
          "(when=2024-05-01T10%3A00%3A00.000Z)"
        )
        expect(yield* keySegment(id, { primaryIdAttribute: "readingid", partitionId: "p'1" })).toBe(
          "(readingid=5d1d2f3e-6a1b-4c8d-9e0f-112233445566,partitionid='p''1')"
        )
        expect(yield* keySegment({ sku: "S-1" }, { partitionId: "p" })).toBe("(sku='S-1',partitionid='p')")
        // With column types: a GUID column bare, a number for a string column quoted.
        const kindOf = (attribute: string): KeyKind => (attribute === "ref" ? "guid" : "string")
        expect(yield* keySegment({ ref: id, code: 7 }, { kindOf })).toBe(
          "(ref=5d1d2f3e-6a1b-4c8d-9e0f-112233445566,code='7')"
        )
      }))

    it.effect("say what is wrong with a key that cannot be written", () =>
      Effect.gen(function*() {
        expect(Either.getLeft(keySegment("A-1"))).toEqual(Option.some(expect.stringContaining("is not a GUID")))
        expect(Either.isLeft(keySegment({}))).toBe(true)
        expect(Either.isLeft(keySegment({ "a b": 1 }))).toBe(true)
        expect(Either.isLeft(keySegment({ code: Number.NaN }))).toBe(true)
        expect(Either.isLeft(keySegment("5d1d2f3e-6a1b-4c8d-9e0f-112233445566", { partitionId: "p" }))).toBe(true)
        expect(Either.isLeft(formatKeyValue("ref", "not-a-guid", "guid"))).toBe(true)
        expect(yield* formatKeyValue("n", " 12.5 ", "number")).toBe("12.5")
        // A date-only column's day, never a date and time; a date and time without an offset is UTC.
        expect(yield* formatKeyValue("d", "2024-01-31", "date")).toBe("2024-01-31")
        expect(Either.isLeft(formatKeyValue("d", "2024-01-31T00:00:00Z", "date"))).toBe(true)
        expect(Either.isLeft(formatKeyValue("d", new Date("2024-01-31"), "date"))).toBe(true)
        // Checked in a zone that is not UTC: `new Date()` would read this machine's time.
        const zone = process.env.TZ
        process.env.TZ = "Asia/Kolkata"
        try {
          expect(yield* formatKeyValue("w", "2024-05-01T10:00:00", "datetime")).toBe("2024-05-01T10:00:00.000Z")
        } finally {
          if (zone === undefined) delete process.env.TZ
          else process.env.TZ = zone
        }
        expect(yield* formatKeyValue("w", "2024-05-01", "datetime")).toBe("2024-05-01T00:00:00.000Z")
        expect(Either.isLeft(formatKeyValue("w", "06/01/2024", "datetime"))).toBe(true)
        expect(Records.bind("accounts", "not a guid")).toBe("/accounts(not%20a%20guid)")
      }))
  })
})

describe("one definition of a GUID, a record's id in an entity URL, and read annotations", () => {
  const id = "5d1d2f3e-6a1b-4c8d-9e0f-112233445566"

  it("reads a GUID in braces, in capitals or with spaces around, and nothing else", () => {
    expect(Records.parseGuid(` {${id.toUpperCase()}} `)).toBe(id)
    expect(Records.parseGuid(id)).toBe(id)
    expect(Records.parseGuid(`${id}0`)).toBeUndefined()
    expect(Records.parseGuid("A-1")).toBeUndefined()
    // Braces both or neither; hyphens where they go; hex digits only.
    expect(Records.parseGuid(`{${id}`)).toBeUndefined()
    expect(Records.parseGuid(`${id}}`)).toBeUndefined()
    expect(Records.parseGuid(id.replace(/-/g, "").padEnd(36, "0"))).toBeUndefined()
    expect(Records.parseGuid(id.replace("5d", "5g"))).toBeUndefined()
    expect(Records.parseGuid(id.replace("-6a1b-", "-6a1b:"))).toBeUndefined()
  })

  it("reads a date or date-time in the Web API's form, of a real day, and nothing else", () => {
    expect(Records.parseDateTime("2024-02-29")).toBe("2024-02-29")
    expect(Records.parseDateTime("2024-01-31T10:00+01:00")).toBe("2024-01-31T10:00:00+01:00")
    // OData takes up to 12 fraction digits (what Java's and Go's nanosecond formats write).
    expect(Records.parseDateTime("2024-01-31T10:00:00.123456789Z")).toBe("2024-01-31T10:00:00.123456789Z")
    for (const bad of ["2023-02-29", "2024-02-30", "06/01/2024", "2024-01-31T24:00", "2024-01-31T10:00+15:00"]) {
      expect(Records.parseDateTime(bad), bad).toBeUndefined()
    }
  })

  it("reads the id of a standard record, of an elastic one (beside its partition), and not an alternate key", () => {
    expect(Records.idFromEntityUrl(`https://org.example/api/data/v9.2/contacts(${id.toUpperCase()})`)).toBe(id)
    expect(
      Records.idFromEntityUrl(`https://org.example/api/data/v9.2/dve_readings(dve_readingid=${id},partitionid='p')`)
    )
      .toBe(id)
    expect(Records.idFromEntityUrl(`/dve_readings(partitionid='p',dve_readingid=${id})`)).toBe(id)
    expect(Records.idFromEntityUrl("/accounts(accountnumber='A-1')")).toBeUndefined()
    expect(Records.idFromEntityUrl(`/accounts(dve_code='${id}')`)).toBeUndefined()
    expect(Records.idFromEntityUrl(undefined)).toBeUndefined()
  })

  it("drops what a record carries when read, keeps what a write says", () => {
    const row = {
      name: "A",
      "@odata.etag": "W/\"1\"",
      "@odata.context": "x",
      "statuscode@OData.Community.Display.V1.FormattedValue": "Active",
      "_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
      "@odata.type": "Microsoft.Dynamics.CRM.account",
      "parentaccountid@odata.bind": `/accounts(${id})`
    }
    expect(Records.withoutReadAnnotations(row)).toEqual({
      name: "A",
      "@odata.type": "Microsoft.Dynamics.CRM.account",
      "parentaccountid@odata.bind": `/accounts(${id})`
    })
    const plain = { name: "B" }
    expect(Records.withoutReadAnnotations(plain)).toBe(plain)
  })
})

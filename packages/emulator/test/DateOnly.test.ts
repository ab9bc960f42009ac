/**
 * Date-only columns (`DateTimeBehavior` DateOnly). Documented: a date and time column has a
 * behavior, User local (the default), Time zone independent or Date only, and a Date only column
 * stores no time ("2023-10-15": learn.microsoft.com/power-apps/maker/data-platform/
 * behavior-format-date-time-field). In the Web API it is an `Edm.Date`, and a date-time written to
 * it is refused: "Cannot convert the literal '1965-05-07T00:00:00Z' to the expected type
 * 'Edm.Date'" (PowerPlatform-DataverseServiceClient issue 80; carfup/PCFControls#191).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import * as TableSchema from "../src/TableSchema.js"
import { batchBody, batchOperation, batchStatuses, changeSet } from "./support/batch.js"

/** A custom table with a date-only column in an alternate key, and one column of each other behavior. */
const eventTable: TableSchema.TableDefinition = {
  logicalName: "dve_event",
  entitySetName: "dve_events",
  schemaName: "dve_Event",
  objectTypeCode: 10100,
  primaryIdAttribute: "dve_eventid",
  primaryNameAttribute: "dve_name",
  tableType: "Standard",
  columns: [
    { logicalName: "dve_name", type: "String", maxLength: 100 },
    { logicalName: "dve_day", type: "DateTime", dateTimeBehavior: "DateOnly" },
    { logicalName: "dve_startson", type: "DateTime", dateTimeBehavior: "TimeZoneIndependent" },
    { logicalName: "dve_endson", type: "DateTime", dateTimeBehavior: "UserLocal" }
  ],
  keys: [{ logicalName: "dve_name_day_key", keyAttributes: ["dve_name", "dve_day"] }],
  messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
}

const schema: TableSchema.SchemaDefinition = { tables: [...TableSchema.defaultSchema.tables, eventTable] }

let emulator: Awaited<ReturnType<typeof Emulator.start>>
// Response bodies are checked field by field below.
const json = (response: Response): Promise<any> => response.json()
const send = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(`${emulator.info.webApiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
  })
const table = (name: string) => emulator.store.table(name)!
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`
const birthdateOf = (n: number) => table("contact").get(id(n))?.values.birthdate

/** The service's refusal of a value an `Edm.Date` property cannot take. */
const notADate = (literal: string, column = "birthdate") =>
  `Cannot convert the literal '${literal}' to the expected type 'Edm.Date' of property '${column}'.`

const expectRefused = async (response: Response, message: string, code = "0x80048d19") => {
  expect(response.status).toBe(400)
  const body = await json(response)
  expect(body.error).toMatchObject({ code, message })
}

beforeAll(async () => {
  emulator = await Emulator.start({ schema, identity: false })
})
afterAll(() => emulator.close())
beforeEach(() => emulator.store.clear())

describe("the schema file's dateTimeBehavior", () => {
  const file = (column: Record<string, unknown>) => ({
    tables: [{
      logicalName: "new_item",
      entitySetName: "new_items",
      primaryIdAttribute: "new_itemid",
      columns: [{ logicalName: "new_name", type: "String" }, column]
    }]
  })

  it("takes each behavior on a DateTime column, and none at all", () => {
    for (const behavior of TableSchema.dateTimeBehaviors) {
      const decoded = TableSchema.decode(file({ logicalName: "new_on", type: "DateTime", dateTimeBehavior: behavior }))
      expect(typeof decoded !== "string" && decoded.tables[0]!.columns[1]).toEqual({
        logicalName: "new_on",
        type: "DateTime",
        dateTimeBehavior: behavior
      })
    }
    expect(TableSchema.dateTimeBehaviors).toEqual(["UserLocal", "DateOnly", "TimeZoneIndependent"])
    const plain = TableSchema.decode(file({ logicalName: "new_on", type: "DateTime" }))
    expect(typeof plain !== "string" && plain.tables[0]!.columns[1]).toEqual({
      logicalName: "new_on",
      type: "DateTime"
    })
  })

  it("refuses it on a column of another type, naming the table and the column, and an unknown behavior", () => {
    expect(TableSchema.decode(file({ logicalName: "new_code", type: "String", dateTimeBehavior: "DateOnly" }))).toBe(
      "Invalid schema: table 'new_item': column 'new_code' is String; only a DateTime column has a dateTimeBehavior"
    )
    expect(TableSchema.decode(file({ logicalName: "new_on", type: "DateTime", dateTimeBehavior: "Date" }))).toMatch(
      /^Invalid schema: tables\[0\]\.columns\[1\]\.dateTimeBehavior: expected one of "UserLocal", "DateOnly", "TimeZoneIndependent", got "Date"$/
    )
  })

  it("makes contact.birthdate date-only in the built-in schema, and leaves the other DateTime columns as they were", () => {
    const dateTimes = TableSchema.defaultSchema.tables.flatMap((t) =>
      t.columns.filter((c) => c.type === "DateTime").map((
        c
      ) => [`${t.logicalName}.${c.logicalName}`, c.dateTimeBehavior])
    )
    expect(dateTimes.filter(([, behavior]) => behavior !== undefined)).toEqual([["contact.birthdate", "DateOnly"]])
    expect(dateTimes.length).toBeGreaterThan(1)
  })
})

describe("metadata of a date-only column", () => {
  it("says DateTimeBehavior and Format in EntityDefinitions", async () => {
    const contact = await json(await send("GET", "EntityDefinitions(LogicalName='contact')?$expand=Attributes"))
    const attribute = (name: string) => contact.Attributes.find((a: any) => a.LogicalName === name)
    expect(attribute("birthdate")).toMatchObject({
      "@odata.type": "#Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
      AttributeType: "DateTime",
      DateTimeBehavior: { Value: "DateOnly" },
      Format: "DateOnly"
    })
    expect(attribute("createdon")).toMatchObject({ DateTimeBehavior: { Value: "UserLocal" }, Format: "DateAndTime" })
    expect(attribute("lastname").DateTimeBehavior).toBeUndefined()
    expect(attribute("lastname").Format).toBeUndefined()

    // Through the cast, as the service serves a derived type's properties.
    const cast = await json(
      await send(
        "GET",
        "EntityDefinitions(LogicalName='dve_event')/Attributes/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata?$select=LogicalName,DateTimeBehavior,Format"
      )
    )
    expect(cast.value.map((a: any) => [a.LogicalName, a.DateTimeBehavior.Value, a.Format])).toEqual([
      ["dve_day", "DateOnly", "DateOnly"],
      ["dve_startson", "TimeZoneIndependent", "DateAndTime"],
      ["dve_endson", "UserLocal", "DateAndTime"]
    ])
    // Without the cast a derived type's property cannot be selected.
    const uncast = await send("GET", "EntityDefinitions(LogicalName='contact')/Attributes?$select=DateTimeBehavior")
    expect(uncast.status).toBe(400)
  })

  it("is an Edm.Date in $metadata, and an Edm.Date property reads back as a date-only column", async () => {
    const response = await send("GET", "$metadata")
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text).toContain("<Property Name=\"birthdate\" Type=\"Edm.Date\" />")
    expect(text).toContain("<Property Name=\"dve_day\" Type=\"Edm.Date\" />")
    expect(text).toContain("<Property Name=\"dve_startson\" Type=\"Edm.DateTimeOffset\" />")
    expect(text).toContain("<Property Name=\"dve_endson\" Type=\"Edm.DateTimeOffset\" />")
    expect(text).toBe(TableSchema.toCsdl(schema))

    const parsed = TableSchema.parse(text)
    if (typeof parsed === "string") throw new Error(parsed)
    const behaviors = (logicalName: string) =>
      parsed.tables.find((t) => t.logicalName === logicalName)!.columns
        .filter((c) => c.type === "DateTime")
        .map((c) => [c.logicalName, c.dateTimeBehavior])
    // CSDL carries Date only; the other two behaviors are both Edm.DateTimeOffset, read as the default.
    expect(behaviors("dve_event")).toEqual([
      ["dve_day", "DateOnly"],
      ["dve_startson", undefined],
      ["dve_endson", undefined]
    ])
    expect(behaviors("contact")).toEqual([
      ["birthdate", "DateOnly"],
      ["createdon", undefined],
      ["modifiedon", undefined]
    ])
    // And again: what it reads is what it writes.
    expect(TableSchema.toCsdl(parsed)).toContain("<Property Name=\"dve_day\" Type=\"Edm.Date\" />")
  })
})

describe("writing a date-only column", () => {
  it("takes a date and returns it as written; refuses a date-time, a number or another form with 400", async () => {
    expect((await send("POST", "contacts", { contactid: id(1), lastname: "Ada", birthdate: "1990-05-01" })).status)
      .toBe(204)
    expect(birthdateOf(1)).toBe("1990-05-01")
    const read = await json(await send("GET", `contacts(${id(1)})?$select=birthdate`))
    expect(read.birthdate).toBe("1990-05-01")

    for (
      const [value, literal] of [
        ["1965-05-07T00:00:00Z", "1965-05-07T00:00:00Z"],
        ["2023-04-19T08:40:36.076Z", "2023-04-19T08:40:36.076Z"],
        ["1990-05-01T00:00", "1990-05-01T00:00"],
        ["2024-02-30", "2024-02-30"],
        ["06/01/2024", "06/01/2024"],
        ["1990-5-1", "1990-5-1"],
        ["", ""],
        [19900501, "19900501"],
        [true, "true"],
        [{ year: 1990 }, "{\"year\":1990}"]
      ] as const
    ) {
      await expectRefused(await send("POST", "contacts", { lastname: "Odd", birthdate: value }), notADate(literal))
    }
    expect(table("contact").size).toBe(1)
  })

  it("refuses a day before 1753-01-01 and takes that day", async () => {
    await expectRefused(
      await send("POST", "contacts", { lastname: "Old", birthdate: "1752-12-31" }),
      "A validation error occurred. The value 1752-12-31 of 'birthdate' on record of type 'contact' is outside the valid range. Accepted Values: 1/1/1753 12:00:00 AM to 12/31/9999 11:59:59 PM.",
      "0x8004432F"
    )
    expect((await send("POST", "contacts", { contactid: id(1), lastname: "Oldest", birthdate: "1753-01-01" })).status)
      .toBe(204)
    expect(birthdateOf(1)).toBe("1753-01-01")
    expect((await send("POST", "contacts", { contactid: id(2), lastname: "Late", birthdate: "9999-12-31" })).status)
      .toBe(204)
    expect(birthdateOf(2)).toBe("9999-12-31")
  })

  it("holds on PATCH and upsert: a date-time changes nothing, a date or null is stored", async () => {
    emulator.seed("contact", [{ contactid: id(1), lastname: "Ada", birthdate: "1990-05-01" }])
    await expectRefused(
      await send("PATCH", `contacts(${id(1)})`, { birthdate: "1991-06-02T00:00:00Z" }),
      notADate("1991-06-02T00:00:00Z")
    )
    expect(birthdateOf(1)).toBe("1990-05-01")
    expect((await send("PATCH", `contacts(${id(1)})`, { birthdate: "1991-06-02" })).status).toBe(204)
    expect(birthdateOf(1)).toBe("1991-06-02")
    expect((await send("PATCH", `contacts(${id(1)})`, { birthdate: null })).status).toBe(204)
    expect(birthdateOf(1)).toBeNull()

    // An upsert that would create is refused as a create is.
    await expectRefused(
      await send("PATCH", `contacts(${id(2)})`, { lastname: "New", birthdate: "2000-01-01T10:00:00+01:00" }),
      notADate("2000-01-01T10:00:00+01:00")
    )
    expect(table("contact").get(id(2))).toBeUndefined()
    expect((await send("PATCH", `contacts(${id(2)})`, { lastname: "New", birthdate: "2000-01-01" })).status).toBe(204)
    expect(birthdateOf(2)).toBe("2000-01-01")
    // Prefer: return=representation answers the stored date.
    const represented = await send("PATCH", `contacts(${id(2)})?$select=birthdate`, { birthdate: "2000-01-02" }, {
      Prefer: "return=representation"
    })
    expect(represented.status).toBe(200)
    expect((await json(represented)).birthdate).toBe("2000-01-02")
  })

  it("holds on CreateMultiple, UpdateMultiple and UpsertMultiple: one date-time fails the whole request", async () => {
    const target = (n: number, birthdate: string) => ({
      "@odata.type": "Microsoft.Dynamics.CRM.contact",
      contactid: id(n),
      lastname: `C${n}`,
      birthdate
    })
    const create = (targets: Array<unknown>) =>
      send("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", { Targets: targets })
    await expectRefused(
      await create([target(1, "1990-05-01"), target(2, "1990-05-02T00:00:00Z")]),
      notADate(
        "1990-05-02T00:00:00Z"
      )
    )
    expect(table("contact").size).toBe(0)
    expect((await create([target(1, "1990-05-01"), target(2, "1990-05-02")])).status).toBe(200)
    expect([birthdateOf(1), birthdateOf(2)]).toEqual(["1990-05-01", "1990-05-02"])

    for (const message of ["UpdateMultiple", "UpsertMultiple"]) {
      const refused = await send("POST", `contacts/Microsoft.Dynamics.CRM.${message}`, {
        Targets: [target(1, "1980-01-01"), target(3, "1980-01-03T12:00:00Z")]
      })
      await expectRefused(refused, notADate("1980-01-03T12:00:00Z"))
      expect([birthdateOf(1), birthdateOf(3)]).toEqual(["1990-05-01", undefined])
    }
    const upserted = await send("POST", "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", {
      Targets: [target(1, "1980-01-01"), target(3, "1980-01-03")]
    })
    expect(upserted.status).toBe(204)
    expect([birthdateOf(1), birthdateOf(3)]).toEqual(["1980-01-01", "1980-01-03"])
    const updated = await send("POST", "contacts/Microsoft.Dynamics.CRM.UpdateMultiple", {
      Targets: [target(2, "1970-07-07")]
    })
    expect(updated.status).toBe(204)
    expect(birthdateOf(2)).toBe("1970-07-07")
  })

  it("holds in $batch: the change set with a date-time is rolled back", async () => {
    const batch = (parts: ReadonlyArray<string>) =>
      fetch(`${emulator.info.webApiUrl}$batch`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${emulator.info.accessToken}`,
          "Content-Type": "multipart/mixed; boundary=batch_1",
          Prefer: "odata.continue-on-error"
        },
        body: batchBody(parts)
      })
    const response = await batch([
      changeSet([
        batchOperation("POST", "contacts", { contactid: id(1), lastname: "Kept?", birthdate: "1990-05-01" }),
        batchOperation("POST", "contacts", { contactid: id(2), lastname: "Timed", birthdate: "1990-05-01T08:00:00Z" })
      ]),
      batchOperation("POST", "contacts", { contactid: id(3), lastname: "Alone", birthdate: "1990-05-03" })
    ])
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(batchStatuses(text)).toEqual([400, 204])
    expect(text).toContain(notADate("1990-05-01T08:00:00Z"))
    expect([birthdateOf(1), birthdateOf(2), birthdateOf(3)]).toEqual([undefined, undefined, "1990-05-03"])
  })

  it("keeps the other behaviors' rule: a date or a date-time, stored as UTC ISO text", async () => {
    const created = await send("POST", "dve_events", {
      dve_eventid: id(1),
      dve_name: "Launch",
      dve_day: "2024-01-31",
      dve_startson: "2024-01-31T10:00:00+01:00",
      dve_endson: "2024-01-31"
    })
    expect(created.status).toBe(204)
    expect(table("dve_event").get(id(1))!.values).toMatchObject({
      dve_day: "2024-01-31",
      dve_startson: "2024-01-31T09:00:00Z",
      dve_endson: "2024-01-31T00:00:00Z"
    })
    await expectRefused(
      await send("POST", "dve_events", { dve_name: "Bad", dve_day: "2024-01-31T00:00:00Z" }),
      notADate("2024-01-31T00:00:00Z", "dve_day")
    )
    // A date-time column names its own type.
    await expectRefused(
      await send("POST", "dve_events", { dve_name: "Bad", dve_startson: 5 }),
      "Cannot convert the literal '5' to the expected type 'Edm.DateTimeOffset' of property 'dve_startson'."
    )
  })

  it("addresses a record by an alternate key holding a date-only column", async () => {
    const created = await send("PATCH", "dve_events(dve_name='Launch',dve_day=2024-01-31)", { dve_startson: null })
    expect(created.status).toBe(204)
    const [event] = table("dve_event").scan()
    expect(event!.values).toMatchObject({ dve_name: "Launch", dve_day: "2024-01-31" })
    const read = await send("GET", "dve_events(dve_name='Launch',dve_day=2024-01-31)?$select=dve_day")
    expect(read.status).toBe(200)
    expect((await json(read)).dve_day).toBe("2024-01-31")
    // A date and time in the key is refused as in a body: it names no day of an Edm.Date.
    await expectRefused(
      await send("PATCH", "dve_events(dve_name='Launch',dve_day=2024-01-31T00:00:00Z)", { dve_startson: null }),
      "Cannot convert the literal '2024-01-31T00:00:00Z' to the expected type 'Edm.Date' of property 'dve_day'."
    )
    expect(table("dve_event").scan()).toHaveLength(1)
  })
})

describe("querying a date-only column", () => {
  const seed = () =>
    emulator.seed("contact", [
      { contactid: id(1), lastname: "A", birthdate: "1990-05-01" },
      { contactid: id(2), lastname: "B", birthdate: "1985-12-31" },
      { contactid: id(3), lastname: "C", birthdate: "2000-01-01" },
      { contactid: id(4), lastname: "D" },
      { contactid: id(5), lastname: "E", birthdate: "1990-04-30" }
    ])
  const names = async (query: string) => {
    const response = await send("GET", `contacts?$select=lastname,birthdate&${query}`)
    expect(response.status, query).toBe(200)
    return ((await json(response)).value as Array<any>).map((c) => c.lastname)
  }

  it("compares with a date literal in $filter: eq, ne, lt, le, gt, ge", async () => {
    seed()
    expect(await names("$filter=birthdate eq 1990-05-01")).toEqual(["A"])
    expect(await names("$filter=birthdate ne 1990-05-01")).toEqual(["B", "C", "E"])
    expect(await names("$filter=birthdate lt 2000-01-01")).toEqual(["A", "B", "E"])
    expect(await names("$filter=birthdate le 2000-01-01")).toEqual(["A", "B", "C", "E"])
    expect(await names("$filter=birthdate gt 1990-04-30")).toEqual(["A", "C"])
    expect(await names("$filter=birthdate ge 1990-04-30 and birthdate lt 1990-05-02")).toEqual(["A", "E"])
    expect(await names("$filter=birthdate eq null")).toEqual(["D"])
    // A date-time literal compares as an instant: the date is its day's midnight UTC.
    expect(await names("$filter=birthdate eq 1990-05-01T00:00:00Z")).toEqual(["A"])
    expect(await names("$filter=birthdate lt 1990-05-01T10:00:00Z")).toEqual(["A", "B", "E"])
    // The answers carry the stored dates.
    const body = await json(await send("GET", "contacts?$select=birthdate&$filter=birthdate eq 1990-05-01"))
    expect(body.value[0].birthdate).toBe("1990-05-01")
  })

  it("orders by the date, nulls first ascending", async () => {
    seed()
    expect(await names("$orderby=birthdate")).toEqual(["D", "B", "E", "A", "C"])
    expect(await names("$orderby=birthdate desc")).toEqual(["C", "A", "E", "B", "D"])
  })

  it("takes the date query functions and FetchXML conditions on the day", async () => {
    seed()
    expect(await names("$filter=Microsoft.Dynamics.CRM.On(PropertyName='birthdate',PropertyValue='1990-05-01')"))
      .toEqual(["A"])
    expect(
      await names("$filter=Microsoft.Dynamics.CRM.OnOrBefore(PropertyName='birthdate',PropertyValue='1990-05-01')")
    ).toEqual(["A", "B", "E"])
    const fetch = async (condition: string) => {
      const fetchXml = `<fetch><entity name="contact"><attribute name="lastname" /><attribute name="birthdate" />` +
        `<filter>${condition}</filter><order attribute="lastname" /></entity></fetch>`
      const response = await send("GET", `contacts?fetchXml=${encodeURIComponent(fetchXml)}`)
      expect(response.status, condition).toBe(200)
      return ((await json(response)).value as Array<any>).map((c) => [c.lastname, c.birthdate])
    }
    expect(await fetch(`<condition attribute="birthdate" operator="on-or-after" value="1990-05-01" />`)).toEqual([
      ["A", "1990-05-01"],
      ["C", "2000-01-01"]
    ])
    expect(await fetch(`<condition attribute="birthdate" operator="on" value="1990-04-30" />`)).toEqual([
      ["E", "1990-04-30"]
    ])
    expect(await fetch(`<condition attribute="birthdate" operator="eq" value="1990-05-01" />`)).toEqual([
      ["A", "1990-05-01"]
    ])
    expect(await fetch(`<condition attribute="birthdate" operator="lt" value="1990-05-01" />`)).toEqual([
      ["B", "1985-12-31"],
      ["E", "1990-04-30"]
    ])
    expect(
      await fetch(
        `<condition attribute="birthdate" operator="between"><value>1990-01-01</value><value>1990-05-01</value></condition>`
      )
    ).toEqual([["A", "1990-05-01"], ["E", "1990-04-30"]])
  })
})

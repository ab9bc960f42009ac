import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import { batchBody, batchOperation, batchStatuses, changeSet } from "./support/batch.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
// Response bodies are checked field by field below.
const json = (response: Response): Promise<any> => response.json()
const api = (path: string) => `${emulator.info.webApiUrl}${path}`
const send = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  fetch(api(path), {
    method,
    headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
  })
const table = (name: string) => emulator.store.table(name)!
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`

beforeAll(async () => {
  emulator = await Emulator.start()
})
afterAll(() => emulator.close())
beforeEach(() => emulator.store.clear())

describe("single-record writes", () => {
  it("PATCH upserts: creates, then updates by merging, 204 both times", async () => {
    expect((await send("PATCH", `contacts(${id(1)})`, { firstname: "Ada", lastname: "Byron" })).status).toBe(204)
    expect((await send("PATCH", `contacts(${id(1)})`, { lastname: "Lovelace" })).status).toBe(204)
    expect(table("contact").get(id(1))!.values).toMatchObject({
      firstname: "Ada",
      lastname: "Lovelace",
      fullname: "Ada Lovelace"
    })
  })

  it("If-Match: * updates only; If-None-Match: * creates only", async () => {
    const missing = await send("PATCH", `contacts(${id(2)})`, { lastname: "X" }, { "If-Match": "*" })
    expect(missing.status).toBe(404)
    expect((await json(missing)).error.code).toBe("0x80040217")
    expect((await send("PATCH", `contacts(${id(2)})`, { lastname: "X" }, { "If-None-Match": "*" })).status).toBe(204)
    const again = await send("PATCH", `contacts(${id(2)})`, { lastname: "Y" }, { "If-None-Match": "*" })
    expect(again.status).toBe(412)
    expect((await json(again)).error.code).toBe("0x80040237")
    expect(table("contact").get(id(2))!.values.lastname).toBe("X")
  })

  it("honours ETags for optimistic concurrency and returns the record on request", async () => {
    await send("PATCH", `contacts(${id(3)})`, { lastname: "One" })
    const read = await send("GET", `contacts(${id(3)})?$select=lastname`)
    const etag = (await json(read))["@odata.etag"]
    expect(read.headers.get("etag")).toBe(etag)
    const updated = await send("PATCH", `contacts(${id(3)})?$select=lastname`, { lastname: "Two" }, {
      "If-Match": etag,
      Prefer: "return=representation"
    })
    expect(updated.status).toBe(200)
    const body = await json(updated)
    expect(body.lastname).toBe("Two")
    expect(body["@odata.etag"]).not.toBe(etag)
    const stale = await send("PATCH", `contacts(${id(3)})`, { lastname: "Three" }, { "If-Match": etag })
    expect(stale.status).toBe(412)
    expect((await json(stale)).error.code).toBe("0x80060882")
    expect(table("contact").get(id(3))!.values.lastname).toBe("Two")
  })

  it("addresses records by alternate key, and an upsert there sets the key columns", async () => {
    expect((await send("PATCH", "accounts(accountnumber='A-1')", { name: "Contoso" })).status).toBe(204)
    const created = table("account").scan()[0]!
    expect(created.values).toMatchObject({ name: "Contoso", accountnumber: "A-1" })
    expect((await send("PATCH", "accounts(accountnumber='A-1')", { name: "Contoso Ltd" })).status).toBe(204)
    expect(table("account").size).toBe(1)
    const read = await json(await send("GET", "accounts(accountnumber='A-1')?$select=name"))
    expect(read).toMatchObject({ accountid: created.id, name: "Contoso Ltd" })
    expect((await send("GET", "accounts(accountnumber='nope')")).status).toBe(404)
    expect((await send("GET", "accounts(name='Contoso')")).status).toBe(400)
  })

  it("deletes by id and by alternate key; a missing record is 404", async () => {
    await send("PATCH", `contacts(${id(4)})`, { lastname: "Gone" })
    expect((await send("DELETE", `contacts(${id(4)})`)).status).toBe(204)
    expect((await send("DELETE", `contacts(${id(4)})`)).status).toBe(404)
    await send("PATCH", "accounts(accountnumber='A-9')", { name: "X" })
    expect((await send("DELETE", "accounts(accountnumber='A-9')")).status).toBe(204)
    expect(table("account").size).toBe(0)
  })

  it("refuses an update that would take another record's alternate key", async () => {
    await send("PATCH", "accounts(accountnumber='A-1')", { name: "One" })
    await send("PATCH", "accounts(accountnumber='A-2')", { name: "Two" })
    const clash = await send("PATCH", "accounts(accountnumber='A-2')", { accountnumber: "A-1" })
    expect(clash.status).toBe(412)
    expect((await json(clash)).error.code).toBe("0x80040237")
  })
})

const targets = (type: string, rows: ReadonlyArray<Record<string, unknown>>) => ({
  Targets: rows.map((row) => ({ "@odata.type": `Microsoft.Dynamics.CRM.${type}`, ...row }))
})

describe("bulk messages on standard tables", () => {
  it("UpdateMultiple updates by primary key, applies only the first of duplicates, and is one transaction", async () => {
    await send(
      "POST",
      "contacts/Microsoft.Dynamics.CRM.CreateMultiple",
      targets("contact", [1, 2, 3].map((n) => ({ contactid: id(n), lastname: `L${n}` })))
    )
    const first = await send(
      "POST",
      "contacts/Microsoft.Dynamics.CRM.UpdateMultiple",
      targets("contact", [
        { contactid: id(1), lastname: "first" },
        { contactid: id(2), lastname: "two" },
        { contactid: id(1), lastname: "second" }
      ])
    )
    expect(first.status).toBe(204)
    expect(table("contact").get(id(1))!.values.lastname).toBe("first")
    expect(table("contact").get(id(2))!.values.lastname).toBe("two")
    const failing = await send(
      "POST",
      "contacts/Microsoft.Dynamics.CRM.UpdateMultiple",
      targets("contact", [
        { contactid: id(3), lastname: "changed" },
        { contactid: id(99), lastname: "missing" }
      ])
    )
    expect(failing.status).toBe(404)
    expect(table("contact").get(id(3))!.values.lastname).toBe("L3")
    const keyless = await send(
      "POST",
      "contacts/Microsoft.Dynamics.CRM.UpdateMultiple",
      targets("contact", [{ lastname: "x" }])
    )
    expect(keyless.status).toBe(400)
  })

  it("UpsertMultiple creates and updates by primary key or @odata.id, and fails on duplicates", async () => {
    await send("PATCH", "dve_products(dve_sku='S-1')", { dve_name: "Old name", dve_price: 5 })
    const response = await send(
      "POST",
      "dve_products/Microsoft.Dynamics.CRM.UpsertMultiple",
      targets("dve_product", [
        { "@odata.id": "dve_products(dve_sku='S-1')", dve_name: "New name" },
        { "@odata.id": "dve_products(dve_sku='S-2')", dve_name: "Second" },
        { dve_productid: id(7), dve_name: "By id", dve_sku: "S-7" }
      ])
    )
    expect(response.status).toBe(204)
    const rows = table("dve_product").scan().map((
      r
    ) => [r.values.dve_sku, r.values.dve_name, r.values.dve_price ?? null])
    expect(rows).toEqual([["S-1", "New name", 5], ["S-2", "Second", null], ["S-7", "By id", null]])
    const duplicate = await send(
      "POST",
      "dve_products/Microsoft.Dynamics.CRM.UpsertMultiple",
      targets("dve_product", [
        { "@odata.id": "dve_products(dve_sku='S-3')", dve_name: "A" },
        { "@odata.id": "dve_products(dve_sku='s-3')", dve_name: "B" }
      ])
    )
    expect(duplicate.status).toBe(400)
    expect((await json(duplicate)).error.message).toContain("Targets[0] and Targets[1]")
    expect(table("dve_product").size).toBe(3)
  })

  it("DeleteMultiple is not implemented on standard tables", async () => {
    const response = await send(
      "POST",
      "contacts/Microsoft.Dynamics.CRM.DeleteMultiple",
      targets("contact", [{ contactid: id(1) }])
    )
    expect(response.status).toBe(400)
    expect((await json(response)).error.message).toBe("DeleteMultiple has not yet been implemented.")
  })

  it("a table without the messages answers 404 for them, as an unbound action", async () => {
    for (const message of ["CreateMultiple", "UpdateMultiple", "UpsertMultiple"]) {
      const response = await send(
        "POST",
        `tasks/Microsoft.Dynamics.CRM.${message}`,
        targets("task", [{ subject: "x" }])
      )
      expect(response.status).toBe(404)
      expect((await json(response)).error.code).toBe("0x80060888")
    }
    expect((await send("POST", "tasks", { subject: "single creates work" })).status).toBe(204)
  })
})

describe("bulk messages on elastic tables", () => {
  const reading = (n: number, extra: Record<string, unknown> = {}) => ({
    dve_readingid: id(n),
    partitionid: "p1",
    dve_value: n,
    ...extra
  })

  it("CreateMultiple writes the good targets and reports the bad ones with their index", async () => {
    const response = await send(
      "POST",
      "dve_readings/Microsoft.Dynamics.CRM.CreateMultiple",
      targets("dve_reading", [reading(1), reading(2, { dve_sensor: "x".repeat(51) }), reading(3), reading(1)]),
      { Prefer: "odata.include-annotations=\"*\"" }
    )
    expect(response.status).toBe(400)
    const error = (await json(response)).error
    const details = JSON.parse(error["@Microsoft.PowerApps.CDS.ErrorDetails.BulkApiErrorDetails"])
    expect(details.map((d: any) => [d.RequestIndex, d.Id, d.StatusCode])).toEqual([[1, id(2), 400], [3, id(1), 412]])
    expect(table("dve_reading").ids().sort()).toEqual([id(1), id(3)])
  })

  it("UpsertMultiple replaces the whole record; DeleteMultiple deletes", async () => {
    await send(
      "POST",
      "dve_readings/Microsoft.Dynamics.CRM.CreateMultiple",
      targets("dve_reading", [reading(1, { dve_sensor: "s1" })])
    )
    expect(
      (await send(
        "POST",
        "dve_readings/Microsoft.Dynamics.CRM.UpsertMultiple",
        targets("dve_reading", [reading(1, { dve_value: 42 })])
      )).status
    ).toBe(204)
    expect(table("dve_reading").get(id(1))!.values).toMatchObject({ dve_value: 42, partitionid: "p1" })
    expect(table("dve_reading").get(id(1))!.values.dve_sensor ?? null).toBeNull()
    expect(
      (await send(
        "POST",
        "dve_readings/Microsoft.Dynamics.CRM.DeleteMultiple",
        targets("dve_reading", [{ dve_readingid: id(1), partitionid: "p1" }])
      )).status
    ).toBe(204)
    expect(table("dve_reading").size).toBe(0)
  })

  it("reads a record by id and partition, and refuses another partition", async () => {
    await send("POST", "dve_readings", reading(5))
    expect((await send("GET", `dve_readings(${id(5)})?partitionId=p1`)).status).toBe(200)
    expect((await send("GET", `dve_readings(dve_readingid=${id(5)},partitionid='p1')`)).status).toBe(200)
    expect((await send("GET", `dve_readings(${id(5)})?partitionId=other`)).status).toBe(404)
  })

  it("finds a record created with a partition only by requests that name it", async () => {
    await send("POST", "dve_readings", reading(6))
    // By id alone: not found, for reads, updates and deletes alike.
    expect((await send("GET", `dve_readings(${id(6)})`)).status).toBe(404)
    expect((await send("PATCH", `dve_readings(${id(6)})`, { dve_value: 7 }, { "If-Match": "*" })).status).toBe(404)
    expect((await send("DELETE", `dve_readings(${id(6)})`)).status).toBe(404)
    const byIdAlone = await send(
      "POST",
      "dve_readings/Microsoft.Dynamics.CRM.UpdateMultiple",
      targets("dve_reading", [{ dve_readingid: id(6), dve_value: 7 }])
    )
    expect(byIdAlone.status).toBe(404)
    expect(table("dve_reading").get(id(6))!.values.dve_value ?? null).not.toBe(7)
    // Named with its partition: found.
    expect((await send("DELETE", `dve_readings(dve_readingid=${id(6)},partitionid='p1')`)).status).toBe(204)
    expect(table("dve_reading").get(id(6))).toBeUndefined()
  })
})

describe("$batch", () => {
  const batch = (parts: string, headers: Record<string, string> = {}) =>
    fetch(api("$batch"), {
      method: "POST",
      headers: {
        Authorization: `Bearer ${emulator.info.accessToken}`,
        "Content-Type": "multipart/mixed; boundary=batch_1",
        ...headers
      },
      body: parts
    })
  const op = batchOperation
  const body = batchBody
  const statuses = batchStatuses

  it("runs operations and a change set whose later part binds to an earlier one by Content-ID", async () => {
    const response = await batch(body([
      op("POST", "/api/data/v9.2/accounts", { name: "Batch account" }),
      changeSet([
        op("POST", "accounts", { name: "In change set", accountnumber: "CS-1" }, "1"),
        op("POST", `${emulator.info.webApiUrl}contacts`, {
          lastname: "Linked",
          "parentcustomerid_account@odata.bind": "$1"
        }, "2"),
        op("PATCH", "$1", { telephone1: "555" }, "3")
      ]),
      op("GET", "accounts?$select=name")
    ]))
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^multipart\/mixed; boundary=batchresponse_/)
    const text = await response.text()
    expect(statuses(text)).toEqual([204, 204, 204, 204, 200])
    expect(text).toMatch(/changesetresponse_/)
    expect(text).toContain("Content-ID: 2")
    const account = table("account").getByKey("accountnumber_key", ["CS-1"])!
    expect(account.values.telephone1).toBe("555")
    expect(table("contact").scan()[0]!.values.parentcustomerid).toEqual({ table: "account", id: account.id })
  })

  it("rolls back a whole change set when one part fails", async () => {
    const response = await batch(
      body([
        changeSet([
          op("POST", "contacts", { lastname: "kept?" }, "1"),
          op("POST", "contacts", { lastname: "x".repeat(51) }, "2")
        ])
      ]),
      { Prefer: "odata.continue-on-error" }
    )
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(statuses(text)).toEqual([400])
    expect(text).toContain("0x80044331")
    expect(table("contact").size).toBe(0)
  })

  it("stops at the first failure without continue-on-error, and goes on with it", async () => {
    const parts = [
      op("POST", "contacts", { lastname: "one" }),
      op("POST", "contacts", { nosuch: 1 }),
      op("POST", "contacts", { lastname: "three" })
    ]
    const stopped = await batch(body(parts))
    expect(stopped.status).toBe(400)
    expect(statuses(await stopped.text())).toEqual([400])
    expect(table("contact").scan().map((r) => r.values.lastname)).toEqual(["one"])
    emulator.store.clear()
    const continued = await batch(body(parts), { Prefer: "odata.continue-on-error" })
    expect(continued.status).toBe(200)
    expect(statuses(await continued.text())).toEqual([204, 400, 204])
    expect(table("contact").scan().map((r) => r.values.lastname)).toEqual(["one", "three"])
  })

  it("accepts LF line endings and a missing closing delimiter, and refuses more than 1,000 operations", async () => {
    const lf = `--batch_1\n${op("POST", "contacts", { lastname: "lf" }).replace(/\r\n/g, "\n")}\n`
    expect((await batch(lf)).status).toBe(200)
    expect(table("contact").size).toBe(1)
    const many = body(Array.from({ length: 1001 }, () => op("GET", "WhoAmI")))
    const tooMany = await batch(many)
    expect(tooMany.status).toBe(400)
    expect((await json(tooMany)).error.message).toContain("1001")
    expect((await batch("not multipart", { "Content-Type": "text/plain" })).status).toBe(400)
  })

  it("runs bulk messages inside a batch", async () => {
    const response = await batch(
      body([
        op(
          "POST",
          "contacts/Microsoft.Dynamics.CRM.CreateMultiple",
          targets("contact", [{ lastname: "a" }, { lastname: "b" }])
        )
      ])
    )
    expect(statuses(await response.text())).toEqual([200])
    expect(table("contact").size).toBe(2)
  })
})

describe("counting", () => {
  it("answers $count=true with @odata.count and /$count as plain text", async () => {
    await send(
      "POST",
      "contacts/Microsoft.Dynamics.CRM.CreateMultiple",
      targets("contact", Array.from({ length: 12 }, (_, i) => ({ lastname: `L${i}` })))
    )
    const counted = await json(await send("GET", "contacts?$count=true&$top=2"))
    expect(counted["@odata.count"]).toBe(12)
    expect(counted.value).toHaveLength(2)
    const plain = await send("GET", "contacts/$count")
    expect(plain.headers.get("content-type")).toMatch(/^text\/plain/)
    expect(await plain.text()).toBe("12")
  })
})

describe("metadata", () => {
  it("lists tables, attributes with their types and lengths, keys, option sets and relationships", async () => {
    const tables = await json(await send("GET", "EntityDefinitions?$select=LogicalName,EntitySetName,TableType"))
    expect(tables.value.map((t: any) => [t.LogicalName, t.TableType])).toEqual([
      ["account", "Standard"],
      ["contact", "Standard"],
      ["dve_product", "Standard"],
      ["dve_reading", "Elastic"],
      ["task", "Standard"]
    ])
    const attributes = await json(
      await send(
        "GET",
        "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,AttributeType,MaxLength,RequiredLevel"
      )
    )
    const lastname = attributes.value.find((a: any) => a.LogicalName === "lastname")
    expect(lastname).toMatchObject({
      AttributeType: "String",
      MaxLength: 50,
      RequiredLevel: { Value: "ApplicationRequired" }
    })
    const all = await json(
      await send("GET", "EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName,AttributeType")
    )
    expect(all.value[0]).toMatchObject({ LogicalName: "contactid", AttributeType: "Uniqueidentifier" })
    // As on the service, a derived type's property needs the cast, and an empty cast is an empty list.
    expect(
      (await send("GET", "EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName,MaxLength")).status
    ).toBe(400)
    const none = await json(
      await send(
        "GET",
        "EntityDefinitions(LogicalName='task')/Attributes/Microsoft.Dynamics.CRM.MoneyAttributeMetadata?$select=LogicalName"
      )
    )
    expect(none.value).toEqual([])
    const keys = await json(
      await send(
        "GET",
        "EntityDefinitions(LogicalName='account')/Keys?$select=LogicalName,KeyAttributes,EntityKeyIndexStatus"
      )
    )
    expect(keys.value).toEqual([
      expect.objectContaining({
        LogicalName: "accountnumber_key",
        KeyAttributes: ["accountnumber"],
        EntityKeyIndexStatus: "Active"
      })
    ])
    const picklists = await json(
      await send(
        "GET",
        "EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options)"
      )
    )
    expect(picklists.value).toHaveLength(1)
    expect(picklists.value[0].OptionSet.Options.map((o: any) => [o.Value, o.Label.UserLocalizedLabel.Label])).toEqual([[
      1,
      "Male"
    ], [2, "Female"]])
    const relationships = await json(
      await send(
        "GET",
        "EntityDefinitions(LogicalName='contact')/ManyToOneRelationships?$select=ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName"
      )
    )
    expect(relationships.value.map((r: any) => r.ReferencingEntityNavigationPropertyName)).toEqual([
      "parentcustomerid_account",
      "parentcustomerid_contact"
    ])
  })

  it("answers sdkmessagefilters for the bulk-message support query", async () => {
    const query = (message: string, table: string) =>
      send(
        "GET",
        `sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq '${message}' and primaryobjecttypecode eq '${table}'`
      )
    expect((await json(await query("CreateMultiple", "contact"))).value).toHaveLength(1)
    expect((await json(await query("UpdateMultiple", "task"))).value).toHaveLength(0)
    expect((await json(await query("DeleteMultiple", "dve_reading"))).value).toHaveLength(1)
    expect((await json(await query("DeleteMultiple", "contact"))).value).toHaveLength(0)
    // UpsertMultiple is supported where both others are, and the query returns nothing for it.
    expect((await json(await query("UpsertMultiple", "contact"))).value).toHaveLength(0)
  })
})

describe("filtered, ordered and FetchXML queries", () => {
  const seed = async () => {
    const rows = Array.from(
      { length: 30 },
      (_, i) => ({ contactid: id(i + 1), lastname: `Name${String(i % 10)}`, creditlimit: i * 100 })
    )
    expect((await send("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", targets("contact", rows))).status)
      .toBe(200)
  }

  it("applies $filter and $orderby, and pages an ordered result", async () => {
    await seed()
    const filtered = await json(
      await send(
        "GET",
        "contacts?$select=lastname,creditlimit&$filter=creditlimit ge 2500 and startswith(lastname,'name')"
      )
    )
    expect(filtered.value.map((r: any) => r.creditlimit)).toEqual([2500, 2600, 2700, 2800, 2900])
    const ids = `Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['${id(3)}','${id(4)}'])`
    expect((await json(await send("GET", `contacts?$select=contactid&$filter=${encodeURIComponent(ids)}`))).value)
      .toHaveLength(2)
    const seen: Array<number> = []
    let url: string | undefined =
      `${emulator.info.webApiUrl}contacts?$select=creditlimit&$orderby=creditlimit desc&$filter=creditlimit lt 1000`
    while (url !== undefined) {
      const page: any = await json(
        await fetch(url, {
          headers: { Authorization: `Bearer ${emulator.info.accessToken}`, Prefer: "odata.maxpagesize=4" }
        })
      )
      for (const row of page.value) seen.push(row.creditlimit)
      url = page["@odata.nextLink"]
    }
    expect(seen).toEqual([900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
    const bad = await send("GET", "contacts?$filter=nosuch eq 1")
    expect(bad.status).toBe(400)
    expect((await json(bad)).error.code).toBe("0x80060888")
  })

  it("pages FetchXML with the service's cookie format, as clients follow it", async () => {
    await seed()
    const fetchXml = (page: number, cookie?: string) =>
      `<fetch count="7" page="${page}"${
        cookie === undefined
          ? ""
          : ` paging-cookie="${
            cookie.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
          }"`
      }>` +
      `<entity name="contact"><attribute name="lastname" /><attribute name="creditlimit" /><filter><condition attribute="creditlimit" operator="ge" value="500" /></filter></entity></fetch>`
    const prefer = {
      Prefer:
        "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\""
    }
    const seen: Array<number> = []
    let page = 1
    let cookie: string | undefined
    for (;;) {
      const body: any = await json(
        await send("GET", `contacts?fetchXml=${encodeURIComponent(fetchXml(page, cookie))}`, undefined, prefer)
      )
      for (const row of body.value) seen.push(row.creditlimit)
      if (body["@Microsoft.Dynamics.CRM.morerecords"] !== true) {
        expect(body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]).toBeUndefined()
        break
      }
      const annotation: string = body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
      expect(annotation).toMatch(/^<cookie pagenumber="\d+" pagingcookie="%253ccookie/)
      cookie = decodeURIComponent(decodeURIComponent(/pagingcookie="([^"]*)"/.exec(annotation)![1]!))
      page++
    }
    expect(page).toBe(4)
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => (i + 5) * 100))
    const row = (await json(await send("GET", `contacts?fetchXml=${encodeURIComponent(fetchXml(1))}`))).value[0]
    // FetchXML results omit null columns; the primary key is always there.
    expect(Object.keys(row).sort()).toEqual(["@odata.etag", "contactid", "creditlimit", "lastname"])
    const invalid = await send(
      "GET",
      `contacts?fetchXml=${
        encodeURIComponent("<fetch><entity name='contact'><attribute name='nosuch'/></entity></fetch>")
      }`
    )
    expect(invalid.status).toBe(400)
    expect((await json(invalid)).error.code).toBe("0x80041103")
  })
})

describe("BulkDelete", () => {
  it("deletes what a QueryExpression selects, as an asynchronous job that reports success", async () => {
    const rows = Array.from(
      { length: 20 },
      (_, i) => ({ contactid: id(i + 1), lastname: i < 12 ? "Temp" : "Keep", creditlimit: i })
    )
    await send("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", targets("contact", rows))
    const started = await send("POST", "BulkDelete", {
      QuerySet: [{
        EntityName: "contact",
        ColumnSet: { AllColumns: false },
        Criteria: {
          FilterOperator: "And",
          Conditions: [{
            AttributeName: "lastname",
            Operator: "Equal",
            Values: [{ Value: "Temp", Type: "System.String" }]
          }],
          Filters: [{
            FilterOperator: "Or",
            Conditions: [{
              AttributeName: "creditlimit",
              Operator: "LessThan",
              Values: [{ Value: "10", Type: "System.Int32" }]
            }]
          }]
        }
      }],
      JobName: "Remove temporary contacts",
      SendEmailNotification: false,
      ToRecipients: [],
      CCRecipients: [],
      RecurrencePattern: "",
      StartDateTime: "2026-11-22T00:00:00Z"
    })
    expect(started.status).toBe(200)
    const { JobId } = await json(started)
    // Wait on the job's state, as a client polls it.
    let job: any
    do {
      job = await json(await send("GET", `asyncoperations(${JobId})?$select=statecode,statuscode,message`))
    } while (job.statecode !== 3)
    expect(job).toMatchObject({ statecode: 3, statuscode: 30, message: "10 records deleted." })
    expect(table("contact").scan().map((r) => r.values.creditlimit)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    const bad = await send("POST", "BulkDelete", {
      QuerySet: [{
        EntityName: "contact",
        Criteria: { Conditions: [{ AttributeName: "lastname", Operator: "Sounds" }] }
      }]
    })
    expect(bad.status).toBe(400)
    expect((await send("GET", `asyncoperations(${id(999)})`)).status).toBe(404)
  })
})

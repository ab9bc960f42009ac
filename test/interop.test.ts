/**
 * Interop: the npm package `dynamics-web-api` v2 (a client nobody here wrote) against the
 * emulator over real HTTP. Every test checks what the client returns and what the emulator stored.
 *
 * Client usage follows its own types (node_modules/dynamics-web-api/dist/dynamics-web-api.d.ts):
 * `create` returns the new id (or the record with `returnRepresentation`), `update` and
 * `deleteRecord` return `true`, `upsert` with `ifnonematch: "*"` returns `null` on 412, batch
 * operations are queued between `startBatch()` and `executeBatch()`, and a failed batch rejects
 * with an array of errors.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import type { DynamicsWebApi, RequestError } from "dynamics-web-api"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { startWithDynamicsWebApi } from "./support/interop.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
let dwa: DynamicsWebApi

beforeAll(async () => {
  ;({ dwa, emulator } = await startWithDynamicsWebApi())
})
afterAll(() => emulator?.close())
beforeEach(() => emulator.store.clear())

/** A record as sent or received; the client's generics default the response type to the data type. */
type Row = Record<string, unknown>

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const tooLong = "x".repeat(51)

const table = (logicalName: string) => emulator.store.table(logicalName)!
const values = (logicalName: string, id: string) => table(logicalName).get(id)?.values

/**
 * An error from a part of a `$batch` response. Unlike a top-level error (where the client lifts
 * `code` and `message` out of the `{"error":{...}}` body), the client copies the part's parsed
 * body onto the Error as is, so the Dataverse code is at `error.code` of the body.
 */
type BatchPartError = Error & {
  readonly status: number
  readonly error: { readonly code: string; readonly message: string }
}

/** The error a promise rejects with; fails the test when it resolves. */
const failure = async <E = RequestError>(promise: Promise<unknown>): Promise<E> => {
  try {
    await promise
  } catch (error) {
    return error as E
  }
  throw new Error("expected the request to fail")
}

/** Seeds rows straight through the emulator's CreateMultiple (not through the client under test). */
const seed = async (
  entitySet: string,
  logicalName: string,
  rows: ReadonlyArray<Record<string, unknown>>
): Promise<Array<string>> => {
  const response = await fetch(`${emulator.info.webApiUrl}${entitySet}/Microsoft.Dynamics.CRM.CreateMultiple`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${emulator.info.accessToken}`,
      Accept: "application/json",
      "Content-Type": "application/json; charset=utf-8"
    },
    body: JSON.stringify({
      Targets: rows.map((row) => ({ "@odata.type": `Microsoft.Dynamics.CRM.${logicalName}`, ...row }))
    })
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { Ids: Array<string> }).Ids
}

const people = (n: number, city = "Paris") =>
  Array.from({ length: n }, (_, i) => ({
    firstname: `First${i}`,
    lastname: `Last${String(i).padStart(3, "0")}`,
    address1_city: city
  }))

describe("single records", () => {
  it("create returns the new id from OData-EntityId", async () => {
    const id = await dwa.create<Row, string>({
      collection: "contacts",
      data: { firstname: "Ada", lastname: "Lovelace" }
    })
    expect(id).toMatch(guid)
    expect(table("contact").size).toBe(1)
    expect(values("contact", id)).toMatchObject({ firstname: "Ada", lastname: "Lovelace", fullname: "Ada Lovelace" })
  })

  it("create with returnRepresentation returns the stored record", async () => {
    const record = await dwa.create<Row, Row & { contactid: string }>({
      collection: "contacts",
      data: { firstname: "Grace", lastname: "Hopper", emailaddress1: "grace@example.org" },
      returnRepresentation: true,
      select: ["fullname", "emailaddress1"]
    })
    expect(record.contactid).toMatch(guid)
    expect(record.fullname).toBe("Grace Hopper")
    expect(record.emailaddress1).toBe("grace@example.org")
    expect(record["@odata.etag"]).toMatch(/^W\/"\d+"$/)
    // $select applies to the representation.
    expect(record).not.toHaveProperty("firstname")
    expect(table("contact").size).toBe(1)
    expect(values("contact", record.contactid)).toMatchObject({ emailaddress1: "grace@example.org" })
  })

  it("create binds a lookup by alternate key and retrieve reads it back as _<column>_value", async () => {
    const [accountId] = await seed("accounts", "account", [{ name: "Contoso", accountnumber: "A-1" }])
    const id = await dwa.create<Row, string>({
      collection: "contacts",
      data: { lastname: "Smith", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')" }
    })
    expect(values("contact", id)!["parentcustomerid"]).toEqual({ table: "account", id: accountId })
    const record = await dwa.retrieve({ collection: "contacts", key: id, select: ["_parentcustomerid_value"] })
    expect(record._parentcustomerid_value).toBe(accountId)
  })

  it("retrieve returns the selected columns, the primary key and the ETag", async () => {
    const [id] = await seed("contacts", "contact", [{
      firstname: "Ada",
      lastname: "Lovelace",
      emailaddress1: "ada@example.org"
    }])
    const record = await dwa.retrieve({ collection: "contacts", key: id!, select: ["firstname", "lastname"] })
    expect(record.contactid).toBe(id)
    expect(record.firstname).toBe("Ada")
    expect(record.lastname).toBe("Lovelace")
    expect(record["@odata.etag"]).toMatch(/^W\/"\d+"$/)
    expect(record).not.toHaveProperty("emailaddress1")
  })

  it("retrieve of a missing record rejects with 404 0x80040217", async () => {
    const error = await failure(dwa.retrieve({ collection: "contacts", key: crypto.randomUUID() }))
    expect(error.status).toBe(404)
    expect(error.code).toBe("0x80040217")
  })

  it("update merges into the stored record and never creates one", async () => {
    const [id] = await seed("contacts", "contact", [{ firstname: "Ada", lastname: "Lovelace" }])
    const updated = await dwa.update({ collection: "contacts", key: id!, data: { jobtitle: "Analyst" } })
    expect(updated).toBe(true)
    expect(values("contact", id!)).toMatchObject({ firstname: "Ada", lastname: "Lovelace", jobtitle: "Analyst" })

    // The client sends If-Match: * by default: a missing record is 404, not an upsert.
    const missing = crypto.randomUUID()
    const error = await failure(dwa.update({ collection: "contacts", key: missing, data: { lastname: "Nobody" } }))
    expect(error.status).toBe(404)
    expect(error.code).toBe("0x80040217")
    expect(table("contact").size).toBe(1)
    expect(table("contact").get(missing)).toBeUndefined()
  })

  it("upsert by the account alternate key creates, then updates the same record", async () => {
    await dwa.upsert({ collection: "accounts", key: "accountnumber='A-1'", data: { name: "Contoso" } })
    expect(table("account").size).toBe(1)
    const [created] = table("account").scan()
    expect(created!.values).toMatchObject({ name: "Contoso", accountnumber: "A-1" })

    await dwa.upsert({ collection: "accounts", key: "accountnumber='A-1'", data: { name: "Contoso Ltd" } })
    expect(table("account").size).toBe(1)
    expect(values("account", created!.id)).toMatchObject({ name: "Contoso Ltd", accountnumber: "A-1" })
  })

  it("upsert by the dve_product alternate key creates, updates, and honours If-None-Match: *", async () => {
    await dwa.upsert({
      collection: "dve_products",
      key: "dve_sku='SKU-1'",
      data: { dve_name: "Widget", dve_price: 10 }
    })
    expect(table("dve_product").size).toBe(1)
    const [product] = table("dve_product").scan()
    expect(product!.values).toMatchObject({ dve_name: "Widget", dve_sku: "SKU-1", dve_price: 10 })

    await dwa.upsert({ collection: "dve_products", key: "dve_sku='SKU-1'", data: { dve_price: 12 } })
    expect(table("dve_product").size).toBe(1)
    expect(values("dve_product", product!.id)).toMatchObject({ dve_name: "Widget", dve_price: 12 })

    // Create-only: the record exists, the service answers 412 and the client returns null.
    const result = await dwa.upsert({
      collection: "dve_products",
      key: "dve_sku='SKU-1'",
      data: { dve_name: "Other" },
      ifnonematch: "*"
    })
    expect(result).toBeNull()
    expect(values("dve_product", product!.id)).toMatchObject({ dve_name: "Widget", dve_price: 12 })
  })

  it("deleteRecord removes the record; deleting it again is 404", async () => {
    const [id, other] = await seed("contacts", "contact", [{ lastname: "Gone" }, { lastname: "Stays" }])
    expect(await dwa.deleteRecord({ collection: "contacts", key: id! })).toBe(true)
    expect(table("contact").get(id!)).toBeUndefined()
    expect(table("contact").size).toBe(1)
    expect(table("contact").get(other!)).toBeDefined()

    const error = await failure(dwa.deleteRecord({ collection: "contacts", key: id! }))
    expect(error.status).toBe(404)
    expect(error.code).toBe("0x80040217")
  })

  it("a Dataverse validation error surfaces with its status, code and message", async () => {
    const error = await failure(dwa.create({ collection: "contacts", data: { firstname: "Ada", lastname: tooLong } }))
    expect(error).toBeInstanceOf(Error)
    expect(error.status).toBe(400)
    expect(error.code).toBe("0x80044331")
    expect(error.message).toContain("lastname")
    expect(table("contact").size).toBe(0)
  })

  it("an unknown entity set is 404 0x80060888", async () => {
    const error = await failure(dwa.create({ collection: "nosuchthings", data: { name: "x" } }))
    expect(error.status).toBe(404)
    expect(error.code).toBe("0x80060888")
  })
})

describe("queries", () => {
  it("retrieveMultiple pages by maxPageSize and follows the next link", async () => {
    const ids = await seed("contacts", "contact", people(7))
    const request = { collection: "contacts", select: ["fullname"], maxPageSize: 3 }
    const pages: Array<Array<{ contactid: string; fullname: string }>> = []
    let response = await dwa.retrieveMultiple(request)
    pages.push(response.value)
    while (response.oDataNextLink !== undefined) {
      response = await dwa.retrieveMultiple(request, response.oDataNextLink)
      pages.push(response.value)
    }
    expect(pages.map((page) => page.length)).toEqual([3, 3, 1])
    const seen = pages.flat().map((row) => row.contactid)
    expect(new Set(seen).size).toBe(7)
    expect([...seen].sort()).toEqual([...ids].sort())
    for (const row of pages.flat()) expect(row.fullname).toMatch(/^First\d Last\d{3}$/)
  })

  it("retrieveAll collects every page", async () => {
    const ids = await seed("contacts", "contact", people(25))
    const before = emulator.counters.requests
    const all = await dwa.retrieveAll<{ contactid: string }>({
      collection: "contacts",
      select: ["lastname"],
      maxPageSize: 10
    })
    expect(emulator.counters.requests - before).toBe(3)
    expect(all.value).toHaveLength(25)
    expect(all.value.map((row) => row.contactid).sort()).toEqual([...ids].sort())
    expect(all).not.toHaveProperty("oDataNextLink")
  })

  it("retrieveMultiple with $filter and $orderby", async () => {
    const [accountId] = await seed("accounts", "account", [{ name: "Contoso", accountnumber: "A-1" }])
    await seed("contacts", "contact", [
      { firstname: "Ann", lastname: "Baker", address1_city: "Paris", emailaddress1: "ann@example.org" },
      { firstname: "Bob", lastname: "Brown", address1_city: "Paris", emailaddress1: "bob@example.com" },
      { firstname: "Cid", lastname: "Black", address1_city: "Lyon", emailaddress1: "cid@example.org" },
      {
        firstname: "Dee",
        lastname: "Bishop",
        address1_city: "Paris",
        "parentcustomerid_account@odata.bind": `/accounts(${accountId})`
      },
      { firstname: "Eve", lastname: "Adams", address1_city: "Paris" }
    ])
    const inParis = await dwa.retrieveMultiple<{ lastname: string }>({
      collection: "contacts",
      select: ["lastname"],
      filter: "address1_city eq 'Paris' and startswith(lastname,'B')",
      orderBy: ["lastname desc"]
    })
    expect(inParis.value.map((row) => row.lastname)).toEqual(["Brown", "Bishop", "Baker"])

    const org = await dwa.retrieveMultiple<{ firstname: string }>({
      collection: "contacts",
      select: ["firstname"],
      filter: "contains(emailaddress1,'@example.org') or _parentcustomerid_value eq " + accountId,
      orderBy: ["firstname"]
    })
    expect(org.value.map((row) => row.firstname)).toEqual(["Ann", "Cid", "Dee"])

    const none = await dwa.retrieveMultiple({
      collection: "contacts",
      filter: "emailaddress1 eq null and lastname eq 'Baker'"
    })
    expect(none.value).toEqual([])
  })

  it("context URLs name the $select list as the service writes them", async () => {
    // MS Learn, query/select-columns and retrieve-entity-using-web-api:
    // `accounts?$select=name,revenue` → `$metadata#accounts(name,revenue)` (the primary key is
    // returned but not listed); `accounts(<id>)?$select=name,revenue` → `#accounts(name,revenue)/$entity`;
    // without $select the context is the bare entity set (OData 4.0 context URL rules).
    // Soft assertions: each of the three is reported on its own.
    const [id] = await seed("contacts", "contact", [{ firstname: "Ada", lastname: "Lovelace" }])
    const root = `${emulator.info.url}/api/data/v9.2/$metadata#`
    const selected = await dwa.retrieveMultiple({ collection: "contacts", select: ["firstname", "lastname"] })
    expect.soft(selected.oDataContext).toBe(`${root}contacts(firstname,lastname)`)
    const all = await dwa.retrieveMultiple({ collection: "contacts" })
    expect.soft(all.oDataContext).toBe(`${root}contacts`)
    const one = await dwa.retrieve({ collection: "contacts", key: id!, select: ["firstname", "lastname"] })
    expect.soft(one.oDataContext).toBe(`${root}contacts(firstname,lastname)/$entity`)
  })

  it("count and countAll", async () => {
    await seed("contacts", "contact", [...people(4, "Paris"), ...people(3, "Lyon")])
    // Without a filter the client asks GET contacts/$count (plain text).
    expect(await dwa.count({ collection: "contacts" })).toBe(7)
    // With a filter it asks $count=true and reads @odata.count.
    expect(await dwa.count({ collection: "contacts", filter: "address1_city eq 'Lyon'" })).toBe(3)
    expect(await dwa.countAll({ collection: "contacts", filter: "address1_city eq 'Paris'", select: ["contactid"] }))
      .toBe(4)
  })
})

describe("FetchXML", () => {
  const pagingAnnotations = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords"

  it("fetch pages with the paging cookie", async () => {
    const ids = await seed("contacts", "contact", [...people(7, "Paris"), ...people(2, "Lyon")])
    const fetchXml = "<fetch count=\"3\"><entity name=\"contact\"><attribute name=\"contactid\" />" +
      "<attribute name=\"fullname\" /><attribute name=\"emailaddress1\" />" +
      "<filter><condition attribute=\"address1_city\" operator=\"eq\" value=\"Paris\" /></filter></entity></fetch>"

    const first = await dwa.fetch<{ contactid: string; fullname: string }>({
      collection: "contacts",
      fetchXml,
      includeAnnotations: pagingAnnotations
    })
    expect(first.value).toHaveLength(3)
    expect(first.PagingInfo?.nextPage).toBe(2)
    expect(first.PagingInfo?.cookie).toContain("&lt;cookie page=&quot;1&quot;")
    // FetchXML results omit null columns.
    for (const row of first.value) expect(row).not.toHaveProperty("emailaddress1")

    const second = await dwa.fetch<{ contactid: string }>({
      collection: "contacts",
      fetchXml,
      includeAnnotations: pagingAnnotations,
      pageNumber: first.PagingInfo!.nextPage!,
      pagingCookie: first.PagingInfo!.cookie!
    })
    expect(second.value).toHaveLength(3)
    expect(second.PagingInfo?.nextPage).toBe(3)

    const third = await dwa.fetch<{ contactid: string }>({
      collection: "contacts",
      fetchXml,
      includeAnnotations: pagingAnnotations,
      pageNumber: second.PagingInfo!.nextPage!,
      pagingCookie: second.PagingInfo!.cookie!
    })
    expect(third.value).toHaveLength(1)
    expect(third.PagingInfo).toBeUndefined()

    const seen = [...first.value, ...second.value, ...third.value].map((row) => row.contactid)
    expect(new Set(seen).size).toBe(7)
    expect([...seen].sort()).toEqual(ids.slice(0, 7).sort())
  })

  it("fetchAll follows the paging cookies to the last page", async () => {
    await seed("contacts", "contact", [...people(11, "Paris"), ...people(4, "Lyon")])
    const before = emulator.counters.requests
    const all = await dwa.fetchAll<{ lastname: string }>({
      collection: "contacts",
      fetchXml: "<fetch count=\"4\"><entity name=\"contact\"><attribute name=\"lastname\" />" +
        "<filter><condition attribute=\"address1_city\" operator=\"eq\" value=\"Paris\" /></filter>" +
        "<order attribute=\"lastname\" descending=\"true\" /></entity></fetch>",
      includeAnnotations: pagingAnnotations
    })
    expect(emulator.counters.requests - before).toBe(3)
    expect(all.value.map((row) => row.lastname)).toEqual(
      Array.from({ length: 11 }, (_, i) => `Last${String(10 - i).padStart(3, "0")}`)
    )
  })
})

describe("$batch", () => {
  it("a change set commits every operation", async () => {
    dwa.startBatch()
    void dwa.create({ collection: "contacts", data: { lastname: "One" } })
    void dwa.create({ collection: "contacts", data: { lastname: "Two" } })
    void dwa.create({ collection: "accounts", data: { name: "Contoso", accountnumber: "A-1" } })
    const results = await dwa.executeBatch()
    expect(results).toHaveLength(3)
    for (const id of results) expect(id).toMatch(guid)
    expect(values("contact", results[0])).toMatchObject({ lastname: "One" })
    expect(values("contact", results[1])).toMatchObject({ lastname: "Two" })
    expect(values("account", results[2])).toMatchObject({ name: "Contoso" })
  })

  it("a change set is atomic: one failing operation rolls back the others", async () => {
    const [existing] = await seed("contacts", "contact", [{ lastname: "Before" }])
    dwa.startBatch()
    void dwa.create({ collection: "contacts", data: { lastname: "One" } })
    void dwa.update({ collection: "contacts", key: existing!, data: { lastname: "Changed" } })
    void dwa.create({ collection: "contacts", data: { lastname: tooLong } })
    void dwa.create({ collection: "contacts", data: { lastname: "Three" } })
    const errors = await failure<Array<BatchPartError>>(dwa.executeBatch())
    expect(Array.isArray(errors)).toBe(true)
    // The service answers a failed change set with one error part.
    expect(errors).toHaveLength(1)
    expect(errors[0]!.status).toBe(400)
    expect(errors[0]!.error.code).toBe("0x80044331")
    expect(table("contact").size).toBe(1)
    expect(values("contact", existing!)).toMatchObject({ lastname: "Before" })
  })

  it("continueOnError: the good operations land and the bad one is reported in place", async () => {
    const [existing] = await seed("contacts", "contact", [{ lastname: "Before" }])
    dwa.startBatch()
    void dwa.create({ collection: "contacts", data: { lastname: "One" } })
    void dwa.create({ collection: "contacts", data: { lastname: tooLong } })
    void dwa.update({ collection: "contacts", key: existing!, data: { lastname: "After" } })
    void dwa.retrieveMultiple({ collection: "contacts", select: ["lastname"], filter: "lastname eq 'After'" })
    const results = await dwa.executeBatch({ continueOnError: true, inChangeSet: false })
    expect(results).toHaveLength(4)
    expect(results[0]).toMatch(guid)
    expect(results[1]).toBeInstanceOf(Error)
    expect((results[1] as BatchPartError).status).toBe(400)
    expect((results[1] as BatchPartError).error.code).toBe("0x80044331")
    expect(results[2]).toBe(true)
    expect(results[3].value.map((row: { contactid: string }) => row.contactid)).toEqual([existing])
    expect(table("contact").size).toBe(2)
    expect(values("contact", results[0])).toMatchObject({ lastname: "One" })
    expect(values("contact", existing!)).toMatchObject({ lastname: "After" })
  })
})

describe("CreateMultiple through callAction", () => {
  const targets = (rows: ReadonlyArray<Record<string, unknown>>) =>
    rows.map((row) => ({ "@odata.type": "Microsoft.Dynamics.CRM.contact", ...row }))

  it("creates every target and returns their ids in order", async () => {
    const response = await dwa.callAction<{ Ids: Array<string> }>({
      collection: "contacts",
      actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
      action: { Targets: targets([{ lastname: "One" }, { lastname: "Two" }, { firstname: "Ada", lastname: "Three" }]) }
    })
    expect(response.Ids).toHaveLength(3)
    expect(table("contact").size).toBe(3)
    expect(response.Ids.map((id) => values("contact", id)?.["lastname"])).toEqual(["One", "Two", "Three"])
    expect(values("contact", response.Ids[2]!)).toMatchObject({ fullname: "Ada Three" })
  })

  it("is one transaction on a standard table: one bad target writes nothing", async () => {
    const error = await failure(dwa.callAction({
      collection: "contacts",
      actionName: "Microsoft.Dynamics.CRM.CreateMultiple",
      action: { Targets: targets([{ lastname: "One" }, { lastname: tooLong }, { lastname: "Three" }]) }
    }))
    expect(error.status).toBe(400)
    expect(error.code).toBe("0x80044331")
    expect(table("contact").size).toBe(0)
  })
})

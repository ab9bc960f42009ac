import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
// Response bodies are checked field by field below.

const json = (response: Response): Promise<any> => response.json()
const api = (path: string) => `${emulator.info.webApiUrl}${path}`
const auth = () => ({ Authorization: `Bearer ${emulator.info.accessToken}`, Accept: "application/json" })
const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(api(path), { headers: { ...auth(), ...headers } })
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(api(path), {
    method: "POST",
    headers: { ...auth(), "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })

beforeAll(async () => {
  emulator = await Emulator.start()
})
afterAll(() => emulator.close())
beforeEach(() => emulator.store.clear())

describe("identity", () => {
  it("answers WhoAmI for the token of the start contract", async () => {
    const response = await get("WhoAmI")
    expect(response.status).toBe(200)
    expect(response.headers.get("x-ms-dop-hint")).toBe("8")
    expect(response.headers.get("odata-version")).toBe("4.0")
    const body = await json(response)
    expect(body.UserId).toBe(emulator.info.userId)
    expect(body.OrganizationId).toBe(emulator.info.organizationId)
    expect(body.BusinessUnitId).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("refuses a missing, forged, expired or wrong-audience token with 401 in Dataverse's format", async () => {
    const expired = await emulator.issueToken({ lifetimeSeconds: -60 })
    const otherOrg = await emulator.issueToken({ audience: "https://contoso.crm.dynamics.com" })
    const forged = emulator.info.accessToken.slice(0, -4) + "AAAA"
    for (
      const [authorization, reason] of [
        [undefined, "missing"],
        ["Bearer not-a-jwt", "malformed"],
        [`Bearer ${forged}`, "bad signature"],
        [`Bearer ${expired}`, "expired"],
        [`Bearer ${otherOrg}`, "wrong audience"]
      ] as const
    ) {
      const response = await fetch(api("WhoAmI"), {
        headers: authorization === undefined ? {} : { Authorization: authorization }
      })
      expect(response.status).toBe(401)
      expect(response.headers.get("www-authenticate")).toContain("Bearer authorization_uri=")
      expect(response.headers.get("req_id")).toMatch(/^[0-9a-f-]{36}$/)
      const body = await json(response)
      expect(body.error.message).toContain(reason)
      expect(typeof body.error.code).toBe("string")
    }
  })

  it("finds WhoAmI only with GET, as a function", async () => {
    const response = await post("WhoAmI", {})
    expect(response.status).toBe(404)
    expect((await json(response)).error.code).toBe("0x80060888")
  })
})

describe("metadata", () => {
  it("returns a table definition with $select applied", async () => {
    const response = await get(
      "EntityDefinitions(LogicalName='contact')?$select=LogicalName,EntitySetName,PrimaryIdAttribute,TableType"
    )
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body).toMatchObject({
      LogicalName: "contact",
      EntitySetName: "contacts",
      PrimaryIdAttribute: "contactid",
      TableType: "Standard"
    })
    expect(body.PrimaryNameAttribute).toBeUndefined()
  })

  it("answers 404 for an unknown table", async () => {
    const response = await get("EntityDefinitions(LogicalName='nosuchtable')")
    expect(response.status).toBe(404)
    expect((await json(response)).error.message).toContain("nosuchtable")
  })
})

describe("create", () => {
  it("creates a record, reports its id in OData-EntityId, and returns it on request", async () => {
    const response = await post("accounts", { name: "Contoso", accountnumber: "A-1", numberofemployees: 10 })
    expect(response.status).toBe(204)
    const entityId = response.headers.get("odata-entityid")!
    const id = /accounts\(([0-9a-f-]{36})\)$/.exec(entityId)![1]!
    const read = await json(await get(`accounts(${id})?$select=name,accountnumber,numberofemployees`))
    expect(read).toMatchObject({ accountid: id, name: "Contoso", accountnumber: "A-1", numberofemployees: 10 })
    expect(read["@odata.etag"]).toMatch(/^W\/"\d+"$/)

    const represented = await post("accounts", { name: "Fabrikam" }, { Prefer: "return=representation" })
    expect(represented.status).toBe(201)
    expect((await json(represented)).name).toBe("Fabrikam")
    expect(emulator.store.table("account")!.size).toBe(2)
  })

  it("keeps a client-supplied primary key and refuses it twice with 412 duplicate key", async () => {
    const id = "6f1e1c1e-0000-4000-8000-000000000001"
    expect((await post("contacts", { contactid: id, lastname: "One" })).status).toBe(204)
    const again = await post("contacts", { contactid: id, lastname: "Two" })
    expect(again.status).toBe(412)
    expect((await json(again)).error.code).toBe("0x80040237")
    expect(emulator.store.table("contact")!.get(id)!.values.lastname).toBe("One")
  })

  it("binds lookups by id or alternate key, computes fullname, and reads lookups back as _x_value", async () => {
    await post("accounts", { name: "Contoso", accountnumber: "A-1" })
    const accountId = emulator.store.table("account")!.ids()[0]!
    await post("contacts", {
      firstname: "Ada",
      lastname: "Lovelace",
      "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')"
    })
    await post("contacts", { lastname: "Byron", "parentcustomerid_account@odata.bind": `accounts(${accountId})` })
    const rows = (await json(await get("contacts?$select=fullname,_parentcustomerid_value"))).value
    expect(rows.map((r: Record<string, unknown>) => [r.fullname, r._parentcustomerid_value])).toEqual([
      ["Ada Lovelace", accountId],
      ["Byron", accountId]
    ])
    const missing = await post("contacts", {
      lastname: "X",
      "parentcustomerid_account@odata.bind": "/accounts(00000000-0000-4000-8000-000000000000)"
    })
    expect(missing.status).toBe(404)
    expect((await json(missing)).error.code).toBe("0x80040217")
  })

  it("validates with the service's codes: unknown property, type, max length, option value, range, lookups", async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ lastname: "x", nosuchcolumn: 1 }, 400, "0x80048d19"],
      [{ lastname: 42 }, 400, "0x80048d19"],
      [{ lastname: "x".repeat(51) }, 400, "0x80044331"],
      [{ lastname: "x", gendercode: 7 }, 400, "0x8004431A"],
      [{ lastname: "x", creditlimit: -1 }, 400, "0x8004432F"],
      [{ lastname: "x", parentcustomerid: "6f1e1c1e-0000-4000-8000-000000000001" }, 400, "0x80048d19"],
      [{ contactid: "not-a-guid" }, 400, "0x80048d19"],
      ["{not json", 400, "0x80048d19"],
      [[1, 2], 400, "0x80048d19"]
    ]
    for (const [body, status, code] of cases) {
      const response = await post("contacts", body)
      expect(response.status, JSON.stringify(body)).toBe(status)
      expect((await json(response)).error.code, JSON.stringify(body)).toBe(code)
    }
    expect(emulator.store.table("contact")!.size).toBe(0)
  })
})

describe("CreateMultiple", () => {
  const target = (row: Record<string, unknown>) => ({ "@odata.type": "Microsoft.Dynamics.CRM.contact", ...row })

  it("creates every target and answers the ids in target order", async () => {
    const response = await post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
      Targets: [
        target({ lastname: "A" }),
        target({ lastname: "B", contactid: "6f1e1c1e-0000-4000-8000-0000000000bb" }),
        target({ lastname: "C" })
      ]
    })
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body["@odata.context"]).toContain("#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    expect(body.Ids).toHaveLength(3)
    expect(body.Ids[1]).toBe("6f1e1c1e-0000-4000-8000-0000000000bb")
    const table = emulator.store.table("contact")!
    expect(body.Ids.map((id: string) => table.get(id)!.values.lastname)).toEqual(["A", "B", "C"])
  })

  it("is one transaction on a standard table: one bad target writes nothing", async () => {
    const response = await post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
      Targets: [target({ lastname: "A" }), target({ lastname: "x".repeat(51) }), target({ lastname: "C" })]
    })
    expect(response.status).toBe(400)
    expect((await json(response)).error.code).toBe("0x80044331")
    expect(emulator.store.table("contact")!.size).toBe(0)
  })

  it("fails the whole request on a duplicate id within the payload", async () => {
    const id = "6f1e1c1e-0000-4000-8000-0000000000cc"
    const response = await post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
      Targets: [target({ lastname: "A", contactid: id }), target({ lastname: "B", contactid: id })]
    })
    expect(response.status).toBe(412)
    expect(emulator.store.table("contact")!.size).toBe(0)
  })

  it("requires @odata.type on every target and a Targets collection", async () => {
    expect((await post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", { Targets: [{ lastname: "A" }] })).status)
      .toBe(400)
    expect((await post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {})).status).toBe(400)
    const wrongType = await post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
      Targets: [{ "@odata.type": "Microsoft.Dynamics.CRM.account", name: "A" }]
    })
    expect(wrongType.status).toBe(400)
    expect(emulator.store.table("contact")!.size).toBe(0)
  })
})

describe("queries", () => {
  const seed = async (n: number) => {
    const Targets = Array.from(
      { length: n },
      (_, i) => ({ "@odata.type": "Microsoft.Dynamics.CRM.contact", lastname: `L${i}` })
    )
    expect((await post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", { Targets })).status).toBe(200)
  }

  it("pages with odata.maxpagesize and @odata.nextLink until every row was served once", async () => {
    await seed(25)
    const seen: Array<string> = []
    let url: string | undefined = api("contacts?$select=lastname")
    let pages = 0
    while (url !== undefined) {
      const response: Response = await fetch(url, { headers: { ...auth(), Prefer: "odata.maxpagesize=10" } })
      expect(response.status).toBe(200)
      expect(response.headers.get("preference-applied")).toBe("odata.maxpagesize=10")
      const body = await json(response)
      expect(body.value.length).toBeLessThanOrEqual(10)
      for (const row of body.value) {
        expect(Object.keys(row).sort()).toEqual(["@odata.etag", "contactid", "lastname"])
        seen.push(row.lastname)
      }
      url = body["@odata.nextLink"]
      if (url !== undefined) expect(url).toContain("$skiptoken=")
      pages++
    }
    expect(pages).toBe(3)
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `L${i}`))
  })

  it("limits with $top when no page size is asked for, and ignores it when one is", async () => {
    await seed(12)
    const top = await json(await get("contacts?$top=5"))
    expect(top.value).toHaveLength(5)
    expect(top["@odata.nextLink"]).toBeUndefined()
    const paged = await json(await get("contacts?$top=5", { Prefer: "odata.maxpagesize=10" }))
    expect(paged.value).toHaveLength(10)
    expect(paged["@odata.nextLink"]).toBeDefined()
  })

  it("rejects unknown columns in $select and unknown entity sets", async () => {
    const column = await get("contacts?$select=nosuchcolumn")
    expect(column.status).toBe(400)
    expect((await json(column)).error.message).toContain("nosuchcolumn")
    const table = await get("nosuchtables")
    expect(table.status).toBe(404)
    expect((await json(table)).error).toEqual({
      code: "0x80060888",
      message: "Resource not found for the segment 'nosuchtables'."
    })
  })

  it("refuses the query options it does not evaluate instead of ignoring them", async () => {
    const response = await get("contacts?$apply=groupby((lastname))")
    expect(response.status).toBe(400)
    expect((await json(response)).error.message).toContain("$apply")
  })
})

it("counts requests and records written", async () => {
  const before = { ...emulator.counters }
  await post("accounts", { name: "A" })
  await get("WhoAmI")
  expect(emulator.counters.requests - before.requests).toBe(2)
  expect(emulator.counters.recordsWritten - before.recordsWritten).toBe(1)
})

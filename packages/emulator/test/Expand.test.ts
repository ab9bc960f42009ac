/**
 * `$expand` over real HTTP: single-valued and collection-valued navigation properties, on queries
 * and retrieves, in the shapes of learn.microsoft.com "Join tables using OData"; and FetchXML
 * `link-entity` ("Join tables using FetchXml").
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>

const json = (response: Response): Promise<any> => response.json()
const api = (path: string) => `${emulator.info.webApiUrl}${path}`
const auth = () => ({ Authorization: `Bearer ${emulator.info.accessToken}`, Accept: "application/json" })
const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(api(path), { headers: { ...auth(), ...headers } })
const create = async (entitySet: string, body: Record<string, unknown>): Promise<string> => {
  const response = await fetch(api(entitySet), {
    method: "POST",
    headers: { ...auth(), "Content-Type": "application/json" },
    body: JSON.stringify(body)
  })
  expect(response.status).toBe(204)
  return /\(([^)]+)\)$/.exec(response.headers.get("OData-EntityId")!)![1]!
}

beforeAll(async () => {
  emulator = await Emulator.start()
})
afterAll(() => emulator.close())

let contoso: string
let fabrikam: string
let ann: string
let bob: string
let cy: string

beforeEach(async () => {
  emulator.store.clear()
  contoso = await create("accounts", { name: "Contoso", accountnumber: "C-1" })
  fabrikam = await create("accounts", { name: "Fabrikam" })
  ann = await create("contacts", {
    firstname: "Ann",
    lastname: "Zed",
    "parentcustomerid_account@odata.bind": `/accounts(${contoso})`
  })
  bob = await create("contacts", {
    firstname: "Bob",
    lastname: "Young",
    "parentcustomerid_account@odata.bind": `/accounts(${contoso})`
  })
  // A contact whose parent is a contact: parentcustomerid_account is null for it.
  cy = await create("contacts", {
    firstname: "Cy",
    lastname: "Xu",
    "parentcustomerid_contact@odata.bind": `/contacts(${ann})`
  })
})

describe("$expand of a single-valued navigation property", () => {
  it("returns the related record (selected columns and key, no etag) on a retrieve", async () => {
    const response = await get(`contacts(${ann})?$select=lastname&$expand=parentcustomerid_account($select=name)`)
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body["@odata.context"]).toBe(
      `${emulator.info.webApiUrl}$metadata#contacts(lastname,parentcustomerid_account(name))/$entity`
    )
    expect(body.lastname).toBe("Zed")
    expect(body.parentcustomerid_account).toEqual({ name: "Contoso", accountid: contoso })
  })

  it("is null when the lookup is empty or points at the other table, in a query", async () => {
    const response = await get(
      `contacts?$select=firstname&$orderby=firstname&$expand=parentcustomerid_account($select=name,accountnumber)`
    )
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body["@odata.context"]).toBe(
      `${emulator.info.webApiUrl}$metadata#contacts(firstname,parentcustomerid_account(name,accountnumber))`
    )
    expect(body.value.map((row: any) => [row.firstname, row.parentcustomerid_account])).toEqual([
      ["Ann", { name: "Contoso", accountnumber: "C-1", accountid: contoso }],
      ["Bob", { name: "Contoso", accountnumber: "C-1", accountid: contoso }],
      ["Cy", null]
    ])
    const other = await json(
      await get(`contacts(${cy})?$select=firstname&$expand=parentcustomerid_contact($select=firstname)`)
    )
    expect(other.parentcustomerid_contact).toEqual({ firstname: "Ann", contactid: ann })
  })

  it("returns every column without a nested $select, and nests single-valued expands", async () => {
    const account = await create("accounts", {
      name: "Northwind",
      "primarycontactid@odata.bind": `/contacts(${bob})`
    })
    const body = await json(
      await get(
        `accounts(${account})?$select=name&$expand=primarycontactid($select=fullname;$expand=parentcustomerid_account($select=name))`
      )
    )
    expect(body.primarycontactid).toEqual({
      fullname: "Bob Young",
      contactid: bob,
      parentcustomerid_account: { name: "Contoso", accountid: contoso }
    })
    const all = await json(await get(`accounts(${account})?$select=name&$expand=primarycontactid`))
    expect(all["@odata.context"]).toContain("#accounts(name,primarycontactid())/$entity")
    expect(all.primarycontactid.lastname).toBe("Young")
    expect(all.primarycontactid.firstname).toBe("Bob")
    expect(all.primarycontactid["@odata.etag"]).toBeUndefined()
  })

  it("annotates the related record's lookups when annotations are asked for", async () => {
    const body = await json(
      await get(`accounts?$select=name&$filter=name eq 'Contoso'&$expand=primarycontactid($select=fullname)`, {
        Prefer: "odata.include-annotations=\"*\""
      })
    )
    expect(body.value[0].primarycontactid).toBeNull()
    const contact = await json(
      await get(`contacts(${cy})?$select=firstname&$expand=parentcustomerid_contact($select=_parentcustomerid_value)`, {
        Prefer: "odata.include-annotations=\"*\""
      })
    )
    expect(contact.parentcustomerid_contact).toEqual({
      "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
      _parentcustomerid_value: contoso,
      contactid: ann
    })
  })

  it("expands on a create that returns the representation", async () => {
    const response = await fetch(api("contacts?$select=lastname&$expand=parentcustomerid_account($select=name)"), {
      method: "POST",
      headers: { ...auth(), "Content-Type": "application/json", Prefer: "return=representation" },
      body: JSON.stringify({ lastname: "New", "parentcustomerid_account@odata.bind": `/accounts(${fabrikam})` })
    })
    expect(response.status).toBe(201)
    const body = await json(response)
    expect(body.parentcustomerid_account).toEqual({ name: "Fabrikam", accountid: fabrikam })
  })

  it("refuses $top and $orderby on a single-valued navigation property, with the service's error", async () => {
    const response = await get(`contacts?$expand=parentcustomerid_account($select=name;$top=1)`)
    expect(response.status).toBe(400)
    const body = await json(response)
    expect(body.error.code).toBe("0x80060888")
    expect(body.error.message).toBe(
      "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or nested one-to-many relationship."
    )
  })
})

describe("$expand of a collection-valued navigation property", () => {
  it("returns the related records with the back-pointing lookup and a next link without paging", async () => {
    const response = await get(
      `accounts?$select=name&$orderby=name&$expand=contact_customer_accounts($select=firstname)`
    )
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body["@odata.context"]).toBe(
      `${emulator.info.webApiUrl}$metadata#accounts(name,contact_customer_accounts(firstname))`
    )
    const [first, second] = body.value
    expect(first.name).toBe("Contoso")
    expect(first.contact_customer_accounts).toEqual([
      expect.objectContaining({ firstname: "Ann", _parentcustomerid_value: contoso, contactid: ann }),
      expect.objectContaining({ firstname: "Bob", _parentcustomerid_value: contoso, contactid: bob })
    ])
    expect(first.contact_customer_accounts[0]["@odata.etag"]).toMatch(/^W\/"\d+"$/)
    const link = first["contact_customer_accounts@odata.nextLink"]
    expect(link).toBe(
      `${emulator.info.webApiUrl}accounts(${contoso})/contact_customer_accounts?$select=firstname`
    )
    expect([second.name, second.accountid]).toEqual(["Fabrikam", fabrikam])
    expect(second.contact_customer_accounts).toEqual([])

    // The link is the filtered collection: the same records again, as a query.
    const related = await json(await fetch(link, { headers: auth() }))
    expect(related.value.map((row: any) => row.contactid)).toEqual([ann, bob])
  })

  it("applies nested $filter, $orderby and $top, on a retrieve", async () => {
    await create("contacts", {
      firstname: "Dee",
      lastname: "Wu",
      "parentcustomerid_account@odata.bind": `/accounts(${contoso})`
    })
    const body = await json(
      await get(
        `accounts(${contoso})?$select=name&$expand=contact_customer_accounts($select=firstname;$filter=firstname ne 'Bob';$orderby=firstname desc;$top=1)`
      )
    )
    expect(body.contact_customer_accounts.map((row: any) => row.firstname)).toEqual(["Dee"])
  })

  it("pages the filtered collection by odata.maxpagesize", async () => {
    const first = await json(
      await get(`accounts(${contoso})/contact_customer_accounts?$select=firstname&$orderby=firstname`, {
        Prefer: "odata.maxpagesize=1"
      })
    )
    expect(first.value.map((row: any) => row.firstname)).toEqual(["Ann"])
    expect(first["@odata.nextLink"]).toContain(`accounts(${contoso})/contact_customer_accounts?`)
    const next = await json(
      await fetch(first["@odata.nextLink"], { headers: { ...auth(), Prefer: "odata.maxpagesize=1" } })
    )
    expect(next.value.map((row: any) => row.firstname)).toEqual(["Bob"])
    expect(next["@odata.nextLink"]).toBeUndefined()
  })
})

describe("$expand errors", () => {
  it("answers an unknown navigation property with the OData layer's error", async () => {
    const response = await get(`contacts(${ann})?$select=lastname&$expand=nosuchproperty($select=name)`)
    expect(response.status).toBe(400)
    const body = await json(response)
    expect(body.error.code).toBe("0x80060888")
    expect(body.error.message).toBe(
      "Could not find a property named 'nosuchproperty' on type 'Microsoft.Dynamics.CRM.contact'."
    )
  })

  it("answers a column that is not a navigation property, and an unknown nested column", async () => {
    const column = await json(await get(`contacts?$expand=lastname`))
    expect(column.error.message).toBe(
      "Property 'lastname' on type 'Microsoft.Dynamics.CRM.contact' is not a navigation property or complex property. Only navigation properties can be expanded."
    )
    const nested = await get(`contacts?$expand=parentcustomerid_account($select=nosuchcolumn)`)
    expect(nested.status).toBe(400)
    expect((await json(nested)).error.message).toBe(
      "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.account'."
    )
    const skip = await get(`accounts?$expand=contact_customer_accounts($skip=1)`)
    expect(skip.status).toBe(400)
  })
})

describe("FetchXML link-entity", () => {
  const fetchXml = (xml: string, headers: Record<string, string> = {}) =>
    get(`contacts?fetchXml=${encodeURIComponent(xml)}`, headers)

  it("joins many-to-one, inner by default: linked attributes as <alias>.<column>, unmatched records dropped", async () => {
    const response = await fetchXml(
      `<fetch><entity name="contact"><attribute name="firstname" /><order attribute="firstname" />
        <link-entity name="account" from="accountid" to="parentcustomerid" alias="parent">
          <attribute name="name" /><attribute name="accountnumber" />
        </link-entity></entity></fetch>`
    )
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body.value.map((row: any) => [row.firstname, row["parent.name"], row["parent.accountnumber"]])).toEqual([
      ["Ann", "Contoso", "C-1"],
      ["Bob", "Contoso", "C-1"]
    ])
    expect(body.value[0].contactid).toBe(ann)
  })

  it("keeps unmatched records with link-type outer, and omits the missing linked columns", async () => {
    const body = await json(
      await fetchXml(
        `<fetch><entity name="contact"><attribute name="firstname" /><order attribute="firstname" />
          <link-entity name="account" from="accountid" to="parentcustomerid" link-type="outer" alias="a">
            <attribute name="name" />
          </link-entity></entity></fetch>`
      )
    )
    expect(body.value.map((row: any) => [row.firstname, row["a.name"]])).toEqual([
      ["Ann", "Contoso"],
      ["Bob", "Contoso"],
      ["Cy", undefined]
    ])
    expect(Object.keys(body.value[2]).some((key) => key.startsWith("a."))).toBe(false)
  })

  it("joins one-to-many (a row per linked record), filters linked records, names the default alias", async () => {
    const xml = `<fetch><entity name="account"><attribute name="name" /><order attribute="name" />
      <link-entity name="contact" from="parentcustomerid" to="accountid">
        <attribute name="firstname" />
        <filter><condition attribute="firstname" operator="ne" value="Bob" /></filter>
      </link-entity></entity></fetch>`
    const response = await get(`accounts?fetchXml=${encodeURIComponent(xml)}`, {
      Prefer: "odata.include-annotations=\"*\""
    })
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body.value).toHaveLength(1)
    expect(body.value[0].name).toBe("Contoso")
    expect(body.value[0]["contact1.firstname"]).toBe("Ann")
    expect(body.value[0]["contact1.firstname@OData.Community.Display.V1.AttributeName"]).toBe("firstname")

    const all = await json(
      await get(
        `accounts?fetchXml=${
          encodeURIComponent(
            `<fetch><entity name="account"><attribute name="name" /><link-entity name="contact" from="parentcustomerid" to="accountid" alias="c"><attribute name="firstname" /></link-entity></entity></fetch>`
          )
        }`
      )
    )
    expect(all.value.map((row: any) => row["c.firstname"]).sort()).toEqual(["Ann", "Bob"])
  })

  it("answers an unknown linked table or attribute with the query builder's errors", async () => {
    const table = await json(
      await fetchXml(
        `<fetch><entity name="contact"><link-entity name="nosuch" from="accountid" to="parentcustomerid" /></entity></fetch>`
      )
    )
    expect(table.error.code).toBe("0x80041102")
    const attribute = await json(
      await fetchXml(
        `<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid"><attribute name="nosuch" /></link-entity></entity></fetch>`
      )
    )
    expect(attribute.error.code).toBe("0x80041103")
    const type = await fetchXml(
      `<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid" link-type="any" /></entity></fetch>`
    )
    expect(type.status).toBe(400)
  })
})

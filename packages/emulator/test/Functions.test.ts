/**
 * Functions over real HTTP: unbound ones with and without `()`, parameters inline and as aliases,
 * a function bound to a record, and the errors for unknown functions and for missing or malformed
 * parameters.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import { Fault } from "../src/internal/fault.js"
import { bindArguments, parseLiteral } from "../src/internal/functions.js"
import { type KeyPredicate, parsePath } from "../src/internal/odataPath.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>

const json = (response: Response): Promise<any> => response.json()
const get = (path: string, method = "GET") =>
  fetch(`${emulator.info.webApiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${emulator.info.accessToken}`, Accept: "application/json" }
  })
const create = async (entitySet: string, body: Record<string, unknown>): Promise<string> => {
  const response = await fetch(`${emulator.info.webApiUrl}${entitySet}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json" },
    body: JSON.stringify(body)
  })
  expect(response.status).toBe(204)
  return /\(([^)]+)\)$/.exec(response.headers.get("odata-entityid")!)![1]!
}
/** The status and error body of a failed call. */
const failure = async (response: Response) => ({ status: response.status, ...(await json(response)).error })

beforeAll(async () => {
  emulator = await Emulator.start({ identity: false })
})
afterAll(() => emulator.close())
beforeEach(() => emulator.store.clear())

describe("unbound functions", () => {
  it("answers WhoAmI with and without parentheses, and only to GET", async () => {
    for (const path of ["WhoAmI", "WhoAmI()"]) {
      const response = await get(path)
      expect(response.status).toBe(200)
      expect(await json(response)).toEqual({
        "@odata.context": `${emulator.info.webApiUrl}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`,
        BusinessUnitId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        UserId: emulator.info.userId,
        OrganizationId: emulator.info.organizationId
      })
    }
    expect(await failure(await get("WhoAmI()", "POST"))).toEqual({
      status: 404,
      code: "0x80060888",
      message: "Resource not found for the segment 'WhoAmI'."
    })
  })

  it("answers RetrieveVersion", async () => {
    const response = await get("RetrieveVersion()")
    expect(response.status).toBe(200)
    const body = await json(response)
    expect(body["@odata.context"]).toBe(
      `${emulator.info.webApiUrl}$metadata#Microsoft.Dynamics.CRM.RetrieveVersionResponse`
    )
    expect(body.Version).toMatch(/^9\.2\.\d+\.\d+$/)
  })

  it("counts records with RetrieveTotalRecordCount, parameters as aliases or inline", async () => {
    for (const name of ["A", "B", "C"]) await create("accounts", { name })
    for (const lastname of ["X", "Y"]) await create("contacts", { lastname })
    const expected = {
      "@odata.context": `${emulator.info.webApiUrl}$metadata#Microsoft.Dynamics.CRM.RetrieveTotalRecordCountResponse`,
      EntityRecordCountCollection: { Count: 2, IsReadOnly: false, Keys: ["account", "contact"], Values: [3, 2] }
    }
    for (
      const path of [
        // Microsoft's example, as written and as a client encodes it
        `RetrieveTotalRecordCount(EntityNames=@p1)?@p1=["account","contact"]`,
        `RetrieveTotalRecordCount(EntityNames=@p1)?@p1=${encodeURIComponent(`["account","contact"]`)}`,
        `RetrieveTotalRecordCount(EntityNames=@p1)?@p1=['account','contact']`,
        `RetrieveTotalRecordCount(EntityNames=['account','contact'])`,
        `RetrieveTotalRecordCount(EntityNames=${encodeURIComponent(`[ "account" , "contact" ]`)})`
      ]
    ) {
      const response = await get(path)
      expect({ path, status: response.status }).toEqual({ path, status: 200 })
      expect(await json(response)).toEqual(expected)
    }
    const one = await json(await get("RetrieveTotalRecordCount(EntityNames=['contact'])"))
    expect(one.EntityRecordCountCollection).toEqual({ Count: 1, IsReadOnly: false, Keys: ["contact"], Values: [2] })
  })

  it("answers unknown functions, and unbound ones by their full name, with the service's 404", async () => {
    for (
      const [path, segment] of [
        ["NoSuchFunction()", "NoSuchFunction"],
        ["NoSuchFunction(Name='x')", "NoSuchFunction"],
        ["Microsoft.Dynamics.CRM.WhoAmI()", "Microsoft.Dynamics.CRM.WhoAmI"],
        ["whoami()", "whoami"],
        ["accounts/Microsoft.Dynamics.CRM.NoSuchFunction()", "Microsoft.Dynamics.CRM.NoSuchFunction"]
      ]
    ) {
      expect(await failure(await get(path!))).toEqual({
        status: 404,
        code: "0x80060888",
        message: `Resource not found for the segment '${segment}'.`
      })
    }
  })

  it("refuses missing, unknown and malformed parameters as the service does", async () => {
    const required = {
      status: 400,
      code: "0x80040203",
      message: "Required field 'EntityNames' is missing for RequestName='RetrieveTotalRecordCount'"
    }
    // No parameters: the function is found, the platform misses the required one.
    expect(await failure(await get("RetrieveTotalRecordCount()"))).toEqual(required)
    expect(await failure(await get("RetrieveTotalRecordCount"))).toEqual(required)
    // An alias the query string does not define is null.
    expect(await failure(await get("RetrieveTotalRecordCount(EntityNames=@p1)"))).toEqual(required)
    expect(await failure(await get("RetrieveTotalRecordCount(EntityNames=@p1)?@p2=['account']"))).toEqual(required)
    expect(await failure(await get("RetrieveTotalRecordCount(EntityNames=null)"))).toEqual(required)
    // Parameters that are not the function's: no overload matches, the function is not found.
    for (const path of ["RetrieveTotalRecordCount(Names=['account'])", "WhoAmI(x=1)", "WhoAmI(1)"]) {
      const { status, code } = await failure(await get(path))
      expect({ path, status, code }).toEqual({ path, status: 404, code: "0x80060888" })
    }
    // Values that are not a collection of strings.
    for (
      const [path, literal] of [
        ["RetrieveTotalRecordCount(EntityNames=@p1)?@p1=[account]", "[account]"],
        ["RetrieveTotalRecordCount(EntityNames=@p1)?@p1='account'", "'account'"],
        ["RetrieveTotalRecordCount(EntityNames=@p1)?@p1=[1,2]", "[1,2]"],
        ["RetrieveTotalRecordCount(EntityNames=1)", "1"],
        ["RetrieveTotalRecordCount(EntityNames='account')", "'account'"],
        ["RetrieveTotalRecordCount(EntityNames=['account'],x)", undefined]
      ] as const
    ) {
      const error = await failure(await get(path))
      expect({ path, status: error.status, code: error.code }).toEqual({ path, status: 400, code: "0x80048d19" })
      if (literal !== undefined) {
        expect(error.message).toBe(
          `Cannot convert the literal '${literal}' to the expected type 'Collection(Edm.String)'.`
        )
      }
    }
    // An unterminated string or collection is a syntax error.
    for (
      const path of ["RetrieveTotalRecordCount(EntityNames=['account)", "RetrieveTotalRecordCount(EntityNames=['a'"]
    ) {
      const { status, code } = await failure(await get(path))
      expect({ path, status, code }).toEqual({ path, status: 400, code: "0x80048d19" })
    }
    // A table the org does not have.
    expect(await failure(await get("RetrieveTotalRecordCount(EntityNames=['account','nosuchtable'])"))).toEqual({
      status: 400,
      code: "0x80041102",
      message: "The entity with a name = 'nosuchtable' with namemapping = 'Logical' was not found in the MetadataCache."
    })
  })
})

describe("a function bound to a record: RetrievePrincipalAccess", () => {
  const path = (userId: string, target: string, name = "Microsoft.Dynamics.CRM.RetrievePrincipalAccess") =>
    `systemusers(${userId})/${name}(Target=@tid)?@tid=${encodeURIComponent(target)}`

  it("answers the access rights of a user of the org to a record, the reference relative or absolute", async () => {
    const accountId = await create("accounts", { name: "Contoso" })
    for (
      const target of [
        `{'@odata.id':'accounts(${accountId})'}`,
        `{"@odata.id":"accounts(${accountId})"}`,
        `{"@odata.id":"${emulator.info.webApiUrl}accounts(${accountId})"}`
      ]
    ) {
      const response = await get(path(emulator.info.userId, target))
      expect(response.status).toBe(200)
      expect(await json(response)).toEqual({
        "@odata.context": `${emulator.info.webApiUrl}$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAccessResponse`,
        AccessRights:
          "ReadAccess, WriteAccess, AppendAccess, AppendToAccess, CreateAccess, DeleteAccess, ShareAccess, AssignAccess"
      })
    }
    // Inline, as the parameter's JSON in the parentheses.
    const inline = await get(
      `systemusers(${emulator.info.userId})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=${
        encodeURIComponent(`{'@odata.id':'accounts(${accountId})'}`)
      })`
    )
    expect(inline.status).toBe(200)
  })

  it("answers 404 for a record or a user that does not exist, and for the unqualified name", async () => {
    const accountId = await create("accounts", { name: "Contoso" })
    const missing = "00000000-0000-4000-8000-00000000dead"
    expect(await failure(await get(path(emulator.info.userId, `{'@odata.id':'accounts(${missing})'}`)))).toEqual({
      status: 404,
      code: "0x80040217",
      message: `account With Id = ${missing} Does Not Exist`
    })
    expect(await failure(await get(path(missing, `{'@odata.id':'accounts(${accountId})'}`)))).toEqual({
      status: 404,
      code: "0x80040217",
      message: `systemuser With Id = ${missing} Does Not Exist`
    })
    const unqualified = await failure(
      await get(path(emulator.info.userId, `{'@odata.id':'accounts(${accountId})'}`, "RetrievePrincipalAccess"))
    )
    expect([unqualified.status, unqualified.code]).toEqual([404, "0x80060888"])
    // Bound to records, not to the collection.
    const collection = await failure(
      await get(`systemusers/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@tid)?@tid={}`)
    )
    expect([collection.status, collection.code]).toEqual([404, "0x80060888"])
  })

  it("refuses a Target that is not a record reference", async () => {
    const error = await failure(await get(path(emulator.info.userId, `'accounts'`)))
    expect([error.status, error.code]).toEqual([400, "0x80048d19"])
    expect(error.message).toBe("Cannot convert the literal ''accounts'' to the expected type 'mscrm.crmbaseentity'.")
    const required = await failure(
      await get(`systemusers(${emulator.info.userId})/Microsoft.Dynamics.CRM.RetrievePrincipalAccess()`)
    )
    expect(required).toEqual({
      status: 400,
      code: "0x80040203",
      message: "Required field 'Target' is missing for RequestName='RetrievePrincipalAccess'"
    })
  })
})

describe("parameter syntax", () => {
  const keyOf = (path: string): KeyPredicate | undefined => {
    const segments = parsePath(path)
    if (segments instanceof Fault) throw new Error(segments.message)
    return segments.at(-1)!.key
  }

  it("reads empty parentheses and collection and object values in a call", () => {
    expect(keyOf("WhoAmI()")).toEqual({ _tag: "Named", parts: [] })
    expect(keyOf("F(A=['a,b','c)'],B={'x':'y,z'},C=@p1,D=\"[1,2]\")")).toEqual({
      _tag: "Named",
      parts: [
        ["A", { _tag: "Bare", value: "['a,b','c)']" }],
        ["B", { _tag: "Bare", value: "{'x':'y,z'}" }],
        ["C", { _tag: "Bare", value: "@p1" }],
        ["D", { _tag: "Bare", value: "\"[1,2]\"" }]
      ]
    })
    expect(keyOf(`F(A=["x)\\"y'"])`)).toEqual({ _tag: "Named", parts: [["A", { _tag: "Bare", value: `["x)\\"y'"]` }]] })
  })

  it("parses strings, numbers, GUIDs, booleans, null, enum members, JSON and aliases", () => {
    expect(parseLiteral("'O''Neil'")).toEqual({ _tag: "String", value: "O'Neil" })
    expect(parseLiteral("1033")).toEqual({ _tag: "Number", value: 1033, integer: true })
    expect(parseLiteral("-1.5e2")).toEqual({ _tag: "Number", value: -150, integer: false })
    expect(parseLiteral("6F1E1C1E-0000-4000-8000-000000000001")).toEqual({
      _tag: "Guid",
      value: "6f1e1c1e-0000-4000-8000-000000000001"
    })
    expect(parseLiteral("true")).toEqual({ _tag: "Boolean", value: true })
    expect(parseLiteral("null")).toEqual({ _tag: "Null" })
    expect(parseLiteral("Microsoft.Dynamics.CRM.EndpointAccessType'Default'")).toEqual({
      _tag: "Enum",
      type: "Microsoft.Dynamics.CRM.EndpointAccessType",
      member: "Default"
    })
    expect(parseLiteral(`["a", 'b''c', 1, true, null, {"k": ['v']}]`)).toEqual({
      _tag: "Json",
      value: ["a", "b'c", 1, true, null, { k: ["v"] }]
    })
    expect(parseLiteral("{'@odata.id':'accounts(1)'}")).toEqual({ _tag: "Json", value: { "@odata.id": "accounts(1)" } })
    expect(parseLiteral("@p1")).toEqual({ _tag: "Alias", name: "@p1" })
    for (const bad of ["[account]", "['a'", "['a',]", "{'a'}", "'a", "abc", "@", "1 2", "[1] x"]) {
      expect({ bad, literal: parseLiteral(bad) }).toEqual({ bad, literal: undefined })
    }
  })

  it("binds arguments from aliases and refuses duplicated parameters", () => {
    const definition = { name: "F", parameters: [{ name: "A", type: "Collection(Edm.String)" as const }] }
    const search = new URLSearchParams("@p1=[\"x\",\"y\"]")
    expect(bindArguments(definition, keyOf("F(A=@p1)"), search)).toEqual(new Map([["A", ["x", "y"]]]))
    const duplicated = bindArguments(definition, keyOf("F(A=['x'],A=['y'])"), search)
    expect(duplicated).toBeInstanceOf(Fault)
    expect((duplicated as Fault).status).toBe(400)
  })
})

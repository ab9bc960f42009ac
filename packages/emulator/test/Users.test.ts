/**
 * Several application users in one emulator (issue 15, item 3): each its own credentials, token,
 * systemuser and service protection windows; records carry who created and last modified them.
 */
import { ConfidentialClientApplication } from "@azure/msal-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import * as Model from "../src/Model.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
beforeAll(async () => {
  emulator = await Emulator.start({ users: 3 })
})
afterAll(() => emulator.close())

const api = (token: string, path: string, init: RequestInit = {}) =>
  fetch(`${emulator.info.webApiUrl}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...init.headers }
  })

const json = async <A>(response: Response): Promise<A> => {
  expect(response.status).toBeLessThan(300)
  return (await response.json()) as A
}

const whoAmI = async (token: string) => (await json<{ UserId: string }>(await api(token, "WhoAmI"))).UserId

describe("several application users", () => {
  it("lists n users with distinct ids, secrets and tokens, the first being the top-level one", () => {
    const { info } = emulator
    expect(info.users).toHaveLength(3)
    for (const field of ["userId", "clientId", "clientSecret", "accessToken"] as const) {
      expect(new Set(info.users.map((user) => user[field])).size).toBe(3)
    }
    expect(info.users[0]).toEqual({
      userId: info.userId,
      clientId: info.clientId,
      clientSecret: info.clientSecret,
      accessToken: info.accessToken
    })
  })

  it("answers WhoAmI with each user's own UserId, for its static token and for its client-secret token", async () => {
    for (const user of emulator.info.users) {
      expect(await whoAmI(user.accessToken)).toBe(user.userId)
      const app = new ConfidentialClientApplication({
        auth: {
          clientId: user.clientId,
          clientSecret: user.clientSecret!,
          authority: emulator.info.authority!,
          knownAuthorities: [...emulator.identity!.knownAuthorities]
        },
        system: { networkClient: emulator.identity!.msalNetworkClient }
      })
      const result = await app.acquireTokenByClientCredential({ scopes: [`${emulator.info.url}/.default`] })
      expect(await whoAmI(result!.accessToken)).toBe(user.userId)
    }
  })

  it("issues further tokens per user", async () => {
    const token = await emulator.issueToken({ user: 2, lifetimeSeconds: 60 })
    expect(await whoAmI(token)).toBe(emulator.info.users[2]!.userId)
    await expect(emulator.issueToken({ user: 3 })).rejects.toThrow("no application user 3")
  })
})

describe("createdby and modifiedby", () => {
  type Contact = { contactid: string; _createdby_value: string; _modifiedby_value: string }
  const user = (i: number) => emulator.info.users[i]!

  const read = async (token: string, id: string) =>
    json<Contact & Record<string, unknown>>(
      await api(token, `contacts(${id})?$select=lastname,_createdby_value,_modifiedby_value`, {
        headers: { Prefer: "odata.include-annotations=\"*\"" }
      })
    )

  it("are the caller's systemuser: both on create, modifiedby on update, through every write path", async () => {
    const created = await api(user(0).accessToken, "contacts", {
      method: "POST",
      body: JSON.stringify({ lastname: "A" })
    })
    expect(created.status).toBe(204)
    const id = /\(([^)]+)\)$/.exec(created.headers.get("OData-EntityId")!)![1]!
    const first = await read(user(1).accessToken, id)
    expect(first._createdby_value).toBe(user(0).userId)
    expect(first._modifiedby_value).toBe(user(0).userId)
    expect(first["_createdby_value@Microsoft.Dynamics.CRM.lookuplogicalname"]).toBe("systemuser")

    const updated = await api(user(1).accessToken, `contacts(${id})`, {
      method: "PATCH",
      body: JSON.stringify({ firstname: "B" })
    })
    expect(updated.status).toBe(204)
    const second = await read(user(0).accessToken, id)
    expect(second._createdby_value).toBe(user(0).userId)
    expect(second._modifiedby_value).toBe(user(1).userId)

    // CreateMultiple and UpsertMultiple (update) by a third user.
    const { Ids } = await json<{ Ids: Array<string> }>(
      await api(user(2).accessToken, "contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
        method: "POST",
        body: JSON.stringify({
          Targets: [{ "@odata.type": "Microsoft.Dynamics.CRM.contact", lastname: "C" }]
        })
      })
    )
    expect((await read(user(0).accessToken, Ids[0]!))._createdby_value).toBe(user(2).userId)
    const upserted = await api(user(0).accessToken, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", {
      method: "POST",
      body: JSON.stringify({
        Targets: [{ "@odata.type": "Microsoft.Dynamics.CRM.contact", contactid: Ids[0], lastname: "C2" }]
      })
    })
    expect(upserted.status).toBe(204)
    const third = await read(user(1).accessToken, Ids[0]!)
    expect(third._createdby_value).toBe(user(2).userId)
    expect(third._modifiedby_value).toBe(user(0).userId)
  })

  it("are filterable and sortable like any lookup", async () => {
    await api(user(1).accessToken, "contacts", { method: "POST", body: JSON.stringify({ lastname: "ByBob" }) })
    const byBob = await json<{ value: Array<Contact & { lastname: string }> }>(
      await api(
        user(0).accessToken,
        `contacts?$select=lastname,_createdby_value&$filter=_createdby_value eq ${user(1).userId}`
      )
    )
    expect(byBob.value.map((row) => row.lastname)).toEqual(["ByBob"])
    expect(byBob.value.every((row) => row._createdby_value === user(1).userId)).toBe(true)
    const modifiedByOthers = await json<{ value: Array<Contact> }>(
      await api(
        user(0).accessToken,
        `contacts?$select=_modifiedby_value&$filter=_modifiedby_value ne ${user(0).userId}&$orderby=_modifiedby_value`
      )
    )
    expect(modifiedByOthers.value.length).toBeGreaterThan(0)
    expect(modifiedByOthers.value.every((row) => row._modifiedby_value !== user(0).userId)).toBe(true)
    const fetchXml = `<fetch><entity name="contact"><attribute name="lastname"/><attribute name="createdby"/>` +
      `<filter><condition attribute="createdby" operator="eq" value="${user(1).userId}"/></filter></entity></fetch>`
    const fetched = await json<{ value: Array<Contact & { lastname: string }> }>(
      await api(user(0).accessToken, `contacts?fetchXml=${encodeURIComponent(fetchXml)}`)
    )
    expect(fetched.value.map((row) => [row.lastname, row._createdby_value])).toEqual([["ByBob", user(1).userId]])
  })

  it("cannot be set by the body", async () => {
    const refused = await api(user(0).accessToken, "contacts", {
      method: "POST",
      body: JSON.stringify({ lastname: "X", createdby: user(1).userId })
    })
    expect(refused.status).toBe(400)
  })

  it("are created by the first user for seeded records", () => {
    const [id] = emulator.seed("account", [{ name: "Seeded" }])
    const record = emulator.store.table("account")!.get(id!)!
    expect(record.values["createdby"]).toEqual({ table: "systemuser", id: user(0).userId })
  })

  it("are lookups to systemuser in the metadata when the schema declares them, and not writable", async () => {
    const schema = {
      tables: [
        {
          logicalName: "systemuser",
          entitySetName: "systemusers",
          schemaName: "SystemUser",
          objectTypeCode: 8,
          primaryIdAttribute: "systemuserid",
          primaryNameAttribute: "fullname",
          tableType: "Standard" as const,
          columns: [{ logicalName: "fullname", type: "String" as const, maxLength: 200 }],
          keys: [],
          messages: { createMultiple: false, updateMultiple: false, upsertMultiple: false, deleteMultiple: false }
        },
        {
          logicalName: "dve_item",
          entitySetName: "dve_items",
          schemaName: "dve_Item",
          objectTypeCode: 10001,
          primaryIdAttribute: "dve_itemid",
          primaryNameAttribute: "dve_name",
          tableType: "Standard" as const,
          columns: [
            { logicalName: "dve_name", type: "String" as const, maxLength: 100 },
            {
              logicalName: "createdby",
              type: "Lookup" as const,
              targets: [{ table: "systemuser", navigationProperty: "createdby" }]
            },
            {
              logicalName: "modifiedby",
              type: "Lookup" as const,
              targets: [{ table: "systemuser", navigationProperty: "modifiedby" }]
            }
          ],
          keys: [],
          messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
        }
      ]
    }
    const declared = await Emulator.start({ schema, identity: false, users: 2 })
    try {
      const [one, two] = declared.info.users
      const call = (token: string, path: string, init: RequestInit = {}) =>
        fetch(`${declared.info.webApiUrl}${path}`, {
          ...init,
          headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }
        })
      const attributes = await json<{ value: Array<Record<string, unknown>> }>(
        await call(one!.accessToken, "EntityDefinitions(LogicalName='dve_item')/Attributes")
      )
      expect(attributes.value.find((a) => a["LogicalName"] === "createdby")).toMatchObject({
        AttributeType: "Lookup",
        Targets: ["systemuser"],
        IsValidForCreate: false,
        IsValidForUpdate: false
      })
      // A bind in the body is the service's to set: the caller wins.
      const created = await call(two!.accessToken, "dve_items", {
        method: "POST",
        body: JSON.stringify({ dve_name: "x", "createdby@odata.bind": `/systemusers(${one!.userId})` })
      })
      expect(created.status).toBe(204)
      // Declared: returned without $select, like any column.
      const rows = await json<{ value: Array<Record<string, unknown>> }>(await call(one!.accessToken, "dve_items"))
      expect(rows.value[0]).toMatchObject({ _createdby_value: two!.userId, _modifiedby_value: two!.userId })
    } finally {
      await declared.close()
    }
  })
})

describe("service protection limits per user", () => {
  it("keeps a window per user: one user throttled does not throttle another", async () => {
    const small = await Emulator.start({
      users: 2,
      identity: false,
      profile: { ...Model.fast, name: "small", requestsPerWindow: 3, windowSeconds: 60 }
    })
    try {
      const [one, two] = small.info.users
      const call = (token: string) =>
        fetch(`${small.info.webApiUrl}WhoAmI`, { headers: { Authorization: `Bearer ${token}` } })
      for (let i = 0; i < 3; i++) expect((await call(one!.accessToken)).status).toBe(200)
      const refused = await call(one!.accessToken)
      expect(refused.status).toBe(429)
      expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThan(0)
      expect((await call(one!.accessToken)).status).toBe(429)
      // The other user has its own window, untouched.
      for (let i = 0; i < 3; i++) {
        const response = await call(two!.accessToken)
        expect(response.status).toBe(200)
        expect(response.headers.get("x-ms-ratelimit-burst-remaining-xrm-requests")).toBe(String(2 - i))
      }
      expect((await call(two!.accessToken)).status).toBe(429)
      expect(small.servers[0]!.throttled.requests).toBe(3)
    } finally {
      await small.close()
    }
  })
})

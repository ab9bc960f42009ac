/**
 * Interop: functions called through the npm package `dynamics-web-api` v2's `callFunction`
 * against the emulator over real HTTP. The client writes calls in their canonical form:
 * `WhoAmI()` without parameters, `Name(P=@p1)?@p1=<value>` with them (strings quoted, objects and
 * arrays as JSON), and a bound function after `collection(key)`.
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

/** The error a promise rejects with; fails the test when it resolves. */
const failure = async (promise: Promise<unknown>): Promise<RequestError> => {
  try {
    await promise
  } catch (error) {
    return error as RequestError
  }
  throw new Error("expected the request to fail")
}

describe("callFunction against the emulator", () => {
  it("calls WhoAmI and RetrieveVersion without parameters", async () => {
    const whoAmI = await dwa.callFunction<{ UserId: string; OrganizationId: string }>("WhoAmI")
    expect(whoAmI.UserId).toBe(emulator.info.userId)
    expect(whoAmI.OrganizationId).toBe(emulator.info.organizationId)
    const version = await dwa.callFunction<{ Version: string }>({ name: "RetrieveVersion" })
    expect(version.Version).toMatch(/^9\.2\.\d+\.\d+$/)
  })

  it("calls RetrieveTotalRecordCount with a collection parameter", async () => {
    await dwa.create({ collection: "accounts", data: { name: "Contoso" } })
    await dwa.create({ collection: "accounts", data: { name: "Fabrikam" } })
    await dwa.create({ collection: "contacts", data: { lastname: "Smith" } })
    const counts = await dwa.callFunction<{
      EntityRecordCountCollection: { Count: number; IsReadOnly: boolean; Keys: Array<string>; Values: Array<number> }
    }>({ name: "RetrieveTotalRecordCount", parameters: { EntityNames: ["account", "contact"] } })
    expect(counts.EntityRecordCountCollection).toEqual({
      Count: 2,
      IsReadOnly: false,
      Keys: ["account", "contact"],
      Values: [2, 1]
    })
  })

  it("calls RetrievePrincipalAccess bound to a systemuser, with a record reference", async () => {
    const accountId = await dwa.create<Record<string, unknown>, string>({
      collection: "accounts",
      data: { name: "Contoso" }
    })
    const access = await dwa.callFunction<{ AccessRights: string }>({
      name: "Microsoft.Dynamics.CRM.RetrievePrincipalAccess",
      collection: "systemusers",
      key: emulator.info.userId,
      parameters: { Target: { "@odata.id": `accounts(${accountId})` } }
    })
    expect(access.AccessRights.split(", ")).toContain("ReadAccess")
    expect(access.AccessRights.split(", ")).toContain("DeleteAccess")
  })

  it("rejects an unknown function and a reference to a missing record with the service's errors", async () => {
    const unknown = await failure(dwa.callFunction("NoSuchFunction"))
    expect(unknown.status).toBe(404)
    expect(unknown.code).toBe("0x80060888")
    const missing = await failure(
      dwa.callFunction({
        name: "Microsoft.Dynamics.CRM.RetrievePrincipalAccess",
        collection: "systemusers",
        key: emulator.info.userId,
        parameters: { Target: { "@odata.id": "accounts(00000000-0000-4000-8000-00000000dead)" } }
      })
    )
    expect(missing.status).toBe(404)
    expect(missing.code).toBe("0x80040217")
    const unknownTable = await failure(
      dwa.callFunction({ name: "RetrieveTotalRecordCount", parameters: { EntityNames: ["nosuchtable"] } })
    )
    expect(unknownTable.status).toBe(400)
    expect(unknownTable.code).toBe("0x80041102")
  })
})

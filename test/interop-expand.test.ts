/**
 * Interop: `$expand` from the npm package `dynamics-web-api` v2 (a client nobody here wrote)
 * against the emulator over real HTTP: `retrieve` and `retrieveMultiple` with its `expand`
 * option (`{ property, select, filter, orderBy, top }`, see its `Expand` type in
 * node_modules/dynamics-web-api/dist/dynamics-web-api.d.ts).
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

/** A record as received; the client's generics default the response type to the data type. */
type Row = Record<string, any>

let contoso: string
let ames: string

beforeEach(async () => {
  emulator.store.clear()
  contoso = (await dwa.create({ collection: "accounts", data: { name: "Contoso" } }))!
  ames = (await dwa.create({
    collection: "contacts",
    data: { lastname: "Ames", "parentcustomerid_account@odata.bind": `/accounts(${contoso})` }
  }))!
  await dwa.create({
    collection: "contacts",
    data: { lastname: "Berg", "parentcustomerid_account@odata.bind": `/accounts(${contoso})` }
  })
  await dwa.create({ collection: "contacts", data: { lastname: "Cole" } })
})

describe("dynamics-web-api expand against the emulator", () => {
  it("retrieve expands a lookup's record", async () => {
    const record = await dwa.retrieve<Row>({
      collection: "contacts",
      key: ames,
      select: ["lastname"],
      expand: [{ property: "parentcustomerid_account", select: ["name"] }]
    })
    expect(record!.lastname).toBe("Ames")
    expect(record!.parentcustomerid_account).toEqual({ name: "Contoso", accountid: contoso })
  })

  it("retrieveMultiple expands lookups (null when empty) and a filtered, ordered, limited collection", async () => {
    const contacts = await dwa.retrieveMultiple<Row>({
      collection: "contacts",
      select: ["lastname"],
      orderBy: ["lastname"],
      expand: [{ property: "parentcustomerid_account", select: ["name"] }]
    })
    expect(contacts.value.map((row) => [row.lastname, row.parentcustomerid_account?.name ?? null])).toEqual([
      ["Ames", "Contoso"],
      ["Berg", "Contoso"],
      ["Cole", null]
    ])
    const accounts = await dwa.retrieveMultiple<Row>({
      collection: "accounts",
      select: ["name"],
      expand: [{
        property: "contact_customer_accounts",
        select: ["lastname"],
        filter: "lastname ne 'Cole'",
        orderBy: ["lastname desc"],
        top: 1
      }]
    })
    expect(accounts.value).toHaveLength(1)
    expect(accounts.value[0]!.contact_customer_accounts.map((row: Row) => row.lastname)).toEqual(["Berg"])
  })

  it("an unknown navigation property rejects with 400 and the OData layer's message", async () => {
    let error: RequestError | undefined
    try {
      await dwa.retrieve({ collection: "contacts", key: ames, expand: [{ property: "nosuchproperty" }] })
    } catch (e) {
      error = e as RequestError
    }
    expect(error?.status).toBe(400)
    expect(error?.message).toBe(
      "Could not find a property named 'nosuchproperty' on type 'Microsoft.Dynamics.CRM.contact'."
    )
  })
})

/**
 * A query that names its records' primary keys (the bulk engine's existence checks) reads them
 * by id: the same answer as a scan, pages and counts included.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`

beforeAll(async () => {
  emulator = await Emulator.start({ identity: false })
  for (const n of [1, 2, 3, 4, 5]) {
    const response = await api("contacts", {
      method: "POST",
      body: JSON.stringify({ contactid: id(n), lastname: `L${n}` })
    })
    expect(response.status).toBe(204)
  }
})
afterAll(() => emulator.close())

const api = (path: string, init: RequestInit = {}) =>
  fetch(path.startsWith("http") ? path : `${emulator.info.webApiUrl}${path}`, {
    ...init,
    headers: {
      Authorization: `Bearer ${emulator.info.accessToken}`,
      "Content-Type": "application/json",
      Prefer: "odata.maxpagesize=2",
      ...init.headers
    }
  })

const inKeys = (ids: ReadonlyArray<string>) =>
  `Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=[${ids.map((i) => `'${i}'`).join(",")}])`

describe("a query by primary keys", () => {
  it("pages the named records in insertion order, missing ones left out, and counts them", async () => {
    const filter = encodeURIComponent(inKeys([id(5), "00000000-0000-4000-8000-000000000099", id(1), id(3)]))
    const first = await (await api(`contacts?$select=contactid&$count=true&$filter=${filter}`)).json() as {
      value: Array<{ contactid: string }>
      "@odata.count": number
      "@odata.nextLink"?: string
    }
    expect(first["@odata.count"]).toBe(3)
    expect(first.value.map((r) => r.contactid)).toEqual([id(1), id(3)])
    const second = await (await api(first["@odata.nextLink"]!)).json() as {
      value: Array<{ contactid: string }>
      "@odata.nextLink"?: string
    }
    expect(second.value.map((r) => r.contactid)).toEqual([id(5)])
    expect(second["@odata.nextLink"]).toBeUndefined()
  })

  it("applies the rest of the filter and the order to them", async () => {
    const filter = encodeURIComponent(`${inKeys([id(1), id(2), id(4)])} and lastname ne 'L2'`)
    const answer = await (await api(`contacts?$select=lastname&$orderby=lastname desc&$filter=${filter}`)).json() as {
      value: Array<{ lastname: string }>
    }
    expect(answer.value.map((r) => r.lastname)).toEqual(["L4", "L1"])
    const count = await (await api(`contacts/$count?$filter=${encodeURIComponent(`contactid eq ${id(2)}`)}`)).text()
    expect(count).toBe("1")
  })
})

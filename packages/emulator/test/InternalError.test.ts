/**
 * An emulator bug answers as the service answers its own: a 500 with the error body of
 * 0x80040216 ("An unexpected error occurred."), never an empty body; the server keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
beforeAll(async () => {
  emulator = await Emulator.start({ identity: false })
})
afterAll(() => emulator.close())

const get = (path: string) =>
  fetch(`${emulator.info.webApiUrl}${path}`, { headers: { Authorization: `Bearer ${emulator.info.accessToken}` } })

describe("an internal error", () => {
  it("answers 500 with the service's error body, and the next request is served", async () => {
    const store = emulator.store
    const entitySet = store.entitySet.bind(store)
    // A defect in the request's handling: the store throws.
    store.entitySet = () => {
      throw new Error("boom")
    }
    try {
      const failed = await get("contacts?$top=1")
      expect(failed.status).toBe(500)
      expect(failed.headers.get("content-type")).toContain("application/json")
      expect(await failed.json()).toEqual({
        error: { code: "0x80040216", message: "An unexpected error occurred." }
      })
    } finally {
      store.entitySet = entitySet
    }
    const served = await get("contacts?$top=1")
    expect(served.status).toBe(200)
  })
})

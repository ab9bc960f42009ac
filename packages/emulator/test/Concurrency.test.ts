import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import * as Model from "../src/Model.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
// Latency keeps many requests in flight at once, so readers run while writers are pending.
beforeAll(async () => {
  emulator = await Emulator.start({
    identity: false,
    profile: { ...Model.fast, latency: { baseMs: 5, perRecordMs: 0.05, perOperationMs: 2 } }
  })
})
afterAll(() => emulator.close())

const send = (method: string, path: string, body?: unknown) =>
  fetch(`${emulator.info.webApiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })

describe("concurrent requests", () => {
  it("never expose part of a request: readers see whole chunks only, failed chunks never", async () => {
    emulator.reset()
    const chunk = 50
    const writers = Array.from(
      { length: 40 },
      (_, w) =>
        send("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
          Targets: Array.from({ length: chunk }, (_, i) => ({
            "@odata.type": "Microsoft.Dynamics.CRM.contact",
            lastname: w % 4 === 3 && i === chunk - 1 ? "x".repeat(51) : `W${w}`
          }))
        }).then((response) => response.status)
    )
    const counts: Array<number> = []
    let writing = true
    const readers = (async () => {
      while (writing) {
        counts.push(Number(await (await send("GET", "contacts/$count")).text()))
      }
    })()
    const statuses = await Promise.all(writers)
    writing = false
    await readers
    expect(statuses.filter((s) => s === 200)).toHaveLength(30)
    expect(statuses.filter((s) => s === 400)).toHaveLength(10)
    expect(counts.length).toBeGreaterThan(0)
    for (const count of counts) expect(count % chunk).toBe(0)
    const stored = emulator.store.table("contact")!.scan()
    expect(stored).toHaveLength(30 * chunk)
    expect(stored.some((r) => ["W3", "W7", "W11"].includes(String(r.values.lastname)))).toBe(false)
  })

  it("seeds through the same validation as POST, all or nothing", () => {
    emulator.reset()
    const ids = emulator.seed("account", [{ name: "A", accountnumber: "S-1" }, { name: "B" }])
    expect(ids).toHaveLength(2)
    expect(() => emulator.seed("account", [{ name: "C" }, { name: "D", accountnumber: "S-1" }])).toThrow(
      /row 1: .*already exists/
    )
    expect(emulator.store.table("account")!.size).toBe(2)
    expect(() => emulator.seed("nosuch", [])).toThrow(/no table 'nosuch'/)
    // Documented: dates from 1/1/1753 on, on a date-only column (birthdate) as on the others.
    expect(() => emulator.seed("contact", [{ lastname: "Old", birthdate: "1752-12-31" }])).toThrow(
      /'birthdate' .* is outside the valid range/
    )
    expect(emulator.seed("contact", [{ lastname: "Oldest", birthdate: "1753-01-01" }])).toHaveLength(1)
    expect(() => emulator.seed("task", [{ subject: "Old", scheduledend: "1752-12-31T23:59:59Z" }])).toThrow(
      /'scheduledend' .* is outside the valid range/
    )
    // Without an offset a date-time is UTC, whatever this machine's time zone.
    const [id] = emulator.seed("task", [{ subject: "Noon", scheduledend: "1753-01-01T12:00:00" }])
    expect(emulator.store.table("task")!.get(id!)!.values.scheduledend).toBe("1753-01-01T12:00:00Z")
    // Documented (OData's literal forms): a day that does not exist, or another notation, is refused.
    expect(emulator.seed("task", [{ subject: "Nano", scheduledend: "2024-01-31T10:00:00.123456789Z" }])).toHaveLength(
      1
    )
    for (
      const scheduledend of [
        "2024-02-30",
        "06/01/2024",
        "2024-01-31T24:00:00Z",
        "2024-01-31 10:00",
        "2024-01-31T10:00+15:00"
      ]
    ) {
      expect(() => emulator.seed("task", [{ subject: "Odd", scheduledend }]), scheduledend).toThrow(
        /Cannot convert the literal .* to the expected type 'Edm.DateTimeOffset'/
      )
    }
  })
})

/**
 * Elastic tables' session tokens and read lag (wire reference, section 8b), through the Web API's
 * synchronous handler on a virtual clock: no sockets, no sleeps.
 */
import { describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import type { Identity } from "../src/Identity.js"
import { ServiceModel } from "../src/internal/throttle.js"
import { makeHandler } from "../src/internal/webApi.js"
import * as Model from "../src/Model.js"
import { Store } from "../src/Store.js"
import { defaultSchema } from "../src/TableSchema.js"

const at = Date.UTC(2026, 0, 1)

const handlerAt = (elasticReadLagMs: number) => {
  const clock = { now: at }
  const store = new Store(defaultSchema.tables, () => clock.now)
  const { handle } = makeHandler({
    store,
    // Never used by the handler: tokens are verified before it.
    identity: {} as Identity,
    orgUrl: () => "http://emulator",
    organizationId: "00000000-0000-0000-0000-000000000001",
    businessUnitId: "00000000-0000-0000-0000-000000000002",
    users: new Map(),
    model: new ServiceModel({ ...Model.fast, elasticReadLagMs }, () => clock.now),
    authority: () => "https://login.microsoftonline.com/tenant",
    maxBodyBytes: 1024 * 1024,
    counters: { requests: 0, recordsWritten: 0, errors: 0 }
  })
  const token = { objectId: "object", appId: "app", expiresAt: new Date(at + 3_600_000) }
  const send = (method: string, target: string, body: unknown = "", headers: Record<string, string> = {}) =>
    handle({
      method,
      target,
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      token
    })
  const create = (name: string) => {
    const reply = send("POST", "dve_readings", { dve_name: name, partitionid: "p" })
    expect(reply.status).toBe(204)
    const id = /\(([^)]+)\)$/.exec(reply.headers!["OData-EntityId"]!)![1]!
    return { id, sessionToken: reply.headers!["x-ms-session-token"]! }
  }
  const withToken = (sessionToken: string | undefined): Record<string, string> =>
    sessionToken === undefined ? {} : { "mscrm.sessiontoken": sessionToken }
  const get = (id: string, sessionToken?: string) =>
    send("GET", `dve_readings(${id})?partitionId=p`, "", withToken(sessionToken)).status
  const names = (sessionToken?: string) =>
    (send("GET", "dve_readings?$select=dve_name", "", withToken(sessionToken)).body as {
      value: Array<{ dve_name: string }>
    })
      .value.map((row) => row.dve_name)
  const fetched = (sessionToken?: string) => {
    const xml = encodeURIComponent(`<fetch><entity name="dve_reading"><attribute name="dve_name" /></entity></fetch>`)
    const body = send("GET", `dve_readings?fetchXml=${xml}`, "", withToken(sessionToken)).body as {
      value: Array<{ dve_name: string }>
    }
    return body.value.map((row) => row.dve_name)
  }
  return { clock, send, create, get, names, fetched, withToken }
}

describe("elastic session tokens", () => {
  it("every successful write to an elastic table answers with a newer x-ms-session-token", () => {
    const { create, send } = handlerAt(0)
    const first = create("a")
    const second = create("b")
    expect(first.sessionToken).toMatch(/^\d+:\d+#\d+#\d+=-1$/)
    expect(second.sessionToken).not.toBe(first.sessionToken)
    const patched = send("PATCH", `dve_readings(${first.id})?partitionId=p`, { dve_value: 1 }, { "if-match": "*" })
    expect(patched.status).toBe(204)
    const bulk = send("POST", "dve_readings/Microsoft.Dynamics.CRM.CreateMultiple", {
      Targets: [{ "@odata.type": "Microsoft.Dynamics.CRM.dve_reading", dve_name: "c", partitionid: "p" }]
    })
    expect(bulk.status).toBe(200)
    const sequence = (token: string | undefined) => Number(token!.split("#")[1])
    expect(sequence(patched.headers!["x-ms-session-token"])).toBeGreaterThan(sequence(second.sessionToken))
    expect(sequence(bulk.headers!["x-ms-session-token"])).toBeGreaterThan(
      sequence(patched.headers!["x-ms-session-token"])
    )
    // Not on reads, failures, standard tables, nor a single DELETE (documented known issue).
    expect(send("GET", `dve_readings(${first.id})?partitionId=p`).headers?.["x-ms-session-token"]).toBeUndefined()
    expect(send("POST", "dve_readings", { dve_unknown: 1 }).headers?.["x-ms-session-token"]).toBeUndefined()
    expect(send("POST", "contacts", { lastname: "Standard" }).headers?.["x-ms-session-token"]).toBeUndefined()
    const deleted = send("DELETE", `dve_readings(${first.id})?partitionId=p`)
    expect(deleted.status).toBe(204)
    expect(deleted.headers?.["x-ms-session-token"]).toBeUndefined()
  })

  it("without a read lag (the default), every read sees every write at once", () => {
    const { create, get, names } = handlerAt(0)
    const { id } = create("a")
    expect(get(id)).toBe(200)
    expect(names()).toEqual(["a"])
  })

  it("with a read lag, a read without the session token misses records created less than the lag ago", () => {
    const { clock, create, fetched, get, names, send } = handlerAt(1_000)
    const { id, sessionToken } = create("a")
    // With the token: at once, by id, by query and by FetchXML.
    expect(get(id, sessionToken)).toBe(200)
    expect(names(sessionToken)).toEqual(["a"])
    expect(fetched(sessionToken)).toEqual(["a"])
    // Without it: not yet.
    expect(get(id)).toBe(404)
    expect(names()).toEqual([])
    expect(fetched()).toEqual([])
    expect(send("GET", "dve_readings/$count").body).toBe("0")
    clock.now += 999
    expect(get(id)).toBe(404)
    // Once the lag has passed, every read sees it.
    clock.now += 1
    expect(get(id)).toBe(200)
    expect(names()).toEqual(["a"])
    expect(send("GET", "dve_readings/$count").body).toBe("1")
  })

  it("a token sees the writes up to it, not later ones; standard tables never lag", () => {
    const { create, get, names, send } = handlerAt(60_000)
    const older = create("older")
    const newer = create("newer")
    expect(get(newer.id, older.sessionToken)).toBe(404)
    expect(get(older.id, newer.sessionToken)).toBe(200)
    expect(names(older.sessionToken)).toEqual(["older"])
    expect(names(newer.sessionToken)).toEqual(["older", "newer"])
    // A token the emulator cannot read is no token.
    expect(get(older.id, "not a token")).toBe(404)
    expect(send("POST", "contacts", { lastname: "Standard" }).status).toBe(204)
    expect((send("GET", "contacts?$select=lastname").body as { value: Array<unknown> }).value).toHaveLength(1)
  })

  it("inside $batch: write parts carry the token, and a read part that sends it sees the write", () => {
    const { create, send } = handlerAt(60_000)
    const { id } = create("a")
    const boundary = "batch_session"
    const part = (
      lines: ReadonlyArray<string>
    ) => [`--${boundary}`, "Content-Type: application/http", "Content-Transfer-Encoding: binary", "", ...lines]
    const batch = (lines: ReadonlyArray<string>) =>
      send("POST", "$batch", [...lines, `--${boundary}--`, ""].join("\r\n"), {
        "content-type": `multipart/mixed; boundary=${boundary}`
      }).body as string
    const written = batch(part([
      "POST /api/data/v9.2/dve_readings HTTP/1.1",
      "Content-Type: application/json; type=entry",
      "",
      JSON.stringify({ dve_name: "b", partitionid: "p" })
    ]))
    const sessionToken = /x-ms-session-token: (\S+)/.exec(written)![1]!
    const read = (headers: ReadonlyArray<string>) =>
      batch(part([`GET /api/data/v9.2/dve_readings(${id})?partitionId=p HTTP/1.1`, ...headers, ""]))
    expect(read([])).toMatch(/HTTP\/1\.1 404/)
    expect(read([`MSCRM.SessionToken: ${sessionToken}`])).toMatch(/HTTP\/1\.1 200/)
  })
})

describe("over HTTP", () => {
  it("answers a write to an elastic table with x-ms-session-token", async () => {
    const emulator = await Emulator.start({ identity: false })
    try {
      const response = await fetch(`${emulator.info.webApiUrl}dve_readings`, {
        method: "POST",
        headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ dve_name: "a", partitionid: "p" })
      })
      expect(response.status).toBe(204)
      expect(response.headers.get("x-ms-session-token")).toMatch(/^\d+:\d+#\d+#\d+=-1$/)
    } finally {
      await emulator.close()
    }
  })
})

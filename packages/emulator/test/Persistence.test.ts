import { spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import { Fault } from "../src/internal/fault.js"
import { createRecord } from "../src/internal/operations.js"
import * as Persistence from "../src/internal/persistence.js"
import { Store } from "../src/Store.js"
import { defaultSchema } from "../src/TableSchema.js"

let dir: string
beforeEach(async () => {
  dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "dv-effect-data-"))
})
afterEach(() => Fs.rm(dir, { recursive: true, force: true }))

const client = (info: Emulator.StartInfo) => (method: string, path: string, body?: unknown) =>
  fetch(`${info.webApiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${info.accessToken}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`

describe("--data-dir", () => {
  it("keeps every committed write across a clean restart, and nothing of a rolled-back one", async () => {
    const first = await Emulator.start({ dataDir: dir })
    const send = client(first.info)
    const Targets = [1, 2, 3].map((n) => ({
      "@odata.type": "Microsoft.Dynamics.CRM.contact",
      contactid: id(n),
      lastname: `L${n}`
    }))
    expect((await send("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", { Targets })).status).toBe(200)
    expect((await send("PATCH", `contacts(${id(2)})`, { firstname: "Two" })).status).toBe(204)
    expect((await send("DELETE", `contacts(${id(3)})`)).status).toBe(204)
    expect((await send("PATCH", "accounts(accountnumber='A-1')", { name: "Kept" })).status).toBe(204)
    const rolledBack = await send("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
      Targets: [{ "@odata.type": "Microsoft.Dynamics.CRM.contact", contactid: id(9), lastname: "no" }, {
        "@odata.type": "Microsoft.Dynamics.CRM.contact",
        lastname: "x".repeat(51)
      }]
    })
    expect(rolledBack.status).toBe(400)
    const before = first.store.table("contact")!.scan()
    await first.close()

    const second = await Emulator.start({ dataDir: dir })
    try {
      const after = second.store.table("contact")!.scan()
      expect(after).toEqual(before)
      expect(after.map((r) => [r.id, r.values.fullname])).toEqual([[id(1), "L1"], [id(2), "Two L2"]])
      expect(second.store.table("account")!.getByKey("accountnumber_key", ["A-1"])!.values.name).toBe("Kept")
      // New writes continue after the restored positions, so paging order holds.
      expect((await client(second.info)("POST", "contacts", { contactid: id(4), lastname: "L4" })).status).toBe(204)
      expect(second.store.table("contact")!.ids()).toEqual([id(1), id(2), id(4)])
    } finally {
      await second.close()
    }
  })

  it("loses at most the last second of writes when killed with SIGKILL", async () => {
    const bin = fileURLToPath(new URL("../../../apps/cli/bin/dv-effect.js", import.meta.url))
    const child = spawn(process.execPath, [bin, "emulator", "--port", "0", "--data-dir", dir], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    const exited = new Promise((resolve) => child.on("exit", resolve))
    try {
      const info = await new Promise<Emulator.StartInfo>((resolve) =>
        Readline.createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)))
      )
      const Targets = Array.from(
        { length: 500 },
        (_, i) => ({ "@odata.type": "Microsoft.Dynamics.CRM.contact", contactid: id(i), lastname: `K${i}` })
      )
      expect((await client(info)("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", { Targets })).status).toBe(
        200
      )
      // Wait (on a condition, not a clock) until the journal holds the write, then kill hard.
      const journal = Path.join(dir, "journal.jsonl")
      for (;;) {
        const text = await Fs.readFile(journal, "utf8").catch(() => "")
        if (text.split("\n").filter((line) => line !== "").length >= 500) break
        await new Promise((resolve) => setImmediate(resolve))
      }
    } finally {
      child.kill("SIGKILL")
      await exited
    }
    const restarted = await Emulator.start({ dataDir: dir })
    try {
      const rows = restarted.store.table("contact")!.scan()
      expect(rows).toHaveLength(500)
      expect(rows[499]!.values.lastname).toBe("K499")
    } finally {
      await restarted.close()
    }
  })

  it("ignores a journal line cut short by a kill", async () => {
    const first = await Emulator.start({ dataDir: dir })
    await client(first.info)("POST", "contacts", { contactid: id(1), lastname: "whole" })
    await first.close()
    await Fs.appendFile(Path.join(dir, "journal.jsonl"), "{\"op\":\"put\",\"t\":\"contact\",\"r\":{\"id\":\"0000")
    const second = await Emulator.start({ dataDir: dir })
    try {
      expect(second.store.table("contact")!.ids()).toEqual([id(1)])
    } finally {
      await second.close()
    }
  })

  it("reads a date-only column saved with a time (before it was date-only) as its day, and says so", async () => {
    const first = await Emulator.start({ dataDir: dir })
    await client(first.info)("POST", "contacts", { contactid: id(1), lastname: "Old", birthdate: "1990-05-01" })
    await first.close()
    // As an earlier version stored birthdate: a date-time, UTC.
    let edited = 0
    for (const file of await Fs.readdir(dir)) {
      const path = Path.join(dir, file)
      const text = await Fs.readFile(path, "utf8")
      if (text.includes("\"birthdate\":\"1990-05-01\"")) edited++
      await Fs.writeFile(
        path,
        text.replaceAll("\"birthdate\":\"1990-05-01\"", "\"birthdate\":\"1990-05-01T10:00:00Z\"")
      )
    }
    expect(edited).toBe(1)
    const warnings: Array<string> = []
    const store = new Store(defaultSchema.tables)
    const persistence = await Persistence.open(dir, store, { onWarning: (message) => warnings.push(message) })
    try {
      expect(store.table("contact")!.get(id(1))!.values.birthdate).toBe("1990-05-01")
      expect(warnings).toEqual([
        "1 value of date-only columns held a time (saved when the column took one) and was cut to its day"
      ])
    } finally {
      await persistence.close()
    }
  })

  it("says which record an alternate key finds when two times of one day become one key", async () => {
    const events = {
      ...defaultSchema.tables[0]!,
      logicalName: "dve_event",
      entitySetName: "dve_events",
      schemaName: "dve_Event",
      objectTypeCode: 10_099,
      primaryIdAttribute: "dve_eventid",
      primaryNameAttribute: "dve_name",
      columns: [
        { logicalName: "dve_name", type: "String" as const },
        { logicalName: "dve_day", type: "DateTime" as const, dateTimeBehavior: "DateOnly" as const }
      ],
      keys: [{ logicalName: "dve_name_day", keyAttributes: ["dve_name", "dve_day"] }]
    }
    const put = (n: number, day: string) =>
      JSON.stringify({
        op: "put",
        t: "dve_event",
        r: { id: id(n), seq: n, version: n, values: { dve_eventid: id(n), dve_name: "Launch", dve_day: day } }
      })
    await Fs.writeFile(
      Path.join(dir, "journal.jsonl"),
      `${put(1, "2024-01-31T09:00:00Z")}\n${put(2, "2024-01-31T15:00:00Z")}\n`
    )
    const warnings: Array<string> = []
    const store = new Store([events])
    const persistence = await Persistence.open(dir, store, { onWarning: (message) => warnings.push(message) })
    try {
      expect(store.table("dve_event")!.getByKey("dve_name_day", ["Launch", "2024-01-31"])!.id).toBe(id(2))
      expect(warnings).toEqual([
        `dve_event records ${id(1)} and ${
          id(2)
        } share the key dve_name_day once their date-only values are cut to the day; the key finds ${id(2)}`,
        "2 values of date-only columns held a time (saved when the column took one) and were cut to their day"
      ])
    } finally {
      await persistence.close()
    }
  })

  it("journals reset(): a restart without a clean stop does not bring the cleared records back", async () => {
    const store = new Store(defaultSchema.tables)
    const persistence = await Persistence.open(dir, store, { flushIntervalMs: 3_600_000 })
    const contacts = store.table("contact")!
    for (const n of [1, 2]) {
      expect(createRecord(store, contacts, { contactid: id(n), lastname: `L${n}` }, () => "2026-01-01T00:00:00Z"))
        .not.toBeInstanceOf(Fault)
    }
    await persistence.flush()
    store.clear()
    createRecord(store, contacts, { contactid: id(3), lastname: "after" }, () => "2026-01-01T00:00:00Z")
    await persistence.flush()
    // Read back as after a kill: the journal alone, no snapshot written by a clean stop.
    const restarted = new Store(defaultSchema.tables)
    const reopened = await Persistence.open(dir, restarted, { flushIntervalMs: 3_600_000 })
    expect(restarted.table("contact")!.ids()).toEqual([id(3)])
    await reopened.close()
    store.onCommit = undefined
  })

  it("reset() starts records, windows and counters afresh, and a restart keeps the records cleared", async () => {
    const first = await Emulator.start({ dataDir: dir })
    const send = client(first.info)
    expect((await send("POST", "contacts", { contactid: id(1), lastname: "gone" })).status).toBe(204)
    first.reset()
    expect(first.counters.requests).toBe(0)
    expect(first.servers.every((server) => server.requests === 0)).toBe(true)
    expect((await send("POST", "contacts", { contactid: id(2), lastname: "kept" })).status).toBe(204)
    await first.close()
    const second = await Emulator.start({ dataDir: dir })
    try {
      expect(second.store.table("contact")!.ids()).toEqual([id(2)])
    } finally {
      await second.close()
    }
  })
})

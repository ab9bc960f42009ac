/**
 * Rejects round-trip: the `input` of a rejects line is the row as the import read it, keyed by
 * column, so that the rejected rows of a CSV load, fixed and imported again as JSON lines, land
 * exactly as the CSV would have landed them (empty fields left out, not stored as ""). CLI
 * processes against an emulator in this process, whose store the tests read directly.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { binPath, cleanEnv, run, startEmulatorFixture, writeFile } from "./support/cli.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let close: () => Promise<void>

beforeAll(async () => {
  ;({ emulator, dir, env, close } = await startEmulatorFixture({ identity: false }, "dv-rejects-"))
})
afterAll(() => close())
beforeEach(() => emulator.reset())

const file = (name: string, text: string) => writeFile(dir, name, text)
const readJsonLines = (path: string): Array<Record<string, any>> =>
  Fs.readFileSync(path, "utf8").trim().split("\n").map((line) => JSON.parse(line))
const jsonl = (rows: ReadonlyArray<unknown>) => rows.map((row) => JSON.stringify(row)).join("\n") + "\n"
const contacts = () => emulator.store.table("contact")!.scan().map((r) => r.values)

/** The written columns of a stored contact (not the service's own, nor those left unset). */
const written = (values: Readonly<Record<string, unknown>>) => {
  const out: Record<string, unknown> = {}
  for (const key of ["lastname", "firstname", "birthdate", "jobtitle"]) {
    if (values[key] !== undefined && values[key] !== null) out[key] = values[key]
  }
  if (out.birthdate !== undefined) out.birthdate = String(out.birthdate).slice(0, 10)
  return out
}

describe("rejects round-trip", () => {
  it("a CSV load's rejects, fixed and imported again as JSON lines, land exactly the fixed rows", async () => {
    const long = "L".repeat(60)
    const csv = file(
      "contacts.csv",
      [
        "lastname,firstname,birthdate,jobtitle",
        "Good1,Ann,1980-01-02,Engineer",
        "Good2,,1990-03-04,",
        `${long},Bob,1985-05-06,Chef`, // too long for lastname (50): the service rejects it
        "Bad,,2001-13-01,Pilot", // no 13th month; an empty firstname
        "Rag,Cat,1970-01-01,Dev,Ops", // an unquoted comma: one field too many
        "Few,Dan", // two fields too few
        ""
      ].join("\n")
    )
    const rejects = Path.join(dir, "rejects.jsonl")
    const first = await run(["create", "contact", "--file", csv, "--rejects", rejects], { env })
    expect(first.code, first.stderr).toBe(2)
    expect(contacts().map(written).sort((a, b) => String(a.lastname).localeCompare(String(b.lastname)))).toEqual([
      { lastname: "Good1", firstname: "Ann", birthdate: "1980-01-02", jobtitle: "Engineer" },
      { lastname: "Good2", birthdate: "1990-03-04" }
    ])

    const entries = readJsonLines(rejects)
    const byRow = new Map(entries.map((entry) => [entry.row as string, entry]))
    const at = (row: string) => byRow.get(row) ?? expect.unreachable(`no rejects line for ${row}`)
    expect([...byRow.keys()].sort()).toEqual(["row 3 (line 4)", "row 4 (line 5)", "row 5 (line 6)", "row 6 (line 7)"])
    // Every input is an object keyed by column, empty fields left out as the CSV import left them out.
    expect(at("row 3 (line 4)").input).toEqual({
      lastname: long,
      firstname: "Bob",
      birthdate: "1985-05-06",
      jobtitle: "Chef"
    })
    expect(at("row 4 (line 5)").input).toEqual({ lastname: "Bad", birthdate: "2001-13-01", jobtitle: "Pilot" })
    expect(at("row 4 (line 5)").message).toContain("birthdate")
    expect(at("row 5 (line 6)").input).toEqual({
      lastname: "Rag",
      firstname: "Cat",
      birthdate: "1970-01-01",
      jobtitle: "Dev",
      "@dv-effect.extra": ["Ops"]
    })
    expect(at("row 6 (line 7)").input).toEqual({ lastname: "Few", firstname: "Dan" })

    // Unfixed, the ragged row is refused naming its reserved key, not sent with it.
    const unfixed = file("unfixed.jsonl", jsonl([at("row 5 (line 6)").input]))
    const refused = await run(["create", "contact", "--file", unfixed], { env })
    expect(refused.code, refused.stderr).toBe(2)
    expect(refused.stderr).toContain(
      "line 1: '@dv-effect.extra' holds fields past the end of the CSV header ([\"Ops\"]): move them to their columns, or remove the key"
    )
    expect(contacts()).toHaveLength(2)

    // Fix them as a user would with jq: each `.input`, changed, as a JSON line.
    const fixed = entries.map((entry) => {
      const input = { ...entry.input }
      if (String(input.lastname).length > 50) input.lastname = "Long"
      if (input.birthdate === "2001-13-01") input.birthdate = "2001-12-01"
      const extra = input["@dv-effect.extra"]
      if (extra !== undefined) {
        input.jobtitle = [input.jobtitle, ...extra].join(", ")
        delete input["@dv-effect.extra"]
      }
      return input
    })
    const retry = file("fixed.jsonl", jsonl(fixed))
    const second = await run(["create", "contact", "--file", retry], { env })
    expect(second.code, second.stderr).toBe(0)
    expect(second.stderr).toContain("Created 4 of 4 contact rows")

    const stored = contacts()
    // Exactly the good rows and the fixed rows, once each; an empty CSV field is absent, never "".
    expect(stored.map(written).sort((a, b) => String(a.lastname).localeCompare(String(b.lastname)))).toEqual([
      { lastname: "Bad", birthdate: "2001-12-01", jobtitle: "Pilot" },
      { lastname: "Few", firstname: "Dan" },
      { lastname: "Good1", firstname: "Ann", birthdate: "1980-01-02", jobtitle: "Engineer" },
      { lastname: "Good2", birthdate: "1990-03-04" },
      { lastname: "Long", firstname: "Bob", birthdate: "1985-05-06", jobtitle: "Chef" },
      { lastname: "Rag", firstname: "Cat", birthdate: "1970-01-01", jobtitle: "Dev, Ops" }
    ])
    for (const values of stored) {
      for (const key of ["firstname", "jobtitle", "birthdate"]) expect(values[key], key).not.toBe("")
    }
  })

  it("a lookup written null or \"null\" clears it on update, is left out of a create, and never asks for its table", async () => {
    const accountId = "10000000-0000-4000-8000-000000000001"
    const contactId = "20000000-0000-4000-8000-000000000002"
    emulator.seed("account", [{ accountid: accountId, name: "Contoso", accountnumber: "A-1" }])
    const created = await run([
      "create",
      "contact",
      "--file",
      file(
        "lookups.csv",
        `contactid,lastname,parentcustomerid\n${contactId},Linked,account:${accountId}\n,Quoted,"null"\n,Bare,null\n`
      )
    ], { env })
    expect(created.code, created.stderr).toBe(0)
    const byName = () => new Map(contacts().map((values) => [values.lastname, values]))
    expect(byName().get("Linked")!.parentcustomerid).toEqual({ table: "account", id: accountId })
    for (const name of ["Quoted", "Bare"]) expect(byName().get(name)!.parentcustomerid ?? null).toBeNull()

    const updated = await run([
      "update",
      "contact",
      "--file",
      file("clear.jsonl", jsonl([{ contactid: contactId, parentcustomerid: "null" }]))
    ], { env })
    expect(updated.code, updated.stderr).toBe(0)
    expect(updated.stderr).not.toContain("several tables")
    expect(byName().get("Linked")!.parentcustomerid ?? null).toBeNull()
  })

  it("refuses a --rejects file named .csv or .tsv, which would hold JSON lines under that name", async () => {
    const input = file("named.jsonl", jsonl([{ lastname: "Named" }]))
    const rejects = Path.join(dir, "failed.csv")
    const result = await run(["create", "contact", "-f", input, "--rejects", rejects], { env })
    expect([result.code, result.stderr]).toEqual([
      1,
      `dv-effect: --rejects ${rejects}: the rejects file holds JSON lines (each failed row as read, with its error), not CSV; name it ${
        Path.join(dir, "failed.jsonl")
      } (jq -c .input gives the rows back to fix and load again).\n`
    ])
    expect(Fs.existsSync(rejects)).toBe(false)
  })

  it("refuses --rejects or --journal naming the input file, which opening them would empty", async () => {
    const retry = file("retry.jsonl", jsonl([{ lastname: "Fixed1" }, { lastname: "Fixed2" }]))
    const before = Fs.readFileSync(retry, "utf8")
    const link = Path.join(dir, "retry-link.jsonl")
    Fs.rmSync(link, { force: true })
    Fs.symlinkSync(retry, link)
    for (const [flag, path] of [["--rejects", retry], ["--rejects", link], ["--journal", retry]] as const) {
      const result = await run(["create", "contact", "-f", retry, flag, path], { env })
      expect([result.code, result.stderr]).toEqual([
        1,
        `dv-effect: ${flag} names the input file ${retry}: write it to another file.\n`
      ])
    }
    // stdin redirected from the file that --rejects names.
    const redirected = spawnSync(process.execPath, [binPath, "create", "contact", "-f", "-", "--rejects", retry], {
      env: { ...cleanEnv(), ...env },
      stdio: [Fs.openSync(retry, "r"), "pipe", "pipe"],
      encoding: "utf8"
    })
    expect([redirected.status, redirected.stderr]).toEqual([
      1,
      "dv-effect: --rejects names the input, which stdin is redirected from: write it to another file.\n"
    ])
    expect(Fs.readFileSync(retry, "utf8")).toBe(before)
    expect(contacts()).toEqual([])
  })

  it("a dry run leaves the rejects file as it was and lists every failure on stderr", async () => {
    const rejects = file("kept-rejects.jsonl", "{\"row\":\"row 1 (line 2)\"}\n")
    const csv = file(
      "dry.csv",
      ["lastname,birthdate", ...Array.from({ length: 12 }, (_, i) => `Bad${i},2001-13-01`), "Good,1980-01-02"].join(
        "\n"
      )
    )
    const result = await run(["create", "contact", "-f", csv, "--rejects", rejects, "--dry-run"], { env })
    expect(result.code, result.stderr).toBe(2)
    expect(Fs.readFileSync(rejects, "utf8")).toBe("{\"row\":\"row 1 (line 2)\"}\n")
    expect(result.stderr.split("\n").filter((line) => line.includes("is not an ISO date"))).toHaveLength(12)
    expect(result.stderr).toContain("Dry run: nothing was written.")
    expect(contacts()).toEqual([])
  })
})

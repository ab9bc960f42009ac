/**
 * "Did you mean": an unknown table, column, key column or option label names the closest
 * candidates, on one line (the rule is core's `Metadata.suggest`).
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { run, startEmulatorFixture, writeFile } from "./support/cli.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let close: () => Promise<void>

beforeAll(async () => {
  ;({ close, dir, emulator, env } = await startEmulatorFixture({ identity: false }, "dv-suggest-"))
})
afterAll(() => close())
beforeEach(() => emulator.reset())

const file = (name: string, text: string) => writeFile(dir, name, text)

describe("dv-effect did you mean", () => {
  it("a table named in the wrong case names the table (with --emulator too)", async () => {
    const rows = file("rows.jsonl", "{\"lastname\":\"Doe\"}\n")
    for (const extra of [["--emulator"], []]) {
      const result = await run(["create", "Contact", ...extra, "-f", rows], { env: extra.length === 0 ? env : {} })
      expect([result.code, result.stdout, result.stderr]).toEqual([
        1,
        "",
        "dv-effect: Table 'Contact' does not exist in this environment; did you mean 'contact'?\n"
      ])
    }
    expect(emulator.store.table("contact")!.size).toBe(0)
  })

  it("an unknown CSV column names the closest column, and nothing is written", async () => {
    const csv = file("typo.csv", "lastnmae,firstname\nDoe,Jo\n")
    const result = await run(["create", "contact", "-f", csv], { env })
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(
      `dv-effect: ${csv}: column 'lastnmae' does not exist in contact; did you mean 'lastname'?\n`
    )
    expect(emulator.store.table("contact")!.size).toBe(0)
  })

  it("a misspelt binding in a CSV header is one line, with --dry-run too, and nothing is written", async () => {
    const csv = file(
      "bind.csv",
      // The first row leaves the column empty: the header is judged all the same, before any row.
      "lastname,parentcustomerid_acount@odata.bind\nRoe,\nDoe,/accounts(00000000-0000-4000-8000-000000000001)\n"
    )
    for (const extra of [["--dry-run"], ["--no-journal"]]) {
      const result = await run(["create", "contact", "-f", csv, ...extra], { env })
      expect([result.code, result.stdout, result.stderr]).toEqual([
        1,
        "",
        "dv-effect: 'parentcustomerid_acount@odata.bind' names no navigation property of contact; did you mean 'parentcustomerid_account@odata.bind' or 'parentcustomerid_contact@odata.bind'?\n"
      ])
    }
    expect(emulator.store.table("contact")!.size).toBe(0)
  })

  it("an unknown key column names the closest column", async () => {
    const csv = file("key.csv", "accountnumber,name\nA-1,Contoso\n")
    const result = await run(["upsert", "account", "-f", csv, "--key", "acountnumber"], { env })
    expect([result.code, result.stderr]).toEqual([
      1,
      "dv-effect: The key column 'acountnumber' does not exist in account; did you mean 'accountnumber'?\n"
    ])
  })

  it("an unknown option label names the closest labels in the row's error", async () => {
    const csv = file("label.csv", "lastname,gendercode\nDoe,Femal\n")
    const rejects = Path.join(dir, "rejects.jsonl")
    const result = await run(["create", "contact", "-f", csv, "--rejects", rejects], { env })
    expect(result.code).toBe(2)
    const message = "column 'gendercode': 'Femal' is not an option (Male = 1, Female = 2); did you mean 'Female'?"
    expect(result.stderr).toContain(message)
    expect(Fs.readFileSync(rejects, "utf8")).toContain(message)
  })
})

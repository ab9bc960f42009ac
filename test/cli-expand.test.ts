/**
 * `dv-effect query --expand` as a user runs it, against a spawned emulator: related records as
 * nested objects and arrays in JSON lines, and as `<navprop>.<column>` columns in CSV.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expandedColumns, flattenExpanded } from "../apps/cli/src/QueryCommand.js"
import { postRecord, run, type StartedEmulator, startEmulator } from "./support/cli.js"

let emulator: StartedEmulator
let connection: Array<string>
let contoso: string

const post = (entitySet: string, body: unknown) => postRecord(emulator, entitySet, body)

beforeAll(async () => {
  emulator = await startEmulator()
  connection = ["--url", emulator.info.url, "--access-token", emulator.info.accessToken]
  contoso = String((await post("accounts", { name: "Contoso, Ltd", accountnumber: "A-1" })).accountid)
  await post("contacts", { lastname: "Ames", "parentcustomerid_account@odata.bind": `/accounts(${contoso})` })
  await post("contacts", { lastname: "Berg", "parentcustomerid_account@odata.bind": `/accounts(${contoso})` })
  await post("contacts", { lastname: "Cole" })
}, 120_000)

afterAll(async () => {
  await emulator?.stop()
})

describe("dv-effect query --expand", () => {
  it("writes an expanded lookup's columns as <navprop>.<column> in CSV, empty when the lookup is", async () => {
    const result = await run([
      "query",
      "contact",
      "--select",
      "lastname",
      "--orderby",
      "lastname",
      "--expand",
      "parentcustomerid_account($select=name,accountnumber)",
      "-o",
      "csv",
      ...connection
    ])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const [header, ...lines] = result.stdout.trimEnd().split("\n")
    expect(header).toBe(
      "lastname,contactid,parentcustomerid_account.name,parentcustomerid_account.accountnumber,parentcustomerid_account.accountid"
    )
    expect(lines.map((line) => line.split(",").slice(0, 1)[0])).toEqual(["Ames", "Berg", "Cole"])
    expect(lines[0]).toMatch(new RegExp(`^Ames,[0-9a-f-]{36},"Contoso, Ltd",A-1,${contoso}$`))
    expect(lines[2]).toMatch(/^Cole,[0-9a-f-]{36},,,$/)
  })

  it("takes --expand repeated, and writes related records as objects and arrays in JSON lines", async () => {
    const result = await run([
      "query",
      "account",
      "--select",
      "name",
      "--expand",
      "contact_customer_accounts($select=lastname;$orderby=lastname desc;$top=1)",
      "--expand",
      "primarycontactid($select=lastname)",
      ...connection
    ])
    expect(result.code).toBe(0)
    const rows = result.stdout.trimEnd().split("\n").map((line) => JSON.parse(line))
    expect(rows).toHaveLength(1)
    expect(rows[0].name).toBe("Contoso, Ltd")
    expect(rows[0].primarycontactid).toBeNull()
    expect(rows[0].contact_customer_accounts).toEqual([
      expect.objectContaining({ lastname: "Berg", _parentcustomerid_value: contoso })
    ])
    // Annotations (the collection's @odata.nextLink among them) are left out, as everywhere.
    expect(Object.keys(rows[0]).some((key) => key.includes("@"))).toBe(false)
  })

  it("an export with --expand goes back in as it is: the expanded records are left out, said once", async () => {
    const query = async (...args: ReadonlyArray<string>) => (await run(["query", ...args, ...connection])).stdout
    /** Updates `table` from `input`: exit 0, and the one line saying what was left out. */
    const update = async (table: string, input: string, leftOut: string) => {
      const result = await run(["update", table, "-f", "-", "--no-journal", ...connection], { stdin: input })
      expect(result.code, result.stderr).toBe(0)
      expect(result.stderr.split("\n").filter((line) => line.startsWith("dv-effect:"))).toEqual([
        `dv-effect: Left out of the rows (expanded records, not columns of ${table}): ${leftOut}.`
      ])
      return result.stderr
    }
    const lastnames = () => query("contact", "--select", "lastname", "--orderby", "lastname", "-o", "csv")
    const before = await lastnames()
    const lookupCsv = await query(
      "contact",
      "--select",
      "lastname",
      "--expand",
      "parentcustomerid_account($select=name,accountnumber)",
      "-o",
      "csv"
    )
    const fromCsv = await update(
      "contact",
      lookupCsv,
      "parentcustomerid_account.name, parentcustomerid_account.accountnumber, parentcustomerid_account.accountid"
    )
    expect(fromCsv).toContain("Updated 3 of 3 contact rows")
    const collection = ["account", "--select", "name", "--expand", "contact_customer_accounts($select=lastname)"]
    await update(
      "account",
      await query(...collection, "--expand", "primarycontactid($select=lastname)"),
      "contact_customer_accounts"
    )
    // In CSV a collection is its JSON text, and goes back in alike.
    await update("account", await query(...collection, "-o", "csv"), "contact_customer_accounts")
    expect(await lastnames()).toBe(before)

    // A lookup's expanded record under the lookup column's own name, and a null one, go back in too.
    const amesId = JSON.parse(await query("contact", "--select", "contactid", "--filter", "lastname eq 'Ames'"))
      .contactid
    const record = JSON.stringify({ accountid: contoso, primarycontactid: { lastname: "Ames", contactid: amesId } })
    await update("account", record, "primarycontactid")
    await update(
      "contact",
      JSON.stringify({ contactid: amesId, parentcustomerid_account: null }),
      "parentcustomerid_account"
    )
    const parent = await query("contact", "--select", "_parentcustomerid_value", "--filter", `contactid eq ${amesId}`)
    expect(JSON.parse(parent)._parentcustomerid_value).toBe(`account:${contoso}`)
  })

  it("answers an unknown navigation property with the service's message, exit 1", async () => {
    const result = await run(["query", "contact", "--expand", "nosuchproperty($select=name)", ...connection])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toBe(
      "dv-effect: Could not find a property named 'nosuchproperty' on type 'Microsoft.Dynamics.CRM.contact'.\n"
    )
  })

  it("derives the CSV columns from the --expand text and flattens rows", () => {
    const lookups = new Set(["parentcustomerid_account", "primarycontactid"])
    expect(
      expandedColumns(
        "parentcustomerid_account($filter=name ne 'a,(b';$select=name,_primarycontactid_value),contact_x($select=a),primarycontactid",
        lookups
      )
    ).toEqual(["parentcustomerid_account.name", "parentcustomerid_account._primarycontactid_value", "contact_x"])
    const flatten = flattenExpanded(new Set(["parentcustomerid_account", "contact_x"]))
    expect(flatten({ lastname: "A", parentcustomerid_account: { name: "C", accountid: "1" }, contact_x: [{ a: 1 }] }))
      .toEqual({
        lastname: "A",
        "parentcustomerid_account.name": "C",
        "parentcustomerid_account.accountid": "1",
        contact_x: [{ a: 1 }]
      })
    expect(flatten({ lastname: "B", parentcustomerid_account: null })).toEqual({ lastname: "B" })
  })
})

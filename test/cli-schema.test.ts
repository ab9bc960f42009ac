/**
 * `dv-effect schema export` (issue 16, item 3): an org's schema as the emulator's JSON schema file
 * or as its CSDL `$metadata` document, and a second emulator started with each file serving the
 * same tables.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { run, type StartedEmulator, startEmulator } from "./support/cli.js"

let source: StartedEmulator
let dir: string
const started: Array<StartedEmulator> = []

beforeAll(async () => {
  source = await startEmulator()
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-schema-"))
})
afterAll(async () => {
  await Promise.all([source, ...started].map((emulator) => emulator?.stop()))
  Fs.rmSync(dir, { recursive: true, force: true })
})

const connection = (
  emulator: StartedEmulator
) => ["--url", emulator.info.url, "--access-token", emulator.info.accessToken]

const metadata = async (emulator: StartedEmulator, table: string) => {
  const result = await run(["metadata", table, "-o", "json", ...connection(emulator)])
  expect(result.stderr).toBe("")
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout) as {
    readonly tableType: string
    readonly primaryNameAttribute: string
    readonly columns: ReadonlyArray<
      {
        readonly logicalName: string
        readonly type: string
        readonly maxLength?: number
        readonly dateTimeBehavior?: string
      }
    >
    readonly lookups: ReadonlyArray<
      { readonly column: string; readonly target: string; readonly navigationProperty: string }
    >
    readonly keys: ReadonlyArray<{ readonly logicalName: string; readonly keyAttributes: ReadonlyArray<string> }>
  }
}

/** Starts an emulator with `--schema <file>`, stopped after the file. */
const emulate = async (file: string) => {
  const emulator = await startEmulator(["--schema", file])
  started.push(emulator)
  return emulator
}

const tables = ["account", "contact", "dve_product", "dve_reading", "task"]

describe("dv-effect schema export", () => {
  it("writes the emulator's schema file from EntityDefinitions, which a second emulator serves alike", async () => {
    const file = Path.join(dir, "schema.json")
    const result = await run(["schema", "export", "--out", file, ...connection(source)])
    expect(result.code).toBe(0)
    expect(result.stderr).toBe(`Wrote 5 tables to ${file}\n`)
    const written = JSON.parse(Fs.readFileSync(file, "utf8"))
    expect(written.tables.map((t: { logicalName: string }) => t.logicalName)).toEqual(tables)
    expect(written.tables[2].columns[0]).toEqual({
      logicalName: "dve_name",
      type: "String",
      requiredLevel: "SystemRequired",
      maxLength: 100
    })

    // A date-only column stays one: its values are Edm.Date on the wire.
    const contactColumns = written.tables.find((t: { logicalName: string }) => t.logicalName === "contact").columns
    expect(contactColumns.find((c: { logicalName: string }) => c.logicalName === "birthdate")).toEqual({
      logicalName: "birthdate",
      type: "DateTime",
      dateTimeBehavior: "DateOnly"
    })

    const copy = await emulate(file)
    // What EntityDefinitions says of each table is the same on both: columns, lengths, choices,
    // required levels, lookups, keys, primary name, table type, bulk messages.
    for (const table of tables) expect(await metadata(copy, table), table).toEqual(await metadata(source, table))
    const product = await metadata(copy, "dve_product")
    expect(product.columns.find((c) => c.logicalName === "dve_sku")).toMatchObject({ type: "String", maxLength: 40 })
    expect(product.keys).toEqual([{ logicalName: "dve_sku_key", keyAttributes: ["dve_sku"], status: "Active" }])
    expect(product.lookups).toEqual([{
      column: "dve_supplierid",
      target: "account",
      navigationProperty: "dve_supplierid"
    }])
  })

  it("exports only --tables, leaving out lookups to tables it does not export", async () => {
    const file = Path.join(dir, "two.json")
    const result = await run([
      "schema",
      "export",
      "--out",
      file,
      "--tables",
      "dve_product, contact",
      "--verbose",
      ...connection(source)
    ])
    expect(result.code).toBe(0)
    expect(result.stderr).toContain(`Wrote 2 tables to ${file}; left out 2 (`)
    expect(result.stderr).toContain("Left out dve_product.dve_supplierid (lookup to account, not exported)")
    expect(result.stderr).toContain("Left out contact.parentcustomerid (its target account, not exported)")
    const written = JSON.parse(Fs.readFileSync(file, "utf8"))
    expect(written.tables.map((t: { logicalName: string }) => t.logicalName)).toEqual(["dve_product", "contact"])
    // contact's parentcustomerid keeps the target it can: contact.
    const contact = written.tables[1]
    expect(contact.columns.find((c: { logicalName: string }) => c.logicalName === "parentcustomerid")).toEqual({
      logicalName: "parentcustomerid",
      type: "Customer",
      targets: [{ table: "contact", navigationProperty: "parentcustomerid_contact" }]
    })
  })

  it("saves the $metadata document as served, which a second emulator serves as far as CSDL carries it", async () => {
    const file = Path.join(dir, "metadata.xml")
    const result = await run(["schema", "export", "--out", file, "--format", "csdl", ...connection(source)])
    expect(result.code).toBe(0)
    expect(result.stderr).toBe(`Wrote the $metadata document to ${file} (5 tables for the emulator)\n`)
    const served = await fetch(`${source.info.webApiUrl}$metadata`, {
      headers: { Authorization: `Bearer ${source.info.accessToken}` }
    })
    expect(Fs.readFileSync(file, "utf8")).toBe(await served.text())

    const copy = await emulate(file)
    const product = await metadata(copy, "dve_product")
    expect(product.primaryNameAttribute).toBe("dve_name")
    // Edm.Date is a date-only column.
    expect((await metadata(copy, "contact")).columns.find((c) => c.logicalName === "birthdate")?.dateTimeBehavior)
      .toBe("DateOnly")
    // The column is there; its length is not in CSDL.
    expect(product.columns.find((c) => c.logicalName === "dve_sku")).toMatchObject({ type: "String" })
    expect(product.columns.find((c) => c.logicalName === "dve_sku")!.maxLength).toBeUndefined()
    expect(product.keys).toEqual([{ logicalName: "dve_sku_key", keyAttributes: ["dve_sku"], status: "Active" }])
    expect(product.lookups).toEqual([{
      column: "dve_supplierid",
      target: "account",
      navigationProperty: "dve_supplierid"
    }])
    expect((await metadata(copy, "dve_reading")).tableType).toBe("Elastic")
    const created = await run(["create", "dve_product", ...connection(copy)], {
      stdin: "dve_name,dve_sku,dve_price\nWidget,W-1,9.5\n"
    })
    expect(created.code).toBe(0)
  })

  it("refuses --tables with --format csdl, and a table that does not exist, writing nothing", async () => {
    const file = Path.join(dir, "refused.json")
    const csdl = await run([
      "schema",
      "export",
      "--out",
      file,
      "--format",
      "csdl",
      "--tables",
      "account",
      ...connection(source)
    ])
    expect(csdl.code).toBe(1)
    expect(csdl.stderr).toBe(
      "dv-effect: --tables works with --format json; --format csdl saves the whole $metadata document as served.\n"
    )
    const unknown = await run(["schema", "export", "--out", file, "--tables", "account,acount2", ...connection(source)])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/^dv-effect: Table 'acount2' does not exist in this environment/)
    expect(Fs.existsSync(file)).toBe(false)
  })
})

describe("dv-effect emulator --schema", () => {
  it("names what is wrong with a CSDL document in one line", async () => {
    const file = Path.join(dir, "broken.xml")
    Fs.writeFileSync(file, "<?xml version=\"1.0\"?>\n<edmx:Edmx Version=\"4.0\"><edmx:DataServices>\n")
    const result = await run(["emulator", "--schema", file])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain(
      `dv-effect: --schema ${file}: Invalid schema: the CSDL document is not well-formed XML: `
    )
    expect(result.stderr).toMatch(/^[^\n]+ \(line \d+\)\n$/)
  })
})

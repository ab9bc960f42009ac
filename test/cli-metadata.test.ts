import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import * as Table from "@dv-effect/core/Table"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { run, type StartedEmulator, startEmulator } from "./support/cli.js"

const root = fileURLToPath(new URL("..", import.meta.url))
let emulator: StartedEmulator
let connection: Array<string>
// Inside the repository, so that the generated modules resolve @dv-effect/core and effect.
let out: string

beforeAll(async () => {
  emulator = await startEmulator()
  connection = ["--url", emulator.info.url, "--access-token", emulator.info.accessToken]
  out = await Fs.mkdtemp(Path.join(root, "test", ".typegen-"))
})
afterAll(async () => {
  await emulator?.stop()
  await Fs.rm(out, { recursive: true, force: true })
})

describe("dv-effect tables", () => {
  it("lists every table with entity set, type and custom flag", async () => {
    const result = await run(["tables", ...connection])
    expect(result.code).toBe(0)
    expect(result.stdout.split("\n").map((line) => line.split(/\s{2,}/))).toEqual([
      ["LOGICAL NAME", "ENTITY SET", "TYPE", "CUSTOM", "DISPLAY NAME"],
      ["account", "accounts", "standard", "no", "Account"],
      ["contact", "contacts", "standard", "no", "Contact"],
      ["dve_product", "dve_products", "standard", "yes", "dve_Product"],
      ["dve_reading", "dve_readings", "elastic", "yes", "dve_Reading"],
      ["task", "tasks", "standard", "no", "Task"],
      [""]
    ])
    expect(result.stderr).toBe("5 tables\n")
  })

  it("filters with --custom and --search, and writes JSON with -o json", async () => {
    const custom = await run(["tables", "--custom", "-o", "json", ...connection])
    expect(custom.code).toBe(0)
    expect(JSON.parse(custom.stdout)).toEqual([
      {
        logicalName: "dve_product",
        entitySetName: "dve_products",
        displayName: "dve_Product",
        tableType: "Standard",
        custom: true
      },
      {
        logicalName: "dve_reading",
        entitySetName: "dve_readings",
        displayName: "dve_Reading",
        tableType: "Elastic",
        custom: true
      }
    ])
    const search = await run(["tables", "--search", "CONT", "-o", "json", ...connection])
    expect(JSON.parse(search.stdout).map((t: { logicalName: string }) => t.logicalName)).toEqual(["contact"])
  })
})

describe("dv-effect metadata", () => {
  it("describes columns, choices, lookups, keys, table type and bulk messages as text", async () => {
    const result = await run(["metadata", "account", ...connection])
    expect(result.code).toBe(0)
    const text = result.stdout
    expect(text).toMatch(/^account: standard table, entity set accounts\n/)
    expect(text).toContain(
      "  bulk messages  CreateMultiple yes, UpdateMultiple yes, UpsertMultiple yes, DeleteMultiple no ($batch)\n"
    )
    const row = (name: string) => text.split("\n").find((line) => line.startsWith(`${name} `))?.split(/\s{2,}/)
    expect(row("accountid")).toEqual(["accountid", "Uniqueidentifier", "SystemRequired", "primary key"])
    expect(row("name")).toEqual(["name", "String", "ApplicationRequired", "max 160", "primary name"])
    expect(row("numberofemployees")).toEqual(["numberofemployees", "Integer", "None", "0..1000000000"])
    expect(row("industrycode")?.slice(0, 3)).toEqual(["industrycode", "Picklist", "None"])
    expect(row("industrycode")?.at(-1)).toMatch(/^1=\w+/)
    expect(row("primarycontactid")?.slice(0, 2)).toEqual(["primarycontactid", "Lookup"])
    expect(row("primarycontactid")?.at(-1)).toMatch(/^-> contact \(\w+@odata\.bind\)$/)
    expect(row("createdon")).toEqual(["createdon", "DateTime", "None", "read-only"])
    expect(text).toMatch(/^accountnumber_key\s+accountnumber\s+Active$/m)
    // A date-only column says so: it takes a date, never a date and time.
    const contact = (await run(["metadata", "contact", ...connection])).stdout
    expect(contact.split("\n").find((line) => line.startsWith("birthdate "))?.split(/\s{2,}/)).toEqual([
      "birthdate",
      "DateTime",
      "None",
      "date only"
    ])
  })

  it("writes the table definition as JSON; an elastic table supports DeleteMultiple", async () => {
    const result = await run(["metadata", "dve_reading", "-o", "json", ...connection])
    expect(result.code).toBe(0)
    const metadata = JSON.parse(result.stdout)
    expect(metadata).toMatchObject({
      logicalName: "dve_reading",
      entitySetName: "dve_readings",
      primaryIdAttribute: "dve_readingid",
      tableType: "Elastic",
      messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: true }
    })
    expect(metadata.columns.find((c: { logicalName: string }) => c.logicalName === "dve_sensor")).toMatchObject({
      type: "String",
      maxLength: 50,
      requiredLevel: "None"
    })
  })

  it("an unknown table is one line", async () => {
    const result = await run(["metadata", "nosuchtable", ...connection])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe(
      "dv-effect: Table 'nosuchtable' does not exist in this environment (tables are named by logical name, e.g. 'contact')."
    )
  })
})

describe("dv-effect typegen", () => {
  it("generates modules that compile, and that work as core's typed tables against the emulator", async () => {
    const result = await run(["typegen", "contact", "account", "dve_product", "--out", out, ...connection])
    expect(result.stderr).not.toContain("dv-effect:")
    expect(result.code).toBe(0)
    expect(result.stderr).toBe(`Wrote 4 files to ${out}: contact.ts, account.ts, dve_product.ts, index.ts\n`)
    expect((await Fs.readdir(out)).sort()).toEqual(["account.ts", "contact.ts", "dve_product.ts", "index.ts"])

    const contact = await Fs.readFile(Path.join(out, "contact.ts"), "utf8")
    expect(contact).toContain("export const Contact = Table.make({")
    expect(contact).toContain("    lastname: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.maxLength(50)))),")
    expect(contact).toContain("    gendercode: Schema.optional(Schema.NullOr(Schema.Literal(1, 2))),")
    expect(contact).toContain("export const ContactGendercode = {\n  Male: 1,\n  Female: 2\n} as const")
    expect(contact).toContain("    _parentcustomerid_value: Schema.optional(Schema.NullOr(Schema.UUID)),")
    expect(contact).toContain("    \"parentcustomerid_account@odata.bind\": Schema.optional(Schema.String),")
    const product = await Fs.readFile(Path.join(out, "dve_product.ts"), "utf8")
    expect(product).toContain("export const DveProduct = Table.make({")
    expect(product).toContain("  alternateKeys: [[\"dve_sku\"]],")
    expect(product).toContain("    dve_name: Schema.String.pipe(Schema.maxLength(100)),")

    // The generated code type-checks, and its types reject a wrong choice and a missing required column.
    await Fs.writeFile(
      Path.join(out, "use.ts"),
      [
        "import { Table } from \"@dv-effect/core\"",
        "import { Contact, ContactGendercode, DveProduct } from \"./index.js\"",
        "export const ada: Contact = { lastname: \"Lovelace\", gendercode: ContactGendercode.Female }",
        "// @ts-expect-error 7 is not a choice",
        "export const wrong: Contact = { gendercode: 7 }",
        "// @ts-expect-error dve_name is required",
        "export const nameless: DveProduct = { dve_sku: \"X\" }",
        "export const create = Table.create(Contact, ada)",
        ""
      ].join("\n")
    )
    await Fs.writeFile(
      Path.join(out, "tsconfig.json"),
      JSON.stringify({
        extends: "../../tsconfig.base.json",
        compilerOptions: {
          noEmit: true,
          composite: false,
          declaration: false,
          declarationMap: false,
          incremental: false
        },
        include: ["*.ts"]
      })
    )
    const tsc = spawnSync(process.execPath, [Path.join(root, "node_modules/typescript/bin/tsc"), "-p", out], {
      encoding: "utf8"
    })
    expect(tsc.stdout + tsc.stderr).toBe("")
    expect(tsc.status).toBe(0)

    // The generated tables against the emulator, through core's typed-table API.
    const generated = await import(Path.join(out, "index.ts"))
    const program = Effect.gen(function*() {
      const accountId = yield* Table.create(generated.Account, { name: "Typegen Ltd", accountnumber: "TG-1" })
      const id = yield* Table.create(generated.Contact, {
        lastname: "Typegen",
        gendercode: generated.ContactGendercode.Female,
        creditlimit: 10,
        "parentcustomerid_account@odata.bind": `/accounts(${accountId})`
      })
      const read = yield* Table.retrieve(generated.Contact, id)
      const refused = yield* Effect.flip(Table.create(generated.Contact, { lastname: "X", gendercode: 7 }))
      const products = yield* Stream.runCollect(Table.query(generated.DveProduct, { top: 1 }))
      return { id, accountId, read, refused, products: Chunk.toReadonlyArray(products) }
    }).pipe(
      Effect.provide(
        DataverseClient.layerNode({
          url: emulator.info.url,
          credentials: Credentials.staticToken(emulator.info.accessToken)
        })
      )
    )
    const { accountId, id, products, read, refused } = await Effect.runPromise(program)
    expect(read).toMatchObject({
      contactid: id,
      lastname: "Typegen",
      gendercode: 2,
      creditlimit: 10,
      _parentcustomerid_value: accountId
    })
    expect(refused.reason).toBe("InvalidInput")
    expect(refused.message).toMatch(/^A contact record does not fit its schema: gendercode: /)
    expect(Array.isArray(products)).toBe(true)
  })

  it("keeps the tables an earlier run generated into the same directory in its index", async () => {
    const dir = Path.join(out, "twice")
    const header = "// Generated by `dv-effect typegen`. Do not edit: generate it again.\n"
    expect((await run(["typegen", "contact", "--out", dir, ...connection])).code).toBe(0)
    expect((await run(["typegen", "account", "--out", dir, ...connection])).code).toBe(0)
    expect(await Fs.readFile(Path.join(dir, "index.ts"), "utf8")).toBe(
      `${header}export * from "./account.js"\nexport * from "./contact.js"\n`
    )
    // A module removed by hand leaves the index; one generated again is there once.
    await Fs.rm(Path.join(dir, "contact.ts"))
    expect((await run(["typegen", "account", "--out", dir, ...connection])).code).toBe(0)
    expect(await Fs.readFile(Path.join(dir, "index.ts"), "utf8")).toBe(`${header}export * from "./account.js"\n`)
  })

  it("writes nothing when a table does not exist", async () => {
    const elsewhere = Path.join(out, "none")
    const result = await run(["typegen", "contact", "nosuchtable", "--out", elsewhere, ...connection])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("Table 'nosuchtable' does not exist")
    await expect(Fs.stat(elsewhere)).rejects.toThrow()
    // A table is named as typed, as every command names it.
    const cased = await run(["typegen", "Contact", "--out", elsewhere, ...connection])
    expect([cased.code, cased.stderr]).toEqual([
      1,
      "dv-effect: Table 'Contact' does not exist in this environment; did you mean 'contact'?\n"
    ])
    await expect(Fs.stat(elsewhere)).rejects.toThrow()
  })
})

/**
 * `dv-effect query` as a user runs it, against a spawned emulator: CSV output (quoting, header,
 * lookups), files, counts beyond the service's 5,000, FetchXML from a file or stdin, $expand, and
 * an export that goes back in through `update` unchanged.
 */
import type * as Metadata from "@dv-effect/core/Metadata"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { open } from "../apps/cli/src/Input.js"
import {
  expandedProperties,
  fetchXmlColumns,
  fetchXmlEntity,
  fetchXmlSelection,
  rawQuery,
  returnsLookup,
  withLookupTargets
} from "../apps/cli/src/QueryCommand.js"
import { binPath, cleanEnv, postRecord, run, type StartedEmulator, startEmulator } from "./support/cli.js"

let emulator: StartedEmulator
let dir: string
let connection: Array<string>
let accountId: string

const bulkRows = 5_100

const post = (entitySet: string, body: unknown) => postRecord(emulator, entitySet, body)

beforeAll(async () => {
  emulator = await startEmulator()
  dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "dv-effect-cli-query-"))
  connection = ["--url", emulator.info.url, "--access-token", emulator.info.accessToken]
  const account = await post("accounts", { name: "Contoso, Ltd", accountnumber: "A-1" })
  accountId = String(account.accountid)
  await post("contacts", {
    lastname: "Doe, \"JD\"",
    firstname: "line1\nline2",
    jobtitle: "null",
    // The text null in another case is text too, and must survive a round trip.
    telephone1: "NULL",
    address1_city: "Special",
    "parentcustomerid_account@odata.bind": `/accounts(${accountId})`
  })
  await post("contacts", { lastname: " Spaced", address1_city: "Special" })
  const lines = Array.from(
    { length: bulkRows },
    (_, i) => JSON.stringify({ lastname: `Bulk-${i}`, address1_city: i % 2 === 0 ? "Paris" : "Lyon" })
  )
  const created = await run(["create", "contact", "--chunk-size", "1000", ...connection], {
    stdin: lines.join("\n") + "\n"
  })
  expect(created.code).toBe(0)
}, 120_000)

afterAll(async () => {
  await emulator?.stop()
  if (dir !== undefined) await Fs.rm(dir, { recursive: true, force: true })
})

const special = ["--filter", "address1_city eq 'Special'", "--orderby", "lastname"]

describe("dv-effect query -o csv", () => {
  it("writes the --select columns and the primary key as the header, quotes what needs it and leaves nulls empty", async () => {
    const result = await run([
      "query",
      "contact",
      "--select",
      "lastname,firstname,jobtitle,telephone1,_parentcustomerid_value",
      ...special,
      "-o",
      "csv",
      ...connection
    ])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    // The primary key comes back whatever --select names (as JSON shows it): the CSV keeps it,
    // so that its rows can go back in through update or upsert.
    expect(result.stdout).toMatch(
      new RegExp(
        "^lastname,firstname,jobtitle,telephone1,_parentcustomerid_value,contactid\n" +
          "\" Spaced\",,,,,[0-9a-f-]{36}\n" +
          `"Doe, ""JD""","line1\nline2","null","NULL",account:${accountId},[0-9a-f-]{36}\n$`
      )
    )
  })

  it("reads back through the CSV input as the records it came from", async () => {
    const file = Path.join(dir, "roundtrip.csv")
    const result = await run([
      "query",
      "contact",
      "--select",
      "lastname,firstname,jobtitle,telephone1,_parentcustomerid_value",
      ...special,
      "-o",
      "csv",
      "--out",
      file,
      ...connection
    ])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe("")
    const rows = await Effect.runPromise(
      Effect.flatMap(open({ file }), (source) => Stream.runCollect(Stream.map(source.records, (r) => r.row)))
    )
    expect(Chunk.toReadonlyArray(rows)).toEqual([
      { lastname: " Spaced", contactid: expect.stringMatching(/^[0-9a-f-]{36}$/) },
      {
        lastname: "Doe, \"JD\"",
        firstname: "line1\nline2",
        jobtitle: "null",
        telephone1: "NULL",
        _parentcustomerid_value: `account:${accountId}`,
        contactid: expect.stringMatching(/^[0-9a-f-]{36}$/)
      }
    ])
  })

  it("takes the header from the FetchXML's <attribute>s, so a column null on the first page is kept", async () => {
    const xml = Path.join(dir, "special.xml")
    await Fs.writeFile(
      xml,
      `<fetch><entity name="contact"><attribute name="lastname" /><attribute name='firstname' />
        <attribute name="parentcustomerid" />
        <!-- <attribute name="jobtitle" /> -->
        <filter><condition attribute="address1_city" operator="eq" value="Special" /></filter>
        <order attribute="lastname" /></entity></fetch>`
    )
    // FetchXML leaves null columns out, so the first page (one row) has no firstname and no parent customer.
    const result = await run(["query", "contact", "--fetchxml", xml, "--page-size", "1", "-o", "csv", ...connection])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const [header, ...rows] = result.stdout.trimEnd().split("\n")
    expect(header).toBe("lastname,firstname,_parentcustomerid_value,contactid")
    expect(rows[0]).toMatch(/^" Spaced",,,[0-9a-f-]{36}$/)
    expect(rows[1]).toBe(`"Doe, ""JD""","line1`)
    expect(rows[2]).toMatch(new RegExp(`^line2",account:${accountId},[0-9a-f-]{36}$`))
  })

  it("takes the header from the first page for <all-attributes/>, and says which later columns are left out", async () => {
    const xml = Path.join(dir, "special-all.xml")
    await Fs.writeFile(
      xml,
      `<fetch><entity name="contact"><all-attributes />
        <filter><condition attribute="address1_city" operator="eq" value="Special" /></filter>
        <order attribute="lastname" /></entity></fetch>`
    )
    const result = await run(["query", "contact", "--fetchxml", xml, "--page-size", "1", "-o", "csv", ...connection])
    expect(result.code).toBe(0)
    const header = result.stdout.split("\n")[0]!.split(",")
    expect(header).toContain("lastname")
    expect(header).not.toContain("firstname")
    expect(result.stderr).toBe(
      "dv-effect: Columns first seen after the first page are left out of the CSV: firstname, telephone1, jobtitle, _parentcustomerid_value" +
        " (name the columns with <attribute name=\"...\"/> elements in the FetchXML instead of <all-attributes/>).\n"
    )
  })

  it("writes a header alone when --select names the columns and nothing matches", async () => {
    const none = await run([
      "query",
      "contact",
      "--select",
      "lastname,firstname",
      "--filter",
      "lastname eq 'nobody'",
      "-o",
      "csv",
      ...connection
    ])
    expect(none.code).toBe(0)
    expect(none.stdout).toBe("lastname,firstname,contactid\n")
    // A column named twice, or the key named, is one column.
    const twice = await run([
      "query",
      "contact",
      "--select",
      "lastname,contactid,lastname",
      "--top",
      "1",
      "-o",
      "csv",
      ...connection
    ])
    expect(twice.code).toBe(0)
    expect(twice.stdout.split("\n")[0]).toBe("lastname,contactid")
  })
})

describe("dv-effect query, then update", () => {
  const exportSpecial = async (format: "csv" | "jsonl") => {
    const result = await run(["query", "contact", ...special, "-o", format, ...connection])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    return result.stdout
  }
  const withoutModifiedOn = (jsonl: string) =>
    jsonl.trim().split("\n").map((line) => {
      const { modifiedon: _, ...rest } = JSON.parse(line) as Record<string, unknown>
      return rest
    })
  // `update` leaves out what an update may not write (the message names the operation).
  const readOnlyNote =
    "dv-effect: Left out of the rows (not valid for update in contact): fullname, createdon, modifiedon.\n"

  it("writes a lookup to several tables as table:GUID, and the export updates back unchanged", async () => {
    const before = await exportSpecial("jsonl")
    // Every column the query returns, the read-only ones and the primary key included.
    expect(before).toContain(`"_parentcustomerid_value":"account:${accountId}"`)
    expect(before).toContain(`"_parentcustomerid_value":null`)
    // `--select ""` names no column: every column, lookups to several tables as table:GUID too.
    const emptySelect = await run(["query", "contact", ...special, "--select", "", "-o", "jsonl", ...connection])
    expect(emptySelect.stdout).toBe(before)
    const file = Path.join(dir, "export.csv")
    await Fs.writeFile(file, await exportSpecial("csv"))
    expect((await Fs.readFile(file, "utf8")).split("\n")[0]).toContain("fullname")

    const updated = await run(["update", "contact", "-f", file, ...connection])
    expect(updated.code).toBe(0)
    // The read-only columns are named once, not once per row; no row failed.
    expect(updated.stderr.startsWith(readOnlyNote)).toBe(true)
    expect(updated.stderr.split(readOnlyNote)).toHaveLength(2)
    expect(updated.stderr).toContain("Updated 2 of 2 contact rows")
    expect(withoutModifiedOn(await exportSpecial("jsonl"))).toEqual(withoutModifiedOn(before))

    // JSON lines (nulls included) through stdin: nothing differs, so nothing is sent.
    const smart = await run(["update", "contact", "--smart", ...connection], { stdin: before })
    expect(smart.code).toBe(0)
    // Smart mode may create as well as update: the columns no write may set are left out.
    expect(smart.stderr.startsWith(readOnlyNote.replace("not valid for update", "read-only"))).toBe(true)
    expect(smart.stderr).toContain("(2 unchanged, 0 created, 0 updated)")
  })
})

describe("dv-effect query --out", () => {
  it("writes to the file what it would write to stdout", async () => {
    const args = ["query", "contact", "--select", "lastname", "--filter", "address1_city eq 'Lyon'", "-o", "json"]
    const file = Path.join(dir, "lyon.json")
    const toStdout = await run([...args, ...connection])
    const toFile = await run([...args, "--out", file, ...connection])
    expect(toFile.code).toBe(0)
    expect(toFile.stdout).toBe("")
    const written = await Fs.readFile(file, "utf8")
    expect(written).toBe(toStdout.stdout)
    expect(JSON.parse(written)).toHaveLength(bulkRows / 2)
  })

  it("leaves an existing file as it was, and no temporary file, when the query fails", async () => {
    const sub = await Fs.mkdtemp(Path.join(dir, "out-"))
    const file = Path.join(sub, "rows.jsonl")
    await Fs.writeFile(file, "before\n")
    const result = await run(["query", "contact", "--filter", "nosuchcolumn eq 1", "--out", file, ...connection])
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(await Fs.readFile(file, "utf8")).toBe("before\n")
    expect(await Fs.readdir(sub)).toEqual(["rows.jsonl"])
  })

  it("Ctrl-C leaves the file as it was, no temporary file, and says so", async () => {
    const sub = await Fs.mkdtemp(Path.join(dir, "interrupted-"))
    const file = Path.join(sub, "rows.jsonl")
    const interrupted = async () => {
      // A page a row: the query runs long enough to be stopped once its first rows are written.
      const child = spawn(process.execPath, [
        binPath,
        "query",
        "contact",
        "--page-size",
        "1",
        "--out",
        file,
        ...connection
      ], {
        env: cleanEnv(),
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stderr = ""
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
      const temporary = Path.join(sub, `.rows.jsonl.${child.pid}.tmp`)
      await new Promise<void>((resolve, reject) => {
        const check = async () => {
          if (child.exitCode !== null) return reject(new Error(`the query ended first: ${stderr}`))
          const size = await Fs.stat(temporary).then((s) => s.size, () => 0)
          if (size > 0) return resolve()
          setTimeout(check, 5)
        }
        void check()
      })
      child.kill("SIGINT")
      return { code: await exited, stderr }
    }
    const fresh = await interrupted()
    expect([fresh.code, fresh.stderr]).toEqual([130, `Stopped: ${file} was not written.\n`])
    expect(await Fs.readdir(sub)).toEqual([])
    await Fs.writeFile(file, "before\n")
    const kept = await interrupted()
    expect([kept.code, kept.stderr]).toEqual([
      130,
      `Stopped: ${file} was not written (it holds what it held before).\n`
    ])
    expect(await Fs.readFile(file, "utf8")).toBe("before\n")
    expect(await Fs.readdir(sub)).toEqual(["rows.jsonl"])
  })

  it("removes the temporary file a killed run left, not one of a process still running", async () => {
    const sub = await Fs.mkdtemp(Path.join(dir, "stale-"))
    const file = Path.join(sub, "rows.jsonl")
    // No process has an id this large (Linux allows at most 4,194,304); this test's own runs.
    const stale = Path.join(sub, ".rows.jsonl.999999999.tmp")
    const live = Path.join(sub, `.rows.jsonl.${process.pid}.tmp`)
    const other = Path.join(sub, ".other.jsonl.999999999.tmp")
    for (const path of [stale, live, other]) await Fs.writeFile(path, "half\n")
    const result = await run(["query", "contact", "--top", "1", "--out", file, ...connection])
    expect(result.code, result.stderr).toBe(0)
    expect((await Fs.readdir(sub)).sort()).toEqual(
      [".other.jsonl.999999999.tmp", `.rows.jsonl.${process.pid}.tmp`, "rows.jsonl"].sort()
    )
  })

  it("names --out when the file cannot be created", async () => {
    const result = await run(["query", "contact", "--out", Path.join(dir, "missing", "rows.csv"), ...connection])
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(
      `dv-effect: Cannot write --out ${Path.join(dir, "missing", "rows.csv")}: no such directory\n`
    )
  })
})

describe("dv-effect query --count", () => {
  it("prints the exact count, beyond the 5,000 where the service stops counting", async () => {
    const count = async (...args: Array<string>) => {
      const result = await run(["query", "contact", "--count", ...args, ...connection])
      expect(result.code).toBe(0)
      expect(result.stderr).toBe("")
      return result.stdout
    }
    expect(await count()).toBe(`${bulkRows + 2}\n`)
    expect(await count("--filter", "address1_city eq 'Paris'")).toBe(`${bulkRows / 2}\n`)
    expect(await count("--filter", "address1_city eq 'Special'")).toBe("2\n")
    expect(await count("--top", "10")).toBe("10\n")
    expect(await count("--top", "5050")).toBe("5050\n")
  })

  it("counts the rows of a FetchXML query, read from stdin", async () => {
    const result = await run(["query", "contact", "--count", "--fetchxml", "-", "--page-size", "1000", ...connection], {
      stdin:
        "<fetch><entity name=\"contact\"><attribute name=\"contactid\" /><filter><condition attribute=\"address1_city\" operator=\"eq\" value=\"Lyon\" /></filter></entity></fetch>"
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${bulkRows / 2}\n`)
  })
})

describe("dv-effect query --fetchxml", () => {
  it("streams the rows of a FetchXML query from a file", async () => {
    const xml = Path.join(dir, "paris.xml")
    await Fs.writeFile(
      xml,
      "<fetch><entity name=\"contact\"><attribute name=\"lastname\" /><filter><condition attribute=\"lastname\" operator=\"eq\" value=\"Bulk-42\" /></filter></entity></fetch>"
    )
    const result = await run(["query", "contact", "--fetchxml", xml, ...connection])
    expect(result.code).toBe(0)
    const rows = result.stdout.trim().split("\n").map((line) => JSON.parse(line))
    expect(rows).toHaveLength(1)
    expect(rows[0].lastname).toBe("Bulk-42")
    expect(Object.keys(rows[0]).some((key) => key.includes("@"))).toBe(false)
  })

  it("refuses OData options beside it, another table, and a file that is not there, in one line each", async () => {
    const xml = Path.join(dir, "account.xml")
    await Fs.writeFile(xml, "<fetch><entity name=\"account\"><attribute name=\"name\" /></entity></fetch>")
    const cases: Array<[Array<string>, string]> = [
      [
        ["contact", "--fetchxml", xml, "--select", "name", "--top", "3"],
        "dv-effect: --fetchxml cannot be combined with --select, --top: write them in the FetchXML.\n"
      ],
      [
        ["contact", "--fetchxml", xml],
        "dv-effect: --fetchxml queries the table 'account', but the command names 'contact'.\n"
      ],
      [
        ["account", "--fetchxml", Path.join(dir, "nope.xml")],
        `dv-effect: Cannot read --fetchxml ${Path.join(dir, "nope.xml")}: no such file\n`
      ]
    ]
    for (const [args, message] of cases) {
      const result = await run(["query", ...args, ...connection])
      expect(result.code).toBe(1)
      expect(result.stdout).toBe("")
      expect(result.stderr).toBe(message)
    }
  })
})

describe("dv-effect query --expand", () => {
  it("passes $expand to the service as written", async () => {
    // The emulator answers $expand (see test/cli-expand.test.ts): every row carries the expanded
    // lookup, an object or null.
    const result = await run([
      "query",
      "contact",
      "--select",
      "lastname",
      "--expand",
      "parentcustomerid_account($select=name)",
      "-o",
      "jsonl",
      ...connection
    ])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const rows = result.stdout.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(rows.length).toBeGreaterThan(0)
    for (const row of rows) expect(row).toHaveProperty("parentcustomerid_account")
  })

  it("builds the query string and the CSV columns from it", () => {
    expect(expandedProperties("parentcustomerid_account($select=name,accountnumber;$filter=name eq 'a,(b'),ownerid"))
      .toEqual(["parentcustomerid_account", "ownerid"])
    expect(rawQuery([["$select", "lastname"], ["$filter", "name eq 'A&B'"], ["$orderby", undefined], [
      "$expand",
      "x($select=a,b)"
    ]])).toBe("$select=lastname&$filter=name%20eq%20'A%26B'&$expand=x(%24select%3Da%2Cb)")
    expect(fetchXmlEntity("<fetch top='3'><entity name='contact'>")).toBe("contact")
  })
})

describe("query helpers", () => {
  const column = (logicalName: string, type: Metadata.AttributeType): Metadata.ColumnMetadata => ({
    logicalName,
    type,
    typeName: undefined,
    requiredLevel: "None",
    maxLength: undefined,
    minValue: undefined,
    maxValue: undefined,
    options: undefined,
    targets: undefined,
    isPrimaryId: false,
    isValidForCreate: true,
    isValidForUpdate: true
  })
  const contact: Metadata.TableMetadata = {
    logicalName: "contact",
    entitySetName: "contacts",
    primaryIdAttribute: "contactid",
    primaryNameAttribute: "fullname",
    tableType: "Standard",
    objectTypeCode: 2,
    columns: [
      column("contactid", "Uniqueidentifier"),
      column("lastname", "String"),
      column("parentcustomerid", "Customer")
    ],
    lookups: [],
    keys: [],
    messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
  }

  it("reads the main entity's attributes of a FetchXML query, and the CSV header they make", () => {
    const selection = fetchXmlSelection(
      `<?xml version="1.0"?><fetch distinct='false'><!-- <attribute name="x"/> -->
        <entity name="contact"><attribute name="LastName"/><attribute name="parentcustomerid" />
        <attribute name="lastname" alias="last&amp;name"/>
        <link-entity name="account" from="accountid" to="parentcustomerid" alias="a"><attribute name="name"/>
          <link-entity name="contact" from="contactid" to="primarycontactid"><all-attributes/></link-entity>
        </link-entity>
        <order attribute="lastname"/><filter><condition attribute="jobtitle" operator="null"/></filter>
      </entity></fetch>`
    )
    expect(selection).toEqual({
      attributes: [
        { name: "lastname", alias: undefined },
        { name: "parentcustomerid", alias: undefined },
        { name: "lastname", alias: "last&name" }
      ],
      grouped: false
    })
    expect(fetchXmlColumns(selection!, contact)).toEqual([
      "lastname",
      "_parentcustomerid_value",
      "last&name",
      "contactid"
    ])
    const all = fetchXmlSelection("<fetch><entity name='contact'><all-attributes/></entity></fetch>")
    expect(all).toEqual({ attributes: "all", grouped: false })
    expect(fetchXmlColumns(all!, contact)).toBeUndefined()
    expect(fetchXmlSelection("<fetch><entity name='contact'><filter/></entity></fetch>")?.attributes).toBe("all")
    const none = fetchXmlSelection("<fetch><entity name='contact'><no-attrs/></entity></fetch>")
    expect(fetchXmlColumns(none!, contact)).toEqual(["contactid"])
    const grouped = fetchXmlSelection(
      "<fetch aggregate=\"true\"><entity name=\"contact\"><attribute name=\"contactid\" alias=\"n\" aggregate=\"count\"/></entity></fetch>"
    )
    expect(fetchXmlColumns(grouped!, contact)).toEqual(["n"])
    expect(fetchXmlSelection("<notfetch/>")).toBeUndefined()
  })

  it("writes a polymorphic lookup as table:GUID from its annotation, and knows when to ask for it", () => {
    const id = "5d1d2f3e-6a1b-4c8d-9e0f-112233445566"
    const row = {
      lastname: "Doe",
      "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
      _parentcustomerid_value: id,
      _ownerid_value: id
    }
    expect(withLookupTargets(["parentcustomerid", "ownerid"])(row)).toEqual({
      ...row,
      _parentcustomerid_value: `account:${id}`
    })
    const plain = { lastname: "Doe", _parentcustomerid_value: null }
    expect(withLookupTargets(["parentcustomerid"])(plain)).toBe(plain)
    expect(returnsLookup(["parentcustomerid"], "all")).toBe(true)
    expect(returnsLookup([], "all")).toBe(false)
    expect(returnsLookup(["parentcustomerid"], ["lastname"])).toBe(false)
    expect(returnsLookup(["parentcustomerid"], ["lastname", "_ParentCustomerId_value"])).toBe(true)
    expect(returnsLookup(["parentcustomerid"], ["parentcustomerid"])).toBe(true)
  })
})

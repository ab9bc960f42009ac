/**
 * The import commands (create, update, upsert, delete) as a user runs them: CLI processes against
 * an emulator in this process, whose store the tests read directly. Also the journals: the job's
 * default one (kept while a run is unfinished, found again by `--resume`), `--no-journal`, Ctrl-C,
 * and a rejects file that cannot be written (a run failure).
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { binPath, run, startEmulatorFixture, writeFile } from "./support/cli.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let runsDir: string
let close: () => Promise<void>

beforeAll(async () => {
  ;({ emulator, dir, env, runsDir, close } = await startEmulatorFixture({
    identity: false,
    // Some latency, so that a run can be stopped midway.
    profile: { ...Model.fast, latency: { baseMs: 15, perRecordMs: 0.2, perOperationMs: 0 } }
  }, "dv-import-"))
})
afterAll(() => close())
beforeEach(() => emulator.reset())

/** The default journals kept now. */
const defaultJournals = () => (Fs.existsSync(runsDir) ? Fs.readdirSync(runsDir) : [])

const file = (name: string, text: string) => writeFile(dir, name, text)
const contacts = () => emulator.store.table("contact")!.scan().map((r) => r.values)
const jsonl = (rows: ReadonlyArray<unknown>) => rows.map((row) => JSON.stringify(row)).join("\n") + "\n"

describe("dv-effect create from CSV", () => {
  it("coerces every kind of value by the column's metadata, writes rejects and exits 2", async () => {
    emulator.seed("account", [{
      accountid: "10000000-0000-4000-8000-000000000001",
      name: "Contoso",
      accountnumber: "A-1"
    }])
    const csv = file(
      "contacts.csv",
      "\uFEFFlastname,firstname,creditlimit,donotemail,gendercode,birthdate,parentcustomerid@account.accountnumber\r\n" +
        "Smith,Ann,1500.50,yes,Female,1980-02-03,A-1\r\n" +
        "\"O'Hara, \"\"Jr\"\"\",Bob,abc,no,1,,\r\n" +
        "Lee,,12,TRUE,2,2001-13-01,\n" +
        "Kim,Joe,,false,,,\n"
    )
    const rejects = Path.join(dir, "rejects.jsonl")
    const result = await run(["create", "contact", "--file", csv, "--rejects", rejects], { env })
    expect(result.code).toBe(2)
    const stored = contacts().sort((a, b) => String(a.lastname).localeCompare(String(b.lastname)))
    expect(stored.map((c) => c.lastname)).toEqual(["Kim", "Smith"])
    const smith = stored[1]!
    expect(smith).toMatchObject({ firstname: "Ann", creditlimit: 1500.5, donotemail: true, gendercode: 2 })
    expect(String(smith.birthdate)).toMatch(/^1980-02-03/)
    expect(smith.parentcustomerid).toEqual({ table: "account", id: "10000000-0000-4000-8000-000000000001" })
    const entries = Fs.readFileSync(rejects, "utf8").trim().split("\n").map((line) => JSON.parse(line))
    expect(entries.map((e) => [e.row, e.status, e.reason])).toEqual([
      ["row 2 (line 3)", "failed", "InvalidInput"],
      ["row 3 (line 4)", "failed", "InvalidInput"]
    ])
    expect(entries[0].input).toMatchObject({ lastname: "O'Hara, \"Jr\"", creditlimit: "abc" })
    expect(entries[0].message).toContain("creditlimit")
    expect(entries[1].message).toContain("birthdate")
    expect(result.stderr).toContain("Created 2 of 4 contact rows")
    expect(result.stderr).toContain("row 2 (line 3): column 'creditlimit'")
  })

  it("a lookup that names no record fails its row, which names the row's lookups", async () => {
    emulator.seed("account", [{ accountid: "10000000-0000-4000-8000-000000000001", name: "C", accountnumber: "A-1" }])
    const csv = file("lookups.csv", "lastname,parentcustomerid@account.accountnumber\nGood,A-1\nBad,A-999\n")
    const result = await run(["create", "contact", "-f", csv, "--no-journal"], { env })
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(
      /^row 2 \(line 3\): .+ \[0x80040217\] \(the row's lookups: parentcustomerid@account\.accountnumber=A-999\)$/m
    )
    expect(contacts().map((c) => c.lastname)).toEqual(["Good"])
  })

  it("a duplicate key fails its row, which names the row's key values", async () => {
    emulator.seed("account", [{ accountid: "10000000-0000-4000-8000-000000000001", name: "C", accountnumber: "A-1" }])
    const id = "10000000-0000-4000-8000-000000000001"
    const csv = file("duplicates.csv", `accountid,name,accountnumber\n,New,A-2\n,Again,A-1\n${id},Same id,A-9\n`)
    const result = await run(["create", "account", "-f", csv, "--no-journal"], { env })
    expect(result.code, result.stderr).toBe(2)
    expect(result.stderr).toMatch(/^row 2 \(line 3\): .+ \[0x80040237\] \(the row's key values: accountnumber=A-1\)$/m)
    // A duplicate of the row's own id: the id comes first.
    expect(result.stderr).toMatch(
      new RegExp(
        `^row 3 \\(line 4\\): .+ \\[0x80040237\\] \\(the row's key values: accountid=${id}, accountnumber=A-9\\)$`,
        "m"
      )
    )
    expect(emulator.store.table("account")!.size).toBe(2)
  })

  it("a dry run checks every row, prints the plan and writes nothing", async () => {
    const csv = file("dry.csv", "lastname,creditlimit\nA,1\nB,x\nC,3\n")
    const writtenBefore = emulator.counters.recordsWritten
    const result = await run(["create", "contact", "-f", csv, "--dry-run", "-o", "json"], { env })
    expect(result.code).toBe(2)
    const report = JSON.parse(result.stdout)
    expect(report).toMatchObject({ dryRun: true, total: 3, valid: 2, invalid: 1 })
    expect(report.plan).toMatchObject({ strategy: "multiple", message: "CreateMultiple", table: "contact" })
    expect(contacts()).toHaveLength(0)
    expect(emulator.counters.recordsWritten).toBe(writtenBefore)
  })

  it("fails with one line for bad flags, an unknown table and a journal without --resume", async () => {
    const csv = file("one.csv", "lastname\nA\n")
    const badChunk = await run(["create", "contact", "-f", csv, "--chunk-size", "0"], { env })
    expect([badChunk.code, badChunk.stderr.trim()]).toEqual([
      1,
      "dv-effect: --chunk-size must be 'auto' or a whole number from 1 to 1000, got '0'."
    ])
    const badPartition = await run(["create", "contact", "-f", csv, "--partition", "3/2"], { env })
    expect(badPartition.code).toBe(1)
    expect(badPartition.stderr).toContain("--partition")
    const unknown = await run(["create", "nosuchtable", "-f", csv], { env })
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1)
    const noKey = await run(["update", "contact", "-f", csv, "--key", "nosuchcol"], { env })
    expect([noKey.code, noKey.stderr.trim()]).toEqual([
      1,
      "dv-effect: The key column 'nosuchcol' does not exist in contact."
    ])
    const notAKey = await run(["upsert", "contact", "-f", csv, "--key", "emailaddress1", "--dry-run"], { env })
    expect(notAKey.code).toBe(1)
    expect(notAKey.stderr.trim().split("\n")).toHaveLength(1)
    expect(notAKey.stderr).toContain("emailaddress1 is not an active alternate key of contact")
    // With --smart a create looks records up by --key: allowed.
    const smartByKey = await run(["create", "contact", "-f", csv, "--key", "lastname", "--smart", "--dry-run"], {
      env
    })
    expect(smartByKey.code, smartByKey.stderr).toBe(0)
    // A create does not use --key: a re-run would create every record again, unnoticed.
    const createByKey = await run(["create", "contact", "-f", csv, "--key", "lastname"], { env })
    expect([createByKey.code, createByKey.stderr.trim()]).toEqual([
      1,
      "dv-effect: The key option (--key in the CLI) names the records of an update, upsert or delete (with smart mode, those a create looks up first); a create does not use it: leave it out, or upsert by it to write each record once."
    ])
    const journal = file("used.journal", "{\"journal\":\"dv-effect\"}\n")
    const reused = await run(["create", "contact", "-f", csv, "--journal", journal], { env })
    expect(reused.code).toBe(1)
    expect(reused.stderr).toContain("--resume")
    expect(contacts()).toHaveLength(0)
  })

  it("refuses in one line a CSV whose header cannot name the records to change, before sending any", async () => {
    const many = file("no-id.csv", `lastname\n${Array.from({ length: 500 }, (_, i) => `N${i}`).join("\n")}\n`)
    const requests = emulator.counters.requests
    const update = await run(["update", "contact", "-f", many], { env })
    expect([update.code, update.stderr.trim()]).toEqual([
      1,
      `dv-effect: ${many}: the header has no 'contactid' column to name each record by.`
    ])
    const skus = file("skus.csv", "dve_sku,dve_name\nS1,a\nS2,b\n")
    const remove = await run(["delete", "dve_product", "-f", skus], { env })
    expect([remove.code, remove.stderr.trim()]).toEqual([
      1,
      `dv-effect: ${skus}: the header has no 'dve_productid' column to name each record by; pass --key dve_sku to name them by the alternate key it has.`
    ])
    const keyed = await run(["update", "dve_product", "-f", many, "--key", "dve_sku"], { env })
    expect([keyed.code, keyed.stderr.trim()]).toEqual([
      1,
      `dv-effect: ${many}: the header has no 'dve_sku' column, which --key names.`
    ])
    // A header alone is checked as a row would be: nothing to load today, but the file is wrong.
    const headerOnly = file("header-only.csv", "lastname\n")
    const empty = await run(["update", "contact", "-f", headerOnly], { env })
    expect([empty.code, empty.stderr.trim()]).toEqual([
      1,
      `dv-effect: ${headerOnly}: the header has no 'contactid' column to name each record by.`
    ])
    // A good header alone loads nothing, and says so (an export that failed upstream looks alike).
    const noRows = await run(["create", "contact", "-f", headerOnly, "--no-journal"], { env })
    expect([noRows.code, noRows.stderr.trim().split("\n").at(-1)]).toEqual([
      0,
      `The input (${headerOnly}) holds no rows.`
    ])
    const misspeltHeader = file("misspelt-header.csv", "lastnme\n")
    const misspelt = await run(["create", "contact", "-f", misspeltHeader], { env })
    expect([misspelt.code, misspelt.stderr.trim()]).toEqual([
      1,
      `dv-effect: ${misspeltHeader}: column 'lastnme' does not exist in contact; did you mean 'lastname'?`
    ])
    // Smart mode would create every row, on every run: refused alike, for update and upsert.
    for (const operation of ["update", "upsert"]) {
      const smart = await run([operation, "contact", "-f", many, "--smart"], { env })
      expect([smart.code, smart.stderr.trim()]).toEqual([
        1,
        `dv-effect: ${many}: the header has no 'contactid' column to name each record by: with --smart every row would be created, and again on every run (for new records only, use create).`
      ])
    }
    // Metadata reads only (one table's, six requests, per command, the header alone's too): no row was sent, and no journal
    // is left with nothing to resume.
    expect(emulator.counters.recordsWritten).toBe(0)
    expect(emulator.counters.requests - requests).toBe(8 * 6)
    expect(defaultJournals()).toEqual([])
  })

  it("refuses in one line a header of one column holding another delimiter, and a rejects file fed back", async () => {
    const semicolons = file("semicolons.csv", "lastname;firstname\nLovelace;Ada\nHopper;Grace\n")
    const create = await run(["create", "contact", "-f", semicolons], { env })
    expect([create.code, create.stderr.trim()]).toEqual([
      1,
      `dv-effect: ${semicolons}: the header is one column, 'lastname;firstname': pass --delimiter ';' if its fields are separated by ';'.`
    ])
    const tabs = file("tabs.csv", "lastname\tfirstname\nLovelace\tAda\n")
    const tabbed = await run(["create", "contact", "-f", tabs], { env })
    expect(tabbed.stderr.trim()).toBe(
      `dv-effect: ${tabs}: the header is one column, 'lastname\tfirstname': pass --delimiter tab if its fields are separated by tabs.`
    )
    // `tab` and `\t` stand for a tab; a .tsv file is read with tabs.
    for (const delimiter of ["tab", "TAB", "\\t"]) {
      const dry = await run(["create", "contact", "-f", tabs, "--delimiter", delimiter, "--dry-run"], { env })
      expect([delimiter, dry.code, dry.stderr]).toEqual([
        delimiter,
        0,
        expect.stringContaining("1 (1 valid, 0 invalid)")
      ])
    }
    const tsv = file("tabs.tsv", "lastname\tfirstname\nLovelace\tAda\n")
    const fromTsv = await run(["create", "contact", "-f", tsv, "--dry-run"], { env })
    expect([fromTsv.code, fromTsv.stderr]).toEqual([0, expect.stringContaining("1 (1 valid, 0 invalid)")])
    const withDelimiter = await run(["create", "contact", "-f", semicolons, "--delimiter", ";", "--no-journal"], {
      env
    })
    expect(withDelimiter.code, withDelimiter.stderr).toBe(0)
    expect(contacts().map((c) => c.firstname).sort()).toEqual(["Ada", "Grace"])

    const rejects = file(
      "fed-back.jsonl",
      [{ row: "row 1 (line 2)", line: 2, input: { lastname: "L".repeat(60) }, status: "failed", message: "too long" }]
        .map((line) => JSON.stringify(line)).join("\n") + "\n"
    )
    const fedBack = await run(["create", "contact", "-f", rejects], { env })
    expect([fedBack.code, fedBack.stderr.trim()]).toEqual([
      1,
      `dv-effect: ${rejects} holds the lines of a rejects file: take the rows out first, e.g. jq -c .input ${rejects} > retry.jsonl.`
    ])
    expect(contacts()).toHaveLength(2)
    expect(defaultJournals()).toEqual([])
  })
})

describe("dv-effect update, upsert and delete", () => {
  it("the seed pipeline: query, change each email, update in chunks of 50 with 8 workers", async () => {
    emulator.seed(
      "contact",
      Array.from({ length: 300 }, (_, i) => ({ lastname: `P${i}`, emailaddress1: `old${i}@example.com` }))
    )
    const script =
      `node ${JSON.stringify(binPath)} query contact --select contactid,emailaddress1 --top 1000 -o jsonl` +
      ` | node -e 'require("readline").createInterface({input:process.stdin}).on("line",(l)=>{const r=JSON.parse(l);r.emailaddress1="updated-"+r.contactid+"@example.com";console.log(JSON.stringify(r))})'` +
      ` | node ${JSON.stringify(binPath)} update contact --chunk-size 50 --concurrency 8`
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn("sh", ["-c", script], { env: { ...process.env, ...env } })
      let stderr = ""
      child.stderr.on("data", (chunk) => (stderr += chunk))
      child.on("close", (code) => resolve({ code, stderr }))
    })
    expect(result.code).toBe(0)
    expect(result.stderr).toContain("Updated 300 of 300 contact rows")
    for (const row of emulator.store.table("contact")!.scan()) {
      expect(row.values.emailaddress1).toBe(`updated-${row.id}@example.com`)
    }
  })

  it("upserts by alternate key, smart mode leaves unchanged rows alone, delete removes what a query found", async () => {
    const products = file("products.csv", "dve_sku,dve_name,dve_price\nS-1,One,10\nS-2,Two,20\n")
    const first = await run(["upsert", "dve_product", "--key", "dve_sku", "-f", products, "-o", "json"], { env })
    expect(first.code).toBe(0)
    expect(JSON.parse(first.stdout)).toMatchObject({ upserted: 2, failed: 0 })
    const changed = file("products2.csv", "dve_sku,dve_name,dve_price\nS-1,One,10\nS-2,Two,25\nS-3,Three,30\n")
    const smart = await run(["upsert", "dve_product", "--key", "dve_sku", "-f", changed, "--smart", "-o", "json"], {
      env
    })
    expect(JSON.parse(smart.stdout)).toMatchObject({ unchanged: 1, updated: 1, created: 1, failed: 0 })
    const again = await run(["upsert", "dve_product", "--key", "dve_sku", "-f", changed, "--smart"], { env })
    expect(again.stderr).toMatch(/Done with 3 of 3 dve_product rows \(3 unchanged, 0 created, 0 updated\) in /)
    const prices = emulator.store.table("dve_product")!.scan().map((r) => [r.values.dve_sku, r.values.dve_price])
    expect(prices.sort()).toEqual([["S-1", 10], ["S-2", 25], ["S-3", 30]])
    // A key that names no record is deleted (a delete sent again must not fail), and said apart.
    const gone = file("gone.csv", "dve_sku\nS-3\nS-NOPE\n")
    const remove = await run(["delete", "dve_product", "--key", "dve_sku", "-f", gone], { env })
    expect(remove.code).toBe(0)
    expect(remove.stderr).toMatch(/Deleted 2 of 2 dve_product rows \(1 of them was not there\) in /)
    const removeJson = await run(["delete", "dve_product", "--key", "dve_sku", "-f", gone, "-o", "json"], { env })
    expect(JSON.parse(removeJson.stdout)).toMatchObject({ deleted: 2, absent: 2, failed: 0 })
    expect(emulator.store.table("dve_product")!.size).toBe(2)

    emulator.seed("contact", [{ lastname: "Test" }, { lastname: "Test" }, { lastname: "Keep" }])
    const script = `node ${JSON.stringify(binPath)} query contact --filter "lastname eq 'Test'" -o jsonl` +
      ` | node ${JSON.stringify(binPath)} delete contact`
    const deleted = await new Promise<number | null>((resolve) => {
      const child = spawn("sh", ["-c", script], { env: { ...process.env, ...env }, stdio: "ignore" })
      child.on("close", resolve)
    })
    expect(deleted).toBe(0)
    expect(contacts().map((c) => c.lastname)).toEqual(["Keep"])
  })

  it("two --partition halves of one input make the whole, each row once", async () => {
    const input = file("half.jsonl", jsonl(Array.from({ length: 101 }, (_, i) => ({ lastname: `H${i}` }))))
    const [a, b] = await Promise.all([
      run(["create", "contact", "-f", input, "--partition", "1/2", "-o", "json"], { env }),
      run(["create", "contact", "-f", input, "--partition", "2/2", "-o", "json"], { env })
    ])
    expect([JSON.parse(a.stdout).created, JSON.parse(b.stdout).created]).toEqual([51, 50])
    const names = contacts().map((c) => String(c.lastname))
    expect(new Set(names).size).toBe(101)
    expect(names).toHaveLength(101)
  })
})

/**
 * Starts an import and resolves once its journal (a path, or the one default journal) records
 * `finished` chunks.
 */
const startImport = (
  args: ReadonlyArray<string>,
  journal: string | (() => string | undefined),
  finished: number,
  childEnv: Record<string, string> = env
) => {
  const journalPath = typeof journal === "string" ? () => journal : journal
  const child = spawn(process.execPath, [binPath, ...args], { env: { ...process.env, ...childEnv }, stdio: "pipe" })
  let stderr = ""
  let stdout = ""
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code, signal) => resolve(code ?? (signal === null ? null : -1)))
  )
  const ready = new Promise<void>((resolve, reject) => {
    const check = () => {
      const path = journalPath()
      const text = path !== undefined && Fs.existsSync(path) ? Fs.readFileSync(path, "utf8") : ""
      if ((text.match(/"ok"/g) ?? []).length >= finished) return resolve()
      if (child.exitCode !== null) return reject(new Error(`the import ended first: ${stderr}`))
      setImmediate(check)
    }
    check()
  })
  return { child, ready, exited, stderr: () => stderr, stdout: () => stdout }
}

describe("dv-effect create --journal, stopped and resumed", () => {
  const rows = Array.from({ length: 6000 }, (_, i) => ({ lastname: `K${i}` }))

  it("a journal that cannot be written stops the run before any row, and says to fix it first", async () => {
    const input = file("nojournal.jsonl", jsonl([{ lastname: "J1" }]))
    const journal = Path.join(dir, "missing-dir", "load.journal")
    const before = contacts().length
    const result = await run(["create", "contact", "-f", input, "--journal", journal], { env })
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toMatch(
      new RegExp(
        `^dv-effect: Cannot write the journal ${journal}: ENOENT.*\\. No row was sent: once that is fixed, run the same command again\\.$`
      )
    )
    expect(contacts()).toHaveLength(before)
  })

  it("after kill -9 midway, --resume writes every row exactly once", async () => {
    const input = file("kill.jsonl", jsonl(rows))
    const journal = Path.join(dir, "kill.journal")
    const args = ["create", "contact", "-f", input, "--chunk-size", "100", "--concurrency", "4", "--journal", journal]
    const first = startImport(args, journal, 5)
    await first.ready
    first.child.kill("SIGKILL")
    await first.exited
    const landed = contacts().length
    expect(landed).toBeGreaterThan(0)
    expect(landed).toBeLessThan(6000)
    const resumed = await run([...args, "--resume", "-o", "json"], { env })
    expect(resumed.code).toBe(0)
    const summary = JSON.parse(resumed.stdout)
    expect(summary.resumed + summary.created).toBe(6000)
    // Rows the killed run landed but never journalled finished: found, and counted apart.
    expect(summary.landedBefore).toBeGreaterThanOrEqual(landed - summary.resumed)
    expect(summary.landedBefore).toBeLessThanOrEqual(summary.created)
    const names = contacts().map((c) => String(c.lastname))
    expect(names).toHaveLength(6000)
    expect(new Set(names).size).toBe(6000)
  })

  it("refuses to resume a journal over another input", async () => {
    const input = file("first.jsonl", jsonl(rows.slice(0, 10)))
    const other = file("other.jsonl", jsonl(rows.slice(10, 12)))
    const journal = Path.join(dir, "other.journal")
    const first = await run(["create", "contact", "-f", input, "--journal", journal], { env })
    expect(first.code).toBe(0)
    const wrong = await run(["create", "contact", "-f", other, "--journal", journal, "--resume"], { env })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toContain("resume with the same input")
    expect(contacts()).toHaveLength(10)
    const identity = (path: string) =>
      `${path} (${Fs.statSync(path).size} bytes, modified ${Fs.statSync(path).mtime.toISOString()})`
    const recorded = identity(input)
    // The same path and size written again (a re-export in another order): another input.
    const reordered = file("first.jsonl", jsonl(rows.slice(0, 10).reverse()))
    expect(Fs.statSync(reordered).size).toBe(Fs.statSync(input).size)
    Fs.utimesSync(reordered, new Date(), new Date(Date.now() + 60_000))
    const again = await run(["create", "contact", "-f", reordered, "--journal", journal, "--resume"], { env })
    expect([again.code, again.stderr]).toEqual([1, expect.stringContaining("resume with the same input")])
    expect(contacts()).toHaveLength(10)
    // Read from a file, resumed from stdin (or the other way round): said in the CLI's terms.
    const piped = await run(["create", "contact", "--journal", journal, "--resume"], {
      env,
      stdin: jsonl(rows.slice(0, 10))
    })
    expect([piped.code, piped.stderr.trim()]).toEqual([
      1,
      `dv-effect: --journal ${journal} records a run over ${recorded}; this one reads stdin or a pipe: resume with that file as -f.`
    ])
    const fromStdin = Path.join(dir, "stdin.journal")
    expect((await run(["create", "contact", "--journal", fromStdin], { env, stdin: jsonl(rows.slice(20, 22)) })).code)
      .toBe(0)
    const fromFile = await run(["create", "contact", "-f", other, "--journal", fromStdin, "--resume"], { env })
    expect([fromFile.code, fromFile.stderr.trim()]).toEqual([
      1,
      `dv-effect: --journal ${fromStdin} records a run that read its rows from stdin or a pipe; this one reads ${
        identity(other)
      }: give the same rows, in the same order, on stdin (< file) to resume.`
    ])
    expect(contacts()).toHaveLength(12)
  })

  it("refuses to resume from stdin over rows that differ after the first eight, before sending any", async () => {
    const journal = Path.join(dir, "piped.journal")
    const piped = rows.slice(100, 200)
    const first = await run(["create", "contact", "--journal", journal], { env, stdin: jsonl(piped.slice(0, 60)) })
    expect(first.code).toBe(0)
    const before = contacts().length
    // Piped again with row 41 left out: rows 42 to 61 moved up. Before, the resume skipped 60
    // rows as finished (row 61 among them, never sent) and created rows 62 to 100 only. The last
    // row the first run read, row 60, is checked: row 61 is there now.
    const removed = await run(["create", "contact", "--journal", journal, "--resume", "-o", "json"], {
      env,
      stdin: jsonl([...piped.slice(0, 40), ...piped.slice(41)])
    })
    expect([removed.code, removed.stderr.trim().split("\n").at(-1)]).toEqual([
      1,
      expect.stringContaining(`dv-effect: The journal ${journal} records a run over another input: row 60 differs`)
    ])
    expect(contacts()).toHaveLength(before)
    // A script reads the refusal too.
    expect(JSON.parse(removed.stdout.trim())).toMatchObject({
      stopped: "failed",
      error: expect.stringContaining("row 60 differs"),
      succeeded: 0,
      journal
    })
    // The same rows piped again resume: the other 40 are created, each once.
    const same = await run(["create", "contact", "--journal", journal, "--resume"], { env, stdin: jsonl(piped) })
    expect(same.code).toBe(0)
    const names = contacts().map((record) => record.lastname)
    expect(names).toHaveLength(before + 40)
    expect(piped.every((row) => names.filter((name) => name === row.lastname).length === 1)).toBe(true)
  })

  it("Ctrl-C stops cleanly, says how to resume, and the resumed run completes the load", async () => {
    const input = file("int.jsonl", jsonl(rows))
    const journal = Path.join(dir, "int.journal")
    const args = ["create", "contact", "-f", input, "--chunk-size", "100", "--concurrency", "4", "--journal", journal]
    const first = startImport(args, journal, 5)
    await first.ready
    first.child.kill("SIGINT")
    expect(await first.exited).toBe(130)
    const lastLine = first.stderr().trim().split("\n").at(-1)!
    expect(lastLine).toMatch(
      /^Stopped: [\d,]+ rows finished(; [\d,]+ more were in requests without an answer and may have landed)?\. Resume with: /
    )
    expect(lastLine).toContain(`--journal ${journal} --resume`)
    // A resumed run stopped again counts what it finished, and says the journal keeps the rest.
    const okEntries = () => (Fs.readFileSync(journal, "utf8").match(/"ok"/g) ?? []).length
    const second = startImport([...args, "--resume", "-o", "json"], journal, okEntries() + 3)
    await second.ready
    second.child.kill("SIGINT")
    expect(await second.exited).toBe(130)
    const stoppedLine = second.stderr().trim().split("\n").at(-1)!
    expect(stoppedLine).toMatch(
      /^Stopped: [\d,]+ rows finished by this run \(the journal keeps those of the runs before\)(; [\d,]+ more were in requests without an answer and may have landed)?\. Resume with: /
    )
    // With -o json, the same figures and command on stdout.
    const stopped = JSON.parse(second.stdout())
    expect(stopped).toMatchObject({ table: "contact", operation: "create", stopped: "interrupted", failed: 0, journal })
    expect(stopped.resumed).toBeGreaterThan(0)
    expect(stoppedLine).toContain(`rows finished by this run (the journal keeps those of the runs before)`)
    expect(stoppedLine).toMatch(new RegExp(`^Stopped: ${stopped.succeeded.toLocaleString("en-US")} rows finished`))
    expect(stoppedLine.endsWith(stopped.resume)).toBe(true)
    const resumed = await run([...args, "--resume", "-o", "json"], { env })
    expect(resumed.code).toBe(0)
    const names = contacts().map((c) => String(c.lastname))
    expect(names).toHaveLength(6000)
    expect(new Set(names).size).toBe(6000)
  })
})

/** Rows finished (ok, failed) and sent in a journal file. */
const readJournal = (path: string) => {
  const ok = new Set<number>()
  const failed = new Set<number>()
  const sent = new Set<number>()
  const expand = (ranges: unknown, into: Set<number>) => {
    for (const [first, last] of (ranges ?? []) as Array<[number, number]>) {
      for (let i = first; i <= last; i++) into.add(i)
    }
  }
  for (const line of Fs.readFileSync(path, "utf8").split("\n").slice(1)) {
    if (line.trim() === "") continue
    const entry = JSON.parse(line)
    expand(entry.sent, sent)
    expand(entry.ok, ok)
    expand(entry.failed, failed)
  }
  return { ok, failed, sent }
}

/**
 * A `dv-effect` command on PATH that runs the built CLI, so that a resume command the CLI printed
 * can be run as printed, by a shell.
 */
const shellWithCli = () => {
  const bin = Path.join(dir, "bin")
  Fs.mkdirSync(bin, { recursive: true })
  const shim = Path.join(bin, "dv-effect")
  Fs.writeFileSync(shim, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(binPath)} "$@"\n`)
  Fs.chmodSync(shim, 0o755)
  return (command: string, commandEnv: Record<string, string>) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn("sh", ["-c", command], {
        env: { ...process.env, ...commandEnv, PATH: `${bin}:${process.env.PATH}` },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      child.on("close", (code) => resolve({ code, stdout, stderr }))
    })
}

describe("the default journal", () => {
  const rows = Array.from({ length: 6000 }, (_, i) => ({ lastname: `J${i}` }))
  const only = () => {
    const names = defaultJournals()
    return names.length === 1 ? Path.join(runsDir, names[0]!) : undefined
  }

  it("is kept in XDG_STATE_HOME while the run goes, and removed once it finished", async () => {
    const input = file("default.jsonl", jsonl(rows))
    const args = ["create", "contact", "-f", input, "--chunk-size", "100", "--concurrency", "4", "-o", "json"]
    const first = startImport(args, only, 3)
    await first.ready
    const journal = only()!
    expect(Path.basename(journal)).toMatch(/^create-contact-[0-9a-f]{12}\.journal$/)
    expect(Fs.statSync(journal).mode & 0o777).toBe(0o600)
    expect(await first.exited).toBe(0)
    expect(defaultJournals()).toEqual([])
    expect(contacts()).toHaveLength(6000)
  })

  it("--no-journal keeps none: Ctrl-C says a new run sends every row again", async () => {
    const input = file("nojournal.jsonl", jsonl(rows))
    const args = ["create", "contact", "-f", input, "--chunk-size", "100", "--concurrency", "4", "--no-journal"]
    const child = spawn(process.execPath, [binPath, ...args], { env: { ...process.env, ...env }, stdio: "pipe" })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
    // Stop once rows have landed (a condition, not a clock).
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (emulator.store.table("contact")!.size >= 300) return resolve()
        if (child.exitCode !== null) return reject(new Error(`the import ended first: ${stderr}`))
        setImmediate(check)
      }
      check()
    })
    expect(defaultJournals()).toEqual([])
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    expect(stderr.trim().split("\n").at(-1)).toMatch(
      /^Stopped: [\d,]+ rows finished(; [\d,]+ more were in requests without an answer and may have landed)?\. Without a journal a new run sends every row again: the [\d,]+ created(, and those of the [\d,]+ that landed)? would be created a second time \(unless the rows carry their own ids\)\.$/
    )
    expect(stderr).not.toContain("--resume")
    expect(defaultJournals()).toEqual([])
    const both = await run(["create", "contact", "-f", input, "--no-journal", "--resume"], { env })
    expect([both.code, both.stderr.trim()]).toEqual([
      1,
      "dv-effect: --no-journal keeps no journal: leave out --resume."
    ])
  })

  it("Ctrl-C prints a resume command that runs as printed, without the token, and lands every row once", async () => {
    // A path a shell must quote.
    const folder = Path.join(dir, "it's a dir")
    Fs.mkdirSync(folder, { recursive: true })
    const input = Path.join(folder, "rows $1.jsonl")
    Fs.writeFileSync(input, jsonl(rows))
    const token = emulator.info.accessToken
    const { DATAVERSE_ACCESS_TOKEN: _token, ...signedOut } = env
    const args = [
      "create",
      "contact",
      "-f",
      input,
      "--chunk-size",
      "100",
      "--concurrency",
      "4",
      `--access-token=${token}`
    ]
    const first = startImport(args, only, 5, signedOut)
    await first.ready
    first.child.kill("SIGINT")
    expect(await first.exited).toBe(130)
    expect(first.stderr()).not.toContain(token)
    const journal = only()!
    const lastLine = first.stderr().trim().split("\n").at(-1)!
    const command = lastLine.match(/ Resume with: (dv-effect .*) \(with the same sign-in\)$/)?.[1]
    expect(command).toBe(
      `dv-effect create contact -f '${
        Path.join(dir, "it'\\''s a dir")
      }/rows $1.jsonl' --chunk-size 100 --concurrency 4 --journal ${journal} --resume`
    )
    const resumed = await shellWithCli()(`${command} -o json`, { ...signedOut, DATAVERSE_ACCESS_TOKEN: token })
    expect(resumed.code, resumed.stderr).toBe(0)
    const summary = JSON.parse(resumed.stdout)
    expect(summary.resumed + summary.created).toBe(6000)
    const names = contacts().map((c) => String(c.lastname))
    expect(names).toHaveLength(6000)
    expect(new Set(names).size).toBe(6000)
    expect(defaultJournals()).toEqual([])
  })

  it.skipIf(!Fs.existsSync("/dev/full"))(
    "a rejects file that cannot be written stops the run; the resume reports every rejected row once",
    async () => {
      // Rows 25, 26 and 61 are invalid (not JSON, a last name too long for the column, not an object).
      const lines = Array.from(
        { length: 100 },
        (_, i) =>
          i === 25 ? "{not json" : i === 26 ? JSON.stringify({ lastname: "y".repeat(51) }) : i === 61 ?
            "[1]" :
            JSON.stringify({ lastname: `R${i}` })
      )
      const input = file("rejects.jsonl", lines.join("\n") + "\n")
      const bad = [25, 26, 61]
      const args = ["create", "contact", "-f", input, "--chunk-size", "10", "--concurrency", "1"]
      const first = await run([...args, "--rejects", "/dev/full"], { env })
      expect(first.code).toBe(1)
      const journal = Path.join(runsDir, defaultJournals()[0]!)
      const lastLine = first.stderr.trim().split("\n").at(-1)!
      expect(lastLine).toMatch(/^dv-effect: Cannot write --rejects \/dev\/full: ENOSPC: /)
      expect(lastLine).toContain(
        ` Resume with: dv-effect create contact -f ${input} --chunk-size 10 --concurrency 1 --rejects /dev/full --journal ${journal} --resume`
      )
      // The row whose failure could not be written is not finished in the journal, nor any after it.
      const recorded = readJournal(journal)
      for (const index of bad) {
        expect(recorded.failed.has(index) || recorded.ok.has(index), `row ${index}`).toBe(false)
      }
      expect(recorded.ok.size).toBeGreaterThan(0)

      // A resume with a flag the stopped run did not have names the run that is recorded.
      const keyed = await run([...args, "--key", "contactid", "--resume"], { env })
      // Named with the input its run read, as its header records it.
      const recordedInput = JSON.parse(Fs.readFileSync(journal, "utf8").split("\n")[0]!).input as string
      expect(recordedInput).toContain(Path.resolve(input))
      expect([keyed.code, keyed.stderr.trim()]).toEqual([
        1,
        `dv-effect: --resume: no stopped run of this job is recorded in ${runsDir} (a run that finished removed ` +
        "its journal; for a journal of your own, pass --journal <file>); a job is its org, input, --key and " +
        `--partition, and a journal of create contact under other settings is there: ${journal} (over ${recordedInput}) ` +
        "(resume with the input and flags its run had, or pass --journal <file>)."
      ])

      // The same job again without --resume is refused, naming the journal and its finished rows.
      const again = await run([...args, "--rejects", Path.join(dir, "unused.jsonl")], { env })
      expect([again.code, again.stderr.trim()]).toEqual([
        1,
        `dv-effect: An unfinished run of this job is recorded in ${journal} (${
          recorded.ok.size + recorded.failed.size
        } rows finished): add --resume to continue it, or delete that file to start over.`
      ])

      const rejects = Path.join(dir, "resumed-rejects.jsonl")
      const resumed = await run([...args, "--rejects", rejects, "--resume", "-o", "json"], { env })
      expect(resumed.code, resumed.stderr).toBe(2)
      const names = contacts().map((c) => String(c.lastname))
      expect(names).toHaveLength(97)
      expect(new Set(names).size).toBe(97)
      const rejected = Fs.readFileSync(rejects, "utf8").trim().split("\n").map((line) => JSON.parse(line).row)
      expect(rejected.sort()).toEqual(["line 26", "line 27", "line 62"])
      expect(defaultJournals()).toEqual([])
    }
  )

  it.skipIf(!Fs.existsSync("/dev/full"))(
    "an update stopped by its rejects file before any row was recorded keeps the journal its resume command names",
    async () => {
      emulator.seed("dve_product", [
        { dve_productid: "20000000-0000-4000-8000-000000000001", dve_name: "One", dve_sku: "SKU-1", dve_price: 1 },
        { dve_productid: "20000000-0000-4000-8000-000000000002", dve_name: "Two", dve_sku: "SKU-2", dve_price: 2 },
        { dve_productid: "20000000-0000-4000-8000-000000000003", dve_name: "Three", dve_sku: "SKU-3", dve_price: 3 }
      ])
      const input = file("prices.csv", "dve_sku,dve_price\nSKU-1,13\nSKU-2,-1\nSKU-3,5\n")
      const first = await run(["update", "dve_product", "--key", "dve_sku", "-f", input, "--rejects", "/dev/full"], {
        env
      })
      expect(first.code).toBe(1)
      const command = /Resume with: dv-effect (.*) \(with the same sign-in\)$|Resume with: dv-effect (.*)$/.exec(
        first.stderr.trim().split("\n").at(-1)!
      )
      const printed = (command?.[1] ?? command?.[2])!.split(" ")
      expect(printed).toContain("--resume")
      const journal = printed[printed.indexOf("--journal") + 1]!
      expect(Fs.existsSync(journal)).toBe(true)
      // The command as printed, with a rejects file that can be written.
      printed[printed.indexOf("--rejects") + 1] = Path.join(dir, "prices-rejects.jsonl")
      const resumed = await run(printed, { env })
      expect(resumed.code, resumed.stderr).toBe(2)
      const prices = emulator.store.table("dve_product")!.scan().map((r) => [r.values.dve_sku, r.values.dve_price])
      expect(prices.sort()).toEqual([["SKU-1", 13], ["SKU-2", 2], ["SKU-3", 5]])
      expect(defaultJournals()).toEqual([])
    }
  )
})

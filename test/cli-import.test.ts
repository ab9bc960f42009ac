/**
 * The import commands (create, update, upsert, delete) as a user runs them: CLI processes against
 * an emulator in this process, whose store the tests read directly.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { binPath, run, startEmulatorFixture } from "./support/cli.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let close: () => Promise<void>

beforeAll(async () => {
  ;({ emulator, dir, env, close } = await startEmulatorFixture({
    identity: false,
    // Some latency, so that a run can be stopped midway.
    profile: { ...Model.fast, latency: { baseMs: 15, perRecordMs: 0.2, perOperationMs: 0 } }
  }, "dv-import-"))
})
afterAll(() => close())
beforeEach(() => emulator.reset())

const file = (name: string, text: string) => {
  const path = Path.join(dir, name)
  Fs.writeFileSync(path, text)
  return path
}
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
    const journal = file("used.journal", "{\"journal\":\"dv-effect\"}\n")
    const reused = await run(["create", "contact", "-f", csv, "--journal", journal], { env })
    expect(reused.code).toBe(1)
    expect(reused.stderr).toContain("--resume")
    expect(contacts()).toHaveLength(0)
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

/** Starts an import and resolves once its journal records `finished` chunks. */
const startImport = (args: ReadonlyArray<string>, journal: string, finished: number) => {
  const child = spawn(process.execPath, [binPath, ...args], { env: { ...process.env, ...env }, stdio: "pipe" })
  let stderr = ""
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code, signal) => resolve(code ?? (signal === null ? null : -1)))
  )
  const ready = new Promise<void>((resolve, reject) => {
    const check = () => {
      const text = Fs.existsSync(journal) ? Fs.readFileSync(journal, "utf8") : ""
      if ((text.match(/"ok"/g) ?? []).length >= finished) return resolve()
      if (child.exitCode !== null) return reject(new Error(`the import ended first: ${stderr}`))
      setImmediate(check)
    }
    check()
  })
  return { child, ready, exited, stderr: () => stderr }
}

describe("dv-effect create --journal, stopped and resumed", () => {
  const rows = Array.from({ length: 6000 }, (_, i) => ({ lastname: `K${i}` }))

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
  })

  it("Ctrl-C stops cleanly, says how to resume, and the resumed run completes the load", async () => {
    const input = file("int.jsonl", jsonl(rows))
    const journal = Path.join(dir, "int.journal")
    const args = ["create", "contact", "-f", input, "--chunk-size", "100", "--concurrency", "4", "--journal", journal]
    const first = startImport(args, journal, 5)
    await first.ready
    first.child.kill("SIGINT")
    expect(await first.exited).toBe(130)
    expect(first.stderr()).toContain(`--journal ${journal} --resume`)
    const resumed = await run([...args, "--resume", "-o", "json"], { env })
    expect(resumed.code).toBe(0)
    const names = contacts().map((c) => String(c.lastname))
    expect(names).toHaveLength(6000)
    expect(new Set(names).size).toBe(6000)
  })
})

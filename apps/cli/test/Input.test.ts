import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import { spawnSync } from "node:child_process"
import * as NodeFs from "node:fs"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import {
  extraFieldsKey,
  formatOfFirstChar,
  formatOfPath,
  inPartition,
  type InputRecord,
  type InputSource,
  open,
  parseJsonLine,
  parsePartition,
  partitionRecords,
  partitionSize,
  track,
  unreadTextKey,
  utf8Of
} from "../src/Input.js"

/** A temporary directory removed when the test's scope closes. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "dv-effect-input-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

const writeFile = (dir: string, name: string, text: string) =>
  Effect.promise(async () => {
    const file = Path.join(dir, name)
    await Fs.writeFile(file, text)
    return file
  })

const readAll = (source: InputSource) =>
  Effect.map(Stream.runCollect(source.records), (chunk) => Chunk.toReadonlyArray(chunk))

/** Opens `text` written to a file `name` and reads every record. */
const readText = (name: string, text: string, format?: "csv" | "jsonl" | "json") =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const file = yield* writeFile(dir, name, text)
    const source = yield* open({ file, format })
    return { source, records: yield* readAll(source) }
  })

const messageOf = (record: InputRecord) => (record.row as { message?: string }).message

describe("parseJsonLine", () => {
  it("accepts objects and explains everything else", () => {
    expect(parseJsonLine("{\"a\":1}")).toEqual({ a: 1 })
    const cases: Array<[string, RegExp]> = [
      ["{\"a\":", /^not valid JSON \(/],
      ["[1]", /^expected a JSON object, got an array$/],
      ["null", /^expected a JSON object, got null$/],
      ["\"text\"", /^expected a JSON object, got string$/]
    ]
    for (const [line, message] of cases) {
      const result = parseJsonLine(line)
      expect(result).toHaveProperty("_tag", "InvalidRow")
      expect((result as { message: string }).message).toMatch(message)
    }
  })
})

describe("JSON lines", () => {
  it.live("skips blank lines and a BOM, handles CRLF, and maps row positions back to line numbers", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = yield* writeFile(dir, "rows.jsonl", "\uFEFF{\"n\":1}\r\n\r\n\r\n{\"n\":2}\r\n{bad\r\n\r\n{\"n\":3}")
      const source = yield* open({ file })
      const rows = (yield* readAll(source)).map((record) => record.row)
      expect(rows).toHaveLength(4)
      expect(rows[0]).toEqual({ n: 1 })
      expect(rows[1]).toEqual({ n: 2 })
      expect(rows[2]).toHaveProperty("_tag", "InvalidRow")
      expect(rows[3]).toEqual({ n: 3 })
      expect([0, 1, 2, 3].map(source.describe)).toEqual(["line 1", "line 4", "line 5", "line 7"])
    }).pipe(Effect.scoped))

  it.scoped("keeps every raw record an object: a line that is not an object keeps its text under a reserved key", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("rows.jsonl", "{\"a\":\"\",\"b\":null}\n42\n[1,2]\n{bad\n")
      expect(records.map((r) => r.raw)).toEqual([
        { a: "", b: null },
        { [unreadTextKey]: "42" },
        { [unreadTextKey]: "[1,2]" },
        { [unreadTextKey]: "{bad" }
      ])
    }))

  it.scoped("refuses in one line an input whose first line says it is no JSON lines", () =>
    Effect.gen(function*() {
      const cases: Array<[string, string]> = [
        ["[\n  {\"n\": 1},\n  {\"n\": 2}\n]\n", "the input is a JSON array, not JSON lines: pass --format json"],
        [
          "\n{\n  \"n\": 1\n}\n",
          "an object spread over several lines: JSON lines hold one object a line (jq -c, ConvertTo-Json -Compress)"
        ],
        [
          "lastname,firstname\nDoe,Jo\n",
          "the input is not JSON lines (the first line is no JSON object): pass --format csv if it is CSV"
        ]
      ]
      for (const [text, problem] of cases) {
        const dir = yield* tempDir
        const file = yield* writeFile(dir, "rows.jsonl", text)
        const error = yield* Effect.flip(Effect.flatMap(open({ file }), readAll))
        expect(error.message).toBe(`${file} line ${text.startsWith("\n") ? 2 : 1}: ${problem}.`)
      }
      // A broken object on the first line is that row's problem, not the input's.
      const { records } = yield* readText("broken-first.jsonl", "{\"a\":\n{\"a\":1}\n")
      expect(records.map((r) => messageOf(r) ?? r.row)).toEqual([expect.stringMatching(/^not valid JSON/), { a: 1 }])
    }))

  it.live("fails with a clear message for a file that is not there", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(open({ file: "/nonexistent/rows.jsonl" }))
      expect(error.message).toBe("Cannot read --file /nonexistent/rows.jsonl: no such file")
    }))
})

describe("formats", () => {
  it("comes from the extension, else from the first character", () => {
    expect(["a.csv", "A.CSV", "a.tsv", "a.jsonl", "a.ndjson", "a.json", "a.txt", "-"].map(formatOfPath)).toEqual([
      "csv",
      "csv",
      "csv",
      "jsonl",
      "jsonl",
      "json",
      undefined,
      undefined
    ])
    expect(["[", "{", "n", "\"", undefined].map(formatOfFirstChar)).toEqual(["json", "jsonl", "csv", "csv", "jsonl"])
  })

  it.scoped("sniffs a file without a known extension, reading its first bytes again", () =>
    Effect.gen(function*() {
      const csv = yield* readText("rows.txt", "\uFEFF\n  name,n\nA,1\n")
      expect(csv.source.format).toBe("csv")
      expect(csv.records.map((r) => r.row)).toEqual([{ name: "A", n: "1" }])
      const array = yield* readText("rows.data", "  \n [{\"n\":1}]")
      expect(array.source.format).toBe("json")
      expect(array.records.map((r) => r.row)).toEqual([{ n: 1 }])
      const lines = yield* readText("rows", "\n{\"n\":1}\n{\"n\":2}\n")
      expect(lines.source.format).toBe("jsonl")
      expect(lines.records.map((r) => r.location)).toEqual(["line 2", "line 3"])
      const empty = yield* readText("empty", "")
      expect(empty.records).toEqual([])
    }))

  it("sniffs stdin by its first non-blank character (run on the built module)", () => {
    const module = new URL("../dist/Input.js", import.meta.url).href
    const script = `
      import { open } from ${JSON.stringify(module)}
      import * as Effect from "effect/Effect"
      import * as Stream from "effect/Stream"
      const program = Effect.flatMap(open({ file: "-" }), (source) =>
        Effect.map(Stream.runCollect(source.records), (records) =>
          ({ format: source.format, rows: [...records].map((r) => [r.location, r.row]) })))
      console.log(JSON.stringify(await Effect.runPromise(program)))
    `
    const read = (input: string) => {
      const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        input,
        cwd: new URL("..", import.meta.url).pathname,
        encoding: "utf8"
      })
      expect(child.stderr).toBe("")
      return JSON.parse(child.stdout)
    }
    expect(read("\uFEFF \n[{\"n\":1},\n{\"n\":2}]")).toEqual({
      format: "json",
      rows: [["element 1", { n: 1 }], ["element 2", { n: 2 }]]
    })
    expect(read("\n{\"n\":1}\n")).toEqual({ format: "jsonl", rows: [["line 2", { n: 1 }]] })
    expect(read("n,m\r\n1,\"x\"\r\n")).toEqual({ format: "csv", rows: [["row 1 (line 2)", { n: "1", m: "x" }]] })
  })

  it.scoped("honours an explicit format over the extension", () =>
    Effect.gen(function*() {
      const { records, source } = yield* readText("rows.json", "a,b\n1,2\n", "csv")
      expect(source.format).toBe("csv")
      expect(records.map((r) => r.row)).toEqual([{ a: "1", b: "2" }])
    }))

  it.live("names --file when the file cannot be read", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(open({ file: "/nonexistent/rows.csv" }))
      expect(error.message).toBe("Cannot read --file /nonexistent/rows.csv: no such file")
    }))
})

describe("input size", () => {
  /** Reads `text` written to `name`, noting the bytes read when the first record arrives. */
  const readSized = (name: string, text: string) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = yield* writeFile(dir, name, text)
      const source = yield* open({ file })
      const size = source.size!
      const before = size.bytesRead()
      let atFirst: number | undefined
      let rows = 0
      yield* Stream.runForEach(source.records, () =>
        Effect.sync(() => {
          atFirst ??= size.bytesRead()
          rows++
        }))
      return { totalBytes: size.totalBytes, before, atFirst: atFirst!, after: size.bytesRead(), rows }
    })

  it.scoped("counts a file's bytes as each format reads them", () =>
    Effect.gen(function*() {
      const count = 20_000
      const inputs: Array<[string, string]> = [
        ["rows.csv", "name,n\n" + Array.from({ length: count }, (_, i) => `contact ${i},${i}\n`).join("")],
        ["rows.jsonl", Array.from({ length: count }, (_, i) => `{"name":"contact ${i}","n":${i}}\n`).join("")],
        ["rows.json", `[${Array.from({ length: count }, (_, i) => `{"name":"contact ${i}","n":${i}}`).join(",\n")}]`],
        // Sniffed: the first bytes are read once, counted once.
        ["rows.data", Array.from({ length: count }, (_, i) => `{"name":"contact ${i}","n":${i}}\n`).join("")]
      ]
      for (const [name, text] of inputs) {
        const read = yield* readSized(name, text)
        const length = Buffer.byteLength(text)
        expect(read.totalBytes, name).toBe(length)
        expect(read.rows, name).toBe(count)
        if (name === "rows.data") expect(read.before, name).toBeGreaterThan(0)
        else expect(read.before, name).toBe(0)
        // Read as the rows go, not all at once: a first chunk when the first row arrives.
        expect(read.atFirst, name).toBeGreaterThan(0)
        expect(read.atFirst, name).toBeLessThan(length / 2)
        expect(read.after, name).toBe(length)
      }
    }))

  it("knows stdin's size when it is a regular file, not when it is a pipe (run on the built module)", () => {
    const module = new URL("../dist/Input.js", import.meta.url).href
    const script = `
      import { open } from ${JSON.stringify(module)}
      import * as Effect from "effect/Effect"
      import * as Stream from "effect/Stream"
      const program = Effect.flatMap(open({ file: "-" }), (source) =>
        Effect.map(Stream.runCollect(source.records), (records) =>
          ({ rows: records.length, totalBytes: source.size?.totalBytes, read: source.size?.bytesRead() })))
      console.log(JSON.stringify(await Effect.runPromise(program)))
    `
    const text = "{\"n\":1}\n{\"n\":2}\n"
    const run = (stdin: number | "pipe") =>
      spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        ...(stdin === "pipe" ? { input: text } : { stdio: [stdin, "pipe", "pipe"] }),
        cwd: new URL("..", import.meta.url).pathname,
        encoding: "utf8"
      })
    const piped = run("pipe")
    expect(piped.stderr).toBe("")
    expect(JSON.parse(piped.stdout)).toEqual({ rows: 2 })
    const dir = NodeFs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-input-"))
    try {
      const file = Path.join(dir, "rows.jsonl")
      NodeFs.writeFileSync(file, text)
      const fd = NodeFs.openSync(file, "r")
      try {
        const redirected = run(fd)
        expect(redirected.stderr).toBe("")
        expect(JSON.parse(redirected.stdout)).toEqual({ rows: 2, totalBytes: text.length, read: text.length })
      } finally {
        NodeFs.closeSync(fd)
      }
    } finally {
      NodeFs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("CSV", () => {
  it.scoped("reads quoted fields with delimiters, quotes and line breaks, a BOM, CRLF and mixed line endings", () =>
    Effect.gen(function*() {
      const text = "\uFEFFname,note,n\r\n" +
        "\"Doe, Jane\",\"said \"\"hi\"\"\",1\r\n" +
        "\r\n" +
        "Smith,\"two\r\nlines\nand three\",2\n" +
        "Lee,5\" floppy,3\r" +
        "Kim,last,4"
      const { records, source } = yield* readText("people.csv", text)
      expect(records.map((r) => r.row)).toEqual([
        { name: "Doe, Jane", note: "said \"hi\"", n: "1" },
        { name: "Smith", note: "two\r\nlines\nand three", n: "2" },
        { name: "Lee", note: "5\" floppy", n: "3" },
        { name: "Kim", note: "last", n: "4" }
      ])
      expect(records.map((r) => r.location)).toEqual([
        "row 1 (line 2)",
        "row 2 (line 4)",
        "row 3 (line 7)",
        "row 4 (line 8)"
      ])
      expect(records.map((r) => r.index)).toEqual([0, 1, 2, 3])
      expect([0, 1, 2, 3].map(source.describe)).toEqual(records.map((r) => r.location))
    }))

  it.scoped("leaves empty fields out, reads an unquoted null as null, and keeps the raw record as the row", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("rows.csv", "a,b,c\nx,,null\n\"\",\"null\",y\n")
      expect(records[0]!.row).toEqual({ a: "x", c: null })
      // The raw record imported again as JSON gives the same row: empty fields are left out there too.
      expect(records[0]!.raw).toEqual({ a: "x", c: null })
      expect(records[1]!.row).toEqual({ b: "null", c: "y" })
      expect(records[1]!.raw).toEqual({ b: "null", c: "y" })
      // NULL as SQL Server writes it, in any case; quoted, it is the text.
      const sql = yield* readText("sql.csv", "a,b,c\nNULL,Null,\"NULL\"\n")
      expect(sql.records[0]!.row).toEqual({ a: null, b: null, c: "NULL" })
    }))

  it.scoped("skips blank lines and lines of empty fields", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("rows.csv", "\n\na,b\n\n,\n  \n1,2\n\n")
      expect(records.map((r) => [r.row, r.location])).toEqual([[{ a: "1", b: "2" }, "row 1 (line 7)"]])
    }))

  it.scoped("reports a row with the wrong number of fields as a bad row and goes on", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("rows.csv", "a,b\n1,2,3\n4\n5,6\n")
      expect(records.map((r) => r.location)).toEqual(["row 1 (line 2)", "row 2 (line 3)", "row 3 (line 4)"])
      expect(messageOf(records[0]!)).toBe("has 3 fields, but the header has 2")
      expect(records[0]!.row).toHaveProperty("_tag", "InvalidRow")
      // Raw records stay keyed by column: extra fields under one reserved key, missing ones left out.
      expect(records[0]!.raw).toEqual({ a: "1", b: "2", [extraFieldsKey]: ["3"] })
      expect(messageOf(records[1]!)).toBe("has 1 field, but the header has 2")
      expect(records[1]!.raw).toEqual({ a: "4" })
      expect(records[2]!.row).toEqual({ a: "5", b: "6" })
    }))

  it.scoped("reports a quote never closed as a last bad row naming its line, after every earlier row", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("rows.csv", "a,b\n1,2\n3,\"open\n4,5\n6,7\n")
      expect(records.map((r) => r.row).slice(0, 1)).toEqual([{ a: "1", b: "2" }])
      expect(records).toHaveLength(2)
      expect(records[1]!.location).toBe("row 2 (line 3)")
      expect(messageOf(records[1]!)).toBe(
        "a quote opened in this row is never closed, so the rest of the input (to line 5) is part of it"
      )
      expect(records[1]!.raw).toEqual({ [unreadTextKey]: "3,\"open\n4,5\n6,7\n" })
    }))

  it.scoped("fails with one line for a header with an empty or repeated name", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const empty = yield* writeFile(dir, "empty.csv", "\na,,c\n1,2,3\n")
      const repeated = yield* writeFile(dir, "repeated.csv", "a,b,a\n1,2,3\n")
      const first = yield* Effect.flip(Effect.flatMap(open({ file: empty }), readAll))
      expect(first.message).toBe(`${empty} line 2: the header's column 2 has no name.`)
      const second = yield* Effect.flip(Effect.flatMap(open({ file: repeated }), readAll))
      expect(second.message).toBe(`${repeated} line 1: the header names 'a' twice (columns 1 and 3).`)
    }))

  it.scoped("takes nameless columns at the end of the header (a trailing delimiter) as columns that must stay empty", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("trailing.csv", "a,b,,\n1,2,,\n3,4\n5,6,x,\n7\n")
      expect(records.map((r) => [r.line, messageOf(r) ?? r.row])).toEqual([
        [2, { a: "1", b: "2" }],
        // The nameless columns may be left out, not the named ones.
        [3, { a: "3", b: "4" }],
        [4, "field 3 has a value, but the header's column 3 has no name"],
        [5, "has 1 field, but the header has 2"]
      ])
      // The named columns are the header's columns.
      const headerAlone = yield* readText("alone.csv", "a,b,\n")
      expect([headerAlone.records, headerAlone.source.header()]).toEqual([[], ["a", "b"]])
    }))

  it.scoped("takes tab for a tab, and refuses a letter (an unquoted \\t reaches the program as t)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = yield* writeFile(dir, "rows.txt", "a\tb\n1\t2\n")
      for (const delimiter of ["tab", "\\t", "\t"]) {
        expect((yield* readAll(yield* open({ file, format: "csv", delimiter }))).map((r) => r.row)).toEqual([{
          a: "1",
          b: "2"
        }])
      }
      const error = yield* Effect.flip(open({ file, delimiter: "t" }))
      expect(error.message).toBe(
        "The CSV delimiter cannot be a letter or a digit, got 't' (for tabs: --delimiter tab, or '\\t' quoted)."
      )
    }))

  it.scoped("reads another delimiter", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = yield* writeFile(dir, "rows.csv", "a;b\n\"1;2\";3\n")
      const source = yield* open({ file, delimiter: ";" })
      expect((yield* readAll(source)).map((r) => r.row)).toEqual([{ a: "1;2", b: "3" }])
    }))

  it.scoped("streams a large file in order, with its rows numbered", () =>
    Effect.gen(function*() {
      const rows = 50_000
      let text = "id,name,note\n"
      for (let i = 0; i < rows; i++) text += i % 1000 === 7 ? `${i},"N ${i}","multi\nline"\n` : `${i},N ${i},plain\n`
      const { records } = yield* readText("big.csv", text)
      expect(records).toHaveLength(rows)
      expect(records.every((r, i) => (r.row as { id: string }).id === String(i) && r.index === i)).toBe(true)
      // Each multi-line record shifts the lines after it by one.
      expect(records[1007]!.location).toBe("row 1008 (line 1010)")
      expect(records[1008]!.location).toBe("row 1009 (line 1012)")
      expect(records[rows - 1]!.line).toBe(rows + 1 + 50)
    }))
})

describe("JSON array", () => {
  it.scoped("streams the elements, each parsed alone, with strings, escapes and nesting followed", () =>
    Effect.gen(function*() {
      const text = "\uFEFF [\n {\"a\": \"x,]}\\\"[{\"}, {\"b\": [1, {\"c\": [2]}]},\n 42, {bad}, , {\"d\": null}\n]\n"
      const { records } = yield* readText("rows.json", text)
      expect(records.map((r) => r.location)).toEqual([
        "element 1",
        "element 2",
        "element 3",
        "element 4",
        "element 5",
        "element 6"
      ])
      expect(records[0]!.row).toEqual({ a: "x,]}\"[{" })
      expect(records[1]!.row).toEqual({ b: [1, { c: [2] }] })
      expect(messageOf(records[2]!)).toBe("expected a JSON object, got number")
      expect(messageOf(records[3]!)).toMatch(/^not valid JSON \(/)
      expect(records[3]!.raw).toEqual({ [unreadTextKey]: "{bad}" })
      expect(messageOf(records[4]!)).toBe("empty element")
      expect(records[5]!.row).toEqual({ d: null })
    }))

  it.scoped("keeps element boundaries across read chunks", () =>
    Effect.gen(function*() {
      const elements = Array.from({ length: 20_000 }, (_, i) => ({ i, s: `"]},[{\\ ${"é".repeat(i % 7)}` }))
      const { records } = yield* readText("big.json", JSON.stringify(elements, null, 1))
      expect(records.map((r) => r.row)).toEqual(elements)
    }))

  it.scoped("reports an input cut off inside an element as a last bad row", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("cut.json", "[{\"a\":1},{\"b\":")
      expect(records.map((r) => r.row).slice(0, 1)).toEqual([{ a: 1 }])
      expect(records[1]!.location).toBe("element 2")
      expect(messageOf(records[1]!)).toBe("the input ends inside this element (is the file cut off?)")
    }))

  it.scoped("fails with one line for what is not a JSON array", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cases: Array<[string, string]> = [
        ["{\"a\":1}", "expected a JSON array of records, but it starts with '{'."],
        ["[{\"a\":1}] x", "there is text after the closing ']' of the array ('x')."],
        ["[{\"a\":1},", "the JSON array is not closed: the input ends after element 1."]
      ]
      for (const [text, message] of cases) {
        const file = yield* writeFile(dir, "rows.json", text)
        const error = yield* Effect.flip(Effect.flatMap(open({ file }), readAll))
        expect(error.message).toBe(`${file}: ${message}`)
      }
    }))
})

describe("encodings", () => {
  const writeBytes = (dir: string, name: string, bytes: Uint8Array) =>
    Effect.promise(async () => {
      const file = Path.join(dir, name)
      await Fs.writeFile(file, bytes)
      return file
    })
  /** `text` as UTF-16 with its byte order mark, little- or big-endian. */
  const utf16 = (text: string, endian: "le" | "be") => {
    const le = Buffer.from(`\uFEFF${text}`, "utf16le")
    if (endian === "be") { for (let i = 0; i < le.length; i += 2) [le[i], le[i + 1]] = [le[i + 1]!, le[i]!] }
    return le
  }

  it.scoped("reads UTF-16 with a byte order mark, in every format, whether the format is named or sniffed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const cases: Array<[string, Uint8Array]> = [
        ["le.jsonl", utf16("{\"n\":\"Zoë\"}\r\n{\"n\":\"Jo\"}\r\n", "le")],
        ["be.csv", utf16("n\r\nZoë\r\nJo\r\n", "be")],
        ["le.json", utf16("[{\"n\":\"Zoë\"},{\"n\":\"Jo\"}]", "le")],
        ["sniffed", utf16("{\"n\":\"Zoë\"}\n{\"n\":\"Jo\"}\n", "le")]
      ]
      for (const [name, bytes] of cases) {
        const file = yield* writeBytes(dir, name, bytes)
        const rows = (yield* readAll(yield* open({ file }))).map((record) => record.row)
        expect([name, rows]).toEqual([name, [{ n: "Zoë" }, { n: "Jo" }]])
      }
    }))

  it.scoped("refuses a row that is not UTF-8 (Windows-1252, as Excel's plain CSV) rather than store its letters as �", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const notUtf8 =
        "is not UTF-8 text (a byte here is no UTF-8 character); save the file as UTF-8 (Excel: \"CSV UTF-8\") or convert it (iconv -f WINDOWS-1252 -t UTF-8, for a file from Excel on Windows)"
      // "José" in Windows-1252: 0xE9 is no UTF-8 sequence. Read as UTF-8 it would become "Jos\uFFFD".
      const latin = (text: string) => Buffer.from(text, "latin1")
      const csv = yield* writeBytes(
        dir,
        "latin.csv",
        latin("firstname,lastname\r\nAnn,One\r\nJos\u00e9,Two\r\nBo,Three\r\n")
      )
      const rows = (yield* readAll(yield* open({ file: csv }))).map((r) => [r.location, messageOf(r) ?? r.row])
      expect(rows).toEqual([
        ["row 1 (line 2)", { firstname: "Ann", lastname: "One" }],
        ["row 2 (line 3)", notUtf8],
        ["row 3 (line 4)", { firstname: "Bo", lastname: "Three" }]
      ])
      const lines = yield* writeBytes(dir, "latin.jsonl", latin("{\"n\":\"Jos\u00e9\"}\n{\"n\":\"Bo\"}\n"))
      expect((yield* readAll(yield* open({ file: lines }))).map((r) => messageOf(r) ?? r.row)).toEqual([notUtf8, {
        n: "Bo"
      }])
      const array = yield* writeBytes(dir, "latin.json", latin("[{\"n\":\"Bo\"},{\"n\":\"Jos\u00e9\"}]"))
      expect((yield* readAll(yield* open({ file: array }))).map((r) => messageOf(r) ?? r.row)).toEqual([
        { n: "Bo" },
        notUtf8
      ])
      // A header that is not UTF-8 stops the read; a U+FFFD in UTF-8 text is a character like any other.
      const header = yield* writeBytes(dir, "header.csv", latin("pr\u00e9nom\nA\n"))
      const error = yield* Effect.flip(Effect.flatMap(open({ file: header }), readAll))
      expect(error.message).toBe(`${header} line 1: the header ${notUtf8}.`)
      const literal = yield* writeFile(dir, "literal.jsonl", "{\"n\":\"\uFFFD\"}\n")
      expect((yield* readAll(yield* open({ file: literal }))).map((r) => r.row)).toEqual([{ n: "\uFFFD" }])
    }))

  it.live("checks and re-encodes at any chunk boundary", () =>
    Effect.promise(async () => {
      /** The text `chunks` come out as, and whether a byte did not fit the encoding. */
      const through = async (...chunks: Array<ReadonlyArray<number>>) => {
        const encoding = { invalid: false }
        const source = (async function*() {
          for (const chunk of chunks) yield Uint8Array.from(chunk)
        })()
        const out = utf8Of(source, encoding)
        const parts: Array<Uint8Array> = []
        for (let next = await out.next(); next.done !== true; next = await out.next()) parts.push(next.value)
        return [Buffer.concat(parts).toString("utf8"), encoding.invalid] as const
      }
      const bytes = (text: string, encoding: BufferEncoding = "utf8") => [...Buffer.from(text, encoding)]
      // UTF-8: a character split over chunks is fine; a byte that is no UTF-8, or a file cut
      // inside a character (seen only at the end), is not.
      const e = bytes("é")
      expect(await through([0x61, e[0]!], [e[1]!, 0x62])).toEqual(["aéb", false])
      expect(await through([0x61, 0xe9, 0x62])).toEqual(["a\uFFFDb", true])
      expect(await through([0x61], [e[0]!])).toEqual(["a\uFFFD", true])
      // UTF-16 told by a byte order mark that arrives one byte at a time; a surrogate pair split
      // over chunks; an odd last byte.
      const le = [0xff, 0xfe, ...bytes("a😀b", "utf16le")]
      expect(await through([le[0]!], le.slice(1, 5), le.slice(5))).toEqual(["a😀b", false])
      expect(await through(le, [0x63])).toEqual(["a😀b\uFFFD", true])
      const be = [0xfe, 0xff, 0x00, 0x61, 0xd8, 0x3d]
      expect(await through(be, [0xde, 0x00])).toEqual(["a😀", false])
      expect(await through([])).toEqual(["", false])
    }))

  it.scoped("reads a JSON line of several megabytes, arriving in many chunks", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const long = "x".repeat(3_000_000)
      const file = yield* writeFile(dir, "long.jsonl", `{"n":1}\n{"text":"${long}"}\n{"n":3}\n`)
      const records = yield* readAll(yield* open({ file }))
      expect(records.map((record) => [record.line, record.row])).toEqual([[1, { n: 1 }], [2, { text: long }], [3, {
        n: 3
      }]])
    }))
})

describe("partitions", () => {
  it("parses i/n and names the flag when it cannot", () => {
    expect(parsePartition("2/4")).toEqual(Either.right({ index: 2, count: 4 }))
    expect(parsePartition(" 1 / 1 ")).toEqual(Either.right({ index: 1, count: 1 }))
    for (const bad of ["0/4", "5/4", "1", "a/b", "1/0", "-1/2", "1.5/2"]) {
      const result = parsePartition(bad)
      expect(Either.isLeft(result) && result.left.message).toBe(
        `--partition must be i/n with 1 <= i <= n (e.g. 2/4 for the second of four), got '${bad}'.`
      )
    }
  })

  it.scoped("splits an input into disjoint slices that make the whole", () =>
    Effect.gen(function*() {
      expect([0, 1, 2, 3, 4, 5, 6].filter((p) => inPartition(p, { index: 2, count: 3 }))).toEqual([1, 4])
      const text = "n\n" + Array.from({ length: 101 }, (_, i) => `${i}\n`).join("") + "1,2\n"
      const dir = yield* tempDir
      const file = yield* writeFile(dir, "rows.csv", text)
      const seen: Array<number> = []
      for (const index of [1, 2, 3]) {
        const source = yield* open({ file })
        const records = Chunk.toReadonlyArray(
          yield* Stream.runCollect(partitionRecords(source.records, { index, count: 3 }))
        )
        for (const record of records) seen.push(record.index)
      }
      expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 102 }, (_, i) => i))
    }))

  it.scoped("counts the rows read, and a partition's share of them for its ETA", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = yield* writeFile(dir, "rows.csv", "n\n" + Array.from({ length: 90 }, (_, i) => `${i}\n`).join(""))
      const source = yield* open({ file })
      expect(source.size?.rowsRead()).toBe(0)
      yield* Stream.runDrain(source.records)
      expect(source.size?.rowsRead()).toBe(90)
      expect(partitionSize(source.size, { index: 2, count: 3 })?.rowsRead()).toBe(30)
      expect(partitionSize(source.size, undefined)).toBe(source.size)
    }))
})

describe("track", () => {
  it.scoped("numbers rows as the engine does and keeps their records until settled", () =>
    Effect.gen(function*() {
      const { records } = yield* readText("rows.csv", "n\n0\n1\n2\n3\n")
      const tracked = track(partitionRecords(Stream.fromIterable(records), { index: 2, count: 2 }))
      const rows = Chunk.toReadonlyArray(yield* Stream.runCollect(tracked.rows))
      expect(rows).toEqual([{ n: "1" }, { n: "3" }])
      expect(tracked.pending()).toBe(2)
      expect(tracked.get(1)?.location).toBe("row 4 (line 5)")
      expect(tracked.settle(0)?.location).toBe("row 2 (line 3)")
      expect(tracked.settle(0)).toBeUndefined()
      expect(tracked.pending()).toBe(1)
    }))
})

/**
 * Reliability under bad input: a generated corpus of broken CSV, JSON lines and JSON arrays fed to
 * `dv-effect create contact`. Every case ends in a clear error (exit 1, one stderr line naming
 * where) or in rejects entries naming each bad row (exit 2); never a crash, a stack trace or any
 * other exit code; and every good row lands.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { run, startEmulatorFixture } from "./support/cli.js"

let emulator: Emulator.RunningEmulator
let dir: string
let env: Record<string, string>
let close: () => Promise<void>

beforeAll(async () => {
  ;({ emulator, dir, env, close } = await startEmulatorFixture({ identity: false }, "dv-input-"))
})
afterAll(() => close())

/** A deterministic stream of bytes, so a failure can be replayed. */
const garbage = (seed: number, length: number, avoid: ReadonlyArray<number> = []) => {
  let state = seed
  const out = Buffer.alloc(length)
  for (let i = 0; i < length; i++) {
    do {
      state = (state * 1103515245 + 12345) & 0x7fffffff
      out[i] = (state >>> 8) & 0xff
    } while (avoid.includes(out[i]!))
  }
  return out
}
/** Bytes that would end or split a CSV row or a JSON line. */
const separators = [0x0a, 0x0d, 0x2c, 0x22]

const tenMegabytes = 10 * 1024 * 1024

interface Case {
  readonly name: string
  readonly file: string
  readonly content: string | Buffer
  /** Lastnames that must be stored, exactly. */
  readonly landed: ReadonlyArray<string>
  /** Exit 2: the rows the rejects file names (`row` field), each with a pattern its message matches. */
  readonly rejected?: ReadonlyArray<readonly [string, RegExp]>
  /** Exit 1: the one stderr line. */
  readonly fatal?: RegExp
}

const corpus: ReadonlyArray<Case> = [
  // ----------------------------------------------------------------------------------------- CSV
  {
    name: "CSV: a quote that is never closed swallows the rest of the input into one bad row",
    file: "unterminated.csv",
    content: "lastname,firstname\nA1,x\n\"A2,y\nA3,z\nA4,w\n",
    landed: ["A1"],
    rejected: [["row 2 (line 3)", /quote .*never closed/]]
  },
  {
    name: "CSV: a quote inside an unquoted field is kept as written",
    file: "quotes.csv",
    content: "lastname,firstname\nB1 5\" floppy,b\nB2,c\n",
    landed: ["B1 5\" floppy", "B2"]
  },
  {
    name: "CSV: ragged rows (too few and too many fields)",
    file: "ragged.csv",
    content: "lastname,firstname\nC1,x\nC2\nC3,y,extra\nC4,z\n,\n",
    landed: ["C1", "C4"],
    rejected: [
      ["row 2 (line 3)", /has 1 field, but the header has 2/],
      ["row 3 (line 4)", /has 3 fields, but the header has 2/]
    ]
  },
  {
    name: "CSV: wrong types, each named by its column",
    file: "types.csv",
    content: "lastname,creditlimit,donotemail,birthdate,gendercode\n" +
      "D1,12.5,yes,2000-01-02,1\nD2,abc,,,\nD3,,maybe,,\nD4,,,2001-13-45,\nD5,,,,7\nD6,-5,,,\n",
    landed: ["D1"],
    rejected: [
      ["row 2 (line 3)", /creditlimit/],
      ["row 3 (line 4)", /donotemail/],
      ["row 4 (line 5)", /birthdate/],
      ["row 5 (line 6)", /gendercode/],
      ["row 6 (line 7)", /creditlimit/]
    ]
  },
  {
    name: "CSV: over-long values and invalid GUIDs",
    file: "long.csv",
    content: `lastname,emailaddress1,contactid\nE1,e@x.org,\n${"e".repeat(51)},,\nE3,${"m".repeat(101)},\n` +
      "E4,,not-a-guid\nE5,,1234\nE6,,00000000-0000-4000-8000-00000000000g\nE7,,00000000-0000-4000-8000-0000000000e7\n",
    landed: ["E1", "E7"],
    rejected: [
      ["row 2 (line 3)", /lastname/],
      ["row 3 (line 4)", /emailaddress1/],
      ["row 4 (line 5)", /contactid/],
      ["row 5 (line 6)", /contactid/],
      ["row 6 (line 7)", /contactid/]
    ]
  },
  {
    name: "CSV: an unknown column in the header is one fatal line naming it",
    file: "unknown-column.csv",
    content: "lastname,favouritecolour\nF1,blue\n",
    landed: [],
    fatal: /favouritecolour/
  },
  {
    name: "CSV: a column named twice in the header",
    file: "twice.csv",
    content: "lastname,firstname,lastname\nF2,a,b\n",
    landed: [],
    fatal: /line 1: the header names 'lastname' twice/
  },
  {
    name: "CSV: mixed line endings (CRLF, LF, CR), a BOM and empty lines; line numbers stay right",
    file: "endings.csv",
    content: `\uFEFFlastname,firstname\r\nG1,a\nG2,b\rG3,c\r\n\r\n\nG4,d\n\n${"g".repeat(51)},e\r\nG6,f`,
    landed: ["G1", "G2", "G3", "G4", "G6"],
    rejected: [["row 5 (line 9)", /lastname/]]
  },
  {
    name: "CSV: a 10 MB field between good rows",
    file: "huge-field.csv",
    content: `lastname,firstname\nH1,a\n"${"h".repeat(tenMegabytes)}",b\nH3,c\n`,
    landed: ["H1", "H3"],
    rejected: [["row 2 (line 3)", /lastname/]]
  },
  {
    name: "CSV: binary garbage between good rows",
    file: "garbage-rows.csv",
    content: Buffer.concat([
      Buffer.from("lastname,firstname\nI1,a\n"),
      garbage(7, 300, separators),
      Buffer.from(",b\nI3,c\n")
    ]),
    landed: ["I1", "I3"],
    rejected: [["row 2 (line 3)", /is not UTF-8 text/]]
  },
  // -------------------------------------------------------------------------------- JSON lines
  {
    name: "JSONL: broken lines, non-objects and a BOM with CRLF and empty lines",
    file: "broken.jsonl",
    content:
      "\uFEFF{\"lastname\":\"J1\"}\r\n\r\n{\"lastname\":\n[1,2]\r\n\"text\"\nnull\n{\"lastname\":\"J2\"}\n   \n" +
      "{\"lastname\":\"J3\"} trailing\n{\"lastname\":\"J4\"}",
    landed: ["J1", "J2", "J4"],
    rejected: [
      ["line 3", /not valid JSON/],
      ["line 4", /expected a JSON object, got an array/],
      ["line 5", /expected a JSON object, got string/],
      ["line 6", /expected a JSON object, got null/],
      ["line 9", /not valid JSON/]
    ]
  },
  {
    name: "JSONL: wrong types, over-long values, invalid GUIDs and unknown columns, each named",
    file: "values.jsonl",
    content: [
      { lastname: "K1", creditlimit: 10, donotemail: true },
      { lastname: ["a", "b"] },
      { lastname: "K3", creditlimit: "lots" },
      { lastname: "K4", donotemail: "maybe" },
      { lastname: "k".repeat(51) },
      { lastname: "K6", contactid: "not-a-guid" },
      { lastname: "K7", favouritecolour: "blue" },
      { lastname: "K8", birthdate: { year: 2000 } },
      { lastname: "K9", gendercode: 99 },
      { lastname: "K10", creditlimit: 1e300 }
    ].map((row) => JSON.stringify(row)).join("\n") + "\n",
    landed: ["K1"],
    rejected: [
      ["line 2", /lastname/],
      ["line 3", /creditlimit/],
      ["line 4", /donotemail/],
      ["line 5", /lastname/],
      ["line 6", /contactid/],
      ["line 7", /favouritecolour/],
      ["line 8", /birthdate/],
      ["line 9", /gendercode/],
      ["line 10", /creditlimit/]
    ]
  },
  {
    name: "JSONL: a 10 MB field between good rows",
    file: "huge.jsonl",
    content: `{"lastname":"L1"}\n{"lastname":"${"l".repeat(tenMegabytes)}"}\n{"lastname":"L3"}\n`,
    landed: ["L1", "L3"],
    rejected: [["line 2", /lastname/]]
  },
  {
    name: "JSONL: binary garbage lines between good rows",
    file: "garbage.jsonl",
    content: Buffer.concat([
      Buffer.from("{\"lastname\":\"M1\"}\n"),
      garbage(11, 200, [0x0a, 0x0d]),
      Buffer.from("\n{\"lastname\":\"M3\"}\n"),
      garbage(12, 200, [0x0a, 0x0d]),
      Buffer.from("\n")
    ]),
    landed: ["M1", "M3"],
    rejected: [["line 2", /is not UTF-8 text/], ["line 4", /is not UTF-8 text/]]
  },
  // ------------------------------------------------------------------------------- JSON arrays
  {
    name: "JSON: an array cut off inside an element",
    file: "cut.json",
    content: "[{\"lastname\":\"N1\"},\n {\"lastname\":\"N2\"},\n {\"lastn",
    landed: ["N1", "N2"],
    rejected: [["element 3", /ends inside this element/]]
  },
  {
    name: "JSON: bad elements among good ones",
    file: "elements.json",
    content: "[{\"lastname\":\"O1\"}, 42, {bad}, null, , {\"lastname\":\"O6\"}, \"s\"]",
    landed: ["O1", "O6"],
    rejected: [
      ["element 2", /expected a JSON object, got number/],
      ["element 3", /not valid JSON/],
      ["element 4", /got null/],
      ["element 5", /empty element/],
      ["element 7", /got string/]
    ]
  },
  {
    name: "JSON: an array that is never closed, ending after an element",
    file: "unclosed.json",
    content: "[{\"lastname\":\"P1\"},{\"lastname\":\"P2\"},",
    landed: ["P1", "P2"],
    fatal: /not closed/
  },
  {
    name: "JSON: text after the closing bracket",
    file: "after.json",
    content: "[{\"lastname\":\"Q1\"}] trailing",
    landed: ["Q1"],
    fatal: /after the closing/
  },
  // ------------------------------------------------------------------------------ whole files
  {
    name: "binary garbage as a whole file of unknown format",
    file: "garbage.bin",
    content: garbage(13, 4096),
    landed: []
  },
  {
    name: "an empty file, and one of blank lines only",
    file: "blank.csv",
    content: "\n\r\n\n",
    landed: []
  }
]

/** The line the progress reporter leaves on stderr when it stops (stderr not a terminal). */
const progressLine = /^create contact \d+ rows, /

const stored = () => emulator.store.table("contact")!.scan().map((record) => String(record.values.lastname)).sort()

describe("the bad-input corpus", () => {
  it.each(corpus)("$name", async (testCase) => {
    emulator.reset()
    const input = Path.join(dir, testCase.file)
    Fs.writeFileSync(input, testCase.content)
    const rejects = Path.join(dir, `${testCase.file}.rejects.jsonl`)
    const result = await run(["create", "contact", "-f", input, "--chunk-size", "3", "--rejects", rejects], { env })
    // Never a crash: exit 0, 1 or 2, and no stack trace.
    expect([0, 1, 2], result.stderr.slice(0, 2000)).toContain(result.code)
    expect(result.stderr).not.toMatch(/^\s+at /m)
    expect(result.stderr).not.toMatch(/\b(TypeError|RangeError|ReferenceError|SyntaxError|FiberFailure)\b/)
    // Every good row lands, and nothing else.
    const landed = [...testCase.landed].sort()
    if (testCase.fatal !== undefined) {
      expect(result.code, result.stderr).toBe(1)
      // One error line; the only other line allowed is the progress reporter's last line.
      const lines = result.stderr.trim().split("\n").filter((line) => !progressLine.test(line))
      expect(lines, result.stderr).toHaveLength(1)
      expect(lines[0]).toMatch(/^dv-effect: /)
      expect(lines[0]).toMatch(testCase.fatal)
      // Rows read before the problem may have landed; none other.
      for (const name of stored()) expect(landed).toContain(name)
      return
    }
    expect(stored()).toEqual(landed)
    if (testCase.rejected !== undefined) {
      expect(result.code, result.stderr.slice(0, 2000)).toBe(2)
      // Rejects come as their requests finish: compare them by row.
      const entries = Fs.readFileSync(rejects, "utf8").trim().split("\n").map((line) => JSON.parse(line))
      const byRow = new Map(entries.map((entry) => [entry.row, entry]))
      expect(entries.map((entry) => entry.row).sort()).toEqual(testCase.rejected.map(([row]) => row).sort())
      for (const [row, message] of testCase.rejected) {
        expect(byRow.get(row)).toMatchObject({ status: "failed" })
        expect(byRow.get(row).message).toMatch(message)
      }
      // Each rejected row is also named on stderr, on a line of its own (at most 10 of them).
      for (const [row] of testCase.rejected.slice(0, 10)) {
        expect(result.stderr).toMatch(new RegExp(`^${row.replace(/[()]/g, "\\$&")}: `, "m"))
      }
      // The messages stay readable: no line of stderr carries a whole 10 MB value.
      for (const line of result.stderr.split("\n")) expect(line.length).toBeLessThan(2000)
    } else if (testCase.landed.length > 0) {
      expect(result.code, result.stderr).toBe(0)
    }
  })
})

describe("broken CSV quoting", () => {
  // csv-parse runs with relax_quotes (so `5" floppy` keeps its quote), which would also let a
  // quoted field with text after its closing quote through as '"B1"x'; the reader rejects it.
  it("text after a closing quote is a rejected row, not a value with quotes in it", async () => {
    emulator.reset()
    const input = Path.join(dir, "closing-quote.csv")
    Fs.writeFileSync(input, "lastname,firstname\n\"B1\"x,a\nB2,b\n")
    const rejects = Path.join(dir, "closing-quote.rejects.jsonl")
    const result = await run(["create", "contact", "-f", input, "--rejects", rejects], { env })
    expect(stored()).toEqual(["B2"])
    expect(result.code).toBe(2)
    expect(Fs.readFileSync(rejects, "utf8")).toContain("\"row\":\"row 1 (line 2)\"")
  })
})

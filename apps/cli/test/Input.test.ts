import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { jsonLines, parseJsonLine } from "../src/Input.js"

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
      expect(result).toHaveProperty("_tag", "DataverseError")
      expect(result).toHaveProperty("reason", "InvalidInput")
      expect((result as { message: string }).message).toMatch(message)
    }
  })
})

describe("jsonLines", () => {
  it.live("skips blank lines and a BOM, handles CRLF, and maps row positions back to line numbers", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "dv-effect-input-")))
      yield* Effect.addFinalizer(() => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true })))
      const file = Path.join(dir, "rows.jsonl")
      yield* Effect.promise(() => Fs.writeFile(file, "\uFEFF{\"n\":1}\r\n\r\n\r\n{\"n\":2}\r\n{bad\r\n\r\n{\"n\":3}"))
      const source = yield* jsonLines(file)
      const rows = Chunk.toReadonlyArray(yield* Stream.runCollect(source.rows))
      expect(rows).toHaveLength(4)
      expect(rows[0]).toEqual({ n: 1 })
      expect(rows[1]).toEqual({ n: 2 })
      expect(rows[2]).toHaveProperty("reason", "InvalidInput")
      expect(rows[3]).toEqual({ n: 3 })
      expect([0, 1, 2, 3].map(source.lineOf)).toEqual([1, 4, 5, 7])
    }).pipe(Effect.scoped))

  it.live("fails with a clear message for a file that is not there", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(jsonLines("/nonexistent/rows.jsonl"))
      expect(error.message).toBe("Cannot read --file /nonexistent/rows.jsonl: no such file")
    }))
})

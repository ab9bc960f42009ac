/**
 * Reading rows to import: JSON lines from a file or stdin, streamed, one row per line.
 *
 * @since 0.1.0
 */
import type { RowInput } from "@dv-effect/core/Bulk"
import { DataverseError } from "@dv-effect/core/DataverseError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Readline from "node:readline"
import { CliError } from "./CliError.js"

/**
 * Rows read from an input, and where each came from.
 *
 * @since 0.1.0
 */
export interface RowSource {
  /** One item per non-blank line: the parsed row, or the reason it is not one. */
  readonly rows: Stream.Stream<RowInput, CliError>
  /** The 1-based line number of the row at a 0-based position. */
  readonly lineOf: (index: number) => number
}

/**
 * Parses one JSONL line into a row, or into the error saying why it is not one (the caller
 * names the line when it reports it).
 *
 * @since 0.1.0
 */
export const parseJsonLine = (text: string): RowInput => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    return new DataverseError({
      reason: "InvalidInput",
      message: `not valid JSON (${(error as Error).message})`
    })
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return new DataverseError({
      reason: "InvalidInput",
      message: `expected a JSON object, got ${
        Array.isArray(value) ? "an array" : value === null ? "null" : typeof value
      }`
    })
  }
  return value as Record<string, unknown>
}

/**
 * Streams JSON lines from `path` (`-` for stdin). Blank lines are skipped; a line that is not a
 * JSON object becomes a failed row naming its line, and reading goes on.
 *
 * @since 0.1.0
 */
export const jsonLines = (path: string): Effect.Effect<RowSource, CliError> =>
  Effect.gen(function*() {
    if (path !== "-") {
      yield* Effect.tryPromise({
        try: () => Fs.promises.access(path, Fs.constants.R_OK),
        catch: (error) =>
          new CliError({
            message: `Cannot read --file ${path}: ${
              (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message
            }`
          })
      })
    }
    // Indexes before which blank lines were skipped, so row positions map back to line numbers.
    const skippedBefore: Array<number> = []
    const lineOf = (index: number) => {
      let lo = 0
      let hi = skippedBefore.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (skippedBefore[mid]! <= index) lo = mid + 1
        else hi = mid
      }
      return index + 1 + lo
    }
    const rows = Stream.suspend(() => {
      const input = path === "-" ? process.stdin : Fs.createReadStream(path)
      const lines = Readline.createInterface({ input, crlfDelay: Infinity })
      let line = 0
      let index = 0
      return Stream.fromAsyncIterable(lines, (error) =>
        new CliError({ message: `Reading ${path === "-" ? "stdin" : path} failed: ${(error as Error).message}` })).pipe(
          Stream.filterMap((raw) => {
            line++
            const text = line === 1 ? raw.replace(/^\uFEFF/, "") : raw
            if (text.trim() === "") {
              skippedBefore.push(index)
              return Option.none()
            }
            index++
            return Option.some(parseJsonLine(text))
          }),
          Stream.ensuring(Effect.sync(() =>
            lines.close()
          ))
        )
    })
    return { rows, lineOf }
  })

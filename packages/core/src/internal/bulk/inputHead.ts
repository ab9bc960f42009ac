import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import type { JournalError, JournalSession } from "../../Journal.js"
import { withoutReadAnnotations } from "../annotations.js"

/**
 * A journal names rows by their input position, so a resume over another input would skip rows
 * it never sent. Without an `inputIdentity` from the caller, the first rows of the input are the
 * cheapest evidence of which input it is: their fingerprint is recorded by the first run and
 * checked by a resume before any row is skipped or sent. An input that only grew at its end (once
 * it had 8 rows) keeps its fingerprint, and its new rows are sent, as position naming allows.
 */
const headRows = 8

const isPlainRow = (row: unknown): row is Readonly<Record<string, unknown>> =>
  typeof row === "object" && row !== null && !Array.isArray(row)

const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, v: unknown) => {
    if (typeof v === "bigint") return `${v}n`
    if (v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date)) {
      const sorted: Record<string, unknown> = {}
      for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key]
      return sorted
    }
    return v
  }) ?? String(value)

/** The fingerprint of an input's first rows (at most 8): their count and a hash of their values. */
export const inputHead = (rows: ReadonlyArray<unknown>): string => {
  const head = rows.slice(0, headRows)
  const hash = createHash("sha256")
  // What a read record carried (an etag that every write changes) is not the row's: records read
  // back and written again must resume as the same input.
  for (const row of head) hash.update(canonical(isPlainRow(row) ? withoutReadAnnotations(row) : row)).update("\n")
  return `${head.length}:${hash.digest("hex").slice(0, 32)}`
}

/**
 * The input, its first rows handed to the journal (which records them, or refuses a resume over an
 * input whose first rows differ) before any row is skipped or sent. A journal store without
 * `inputHead` is not asked.
 */
export const checkInputHead = <A, E, R>(
  input: Stream.Stream<A, E, R>,
  session: JournalSession | undefined
): Stream.Stream<A, E | JournalError, R> => {
  const check = session?.inputHead
  if (check === undefined) return input
  return Stream.suspend(() => {
    let checked = false
    return Stream.mapChunksEffect(input, (chunk) => {
      if (checked || Chunk.isEmpty(chunk)) return Effect.succeed(chunk)
      checked = true
      return Effect.as(check(inputHead(Chunk.toReadonlyArray(chunk))), chunk)
    })
  })
}

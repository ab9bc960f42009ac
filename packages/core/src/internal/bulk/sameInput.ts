import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import type { RowInput } from "../../Bulk.js"
import type { InputMark, JournalError, JournalSession } from "../../Journal.js"
import { withoutReadAnnotations } from "../annotations.js"
import { JournalError as JournalErrorClass } from "../journal.js"
import { isInvalidRow } from "./prepare.js"

/**
 * A journal names rows by their input position, so a resume over another input would skip rows
 * it never sent and send again rows that landed. Without an `inputIdentity` from the caller, the
 * rows are the evidence of which input it is: a fingerprint of the first rows, and one of every
 * `markStride`-th row further in, each recorded by the first run and checked by a resume before
 * any row of its chunk is skipped or sent. An input that only grew at its end (once it had 8
 * rows) keeps its fingerprints, and its new rows are sent, as position naming allows. A row
 * inserted or removed shifts every row after it, so a mark finds it, in its own chunk: the engine
 * cuts every input into chunks at the same positions, and the last row of each is marked. An
 * input cut shorter is found at its end (`ended`). Not seen: rows swapped or changed between
 * marks. Every row is not fingerprinted: that would cost as much CPU as validating it.
 */
const headRows = 8

/** Every this many rows, one is fingerprinted (`JournalSession.inputMarks`). */
const markStride = 32

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

/** A row's values as a fingerprint: what a read record carried (an etag that every write changes) is not the row's. */
const hashRow = (hash: ReturnType<typeof createHash>, row: unknown) =>
  hash.update(canonical(isPlainRow(row) ? withoutReadAnnotations(row) : row)).update("\n")

/** The fingerprint of an input's first rows (at most 8): their count and a hash of their values. */
export const inputHead = (rows: ReadonlyArray<unknown>): string => {
  const head = rows.slice(0, headRows)
  const hash = createHash("sha256")
  // Records read back and written again must resume as the same input.
  for (const row of head) hashRow(hash, row)
  return `${head.length}:${hash.digest("hex").slice(0, 32)}`
}

/** The fingerprint of one row (an `InputMark`'s): 64 bits of a hash of its values. */
const rowMark = (row: unknown): string => hashRow(createHash("sha256"), row).digest("hex").slice(0, 16)

/**
 * The marks of the rows of a chunk that starts at input position `from`: every `markStride`-th
 * row's; its last row's, so that the last rows a run read are checked too (a run reads up to the
 * end of a chunk, and an input ends with one); and those of rows an earlier run marked (its chunks
 * ended elsewhere), to be compared.
 */
const marksOf = (
  rows: ReadonlyArray<unknown>,
  from: number,
  isMarked: (index: number) => boolean = () => false
): Array<InputMark> => {
  const marks: Array<InputMark> = []
  const last = from + rows.length - 1
  for (let position = from; position <= last; position++) {
    const row = rows[position - from]
    // A row its reader could not read is neither marked nor compared: most often the last line of
    // an input cut off mid-line, which the resume reads whole.
    if (isInvalidRow(row as RowInput)) continue
    if (position % markStride === 0 || position === last || isMarked(position)) marks.push([position, rowMark(row)])
  }
  return marks
}

/**
 * The input, each chunk's rows handed to the journal before any of them is skipped or sent: the
 * first rows' fingerprint once, and the marks of every chunk (the journal records them, or
 * refuses a resume over an input whose rows differ). A journal store without `inputHead` or
 * `inputMarks` is not asked for it. `ended`, once the input was read to its end: fails when an
 * earlier run read rows past it that are not finished (an input cut shorter would end as if
 * complete, the rows it lacks never sent).
 */
export const checkSameInput = (session: JournalSession | undefined) => {
  const head = session?.inputHead
  const marks = session?.inputMarks
  const isMarked = marks === undefined ? undefined : session?.state.isMarked
  let position = 0
  const check = <A, E, R>(input: Stream.Stream<A, E, R>): Stream.Stream<A, E | JournalError, R> => {
    if (head === undefined && marks === undefined) return input
    return Stream.suspend(() => {
      position = 0
      return Stream.mapChunksEffect(input, (chunk) => {
        if (Chunk.isEmpty(chunk)) return Effect.succeed(chunk)
        const rows = Chunk.toReadonlyArray(chunk)
        const from = position
        position += rows.length
        const checks: Array<Effect.Effect<void, JournalError>> = []
        if (from === 0 && head !== undefined) checks.push(head(inputHead(rows)))
        if (marks !== undefined) checks.push(marks(marksOf(rows, from, isMarked)))
        return Effect.as(Effect.all(checks, { discard: true }), chunk)
      })
    })
  }
  const ended: Effect.Effect<void, JournalError> = Effect.suspend(() => {
    if (isMarked === undefined || session === undefined) return Effect.void
    // The last row an earlier run read past this end: it marked one in every `markStride` rows,
    // and its last.
    let lastRead = -1
    for (let window = position;; window += markStride) {
      const before = lastRead
      for (let at = window; at < window + markStride; at++) if (isMarked(at)) lastRead = at
      if (lastRead === before) break
    }
    for (let at = position; at <= lastRead; at++) {
      if (session.state.isFinished(at)) continue
      const n = (row: number) => row.toLocaleString("en-US")
      return Effect.fail(
        new JournalErrorClass({
          reason: "Mismatch",
          message: `This input ends at row ${n(position)}, and an earlier run of the journal read ${
            n(lastRead + 1)
          } rows, some after it not finished (row ${
            n(at + 1)
          } the first). Resume with the whole input to finish them, or start over with a new journal if they are not to be sent.`
        })
      )
    }
    return Effect.void
  })
  return { check, ended }
}

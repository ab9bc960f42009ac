/**
 * The journal stores: in memory, and in an append-only JSON-lines file.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import type * as Journal from "../Journal.js"
import { newRunId } from "./bulk/ids.js"
import { type Entry, Replay, toRanges } from "./journalReplay.js"

/**
 * The class behind `Journal.JournalError`. It is defined here, where the journals construct it:
 * defined in `Journal.ts`, it would make that module and this one import each other.
 */
export class JournalError
  extends Data.TaggedError("JournalError")<Pick<Journal.JournalError, "reason" | "message" | "path" | "cause">>
{}

const failure = (reason: Journal.JournalError["reason"], path: string, message: string, cause?: unknown) =>
  new JournalError({ reason, path, message, cause })

const article = (word: string) => (/^[aeiou]/.test(word) ? "an" : "a")

/** Why a journal of `recorded` cannot resume `job`, or undefined. */
const mismatch = (what: string, recorded: Journal.Job, job: Journal.Job): string | undefined => {
  if (recorded.operation !== job.operation || recorded.table !== job.table) {
    return `${what} belongs to ${article(recorded.operation)} ${recorded.operation} on '${recorded.table}', not ${
      article(job.operation)
    } ${job.operation} on '${job.table}'.`
  }
  // An input named on one run only is another input as far as the journal can tell: the run
  // without a name was checked by its first rows, the other by its name, and neither check holds.
  if (recorded.input !== job.input) {
    return recorded.input === undefined
      ? `${what} records a run without an inputIdentity, and this one names its input ${job.input}: resume as the run was started (the same input, no inputIdentity), or start over with a new journal, which sends every row again (a create that landed would be created twice).`
      : job.input === undefined
      ? `${what} records a run over ${recorded.input}, and this one names no inputIdentity: resume with inputIdentity ${recorded.input} and the same input, or start over with a new journal, which sends every row again (a create that landed would be created twice).`
      : `${what} records a run over ${recorded.input}, not ${job.input}: resume with the same input, or start over with a new journal, which sends every row again (a create that landed would be created twice).`
  }
  return undefined
}

/** Why a resume over an input whose first rows have `head` cannot go on, or undefined. */
const otherHead = (what: string, recorded: string | undefined, head: string): string | undefined =>
  recorded === undefined || recorded === head
    ? undefined
    : `${what} records a run over another input (its first rows differ from this input's): resume with the same input, or start over with a new journal, which sends every row again (a create that landed would be created twice).`

/**
 * Records in `recorded` the marks it has none of, and returns them (to be written); or why a
 * resume cannot go on: the first row whose fingerprint differs from the one recorded at its
 * position (then nothing is recorded).
 */
const recordMarks = (
  what: string,
  recorded: Map<number, string>,
  marks: ReadonlyArray<Journal.InputMark>
): Array<Journal.InputMark> | string => {
  const unrecorded: Array<Journal.InputMark> = []
  for (const mark of marks) {
    const before = recorded.get(mark[0])
    if (before === undefined) unrecorded.push(mark)
    else if (before !== mark[1]) {
      return `${what} records a run over another input: row ${
        mark[0] + 1
      } differs from the row an earlier run read there (a row inserted or removed before it, the row changed, or another input with the same first rows). Resume with the same input, or start over with a new journal, which sends every row again (a create that landed would be created twice).`
    }
  }
  for (const [position, fingerprint] of unrecorded) recorded.set(position, fingerprint)
  return unrecorded
}

export const memory: typeof Journal.memory = () => {
  let header: { runId: string; job: Journal.Job; inputHead?: string } | undefined
  const entries: Array<Entry> = []
  return {
    open: (job) =>
      Effect.gen(function*() {
        const resumed = header !== undefined
        if (header === undefined) header = { runId: newRunId(), job }
        else {
          const problem = mismatch("The journal", header.job, job)
          if (problem !== undefined) return yield* new JournalError({ reason: "Mismatch", message: problem })
        }
        const replay = new Replay()
        for (const entry of entries) replay.apply(entry)
        return {
          state: replay.state(header.runId, resumed),
          sent: (indexes) => Effect.sync(() => void entries.push({ sent: toRanges(indexes) })),
          unsent: (indexes) => Effect.sync(() => void entries.push({ unsent: toRanges(indexes) })),
          finished: (ok, failed) =>
            Effect.sync(() => void entries.push({ ok: toRanges(ok), failed: toRanges(failed) })),
          inputHead: (head) =>
            Effect.suspend(() => {
              const problem = otherHead("The journal", header!.inputHead, head)
              if (problem !== undefined) return Effect.fail(new JournalError({ reason: "Mismatch", message: problem }))
              header!.inputHead = head
              return Effect.void
            }),
          inputMarks: (given) =>
            Effect.suspend(() => {
              const unrecorded = recordMarks("The journal", replay.marks, given)
              if (typeof unrecorded === "string") {
                return Effect.fail(new JournalError({ reason: "Mismatch", message: unrecorded }))
              }
              if (unrecorded.length > 0) entries.push({ marks: unrecorded })
              return Effect.void
            })
        } satisfies Journal.JournalSession
      })
  }
}

export const file: typeof Journal.file = (path) => ({
  open: (job) =>
    Effect.gen(function*() {
      const text = yield* Effect.try({
        try: () => (Fs.existsSync(path) ? Fs.readFileSync(path, "utf8") : ""),
        catch: (cause) =>
          failure("Unreadable", path, `Cannot read the journal ${path}: ${(cause as Error).message}`, cause)
      })
      // Entries end with a newline: text after the last one is a line torn by a kill.
      const whole = text.slice(0, text.lastIndexOf("\n") + 1)
      const lines = whole.split("\n").filter((line) => line.trim() !== "")
      const replay = new Replay()
      let runId: string | undefined
      for (const [i, line] of lines.entries()) {
        let entry: Record<string, unknown>
        try {
          entry = JSON.parse(line)
        } catch (cause) {
          return yield* failure("Damaged", path, `The journal ${path} is damaged at line ${i + 1}.`, cause)
        }
        if (i === 0) {
          if (entry["journal"] !== "dv-effect" || typeof entry["runId"] !== "string") {
            return yield* failure("Damaged", path, `${path} is not a dv-effect journal.`)
          }
          const recorded: Journal.Job = {
            operation: String(entry["operation"]),
            table: String(entry["table"]),
            input: typeof entry["input"] === "string" ? entry["input"] : undefined
          }
          const problem = mismatch(`The journal ${path}`, recorded, job)
          if (problem !== undefined) return yield* failure("Mismatch", path, problem)
          runId = entry["runId"]
        } else replay.apply(entry)
      }
      const resumed = runId !== undefined
      if (whole.length < text.length) {
        yield* Effect.try({
          try: () => Fs.truncateSync(path, Buffer.byteLength(whole)),
          catch: (cause) =>
            failure("Unwritable", path, `Cannot repair the journal ${path}: ${(cause as Error).message}`, cause)
        })
      }
      const fd = yield* Effect.try({
        try: () => Fs.openSync(path, "a", 0o600),
        catch: (cause) =>
          failure("Unwritable", path, `Cannot write the journal ${path}: ${(cause as Error).message}`, cause)
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.closeSync(fd)))
      const append = (entry: unknown) =>
        Effect.try({
          try: () => void Fs.writeSync(fd, `${JSON.stringify(entry)}\n`),
          catch: (cause) =>
            failure("Unwritable", path, `Cannot write the journal ${path}: ${(cause as Error).message}`, cause)
        })
      if (runId === undefined) {
        runId = newRunId()
        yield* append({
          journal: "dv-effect",
          version: 1,
          runId,
          operation: job.operation,
          table: job.table,
          ...(job.input === undefined ? {} : { input: job.input }),
          started: new Date().toISOString()
        })
      }
      return {
        state: replay.state(runId, resumed),
        sent: (indexes) => append({ sent: toRanges(indexes) }),
        unsent: (indexes) => append({ unsent: toRanges(indexes) }),
        finished: (ok, failed) => append({ ok: toRanges(ok), failed: toRanges(failed) }),
        inputHead: (head) =>
          Effect.suspend(() => {
            const problem = otherHead(`The journal ${path}`, replay.inputHead, head)
            if (problem !== undefined) return failure("Mismatch", path, problem)
            if (replay.inputHead !== undefined) return Effect.void
            replay.inputHead = head
            return append({ inputHead: head })
          }),
        inputMarks: (given) =>
          Effect.suspend(() => {
            const unrecorded = recordMarks(`The journal ${path}`, replay.marks, given)
            if (typeof unrecorded === "string") return failure("Mismatch", path, unrecorded)
            return unrecorded.length === 0 ? Effect.void : append({ marks: unrecorded })
          })
      } satisfies Journal.JournalSession
    })
})

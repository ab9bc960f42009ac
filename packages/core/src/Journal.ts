/**
 * Journals of bulk runs: what a run has finished, so that a run stopped midway (a crash, Ctrl-C,
 * a lost machine) resumes without sending any finished row again.
 *
 * A journal records, per run: the run id (the seed of the ids the engine gives created rows), the
 * rows sent in requests that have not answered yet, and the rows finished (succeeded, or failed
 * for their own fault). A run failure (sign-in, outage, a throttle wait past its limit) finishes
 * no row: a resumed run sends those rows again. Rows are named by their position in the input, so
 * a resumed run must read the same input.
 *
 * `Journal.file(path)` keeps it in an append-only JSON-lines file; `Journal.memory()` in memory
 * (tests, and runs that resume within one process). Any other store implements `Journal`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import { newRunId } from "./internal/bulk/ids.js"

/**
 * A journal that cannot be read or written, or that records another run. It stops the run (a
 * run failure): rows it could not record as finished are sent again by a resumed run.
 *
 * - `Unreadable`: the file exists but cannot be read.
 * - `Unwritable`: an entry could not be written (permissions, a full disk).
 * - `Damaged`: not a dv-effect journal, or a line is not JSON.
 * - `Mismatch`: the journal records another operation, table or input.
 *
 * @since 0.2.0
 * @category errors
 */
export class JournalError extends Data.TaggedError("JournalError")<{
  readonly reason: "Unreadable" | "Unwritable" | "Damaged" | "Mismatch"
  readonly message: string
  readonly path?: string | undefined
  readonly cause?: unknown
}> {}

/**
 * Which run a journal belongs to: a resumed run must be the same operation on the same table.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job {
  readonly operation: string
  readonly table: string
  /**
   * What identifies the input, when the caller can say (the CLI: the file's path and size): a
   * resume over another input is refused, since rows are named by their position.
   */
  readonly input?: string | undefined
}

/**
 * What an earlier run recorded, as a resumed run needs it.
 *
 * @since 0.1.0
 * @category models
 */
export interface JournalState {
  readonly runId: string
  /** True when this journal already had entries (the run is a resume). */
  readonly resumed: boolean
  /** Whether the row at an input position is finished. */
  readonly isFinished: (index: number) => boolean
  /** Rows that were in requests without an answer when the earlier run stopped. */
  readonly unanswered: ReadonlySet<number>
  /** Rows finished in earlier runs: succeeded and failed. */
  readonly finishedBefore: { readonly succeeded: number; readonly failed: number }
}

/**
 * One run's journal, open.
 *
 * @since 0.1.0
 * @category models
 */
export interface JournalSession {
  readonly state: JournalState
  /** Rows about to be sent in one request. */
  readonly sent: (indexes: ReadonlyArray<number>) => Effect.Effect<void, JournalError>
  /** Rows finished: succeeded, and failed for good. */
  readonly finished: (
    succeeded: ReadonlyArray<number>,
    failed: ReadonlyArray<number>
  ) => Effect.Effect<void, JournalError>
}

/**
 * A journal store: `open` reads what is there (or starts a new run) for a job.
 *
 * @since 0.1.0
 * @category models
 */
export interface Journal {
  /** Opens the journal for the run; it stays open until the run's scope closes. */
  readonly open: (job: Job) => Effect.Effect<JournalSession, JournalError, Scope.Scope>
}

const failure = (reason: JournalError["reason"], path: string, message: string, cause?: unknown) =>
  new JournalError({ reason, path, message, cause })

/** Positions as a growable bit set: a million rows take 125 KB. */
class BitSet {
  private words = new Uint32Array(1024)
  add(index: number): void {
    const word = index >>> 5
    if (word >= this.words.length) {
      const grown = new Uint32Array(Math.max(word + 1, this.words.length * 2))
      grown.set(this.words)
      this.words = grown
    }
    this.words[word]! |= 1 << (index & 31)
  }
  has(index: number): boolean {
    const word = index >>> 5
    return word < this.words.length && (this.words[word]! & (1 << (index & 31))) !== 0
  }
}

/** Consecutive positions as `[first, last]` pairs: a chunk is usually one pair. */
const toRanges = (indexes: ReadonlyArray<number>): Array<[number, number]> => {
  const sorted = [...indexes].sort((a, b) => a - b)
  const ranges: Array<[number, number]> = []
  for (const index of sorted) {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && index === last[1] + 1) last[1] = index
    else ranges.push([index, index])
  }
  return ranges
}

const forEachInRanges = (ranges: unknown, f: (index: number) => void): number => {
  let count = 0
  if (!Array.isArray(ranges)) return 0
  for (const range of ranges) {
    if (!Array.isArray(range) || typeof range[0] !== "number" || typeof range[1] !== "number") continue
    for (let index = range[0]; index <= range[1]; index++) {
      f(index)
      count++
    }
  }
  return count
}

/** Rebuilds a run's state from its entries (a header, then `sent` and `finished` lines). */
class Replay {
  readonly finished = new BitSet()
  readonly unanswered = new Set<number>()
  succeeded = 0
  failed = 0
  apply(entry: { sent?: unknown; ok?: unknown; failed?: unknown }): void {
    forEachInRanges(entry.sent, (index) => this.unanswered.add(index))
    this.succeeded += forEachInRanges(entry.ok, (index) => {
      this.finished.add(index)
      this.unanswered.delete(index)
    })
    this.failed += forEachInRanges(entry.failed, (index) => {
      this.finished.add(index)
      this.unanswered.delete(index)
    })
  }
  state(runId: string, resumed: boolean): JournalState {
    return {
      runId,
      resumed,
      isFinished: (index) => this.finished.has(index),
      unanswered: this.unanswered,
      finishedBefore: { succeeded: this.succeeded, failed: this.failed }
    }
  }
}

/** Why a journal of `recorded` cannot resume `job`, or undefined. */
const mismatch = (what: string, recorded: Job, job: Job): string | undefined => {
  if (recorded.operation !== job.operation || recorded.table !== job.table) {
    return `${what} belongs to a ${recorded.operation} on '${recorded.table}', not a ${job.operation} on '${job.table}'.`
  }
  if (recorded.input !== undefined && job.input !== undefined && recorded.input !== job.input) {
    return `${what} records a run over ${recorded.input}, not ${job.input}: resume with the same input, or start a new journal.`
  }
  return undefined
}

/**
 * A journal kept in memory: a second run on the same value resumes the first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const memory = (): Journal => {
  let header: { runId: string; job: Job } | undefined
  const entries: Array<{ sent?: unknown; ok?: unknown; failed?: unknown }> = []
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
          finished: (ok, failed) => Effect.sync(() => void entries.push({ ok: toRanges(ok), failed: toRanges(failed) }))
        }
      })
  }
}

/**
 * A journal in an append-only JSON-lines file (mode 0600), created when missing. Each entry is
 * one `write` of one line, so a process killed at any point leaves at most a torn last line,
 * which a resume cuts off.
 *
 * @since 0.1.0
 * @category constructors
 */
export const file = (path: string): Journal => ({
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
          const recorded: Job = {
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
        finished: (ok, failed) => append({ ok: toRanges(ok), failed: toRanges(failed) })
      } satisfies JournalSession
    })
})

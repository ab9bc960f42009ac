/**
 * Journals of bulk runs: what a run has finished, so that a run stopped midway (a crash, Ctrl-C,
 * a lost machine) resumes without sending any finished row again.
 *
 * A journal records, per run: the run id (the seed of the ids the engine gives created rows), the
 * rows sent in requests that have not answered yet, and the rows finished (succeeded, or failed
 * for their own fault). A run failure (sign-in, outage, a throttle wait past its limit) finishes
 * no row: a resumed run sends those rows again. Rows are named by their position in the input, so
 * a resumed run must read the same input: the journal records `Job.input` when the caller names
 * the input, else a fingerprint of its first rows, and refuses a resume over another.
 *
 * `Journal.file(path)` keeps it in an append-only JSON-lines file; `Journal.memory()` in memory
 * (tests, and runs that resume within one process). Any other store implements `Journal`.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/journal.js"

/**
 * A journal that cannot be read or written, or that records another run. It stops the run (a
 * run failure): rows it could not record as finished are sent again by a resumed run.
 *
 * - `Unreadable`: the file exists but cannot be read.
 * - `Unwritable`: an entry could not be written (permissions, a full disk).
 * - `Damaged`: not a dv-effect journal, or a line is not JSON.
 * - `Mismatch`: the journal records another operation, table or input (by `Job.input`, or by
 *   the input's first rows).
 *
 * @since 0.2.0
 * @category errors
 */
export interface JournalError extends Cause.YieldableError {
  readonly _tag: "JournalError"
  readonly reason: "Unreadable" | "Unwritable" | "Damaged" | "Mismatch"
  readonly message: string
  readonly path?: string | undefined
  readonly cause?: unknown
}

/**
 * A journal that cannot be read or written, or that records another run. It stops the run (a
 * run failure): rows it could not record as finished are sent again by a resumed run.
 *
 * - `Unreadable`: the file exists but cannot be read.
 * - `Unwritable`: an entry could not be written (permissions, a full disk).
 * - `Damaged`: not a dv-effect journal, or a line is not JSON.
 * - `Mismatch`: the journal records another operation, table or input (by `Job.input`, or by
 *   the input's first rows).
 *
 * @since 0.2.0
 * @category errors
 */
export const JournalError: new(
  args: Pick<JournalError, "reason" | "message" | "path" | "cause">
) => JournalError = internal.JournalError

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
  /**
   * Whether an earlier run recorded the fingerprint of the row at an input position
   * (`JournalSession.inputMarks`): a resume gives that row's too, to be compared. Optional, with
   * `inputMarks`.
   *
   * @since 0.2.0
   */
  readonly isMarked?: (index: number) => boolean
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
  /**
   * Rows recorded as `sent` whose request never went on the wire, or was only refused with a 429
   * (it did nothing): the run stopped before they were sent. A resume need not look them up.
   * Optional: without it they are looked up.
   *
   * @since 0.2.0
   */
  readonly unsent?: (indexes: ReadonlyArray<number>) => Effect.Effect<void, JournalError>
  /** Rows finished: succeeded, and failed for good. */
  readonly finished: (
    succeeded: ReadonlyArray<number>,
    failed: ReadonlyArray<number>
  ) => Effect.Effect<void, JournalError>
  /**
   * The fingerprint of the input's first rows, given once the run has read them and before any
   * row is skipped or sent, when the caller gave no `Job.input`: a new run records it; a resume
   * fails with `Mismatch` when it differs from the one recorded (rows are named by position, so
   * another input would skip rows it never sent). Optional: a store without it resumes whatever
   * input it is given.
   *
   * @since 0.2.0
   */
  readonly inputHead?: (fingerprint: string) => Effect.Effect<void, JournalError>
  /**
   * Fingerprints of rows further in, by input position (every 32nd row's, the last row's of each
   * piece the run reads, and those of rows `JournalState.isMarked` names), given as the run reads
   * them and before any row read with them is skipped or sent, when the caller gave no
   * `Job.input`: a new run records them; a resume fails with `Mismatch`, naming the row, when one
   * differs from the fingerprint recorded at its position, and records those it has none of (an
   * input that grew). An input that differs further in than its first rows (a row inserted or
   * removed, another file with the same start) would otherwise skip rows it never sent and send
   * again rows that landed. Optional: a store without it checks the first rows only.
   *
   * @since 0.2.0
   */
  readonly inputMarks?: (marks: ReadonlyArray<InputMark>) => Effect.Effect<void, JournalError>
}

/**
 * The fingerprint of one row of the input, at its position (`JournalSession.inputMarks`).
 *
 * @since 0.2.0
 * @category models
 */
export type InputMark = readonly [position: number, fingerprint: string]

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

/**
 * A journal kept in memory: a second run on the same value resumes the first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const memory: () => Journal = internal.memory

/**
 * A journal in an append-only JSON-lines file (mode 0600), created when missing. Each entry is
 * one `write` of one line, so a process killed at any point leaves at most a torn last line,
 * which a resume cuts off.
 *
 * @since 0.1.0
 * @category constructors
 */
export const file: (path: string) => Journal = internal.file

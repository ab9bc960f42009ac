/**
 * The bulk engine: rows in, one outcome per row out. Rows are validated against the table's
 * metadata, grouped into requests, and sent through the connection's throttle controller with
 * bounded, adaptive concurrency, by the `*Multiple` messages where the table supports them, else
 * by `$batch`.
 *
 * - A bad row fails alone before anything is sent (unknown column, wrong type, too long, option
 *   not in the set, required column missing, bad GUID).
 * - The same record is never in two requests in flight: a row whose record already appeared in
 *   the run waits for a later pass, so the last occurrence wins, as it would one by one.
 * - A standard-table chunk the service refuses for a data error is sent again as a `$batch`
 *   with continue-on-error, so its good rows land and each bad row gets its own error. Elastic
 *   tables report the failed targets themselves.
 * - Throttling never fails a row. A refused request waits its Retry-After and is sent again; the
 *   connection's other requests wait for one probe, and all of them for the Retry-After when it
 *   is refused too. No cookie is sent back, so the service spreads the requests over its web
 *   servers. The requests in flight start at a few and grow while answers are healthy, up to
 *   `x-ms-dop-hint`; a 429 that is not one request's alone (the request sent after it is
 *   refused too, or the concurrent-request limit), or latency well above the run's baseline,
 *   cuts them.
 *   Only documented signals steer (the wire reference's §6): the status, `Retry-After`, the dop
 *   hint and latency measured here. A wait past the connection's `maxThrottleWait` stops the run
 *   (resumable with a journal), blaming no row.
 * - Chunk size (`"auto"`) starts at 100 and goes, from the first answers, to what half the target
 *   latency holds; timeouts and "too large" answers halve it and the refused chunk is sent again in
 *   halves. Each request is formed when a slot frees, at the size of that moment.
 * - Creates carry ids chosen by the engine (from the run id and the row's position, increasing
 *   across runs), so after an answer that never came the engine asks which rows exist and sends
 *   only the others, and a resumed run (see `Journal`) never creates a row twice.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as PubSub from "effect/PubSub"
import type * as Schedule from "effect/Schedule"
import type * as Stream from "effect/Stream"
import type { DataverseClient } from "./DataverseClient.js"
import type { DataverseError } from "./DataverseError.js"
import * as identities from "./internal/bulk/identities.js"
import * as parallel_ from "./internal/bulk/parallel.js"
import * as runs from "./internal/bulk/runs.js"
import * as summary from "./internal/bulk/summary.js"
import type * as Journal from "./Journal.js"
import type * as Records from "./Records.js"

/**
 * The operations of the engine.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = "create" | "update" | "upsert" | "delete"

/**
 * What happened to one input row. `index` is the row's 0-based position in the input. An
 * upsert through UpsertMultiple cannot tell created from updated: it reports `upserted`.
 * `unchanged` and `skipped` come from smart mode: the record already held the row's values, or
 * the row would have created (or updated) a record while that was turned off.
 *
 * @since 0.1.0
 * @category models
 */
export type RowOutcome =
  | {
    readonly index: number
    readonly status: "created" | "updated" | "upserted" | "deleted" | "unchanged" | "skipped"
    readonly id: string | undefined
    /**
     * A delete whose record was not there (deleted before, or a key that names none). It counts
     * as deleted, since a delete sent again after a stop must not fail; `Summary.absent` counts
     * them. Not told by `DeleteMultiple` (elastic tables), which answers for the request.
     *
     * @since 0.2.0
     */
    readonly absent?: true | undefined
  }
  | { readonly index: number; readonly status: "failed"; readonly error: DataverseError }

/**
 * Running totals, reported after every chunk.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  /** Rows done: written, unchanged or skipped. */
  readonly succeeded: number
  readonly failed: number
  /** Rows finished by an earlier run of the same journal, not sent again. */
  readonly resumed: number
  /** Requests sent on the run's connection since it started: retries, refusals and existence checks included. */
  readonly requests: number
  /** Requests sent again after a transient failure. */
  readonly retries: number
  /** Requests refused with 429 so far (each was waited out and sent again). */
  readonly throttled: number
  /** Chunks being sent now. */
  readonly inFlight: number
  /**
   * Rows in requests sent and not answered yet. If the run stops now, these may or may not have
   * landed: a journal records them, and a resumed run asks the service which did. A request refused
   * with a 429 (or a 401) did nothing: its rows are not counted while it waits its Retry-After,
   * unless an attempt of it met any other answer, or none.
   */
  readonly rowsInFlight: number
  /**
   * Rows an earlier run of the journal sent without getting an answer, still to be looked up on
   * the service (a resumed run sends only those that did not land).
   */
  readonly checking: number
  /**
   * Of those looked up, rows found landed: the earlier run created them (counted among
   * `succeeded`, as `created`).
   */
  readonly landedBefore: number
  /** Chunks allowed in flight now (adapted to throttling and latency). */
  readonly concurrency: number
  /** Rows per request now (adapted to latency and refused rows when `chunkSize` is `"auto"`). */
  readonly chunkSize: number
  /** Milliseconds until the service's Retry-After ends and requests go again; 0 when not waiting. */
  readonly waitingMs: number
  /**
   * When the Retry-After ends (epoch milliseconds), while the run waits for it: with several
   * identities, while every one of them waits, until the first may go again.
   */
  readonly waitingUntil: number | undefined
  /** The same, per identity of the connection (one entry for a connection of one). */
  readonly identities: ReadonlyArray<IdentityProgress>
}

/**
 * What one identity (application user) did in a finished run.
 *
 * @since 0.2.0
 * @category models
 */
export interface IdentitySummary {
  /** The identity's label (`ClientOptions.labels`, else its position from 1). */
  readonly label: string
  /** Rows done by its requests: written, unchanged or skipped. */
  readonly succeeded: number
  readonly failed: number
  /** Its requests since the run started: retries, refusals and existence checks included. */
  readonly requests: number
  readonly retries: number
  /** Its requests refused with 429. */
  readonly throttled: number
}

/**
 * What one identity of a run's connection has done so far: rows are sent by whichever identity
 * has a free slot, each under its own limits, throttling and dop hint.
 *
 * @since 0.2.0
 * @category models
 */
export interface IdentityProgress extends IdentitySummary {
  readonly inFlight: number
  readonly rowsInFlight: number
  /** Its requests allowed in flight now. */
  readonly concurrency: number
  /** When its Retry-After ends, while it waits for one. */
  readonly waitingUntil: number | undefined
}

/**
 * Smart mode: look the records up first (by primary key or the `key` columns), leave the rows
 * whose values the record already holds (`unchanged`), update only the columns that differ, and
 * create the records that are missing.
 *
 * @since 0.1.0
 * @category models
 */
export interface SmartOptions {
  /** Create the records that do not exist. Default true; false reports them `skipped`. */
  readonly create?: boolean | undefined
  /** Update the records that differ. Default true; false reports them `skipped`. */
  readonly update?: boolean | undefined
  /** Send every column of a changed row, not only the ones that differ. Default false. */
  readonly allColumns?: boolean | undefined
}

/**
 * Options of the bulk operations.
 *
 * @since 0.1.0
 * @category models
 */
export interface BulkOptions {
  /**
   * Rows per request, or `"auto"` (the default): start at 100, and from the first answers go to
   * what half the target latency holds, up to 1,000 (100 on elastic tables, as Microsoft
   * advises); timeouts and 413s shrink it, and so do rows the service refuses in a bulk message
   * (each fails its whole request, searched by a `$batch`): to the size of least expected cost.
   */
  readonly chunkSize?: number | "auto" | undefined
  /**
   * Most requests in flight, or `"auto"` (the default): the service's `x-ms-dop-hint`. Either way
   * the run starts with a few, adds more while answers are healthy, and sends fewer after a 429 or
   * when latency rises well above its baseline. A connection's runs share its controller. With
   * several identities (see `DataverseClientService.identities`) this is per identity: each has
   * its own, and the run's requests in flight add up.
   */
  readonly concurrency?: number | "auto" | undefined
  /**
   * `multiple` (the `*Multiple` messages), `batch` (`$batch`), `single` (one request per row), or
   * `auto` (the default): multiple where supported, else batch.
   */
  readonly strategy?: "auto" | "multiple" | "batch" | "single" | undefined
  /** Alternate-key columns that identify the records of update, upsert and delete rows. */
  readonly key?: ReadonlyArray<string> | undefined
  /** Skip custom synchronous and/or asynchronous business logic (`MSCRM.BypassBusinessLogicExecution`). */
  readonly bypass?: { readonly sync?: boolean | undefined; readonly async?: boolean | undefined } | undefined
  /** A `tag` the plug-ins of the run can read (`?tag=`). */
  readonly tag?: string | undefined
  /** Called after every finished chunk. */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /** Receives the same progress as `onProgress`. */
  readonly progress?: PubSub.PubSub<Progress> | undefined
  /** How the engine retries transient failures; default: the connection's policy. */
  readonly retryPolicy?: Schedule.Schedule<unknown, DataverseError> | undefined
  /** Records finished rows, so that a stopped run resumes where it was (see `Journal`). */
  readonly journal?: Journal.Journal | undefined
  /**
   * What identifies the input (a file's path and size, a load's date), recorded in the journal so
   * that a resume over another input is refused. Without it the journal identifies the input by a
   * fingerprint of its first rows, and refuses a resume over an input whose first rows differ (not
   * one changed only further in). Give it when rows carry values of their run (a load's time, an
   * id made per run), which would make every resume look like another input.
   */
  readonly inputIdentity?: string | undefined
  /** Called for each row an earlier run of the journal finished: it gets no outcome. */
  readonly onResumed?: ((index: number) => void) | undefined
  /** The largest request body to build, in bytes (estimated). Default 16 MiB. */
  readonly maxRequestBytes?: number | undefined
  /** Smart mode for create, update and upsert (see `SmartOptions`); `true` for the defaults. */
  readonly smart?: boolean | SmartOptions | undefined
  /**
   * With `chunkSize: "auto"`: the request latency the chunk size aims under. Default 10 s; the
   * service's own timeout is minutes away.
   */
  readonly targetLatency?: Duration.DurationInput | undefined
  /**
   * How a standard-table chunk refused for a data error is searched for its bad rows: `batch`
   * (the default) sends it again as a `$batch` with continue-on-error; `bisect` sends halves
   * through the same message until each bad row stands alone.
   */
  readonly isolation?: "batch" | "bisect" | undefined
}

/**
 * An input row the caller already found unusable (a line that is not a record, a value that does
 * not convert): it is reported as failed at its position, with reason `InvalidInput`, and never
 * sent.
 *
 * @example
 * ```ts
 * import { Bulk } from "@dv-effect/core"
 *
 * const rows: Array<Bulk.RowInput> = [
 *   { lastname: "Doe" },
 *   new Bulk.InvalidRow({ message: "line 3: unterminated quote" })
 * ]
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export class InvalidRow extends Data.TaggedClass("InvalidRow")<{ readonly message: string }> {}

/**
 * An input item: a row, or a row the caller already found invalid.
 *
 * @since 0.1.0
 * @category models
 */
export type RowInput = Records.Row | InvalidRow

/**
 * Resolves `"auto"` concurrency: the service's recommended parallelism, read from a cheap
 * `WhoAmI` when no response has reported it yet; 4 when the service gives no hint. With several
 * identities, the bulk engine resolves it for each (see `DataverseClientService.identities`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const resolveConcurrency: (
  concurrency: number | "auto" | undefined
) => Effect.Effect<number, DataverseError, DataverseClient> = identities.resolveConcurrency

/**
 * Progress of `parallel`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ParallelProgress {
  readonly chunks: number
  readonly items: number
  readonly inFlight: number
}

/**
 * Options of `parallel`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ParallelOptions {
  /** Items per chunk, each chunk one call of the function. */
  readonly chunkSize: number
  /**
   * The most chunks at a time: a number, or `"auto"` (the default), the service's
   * `x-ms-dop-hint`. The connection's throttle controller starts below it and adapts.
   */
  readonly concurrency?: number | "auto" | undefined
  /** Results in input order (a slow chunk then holds back the ones after it). Default: as chunks finish. */
  readonly ordered?: boolean | undefined
  readonly onProgress?: ((progress: ParallelProgress) => void) | undefined
}

/**
 * The general form (`Invoke-DataverseParallel`): runs `f` on chunks of `chunkSize` items and emits
 * what each returns as it finishes (or in input order with `ordered: true`). Each chunk holds a
 * slot of the connection's throttle controller, as the bulk engine's requests do: the chunks in
 * flight start at a few and follow the service (up to `concurrency`, by default its
 * `x-ms-dop-hint`), congestion (a 429 not of one request alone, latency rising) cuts them,
 * and a Retry-After holds every chunk's requests.
 *
 * `f` must not run the bulk engine itself (`Bulk.execute` and the like): its requests take the
 * same slots, which the chunks already hold.
 *
 * @example
 * ```ts
 * import { Effect, pipe, Stream } from "effect"
 * import { Bulk, Records } from "@dv-effect/core"
 * declare const ids: ReadonlyArray<string>
 * const names = pipe(
 *   ids,
 *   Bulk.parallel({ chunkSize: 50 }, (chunk: ReadonlyArray<string>) =>
 *     Effect.forEach(chunk, (id) => Records.retrieve("contact", id, { select: ["fullname"] }))),
 *   Stream.runCollect
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const parallel: {
  <A, B, E, R>(
    options: ParallelOptions,
    f: (chunk: ReadonlyArray<A>, index: number) => Effect.Effect<B, E, R>
  ): <E2 = never, R2 = never>(
    input: Iterable<A> | Stream.Stream<A, E2, R2>
  ) => Stream.Stream<B, E | E2 | DataverseError, R | R2 | DataverseClient>
  <A, B, E, R, E2 = never, R2 = never>(
    input: Iterable<A> | Stream.Stream<A, E2, R2>,
    options: ParallelOptions,
    f: (chunk: ReadonlyArray<A>, index: number) => Effect.Effect<B, E, R>
  ): Stream.Stream<B, E | E2 | DataverseError, R | R2 | DataverseClient>
} = parallel_.parallel

/**
 * How a run would go: where the rows go and how they are sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  readonly table: string
  readonly entitySet: string
  readonly tableType: "Standard" | "Elastic"
  readonly operation: Operation
  /** `multiple`: the `*Multiple` message; `batch`: `$batch`; `single`: a request per row. */
  readonly strategy: "multiple" | "batch" | "single"
  readonly message: string | undefined
  readonly chunkSize: number | "auto"
  /** Rows in the first requests. */
  readonly startChunkSize: number
  /** Most requests in flight: the sum of the identities' ceilings. */
  readonly concurrency: number
  readonly maxRequestBytes: number
}

/**
 * What a dry run found.
 *
 * @since 0.1.0
 * @category models
 */
export interface DryRun {
  readonly plan: Plan
  readonly total: number
  readonly valid: number
  readonly invalid: number
  /** Requests the valid rows take at the starting chunk size (fewer when `"auto"` grows it). */
  readonly requests: number
}

/**
 * Checks rows and plans the run without writing anything: each row is validated as `stream` would
 * (invalid ones reach `onOutcome` as failed), and the plan says how the rest would be sent. It
 * reads the table's metadata and the service's parallelism hint; smart mode's lookups are not
 * made.
 *
 * @since 0.1.0
 * @category accessors
 */
export const dryRun: <E = never, R = never, E2 = never, R2 = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options?: BulkOptions,
  onOutcome?: (outcome: RowOutcome) => Effect.Effect<void, E2, R2>
) => Effect.Effect<DryRun, DataverseError | E | E2, DataverseClient | R | R2> = runs.dryRun

/**
 * Runs one operation over rows (see the module description). Outcomes come out as their
 * requests finish, each with its input `index` (waiting for the oldest request to hand them out
 * in input order would leave workers idle behind it); rows deferred to a later pass (a record
 * that appeared earlier in the run) come after. Rows a journal says an earlier run finished
 * produce no outcome. A run failure (a throttle wait past `maxThrottleWait`) fails the stream.
 *
 * With a journal, a request's rows are journalled finished once the consumer has pulled past its
 * outcomes: a consumer that stops (`Stream.take`) or fails midway leaves them to the resumed run,
 * which handles them again (creates are found, not created twice; updates and deletes are sent
 * again, and a delete sent again reports `absent`). Whatever reads ahead of the code that uses the
 * outcomes (`Stream.buffer`, `Stream.grouped`, `mapEffect` with concurrency, `runCollect` before
 * a failure) pulls past them first: use `execute` with `onOutcome` to journal only what
 * `onOutcome` has handled.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stream: <E = never, R = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options?: BulkOptions
) => Stream.Stream<RowOutcome, DataverseError | Journal.JournalError | E, DataverseClient | R> = runs.stream

/**
 * Creates rows (see `stream`).
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { Bulk } from "@dv-effect/core"
 * const outcomes = Bulk.createMany("contact", [{ lastname: "A" }, { lastname: "B" }], { chunkSize: 500 })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const createMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | Journal.JournalError | E, DataverseClient | R> =>
  runs.stream("create", table, rows, options)

/**
 * Updates rows, each identified by its primary key column or by the `key` columns (see `stream`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const updateMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | Journal.JournalError | E, DataverseClient | R> =>
  runs.stream("update", table, rows, options)

/**
 * Creates or updates rows, each identified by its primary key column or by the `key` columns.
 *
 * @since 0.1.0
 * @category accessors
 */
export const upsertMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | Journal.JournalError | E, DataverseClient | R> =>
  runs.stream("upsert", table, rows, options)

/**
 * Deletes rows, each identified by its primary key column or by the `key` columns; a record
 * already gone counts as deleted. Elastic tables use DeleteMultiple, standard tables `$batch`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const deleteMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | Journal.JournalError | E, DataverseClient | R> =>
  runs.stream("delete", table, rows, options)

/**
 * Totals of a finished run.
 *
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly total: number
  /** Rows done: written, unchanged or skipped. */
  readonly succeeded: number
  readonly failed: number
  readonly created: number
  readonly updated: number
  readonly upserted: number
  readonly deleted: number
  /** Deletes whose record was not there, counted in `deleted` too (see `RowOutcome`). */
  readonly absent: number
  readonly unchanged: number
  readonly skipped: number
  readonly durationMs: number
  /** Rows done per second of the run. */
  readonly rowsPerSecond: number
}

/**
 * A finished engine run: the totals, the rows an earlier run of the journal had finished, and
 * what it cost.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunSummary extends Summary {
  readonly resumed: number
  /** Rows an earlier run of the journal finished as failed (they were reported then). */
  readonly resumedFailed: number
  /**
   * Rows an earlier run sent without an answer that this run found landed: counted among
   * `created` (the job created them), though this run sent them no request.
   */
  readonly landedBefore: number
  readonly requests: number
  readonly retries: number
  readonly throttled: number
  /** Per identity of the connection, in its order (one entry for a connection of one). */
  readonly identities: ReadonlyArray<IdentitySummary>
}

/**
 * Runs a stream of outcomes to its end, calling `onOutcome` for each, and totals them.
 *
 * @since 0.1.0
 * @category combinators
 */
export const summarize: <E, R, E2 = never, R2 = never>(
  outcomes: Stream.Stream<RowOutcome, E, R>,
  onOutcome?: (outcome: RowOutcome) => Effect.Effect<void, E2, R2>
) => Effect.Effect<Summary, E | E2, R | R2> = summary.summarize

/**
 * Runs one operation to its end (see `stream`), calling `onOutcome` for each row, and returns the
 * totals with the requests, retries and throttles it took. With a journal, a chunk's rows are
 * recorded as finished only after `onOutcome` returned for each of them, so what it writes (a
 * rejects file) is never missing a row a resumed run will skip.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulk, Journal } from "@dv-effect/core"
 * declare const rows: ReadonlyArray<Bulk.RowInput>
 * // One journal per input: a new input gets a new journal (or another inputIdentity, refused).
 * const load = Bulk.execute(
 *   "create",
 *   "contact",
 *   rows,
 *   { journal: Journal.file("load-2026-12-07.journal"), inputIdentity: "contacts 2026-12-07" },
 *   (outcome) =>
 *     outcome.status === "failed" ? Effect.logWarning(`row ${outcome.index}: ${outcome.error.message}`) : Effect.void
 * )
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const execute: <E = never, R = never, E2 = never, R2 = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options?: BulkOptions,
  onOutcome?: (outcome: RowOutcome) => Effect.Effect<void, E2, R2>
) => Effect.Effect<RunSummary, DataverseError | Journal.JournalError | E | E2, DataverseClient | R | R2> = runs.execute

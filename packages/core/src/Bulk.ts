/**
 * The bulk engine: rows in, one outcome per row out. Rows are validated against the table's
 * metadata, grouped into chunks, and sent with bounded, adaptive concurrency through the
 * `*Multiple` messages where the table supports them, else through `$batch`.
 *
 * - A bad row fails alone before anything is sent (unknown column, wrong type, too long, option
 *   not in the set, required column missing, bad GUID).
 * - The same record is never in two requests in flight: a row whose record already appeared in
 *   the run waits for a later pass, so the last occurrence wins, as it would one by one.
 * - A standard-table chunk the service refuses for a data error is sent again as a `$batch`
 *   with continue-on-error, so its good rows land and each bad row gets its own error. Elastic
 *   tables report the failed targets themselves.
 * - Requests go to the service's web servers in turn, pinned by their affinity cookies once
 *   known, since its limits are per server. When a server throttles a request, every worker
 *   waits out its Retry-After before sending to that server again, then one request probes
 *   first; the concurrent-request limit also makes the run send fewer requests at once (it
 *   grows back while requests go through), and the execution-time limit, once its 429 has
 *   named the budget, is kept to by the run's own account of each server's window.
 * - Chunk size (`"auto"`) starts at 100 and grows while requests answer quickly; timeouts and
 *   "too large" answers halve it and the refused chunk is sent again in halves.
 * - Creates carry ids chosen by the engine (from the run id and the row's position), so after an
 *   answer that never came the engine asks which rows exist and sends only the others, and a
 *   resumed run (see `Journal`) never creates a row twice.
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Batch from "./Batch.js"
import { DataverseClient, whoAmI, withWebServer } from "./DataverseClient.js"
import { DataverseError, isAmbiguous, isTransient } from "./DataverseError.js"
import { estimateBytes, groupAdaptively, makeChunkSizer } from "./internal/bulk/chunking.js"
import { idMaker, newRunId } from "./internal/bulk/ids.js"
import { makeLanes, serversOf } from "./internal/bulk/lanes.js"
import { makeLimiter } from "./internal/bulk/limiter.js"
import { planSmart } from "./internal/bulk/smart.js"
import type { TableMetadata } from "./internal/metadata.js"
import { validateRow } from "./internal/validate.js"
import type * as Journal from "./Journal.js"
import * as Query from "./Query.js"
import * as Records from "./Records.js"

/**
 * The operations of the engine.
 *
 * @since 0.1.0
 */
export type Operation = "create" | "update" | "upsert" | "delete"

/**
 * What happened to one input row. `index` is the row's 0-based position in the input. An
 * upsert through UpsertMultiple cannot tell created from updated: it reports `upserted`.
 * `unchanged` and `skipped` come from smart mode: the record already held the row's values, or
 * the row would have created (or updated) a record while that was turned off.
 *
 * @since 0.1.0
 */
export type RowOutcome =
  | {
    readonly index: number
    readonly status: "created" | "updated" | "upserted" | "deleted" | "unchanged" | "skipped"
    readonly id: string | undefined
  }
  | { readonly index: number; readonly status: "failed"; readonly error: DataverseError }

/**
 * Running totals, reported after every chunk.
 *
 * @since 0.1.0
 */
export interface Progress {
  /** Rows done: written, unchanged or skipped. */
  readonly succeeded: number
  readonly failed: number
  /** Rows finished by an earlier run of the same journal, not sent again. */
  readonly resumed: number
  /** Requests sent by the engine, retries and existence checks included. */
  readonly requests: number
  /** Requests sent again after a transient failure. */
  readonly retries: number
  /** Requests refused with 429 so far. */
  readonly throttled: number
  /** Chunks being sent now. */
  readonly inFlight: number
  /** Chunks allowed in flight now (adapted to throttling). */
  readonly concurrency: number
  /** Rows per request now (adapted to latency when `chunkSize` is `"auto"`). */
  readonly chunkSize: number
  /** Milliseconds until a Retry-After ends and a request may go; 0 while any web server may be sent to. */
  readonly waitingMs: number
}

/**
 * Smart mode: look the records up first (by primary key or the `key` columns), leave the rows
 * whose values the record already holds (`unchanged`), update only the columns that differ, and
 * create the records that are missing.
 *
 * @since 0.1.0
 */
export interface SmartOptions {
  /** Create the records that do not exist. Default true; false reports them `skipped`. */
  readonly create?: boolean
  /** Update the records that differ. Default true; false reports them `skipped`. */
  readonly update?: boolean
  /** Send every column of a changed row, not only the ones that differ. Default false. */
  readonly allColumns?: boolean
}

/**
 * Options of the bulk operations.
 *
 * @since 0.1.0
 */
export interface BulkOptions {
  /**
   * Rows per request, or `"auto"` (the default): start at 100 and adapt to latency, up to 1,000
   * (100 on elastic tables, as Microsoft advises); timeouts and 413s shrink it.
   */
  readonly chunkSize?: number | "auto"
  /**
   * Most requests in flight, or `"auto"` (the default): the service's `x-ms-dop-hint`. Either way
   * the run sends fewer after a 429 and grows back to this while requests go through.
   */
  readonly concurrency?: number | "auto"
  /**
   * `multiple` (the `*Multiple` messages), `batch` (`$batch`), `single` (one request per row), or
   * `auto` (the default): multiple where supported, else batch.
   */
  readonly strategy?: "auto" | "multiple" | "batch" | "single"
  /** Alternate-key columns that identify the records of update, upsert and delete rows. */
  readonly key?: ReadonlyArray<string>
  /** Skip custom synchronous and/or asynchronous business logic (`MSCRM.BypassBusinessLogicExecution`). */
  readonly bypass?: { readonly sync?: boolean; readonly async?: boolean }
  /** A `tag` the plug-ins of the run can read (`?tag=`). */
  readonly tag?: string
  /** Called after every finished chunk. */
  readonly onProgress?: (progress: Progress) => void
  /** Receives the same progress as `onProgress`. */
  readonly progress?: PubSub.PubSub<Progress>
  /** How the engine retries transient failures; default: the connection's policy. */
  readonly retryPolicy?: Schedule.Schedule<unknown, DataverseError>
  /** Records finished rows, so that a stopped run resumes where it was (see `Journal`). */
  readonly journal?: Journal.Journal
  /** What identifies the input, recorded in the journal so that a resume over another is refused. */
  readonly inputIdentity?: string
  /** Called for each row an earlier run of the journal finished: it gets no outcome. */
  readonly onResumed?: (index: number) => void
  /** The largest request body to build, in bytes (estimated). Default 16 MiB. */
  readonly maxRequestBytes?: number
  /** Smart mode for create, update and upsert (see `SmartOptions`); `true` for the defaults. */
  readonly smart?: boolean | SmartOptions
  /**
   * With `chunkSize: "auto"`: the request latency the chunk size aims under. Default 10 s; the
   * service's own timeout is minutes away.
   */
  readonly targetLatency?: Duration.DurationInput
  /**
   * How a standard-table chunk refused for a data error is searched for its bad rows: `batch`
   * (the default) sends it again as a `$batch` with continue-on-error; `bisect` sends halves
   * through the same message until each bad row stands alone.
   */
  readonly isolation?: "batch" | "bisect"
}

/**
 * An input item: a row, or a row the caller already found invalid (it is reported as failed at
 * its position and never sent).
 *
 * @since 0.1.0
 */
export type RowInput = Records.Row | DataverseError

const maxConcurrency = 52 // the service's concurrent-request limit per user and server

/** The 429 of the concurrent-request limit (the window limits have their own codes). */
const concurrencyLimitCode = "0x80072326"

/** The smallest request the even split of an input's last rows makes. */
const tailChunkSize = 25

/** The 429 of the execution-time window. */
const executionTimeLimitCode = "0x80072321"

/**
 * Resolves `"auto"` concurrency: the service's recommended parallelism, read from a cheap
 * `WhoAmI` when no response has reported it yet; 4 when the service gives no hint.
 *
 * @since 0.1.0
 */
export const resolveConcurrency = (
  concurrency: number | "auto" | undefined
): Effect.Effect<number, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    if (typeof concurrency === "number") {
      if (!Number.isInteger(concurrency) || concurrency < 1) {
        return yield* new DataverseError({
          reason: "InvalidInput",
          message: `concurrency must be a positive whole number or "auto", got ${concurrency}.`
        })
      }
      return concurrency
    }
    const client = yield* DataverseClient
    let hint = (yield* client.hints).dopHint
    if (Option.isNone(hint)) {
      yield* whoAmI
      hint = (yield* client.hints).dopHint
    }
    return Math.min(maxConcurrency, Option.getOrElse(hint, () => 4))
  })

/**
 * Progress of `parallel`.
 *
 * @since 0.1.0
 */
export interface ParallelProgress {
  readonly chunks: number
  readonly items: number
  readonly inFlight: number
}

/**
 * The general form (`Invoke-DataverseParallel`): runs `f` on chunks of `chunkSize` items with at
 * most `concurrency` chunks at a time, and emits what each returns, in input order.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Bulk, Records } from "@dv-effect/core"
 * const emails = Bulk.parallel(contacts, { chunkSize: 50, concurrency: 8 }, (chunk) =>
 *   Effect.forEach(chunk, (c) => Records.update("contact", c.contactid, { emailaddress1: `new-${c.contactid}@example.com` })))
 * ```
 *
 * @since 0.1.0
 */
export const parallel = <A, B, E, R, E2 = never, R2 = never>(
  input: Iterable<A> | Stream.Stream<A, E2, R2>,
  options: {
    readonly chunkSize: number
    readonly concurrency: number
    readonly onProgress?: (progress: ParallelProgress) => void
  },
  f: (chunk: ReadonlyArray<A>, index: number) => Effect.Effect<B, E, R>
): Stream.Stream<B, E | E2, R | R2> =>
  Stream.suspend(() => {
    const progress = { chunks: 0, items: 0, inFlight: 0 }
    return toStream(input).pipe(
      Stream.grouped(options.chunkSize),
      Stream.zipWithIndex,
      Stream.mapEffect(([chunk, index]) =>
        Effect.suspend(() => {
          progress.inFlight++
          return f(Chunk.toReadonlyArray(chunk), index).pipe(
            Effect.ensuring(Effect.sync(() => {
              progress.inFlight--
              progress.chunks++
              progress.items += chunk.length
              options.onProgress?.({ ...progress })
            }))
          )
        }), { concurrency: options.concurrency })
    )
  })

const toStream = <A, E, R>(input: Iterable<A> | Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
  Stream.StreamTypeId in (input as object) ? input as Stream.Stream<A, E, R> : Stream.fromIterable(input as Iterable<A>)

/** A row ready to send: where it goes and what it says. */
interface Prepared {
  readonly index: number
  readonly row: Records.Row
  /** `<entityset>(<key>)`: the record's URL, for update, upsert and delete. */
  readonly path: string | undefined
  readonly id: string | undefined
  /** The engine chose the id (a create without its own): only the engine can have created it. */
  readonly ownId: boolean
}

const messageOf: Record<Operation, "CreateMultiple" | "UpdateMultiple" | "UpsertMultiple" | "DeleteMultiple"> = {
  create: "CreateMultiple",
  update: "UpdateMultiple",
  upsert: "UpsertMultiple",
  delete: "DeleteMultiple"
}

const supportKey = {
  create: "createMultiple",
  update: "updateMultiple",
  upsert: "upsertMultiple",
  delete: "deleteMultiple"
} as const

const invalid = (message: string) => new DataverseError({ reason: "InvalidInput", message })

/** Worth sending again: the request may go through next time (or in smaller pieces). */
const isRetryable = (error: DataverseError) => isTransient(error) || error.reason === "PayloadTooLarge"

/** The 429 among a request's outcomes, if the service refused it. */
const throttleIn = (outcomes: ReadonlyArray<RowOutcome>): DataverseError | undefined => {
  for (const outcome of outcomes) {
    if (outcome.status === "failed" && outcome.error.reason === "Throttled") return outcome.error
  }
  return undefined
}

/** The service ran out of time or room for the request: fewer rows may go through. */
const isTooBig = (error: DataverseError) =>
  error.reason === "PayloadTooLarge" || error.code === "0x80044151" || error.reason === "Timeout"

const failedAll = (items: ReadonlyArray<Prepared>, error: DataverseError): Array<RowOutcome> =>
  items.map((item) => ({ index: item.index, status: "failed", error }))

/** Rows per `In` query: 100 GUIDs keep the URL near 4 KB. */
const lookupGroup = 100

/** One chunk's outcomes, and the journal entry that finishes them. */
interface ChunkResult {
  readonly outcomes: ReadonlyArray<RowOutcome>
  readonly finish: Effect.Effect<void, DataverseError>
}

const makeEngine = <E, R>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions
) =>
  Effect.gen(function*() {
    const chunkOption = options.chunkSize ?? "auto"
    if (chunkOption !== "auto" && (!Number.isInteger(chunkOption) || chunkOption < 1)) {
      return yield* invalid(`chunkSize must be a positive whole number or "auto", got ${chunkOption}.`)
    }
    const maxRequestBytes = options.maxRequestBytes ?? 16 * 1024 * 1024
    if (!(maxRequestBytes > 0)) return yield* invalid(`maxRequestBytes must be positive, got ${maxRequestBytes}.`)
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const ceiling = yield* resolveConcurrency(options.concurrency)
    const elastic = metadata.tableType === "Elastic"
    /** Whether the table has the operation's `*Multiple` message (DeleteMultiple: elastic tables only). */
    const supports = (op: Operation) =>
      op === "delete" ? elastic && metadata.messages.deleteMultiple : metadata.messages[supportKey[op]]
    const byAlternateKey = options.key !== undefined && options.key.length > 0
    if (options.strategy === "multiple" && !supports(operation)) {
      return yield* invalid(
        `Table '${metadata.logicalName}' does not support ${messageOf[operation]}; use strategy "batch" or "auto".`
      )
    }
    const smart: SmartOptions | undefined = options.smart === true
      ? {}
      : options.smart === false || options.smart === undefined
      ? undefined
      : options.smart
    if (smart !== undefined && operation === "delete") return yield* invalid("smart mode does not apply to delete.")
    if (byAlternateKey) {
      const unknown = options.key!.find((column) => !metadata.columns.some((c) => c.logicalName === column))
      if (unknown !== undefined) {
        return yield* invalid(`The key column '${unknown}' does not exist in ${metadata.logicalName}.`)
      }
      // Smart mode looks records up by any columns; writes address them by an alternate key.
      const wanted = [...options.key!].sort().join(",")
      const match = metadata.keys.find((key) => [...key.keyAttributes].sort().join(",") === wanted)
      if (smart === undefined && operation !== "create" && (match === undefined || match.status !== "Active")) {
        const keys = metadata.keys.map((key) => `${key.keyAttributes.join(",")} (${key.logicalName}, ${key.status})`)
        return yield* invalid(
          `${options.key!.join(",")} is not an active alternate key of ${metadata.logicalName}; its keys: ${
            keys.length === 0 ? "none" : keys.join("; ")
          }.`
        )
      }
    }
    const strategy = options.strategy ?? "auto"
    const isolation = options.isolation ?? "batch"
    /** Whether an operation goes through its `*Multiple` message; turned off if the service says it lacks it. */
    const multiple: Record<Operation, boolean> = {
      create: false,
      update: false,
      upsert: false,
      delete: false
    }
    for (const op of ["create", "update", "upsert", "delete"] as const) {
      multiple[op] = strategy === "multiple"
        ? supports(op)
        : strategy === "auto"
        ? supports(op) && !(byAlternateKey && op === operation && (op === "update" || op === "delete"))
        : false
    }
    const headers: Record<string, string> = {}
    const bypass = [
      ...(options.bypass?.sync ? ["CustomSync"] : []),
      ...(options.bypass?.async ? ["CustomAsync"] : [])
    ]
    if (bypass.length > 0) headers["MSCRM.BypassBusinessLogicExecution"] = bypass.join(",")
    if (elastic) headers["Prefer"] = "odata.include-annotations=\"*\""
    const tagQuery = options.tag === undefined ? "" : `?tag=${encodeURIComponent(options.tag)}`
    const retryPolicy = options.retryPolicy ?? client.retryPolicy
    const session = options.journal === undefined
      ? undefined
      : yield* options.journal.open({ operation, table, input: options.inputIdentity })
    const runId = session?.state.runId ?? newRunId()
    const idFor = idMaker(runId)
    const lanes = makeLanes()
    const limiter = yield* makeLimiter({ ceiling, adaptive: true })
    const sizer = strategy === "single"
      ? makeChunkSizer({ fixed: typeof chunkOption === "number" ? chunkOption : 10 })
      : typeof chunkOption === "number"
      ? makeChunkSizer({ fixed: chunkOption })
      : makeChunkSizer({
        start: 100,
        max: elastic ? 100 : 1000,
        targetMs: Duration.toMillis(Duration.decode(options.targetLatency ?? "10 seconds"))
      })
    const counters = {
      succeeded: 0,
      failed: 0,
      resumed: 0,
      requests: 0,
      retries: 0,
      throttled: 0,
      inFlight: 0
    }
    // Rows of the chunks holding a slot, for sizing the last requests of an input.
    let rowsInFlight = 0
    const snapshot = (now: number): Progress => ({
      ...counters,
      concurrency: limiter.current(),
      chunkSize: sizer.current(),
      waitingMs: lanes.waiting(now)
    })
    const report = Effect.gen(function*() {
      if (options.onProgress === undefined && options.progress === undefined) return
      const progress = snapshot(yield* Clock.currentTimeMillis)
      options.onProgress?.(progress)
      if (options.progress !== undefined) yield* PubSub.publish(options.progress, progress)
    })

    const prepare = (row: Records.Row, index: number): Prepared | DataverseError => {
      const problem = validateRow(
        metadata,
        operation === "delete" ? {} : withoutReadAnnotations(row),
        operation === "create"
      )
      if (problem !== undefined) return new DataverseError({ reason: "Validation", message: problem })
      const primary = row[metadata.primaryIdAttribute]
      const id = typeof primary === "string" ? primary.toLowerCase() : undefined
      if (operation === "create") {
        if (id !== undefined) return { index, row, path: undefined, id, ownId: false }
        // The id goes into the body when it is built: no copy of the row here.
        return { index, row, path: undefined, id: idFor(index), ownId: true }
      }
      let ref: Records.RecordRef
      if (byAlternateKey) {
        const values: Record<string, Records.KeyValue> = {}
        for (const column of options.key!) {
          const value = row[column]
          if (value === undefined || value === null) return invalid(`the key column '${column}' has no value`)
          values[column] = value as Records.KeyValue
        }
        ref = values
      } else if (id !== undefined) {
        ref = id
      } else if (smart !== undefined) {
        // Smart mode creates a row without key or id.
        return { index, row, path: undefined, id: undefined, ownId: false }
      } else {
        return invalid(`the row has no '${metadata.primaryIdAttribute}' (or pass the alternate-key columns as key)`)
      }
      const path = Records.bind(metadata, ref).slice(1)
      return { index, row, path, id, ownId: false }
    }

    const succeeded = (op: Operation, item: Prepared, id: string | undefined): RowOutcome => ({
      index: item.index,
      status: op === "create" ? "created" : op === "update" ? "updated" : op === "delete" ? "deleted" : "upserted",
      id
    })

    /** Which of these ids exist: one `In` query per hundred. */
    const existing = (ids: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const found = new Set<string>()
        for (let i = 0; i < ids.length; i += lookupGroup) {
          const group = ids.slice(i, i + lookupGroup)
          counters.requests++
          const rows = yield* Stream.runCollect(
            Query.stream(metadata.logicalName, {
              select: [metadata.primaryIdAttribute],
              filter: Query.isIn(metadata.primaryIdAttribute, group)
            })
          )
          for (const row of rows) {
            const id = row[metadata.primaryIdAttribute]
            if (typeof id === "string") found.add(id.toLowerCase())
          }
        }
        return found
      })

    const viaBatch = (op: Operation, items: ReadonlyArray<Prepared>) =>
      Effect.gen(function*() {
        const requests = items.map((item) => {
          const body = bodyOf(item, metadata.primaryIdAttribute)
          switch (op) {
            case "create":
              return Batch.post(metadata.entitySetName, body)
            case "update":
              return Batch.patch(item.path!, body, { headers: { "If-Match": "*" } })
            case "upsert":
              return Batch.patch(item.path!, body)
            case "delete":
              return Batch.del(item.path!)
          }
        })
        counters.requests++
        const results = yield* Effect.either(
          Batch.execute(requests, { continueOnError: true, headers, retry: false })
        )
        if (results._tag === "Left") return failedAll(items, results.left)
        return results.right.map((result, i): RowOutcome => {
          const item = items[i]!
          if (result._tag === "Success") return succeeded(op, item, result.id ?? item.id)
          // A delete of a record that is already gone has done its job.
          if (result._tag === "Failure" && op === "delete" && result.error.reason === "NotFound") {
            return succeeded(op, item, item.id)
          }
          const error = result._tag === "Failure"
            ? result.error
            : new DataverseError({
              reason: "Unknown",
              message: `The $batch answer did not say what happened to this row (${result._tag}).`
            })
          return { index: item.index, status: "failed", error }
        })
      })

    const viaSingle = (op: Operation, items: ReadonlyArray<Prepared>) =>
      Effect.forEach(items, (item) => viaBatchless(op, item))

    /** One request for one row. */
    const viaBatchless = (op: Operation, item: Prepared) =>
      Effect.gen(function*() {
        const body = bodyOf(item, metadata.primaryIdAttribute)
        const request = op === "create"
          ? HttpClientRequest.post(metadata.entitySetName).pipe(HttpClientRequest.bodyUnsafeJson(body))
          : op === "delete"
          ? HttpClientRequest.del(item.path!)
          : HttpClientRequest.patch(item.path!).pipe(
            HttpClientRequest.bodyUnsafeJson(body),
            HttpClientRequest.setHeaders(op === "update" ? { "If-Match": "*" } : {})
          )
        counters.requests++
        const result = yield* Effect.either(
          client.executeJson(HttpClientRequest.setHeaders(request, headers), { idempotent: true, retry: false })
        )
        if (result._tag === "Right") {
          const id = Records.idFromEntityUrl(result.right.headers["odata-entityid"]) ?? item.id
          return succeeded(op, item, id)
        }
        if (op === "delete" && result.left.reason === "NotFound") return succeeded(op, item, item.id)
        return { index: item.index, status: "failed", error: result.left } as RowOutcome
      })

    const viaMultiple = (op: Operation, items: ReadonlyArray<Prepared>): Effect.Effect<
      Array<RowOutcome>,
      never,
      DataverseClient
    > =>
      Effect.gen(function*() {
        const odataType = `Microsoft.Dynamics.CRM.${metadata.logicalName}`
        const targets = items.map((item) => {
          if (op === "delete") {
            return { "@odata.type": odataType, [metadata.primaryIdAttribute]: item.id, ...partitionOf(item.row) }
          }
          const target: Record<string, unknown> = { "@odata.type": odataType }
          const row = item.row
          for (const name in row) if (!name.startsWith("@odata.")) target[name] = row[name]
          if (item.ownId) target[metadata.primaryIdAttribute] = item.id
          if (op === "upsert" && item.id === undefined && item.path !== undefined) target["@odata.id"] = item.path
          if (op === "update" && item.id !== undefined) target[metadata.primaryIdAttribute] = item.id
          return target
        })
        counters.requests++
        const request = HttpClientRequest.post(
          `${metadata.entitySetName}/Microsoft.Dynamics.CRM.${messageOf[op]}${tagQuery}`
        ).pipe(
          HttpClientRequest.setHeaders(headers),
          HttpClientRequest.bodyUnsafeJson({ Targets: targets })
        )
        const result = yield* Effect.either(client.executeJson(request, { idempotent: true, retry: false }))
        if (result._tag === "Right") {
          const ids = (result.right.body as { Ids?: ReadonlyArray<unknown> } | undefined)?.Ids
          return items.map((item, i) =>
            succeeded(
              op,
              item,
              op === "create" ? String(ids?.[i] ?? item.id ?? "").toLowerCase() || undefined : item.id
            )
          )
        }
        const error = result.left
        if (error.status === 404 && error.code === "0x80060888") {
          if (strategy === "auto") {
            // The metadata said yes, the service says no: the rest of the run uses $batch.
            multiple[op] = false
            return yield* viaBatch(op, items)
          }
          return failedAll(
            items,
            new DataverseError({
              ...error,
              reason: "UnsupportedMessage",
              message: `Table '${metadata.logicalName}' does not support ${messageOf[op]} (${error.message})`
            })
          )
        }
        if (isRetryable(error) || error.status === undefined) return failedAll(items, error)
        if (elastic) return elasticOutcomes(op, items, error)
        // A standard table refused the whole chunk for one bad row: find it, land the rest.
        if (items.length === 1) return failedAll(items, error)
        if (isolation === "batch") return yield* viaBatch(op, items)
        // Bisection: halves through the same message until the bad rows stand alone.
        const half = Math.ceil(items.length / 2)
        const first = yield* viaMultiple(op, items.slice(0, half))
        const second = yield* viaMultiple(op, items.slice(half))
        return [...first, ...second]
      })

    /** Elastic tables applied every target they could and list the failed ones. */
    const elasticOutcomes = (
      op: Operation,
      items: ReadonlyArray<Prepared>,
      error: DataverseError
    ): Array<RowOutcome> => {
      const raw = Object.entries(error.details ?? {}).find(([name]) => name.endsWith("BulkApiErrorDetails"))?.[1]
      let details: Array<{ RequestIndex?: unknown; StatusCode?: unknown; Message?: unknown; ErrorCode?: unknown }> = []
      try {
        details = typeof raw === "string" ? JSON.parse(raw) : Array.isArray(raw) ? raw : []
      } catch {
        details = []
      }
      if (details.length === 0) return failedAll(items, error)
      const failed = new Map(details.map((d) => [Number(d.RequestIndex), d]))
      return items.map((item, i): RowOutcome => {
        const detail = failed.get(i)
        if (detail === undefined) return succeeded(op, item, item.id)
        const status = Number(detail.StatusCode)
        if (op === "delete" && status === 404) return succeeded(op, item, item.id)
        return {
          index: item.index,
          status: "failed",
          error: new DataverseError({
            reason: status === 404 ? "NotFound" : status === 412 ? "DuplicateKey" : "Validation",
            status,
            code: typeof detail.ErrorCode === "string" ? detail.ErrorCode : error.code,
            message: typeof detail.Message === "string" ? detail.Message : error.message,
            requestId: error.requestId
          })
        }
      })
    }

    const sendOnce = (op: Operation, items: ReadonlyArray<Prepared>) =>
      strategy === "single" ? viaSingle(op, items) : multiple[op] ? viaMultiple(op, items) : viaBatch(op, items)

    /**
     * Sends rows until each has a final outcome: waits out throttling, retries transient
     * failures by the retry policy, halves chunks that are too big, and after an answer that
     * never came sends only the creates that did not land.
     */
    const sendResilient = (
      op: Operation,
      items: ReadonlyArray<Prepared>,
      round: number
    ): Effect.Effect<Array<RowOutcome>, never, DataverseClient> =>
      Effect.gen(function*() {
        const driver = yield* Schedule.driver(retryPolicy)
        const final: Array<RowOutcome> = []
        let pending = items
        while (pending.length > 0) {
          const hints = yield* client.hints
          const lane = lanes.pick(yield* Clock.currentTimeMillis, hints)
          const servers = () => serversOf(lane, hints.webServers)
          lane.inFlight++
          const [took, outcomes] = yield* lane.gate.pass(
            Effect.zipRight(lane.budget.wait(servers), Effect.timed(sendOnce(op, pending))),
            ([, outcomes]) => throttleIn(outcomes)
          ).pipe(
            withWebServer(lane.server),
            Effect.ensuring(Effect.sync(() => lane.inFlight--))
          )
          const answered = yield* Clock.currentTimeMillis
          const elapsed = Duration.toMillis(took)
          const again: Array<Prepared> = []
          let error: DataverseError | undefined
          outcomes.forEach((outcome, i) => {
            if (outcome.status === "failed" && isRetryable(outcome.error)) {
              again.push(pending[i]!)
              error ??= outcome.error
            } else final.push(outcome)
          })
          // The service charges what it ran: every answer but a refusal (a lost answer's time is
          // unknown; counting a whole client timeout would stall the run).
          if (error === undefined || (error.status !== undefined && error.reason !== "Throttled")) {
            lane.budget.record(answered, elapsed)
            // The service's own count says the next request would be refused: probe first. The
            // figures are the last answer's, so only telling when one server answers them all.
            const latest = yield* client.hints
            if (
              lanes.count() <= 1 && (
                Option.getOrElse(latest.executionRemainingMs, () => 1) <= 0 ||
                Option.getOrElse(latest.requestsRemaining, () => 1) <= 0
              )
            ) lane.gate.spent()
          }
          if (error === undefined) {
            sizer.observe(pending.length, elapsed)
            yield* limiter.succeeded
            break
          }
          if (error.reason === "Throttled") {
            counters.throttled++
            yield* lane.gate.hold(error)
            // Too many in flight: send fewer. A window limit is waited out instead (by the lane
            // of the server that refused; the others go on); fewer in flight would not refill
            // the window sooner. The execution-time 429 names its budget: from then on the run
            // keeps its own account of each server's window and waits for room instead of
            // collecting more 429s.
            if (error.code === concurrencyLimitCode) yield* limiter.throttled(round)
            else if (error.code === executionTimeLimitCode) lanes.learn(error.message)
          }
          if (isTooBig(error)) sizer.shrink()
          pending = again
          if ((error.reason === "PayloadTooLarge" || error.code === "0x80044151") && pending.length > 1) {
            const half = Math.ceil(pending.length / 2)
            for (const outcome of yield* sendResilient(op, pending.slice(0, half), round)) final.push(outcome)
            for (const outcome of yield* sendResilient(op, pending.slice(half), round)) final.push(outcome)
            break
          }
          if (op === "create" && isAmbiguous(error)) {
            // The service may have written them before the answer was lost.
            const found = yield* Effect.either(existing(pending.map((item) => item.id!)))
            if (found._tag === "Right") {
              for (const item of pending) if (found.right.has(item.id!)) final.push(succeeded(op, item, item.id))
              pending = pending.filter((item) => !found.right.has(item.id!))
              if (pending.length === 0) break
            }
          }
          const next = yield* Effect.either(driver.next(error))
          if (next._tag === "Left") {
            for (const outcome of failedAll(pending, error)) final.push(outcome)
            break
          }
          counters.retries++
        }
        if (op === "create") {
          // A duplicate of an id the engine chose is a row an earlier attempt already created.
          const byIndex = new Map(items.map((item) => [item.index, item]))
          const own = final.flatMap((outcome) => {
            const item = byIndex.get(outcome.index)
            return outcome.status === "failed" && outcome.error.reason === "DuplicateKey" && item?.ownId === true
              ? [item]
              : []
          })
          if (own.length > 0) {
            const found = yield* Effect.either(existing(own.map((item) => item.id!)))
            if (found._tag === "Right") {
              for (let i = 0; i < final.length; i++) {
                const item = byIndex.get(final[i]!.index)!
                if (own.includes(item) && found.right.has(item.id!)) final[i] = succeeded(op, item, item.id)
              }
            }
          }
        }
        return final
      })

    /** Smart mode: look the records up, then create, update or leave each row. */
    const smartGroups = (items: ReadonlyArray<Prepared>) =>
      Effect.gen(function*() {
        const plan = yield* planSmart({
          metadata,
          items,
          key: options.key,
          create: smart?.create ?? true,
          update: smart?.update ?? true,
          allColumns: smart?.allColumns ?? false,
          onRequest: () => void counters.requests++
        })
        const outcomes: Array<RowOutcome> = [
          ...plan.unchanged.map(({ id, item }): RowOutcome => ({ index: item.index, status: "unchanged", id })),
          ...plan.skipped.map(({ id, item }): RowOutcome => ({ index: item.index, status: "skipped", id }))
        ]
        const creates = plan.create.map((item): Prepared => {
          if (item.id !== undefined) {
            return { index: item.index, row: item.row, path: undefined, id: item.id, ownId: false }
          }
          return { index: item.index, row: item.row, path: undefined, id: idFor(item.index), ownId: true }
        })
        const updates = plan.update.map(({ id, item, row }): Prepared => ({
          index: item.index,
          row,
          path: Records.bind(metadata, id).slice(1),
          id,
          ownId: false
        }))
        return { outcomes, groups: [["create", creates], ["update", updates]] as const }
      })

    /** One chunk: validate, plan, journal, send, journal, report. */
    const processChunk = (entries: ReadonlyArray<readonly [RowInput, number]>) =>
      Effect.suspend(() => {
        // Validated before taking a slot: the next chunk is ready when a request answers.
        const outcomes: Array<RowOutcome> = []
        const items: Array<Prepared> = []
        for (const [input, index] of entries) {
          const prepared = input instanceof DataverseError ? input : prepare(input, index)
          if (prepared instanceof DataverseError) outcomes.push({ index, status: "failed", error: prepared })
          else items.push(prepared)
        }
        return limiter.withSlot((round) =>
          Effect.gen(function*() {
            counters.inFlight++
            rowsInFlight += items.length
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                counters.inFlight--
                rowsInFlight -= items.length
              })
            )
            let groups: ReadonlyArray<readonly [Operation, ReadonlyArray<Prepared>]> = [[operation, items]]
            if (smart !== undefined && items.length > 0) {
              const planned = yield* Effect.either(smartGroups(items))
              if (planned._tag === "Left") {
                for (const outcome of failedAll(items, planned.left)) outcomes.push(outcome)
                groups = []
              } else {
                for (const outcome of planned.right.outcomes) outcomes.push(outcome)
                groups = planned.right.groups
              }
            }
            for (const [op, group] of groups) {
              if (group.length === 0) continue
              let pending = group
              if (op === "create" && session !== undefined) {
                // Rows a stopped run had sent without an answer may have landed: ask first.
                const unsure = pending.filter((item) => session.state.unanswered.has(item.index))
                if (unsure.length > 0) {
                  const found = yield* Effect.either(existing(unsure.map((item) => item.id!)))
                  if (found._tag === "Right") {
                    for (const item of unsure) {
                      if (found.right.has(item.id!)) outcomes.push(succeeded(op, item, item.id))
                    }
                    pending = pending.filter((item) =>
                      !(found.right.has(item.id!) && session.state.unanswered.has(item.index))
                    )
                  }
                }
                if (pending.length > 0) yield* session.sent(pending.map((item) => item.index))
              }
              if (pending.length > 0) {
                for (const outcome of yield* sendResilient(op, pending, round)) outcomes.push(outcome)
              }
            }
            outcomes.sort((a, b) => a.index - b.index)
            const ok: Array<number> = []
            const failedForGood: Array<number> = []
            for (const outcome of outcomes) {
              if (outcome.status === "failed") {
                counters.failed++
                if (!isRetryable(outcome.error)) failedForGood.push(outcome.index)
              } else {
                counters.succeeded++
                ok.push(outcome.index)
              }
            }
            yield* report
            // Journalled once the outcomes have been handed on (see `execute`): a row is finished
            // only after its caller has seen, and e.g. written to a rejects file, its outcome.
            const finish = session === undefined ? Effect.void : session.finished(ok, failedForGood)
            return { outcomes, finish } satisfies ChunkResult
          }).pipe(Effect.scoped)
        )
      })

    // Rows of an input of known length. Near its end, requests share what is left evenly, so
    // that every worker finishes at about the same time instead of one answering a full chunk
    // alone at the end. What is left counts the rows in flight as half done, as on average they
    // are: counting only the rows not yet sent shrank every request by a slot's share, down to
    // a long run of tiny requests each paying the service's fixed cost.
    const knownTotal = Array.isArray(rows) ? rows.length : undefined
    const chunkSizeAt = (grouped: number) =>
      knownTotal === undefined || !sizer.adaptive
        ? sizer.current()
        : Math.min(
          sizer.current(),
          Math.max(
            tailChunkSize,
            Math.ceil((knownTotal - grouped + rowsInFlight / 2) / limiter.current())
          )
        )

    const sendAll = <E2, R2>(input: Stream.Stream<readonly [RowInput, number], E2, R2>) =>
      groupAdaptively(
        // An array arrives in chunks of thousands, all grouped at once at the size of that
        // moment; in small pieces each request's size follows the latest answers.
        Stream.rechunk(input, 64),
        chunkSizeAt,
        maxRequestBytes,
        ([row]) => (row instanceof DataverseError ? 0 : estimateBytes(row))
      )
        .pipe(
          // In the order requests finish: in input order, a slow request would hold back the
          // answers behind it and, with them, the workers' next requests. One chunk more than the
          // slots is being validated while they are all busy.
          Stream.mapEffect(processChunk, { concurrency: ceiling + 1, unordered: true })
        )

    // First occurrences run now; a record seen before waits for the next pass.
    const seen = new Set<string>()
    const deferred: Array<readonly [RowInput, number]> = []
    const firstPass = toStream(rows).pipe(
      Stream.zipWithIndex,
      Stream.filter(([input, index]) => {
        if (session !== undefined && session.state.isFinished(index)) {
          counters.resumed++
          options.onResumed?.(index)
          return false
        }
        if (input instanceof DataverseError) return true
        const identity = identityOf(operation, metadata, input, options.key)
        if (identity === undefined) return true
        if (seen.has(identity)) {
          deferred.push([input, index])
          return false
        }
        seen.add(identity)
        return true
      })
    )
    /** Deferred rows, pass by pass: each pass ends before the next starts, so the last write wins. */
    const passes = (
      pending: ReadonlyArray<readonly [RowInput, number]>
    ): Stream.Stream<ChunkResult, DataverseError, DataverseClient> => {
      if (pending.length === 0) return Stream.empty
      const inPass = new Set<string>()
      const now: Array<readonly [RowInput, number]> = []
      const later: Array<readonly [RowInput, number]> = []
      for (const item of pending) {
        const identity = item[0] instanceof DataverseError
          ? undefined
          : identityOf(operation, metadata, item[0], options.key)
        if (identity !== undefined && inPass.has(identity)) later.push(item)
        else {
          if (identity !== undefined) inPass.add(identity)
          now.push(item)
        }
      }
      return Stream.concat(sendAll(Stream.fromIterable(now)), Stream.suspend(() => passes(later)))
    }
    const chunks = Stream.concat(sendAll(firstPass), Stream.suspend(() => passes(deferred))).pipe(
      Stream.ensuring(report)
    )
    const planned: Plan = {
      table: metadata.logicalName,
      entitySet: metadata.entitySetName,
      tableType: metadata.tableType,
      operation,
      strategy: strategy === "single" ? "single" : multiple[operation] ? "multiple" : "batch",
      message: strategy !== "single" && multiple[operation] ? messageOf[operation] : undefined,
      chunkSize: chunkOption,
      startChunkSize: sizer.current(),
      concurrency: ceiling,
      maxRequestBytes
    }
    return {
      chunks: chunks as Stream.Stream<ChunkResult, DataverseError | E, DataverseClient | R>,
      progress: () => snapshot(Date.now()),
      finishedBefore: session?.state.finishedBefore ?? { succeeded: 0, failed: 0 },
      plan: planned,
      prepare
    }
  })

/**
 * How a run would go: where the rows go and how they are sent.
 *
 * @since 0.1.0
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
  /** Most requests in flight. */
  readonly concurrency: number
  readonly maxRequestBytes: number
}

/**
 * What a dry run found.
 *
 * @since 0.1.0
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
 * Checks rows and plans the run without writing anything: each row is validated as `run` would
 * (invalid ones reach `onOutcome` as failed), and the plan says how the rest would be sent. It
 * reads the table's metadata and the service's parallelism hint; smart mode's lookups are not
 * made.
 *
 * @since 0.1.0
 */
export const dryRun = <E = never, R = never, E2 = never, R2 = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {},
  onOutcome: (outcome: RowOutcome) => Effect.Effect<void, E2, R2> = () => Effect.void
): Effect.Effect<DryRun, DataverseError | E | E2, DataverseClient | R | R2> =>
  Effect.scoped(
    Effect.gen(function*() {
      const { journal: _journal, ...rest } = options
      const engine = yield* makeEngine(operation, table, [], rest)
      const counts = { total: 0, invalid: 0 }
      const valid = Stream.zipWithIndex(toStream(rows)).pipe(
        Stream.mapEffect(([input, index]) => {
          counts.total++
          const prepared = input instanceof DataverseError ? input : engine.prepare(input, index)
          if (!(prepared instanceof DataverseError)) return Effect.succeed(Option.some(prepared))
          counts.invalid++
          return Effect.as(onOutcome({ index, status: "failed", error: prepared }), Option.none<Prepared>())
        }),
        Stream.filterMap((prepared) => prepared)
      )
      // The requests the valid rows would take, cut as the engine cuts them at its starting size.
      const requests = yield* Stream.runCount(
        groupAdaptively(
          valid,
          () => engine.plan.startChunkSize,
          engine.plan.maxRequestBytes,
          (item) => estimateBytes(item.row)
        )
      )
      return {
        plan: engine.plan,
        total: counts.total,
        valid: counts.total - counts.invalid,
        invalid: counts.invalid,
        requests
      }
    })
  )

/**
 * Runs one operation over rows (see the module description). Outcomes come out as their
 * requests finish, each with its input `index` (waiting for the oldest request to hand them out
 * in input order would leave workers idle behind it); rows deferred to a later pass (a record
 * that appeared earlier in the run) come after. Rows a journal says an earlier run finished
 * produce no outcome.
 *
 * @since 0.1.0
 */
export const run = <E = never, R = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | E, DataverseClient | R> =>
  Stream.unwrapScoped(
    Effect.map(
      makeEngine(operation, table, rows, options),
      (engine) =>
        engine.chunks.pipe(
          Stream.mapEffect((chunk) => Effect.as(chunk.finish, chunk.outcomes)),
          Stream.flattenIterables
        )
    )
  )

/** The identity of a row's record, for spotting the same record twice in a run. */
const identityOf = (
  operation: Operation,
  metadata: TableMetadata,
  row: Records.Row,
  key: ReadonlyArray<string> | undefined
): string | undefined => {
  if (key !== undefined && key.length > 0 && operation !== "create") {
    return `k:${
      JSON.stringify(
        key.map((column) => (typeof row[column] === "string" ? (row[column] as string).toLowerCase() : row[column]))
      )
    }`
  }
  const primary = row[metadata.primaryIdAttribute]
  return typeof primary === "string" ? `i:${primary.toLowerCase()}` : undefined
}

/** Read-back annotations (`@odata.etag`) are not part of what a row writes. */
const withoutReadAnnotations = (row: Records.Row): Records.Row => {
  if (!hasReadAnnotations(row)) return row
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(row)) {
    if (!name.startsWith("@odata.") || name === "@odata.type") out[name] = value
  }
  return out
}

const hasReadAnnotations = (row: Records.Row): boolean => {
  for (const name in row) if (name.startsWith("@odata.") && name !== "@odata.type") return true
  return false
}

/** What a row writes: without `@odata.*` annotations, with the id the engine chose. */
const bodyOf = (item: Prepared, primaryIdAttribute: string): Record<string, unknown> => {
  const row = item.row
  let plain = !item.ownId
  if (plain) { for (const name in row) if (name.startsWith("@odata.")) plain = false }
  if (plain) return row as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const name in row) if (!name.startsWith("@odata.")) out[name] = row[name]
  if (item.ownId) out[primaryIdAttribute] = item.id
  return out
}

const partitionOf = (row: Records.Row): Record<string, unknown> =>
  typeof row["partitionid"] === "string" ? { partitionid: row["partitionid"] } : {}

/**
 * Creates rows (see `run`).
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { Bulk } from "@dv-effect/core"
 * const outcomes = Bulk.createMany("contact", [{ lastname: "A" }, { lastname: "B" }], { chunkSize: 500 })
 * ```
 *
 * @since 0.1.0
 */
export const createMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | E, DataverseClient | R> => run("create", table, rows, options)

/**
 * Updates rows, each identified by its primary key column or by the `key` columns (see `run`).
 *
 * @since 0.1.0
 */
export const updateMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | E, DataverseClient | R> => run("update", table, rows, options)

/**
 * Creates or updates rows, each identified by its primary key column or by the `key` columns.
 *
 * @since 0.1.0
 */
export const upsertMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | E, DataverseClient | R> => run("upsert", table, rows, options)

/**
 * Deletes rows, each identified by its primary key column or by the `key` columns; a record
 * already gone counts as deleted. Elastic tables use DeleteMultiple, standard tables `$batch`.
 *
 * @since 0.1.0
 */
export const deleteMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | E, DataverseClient | R> => run("delete", table, rows, options)

/**
 * Totals of a finished run.
 *
 * @since 0.1.0
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
 */
export interface RunSummary extends Summary {
  readonly resumed: number
  /** Rows an earlier run of the journal finished as failed (they were reported then). */
  readonly resumedFailed: number
  readonly requests: number
  readonly retries: number
  readonly throttled: number
}

const emptyCounts = {
  total: 0,
  succeeded: 0,
  failed: 0,
  created: 0,
  updated: 0,
  upserted: 0,
  deleted: 0,
  unchanged: 0,
  skipped: 0
}

/**
 * Runs a stream of outcomes to its end, calling `onOutcome` for each, and totals them.
 *
 * @since 0.1.0
 */
export const summarize = <E, R, E2 = never, R2 = never>(
  outcomes: Stream.Stream<RowOutcome, E, R>,
  onOutcome: (outcome: RowOutcome) => Effect.Effect<void, E2, R2> = () => Effect.void
): Effect.Effect<Summary, E | E2, R | R2> =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const counts = { ...emptyCounts }
    yield* Stream.runForEach(outcomes, (outcome) => {
      counts.total++
      counts[outcome.status === "failed" ? "failed" : "succeeded"]++
      if (outcome.status !== "failed") counts[outcome.status]++
      return onOutcome(outcome)
    })
    const durationMs = (yield* Clock.currentTimeMillis) - started
    return {
      ...counts,
      durationMs,
      rowsPerSecond: durationMs > 0 ? Math.round((counts.succeeded * 1000) / durationMs) : 0
    }
  })

/**
 * Runs one operation to its end (see `run`), calling `onOutcome` for each row, and returns the
 * totals with the requests, retries and throttles it took. With a journal, a chunk's rows are
 * recorded as finished only after `onOutcome` returned for each of them, so what it writes (a
 * rejects file) is never missing a row a resumed run will skip.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulk, Journal } from "@dv-effect/core"
 * const load = Bulk.execute("create", "contact", rows, { journal: Journal.file("load.journal") }, (outcome) =>
 *   outcome.status === "failed" ? Effect.logWarning(`row ${outcome.index}: ${outcome.error.message}`) : Effect.void)
 * ```
 *
 * @since 0.1.0
 */
export const execute = <E = never, R = never, E2 = never, R2 = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {},
  onOutcome: (outcome: RowOutcome) => Effect.Effect<void, E2, R2> = () => Effect.void
): Effect.Effect<RunSummary, DataverseError | E | E2, DataverseClient | R | R2> =>
  Effect.scoped(
    Effect.gen(function*() {
      const engine = yield* makeEngine(operation, table, rows, options)
      const started = yield* Clock.currentTimeMillis
      const counts = { ...emptyCounts }
      yield* Stream.runForEach(engine.chunks, (chunk) =>
        Effect.zipRight(
          Effect.forEach(chunk.outcomes, (outcome) => {
            counts.total++
            counts[outcome.status === "failed" ? "failed" : "succeeded"]++
            if (outcome.status !== "failed") counts[outcome.status]++
            return onOutcome(outcome)
          }, { discard: true }),
          chunk.finish
        ))
      const durationMs = (yield* Clock.currentTimeMillis) - started
      const progress = engine.progress()
      return {
        ...counts,
        durationMs,
        rowsPerSecond: durationMs > 0 ? Math.round((counts.succeeded * 1000) / durationMs) : 0,
        resumed: progress.resumed,
        resumedFailed: engine.finishedBefore.failed,
        requests: progress.requests,
        retries: progress.retries,
        throttled: progress.throttled
      }
    })
  )

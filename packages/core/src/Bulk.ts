/**
 * The bulk engine: rows in, one outcome per row out. Rows are validated against the table's
 * metadata, grouped into chunks, and sent with bounded concurrency through the `*Multiple`
 * messages where the table supports them, else through `$batch`.
 *
 * - A bad row fails alone before anything is sent (unknown column, wrong type, too long, option
 *   not in the set, required column missing, bad GUID).
 * - The same record is never in two requests in flight: a row whose record already appeared in
 *   the run waits for a later pass, so the last occurrence wins, as it would one by one.
 * - A standard-table chunk the service refuses for a data error is sent again as a `$batch`
 *   with continue-on-error, so its good rows land and each bad row gets its own error. Elastic
 *   tables report the failed targets themselves.
 * - When the service throttles one request, every worker of the run waits out its Retry-After.
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Batch from "./Batch.js"
import { DataverseClient, whoAmI } from "./DataverseClient.js"
import { DataverseError, isAmbiguous, isTransient } from "./DataverseError.js"
import type { TableMetadata } from "./internal/metadata.js"
import { validateRow } from "./internal/validate.js"
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
 *
 * @since 0.1.0
 */
export type RowOutcome =
  | {
    readonly index: number
    readonly status: "created" | "updated" | "upserted" | "deleted"
    readonly id: string | undefined
  }
  | { readonly index: number; readonly status: "failed"; readonly error: DataverseError }

/**
 * Running totals, reported after every chunk.
 *
 * @since 0.1.0
 */
export interface Progress {
  readonly succeeded: number
  readonly failed: number
  readonly requests: number
  readonly inFlight: number
  /** Requests refused with 429 so far. */
  readonly throttled: number
}

/**
 * Options of the bulk operations.
 *
 * @since 0.1.0
 */
export interface BulkOptions {
  /** Rows per request. Default 100 (Microsoft's documented starting range is 100-1,000). */
  readonly chunkSize?: number
  /** Requests in flight, or `"auto"` (the default): the service's `x-ms-dop-hint`. */
  readonly concurrency?: number | "auto"
  /** `multiple` (the `*Multiple` messages), `batch` (`$batch`), or `auto` (the default): multiple where supported. */
  readonly strategy?: "auto" | "multiple" | "batch"
  /** Alternate-key columns that identify the records of update, upsert and delete rows. */
  readonly key?: ReadonlyArray<string>
  /** Skip custom synchronous and/or asynchronous business logic (`MSCRM.BypassBusinessLogicExecution`). */
  readonly bypass?: { readonly sync?: boolean; readonly async?: boolean }
  /** A `tag` the plug-ins of the run can read (`?tag=`). */
  readonly tag?: string
  /** Called after every finished chunk. */
  readonly onProgress?: (progress: Progress) => void
}

/**
 * An input item: a row, or a row the caller already found invalid (it is reported as failed at
 * its position and never sent).
 *
 * @since 0.1.0
 */
export type RowInput = Records.Row | DataverseError

const maxConcurrency = 52 // the service's concurrent-request limit per user and server

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
  options: { readonly chunkSize: number; readonly concurrency: number },
  f: (chunk: ReadonlyArray<A>, index: number) => Effect.Effect<B, E, R>
): Stream.Stream<B, E | E2, R | R2> =>
  toStream(input).pipe(
    Stream.grouped(options.chunkSize),
    Stream.zipWithIndex,
    Stream.mapEffect(([chunk, index]) => f(Chunk.toReadonlyArray(chunk), index), { concurrency: options.concurrency })
  )

const toStream = <A, E, R>(input: Iterable<A> | Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
  Stream.StreamTypeId in (input as object) ? input as Stream.Stream<A, E, R> : Stream.fromIterable(input as Iterable<A>)

/** A row ready to send: where it goes and what it says. */
interface Prepared {
  readonly index: number
  readonly row: Records.Row
  /** The record's identity in the run (primary key or alternate-key values), for duplicates. */
  readonly identity: string | undefined
  /** `<entityset>(<key>)`: the record's URL, for update, upsert and delete. */
  readonly path: string | undefined
  readonly id: string | undefined
}

/** Every worker of one run waits while the service has asked one of them to. */
const makeGate = () => {
  let resumeAt = 0
  return {
    wait: Effect.clockWith((clock) => clock.currentTimeMillis).pipe(
      Effect.flatMap((now) => (resumeAt > now ? Effect.sleep(Duration.millis(resumeAt - now)) : Effect.void))
    ),
    hold: (error: DataverseError) =>
      error.reason !== "Throttled" || error.retryAfter === undefined
        ? Effect.void
        : Effect.clockWith((clock) => clock.currentTimeMillis).pipe(
          Effect.map((now) => {
            resumeAt = Math.max(resumeAt, now + Duration.toMillis(error.retryAfter!))
          })
        )
  }
}

const messageOf: Record<Operation, "CreateMultiple" | "UpdateMultiple" | "UpsertMultiple" | "DeleteMultiple"> = {
  create: "CreateMultiple",
  update: "UpdateMultiple",
  upsert: "UpsertMultiple",
  delete: "DeleteMultiple"
}

const invalid = (message: string) => new DataverseError({ reason: "InvalidInput", message })

/**
 * Runs one operation over rows (see the module description). Outcomes come out in input order
 * within each pass; rows deferred to a later pass (a record that appeared earlier in the run)
 * come after.
 *
 * @since 0.1.0
 */
export const run = <E = never, R = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | E, DataverseClient | R> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const chunkSize = options.chunkSize ?? 100
      if (!Number.isInteger(chunkSize) || chunkSize < 1) {
        return yield* invalid(`chunkSize must be a positive whole number, got ${chunkSize}.`)
      }
      const client = yield* DataverseClient
      const metadata = yield* client.table(table)
      const concurrency = yield* resolveConcurrency(options.concurrency)
      const elastic = metadata.tableType === "Elastic"
      const supported = operation === "delete"
        ? elastic && metadata.messages.deleteMultiple
        : metadata.messages[messageOf[operation].replace(/^./, (c) => c.toLowerCase()) as "createMultiple"]
      // UpdateMultiple and DeleteMultiple address records by primary key only.
      const byAlternateKey = options.key !== undefined && options.key.length > 0
      const useMultiple = options.strategy === "batch"
        ? false
        : options.strategy === "multiple"
        ? true
        : supported && !(byAlternateKey && (operation === "update" || operation === "delete"))
      if (options.strategy === "multiple" && !supported) {
        return yield* invalid(
          `Table '${metadata.logicalName}' does not support ${messageOf[operation]}; use strategy "batch" or "auto".`
        )
      }
      const headers: Record<string, string> = {}
      const bypass = [
        ...(options.bypass?.sync ? ["CustomSync"] : []),
        ...(options.bypass?.async ? ["CustomAsync"] : [])
      ]
      if (bypass.length > 0) headers["MSCRM.BypassBusinessLogicExecution"] = bypass.join(",")
      if (elastic) headers["Prefer"] = "odata.include-annotations=\"*\""
      const tagQuery = options.tag === undefined ? "" : `?tag=${encodeURIComponent(options.tag)}`
      const gate = makeGate()
      const progress = { succeeded: 0, failed: 0, requests: 0, inFlight: 0, throttled: 0 }
      const report = () => options.onProgress?.({ ...progress })

      const prepare = (row: Records.Row, index: number): Prepared | DataverseError => {
        const problem = validateRow(
          metadata,
          operation === "delete" ? {} : withoutKeyAnnotations(row),
          operation === "create"
        )
        if (problem !== undefined) return new DataverseError({ reason: "Validation", message: problem })
        const primary = row[metadata.primaryIdAttribute]
        const id = typeof primary === "string" ? primary.toLowerCase() : undefined
        if (operation === "create") return { index, row, identity: id, path: undefined, id }
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
        } else {
          return invalid(`the row has no '${metadata.primaryIdAttribute}' (or pass the alternate-key columns as key)`)
        }
        const path = Records.bind(metadata, ref).slice(1)
        return { index, row, identity: path.toLowerCase(), path, id }
      }

      /** Sends through the connection, waiting out the run's throttle; 429s hold every worker. */
      const guarded = <A, Env>(effect: Effect.Effect<A, DataverseError, Env>, idempotent: boolean) =>
        gate.wait.pipe(
          Effect.zipRight(effect),
          Effect.tapError((error) =>
            error.reason === "Throttled"
              ? Effect.sync(() => progress.throttled++).pipe(Effect.zipRight(gate.hold(error)))
              : Effect.void
          ),
          // The engine retries here (the connection's own retries are off for its requests):
          // transient failures, and ambiguous ones only where resending is safe.
          Effect.retry({
            schedule: client.retryPolicy,
            while: (error) => isTransient(error) && (idempotent || !isAmbiguous(error))
          })
        )

      const succeeded = (item: Prepared, id: string | undefined): RowOutcome => ({
        index: item.index,
        status: operation === "create"
          ? "created"
          : operation === "update"
          ? "updated"
          : operation === "delete"
          ? "deleted"
          : "upserted",
        id
      })

      const viaBatch = (items: ReadonlyArray<Prepared>) =>
        Effect.gen(function*() {
          const requests = items.map((item) => {
            const body = bodyOf(item.row, metadata)
            switch (operation) {
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
          progress.requests++
          // A create without its own id could land twice if a lost answer were resent.
          const idempotent = operation !== "create" || items.every((item) => item.id !== undefined)
          const results = yield* guarded(
            Batch.execute(requests, { continueOnError: true, headers, retry: false }),
            idempotent
          )
          return results.map((result, i): RowOutcome => {
            const item = items[i]!
            if (result._tag === "Success") return succeeded(item, result.id ?? item.id)
            // A delete of a record that is already gone has done its job.
            if (
              result._tag === "Failure" && operation === "delete" && result.error.reason === "NotFound"
            ) return succeeded(item, item.id)
            const error = result._tag === "Failure"
              ? result.error
              : new DataverseError({
                reason: "Unknown",
                message: `The $batch answer did not say what happened to this row (${result._tag}).`
              })
            return { index: item.index, status: "failed", error }
          })
        })

      const viaMultiple = (items: ReadonlyArray<Prepared>) =>
        Effect.gen(function*() {
          const odataType = `Microsoft.Dynamics.CRM.${metadata.logicalName}`
          const targets = items.map((item) => {
            const target: Record<string, unknown> = { "@odata.type": odataType, ...bodyOf(item.row, metadata) }
            if (operation === "upsert" && byAlternateKey) target["@odata.id"] = item.path
            if (operation === "delete") {
              return { "@odata.type": odataType, [metadata.primaryIdAttribute]: item.id, ...partitionOf(item.row) }
            }
            return target
          })
          progress.requests++
          const request = HttpClientRequest.post(
            `${metadata.entitySetName}/Microsoft.Dynamics.CRM.${messageOf[operation]}${tagQuery}`
          ).pipe(
            HttpClientRequest.setHeaders(headers),
            HttpClientRequest.bodyUnsafeJson({ Targets: targets })
          )
          const idempotent = operation !== "create" || items.every((item) => item.id !== undefined)
          const result = yield* Effect.either(
            guarded(client.executeJson(request, { idempotent, retry: false }), idempotent)
          )
          if (result._tag === "Right") {
            const ids = (result.right.body as { Ids?: ReadonlyArray<unknown> } | undefined)?.Ids
            return items.map((item, i) =>
              succeeded(
                item,
                operation === "create" ? String(ids?.[i] ?? item.id ?? "").toLowerCase() || undefined : item.id
              )
            )
          }
          const error = result.left
          if (error.status === 404 && error.code === "0x80060888") {
            const unsupported = new DataverseError({
              ...error,
              reason: "UnsupportedMessage",
              message: `Table '${metadata.logicalName}' does not support ${messageOf[operation]} (${error.message})`
            })
            return items.map((item): RowOutcome => ({ index: item.index, status: "failed", error: unsupported }))
          }
          if (isTransient(error) || error.status === undefined) {
            return items.map((item): RowOutcome => ({ index: item.index, status: "failed", error }))
          }
          if (elastic) return elasticOutcomes(items, error)
          // A standard table refused the whole chunk for one bad row: find it, land the rest.
          if (items.length === 1) return [{ index: items[0]!.index, status: "failed", error } as RowOutcome]
          return yield* viaBatch(items)
        })

      /** Elastic tables applied every target they could and list the failed ones. */
      const elasticOutcomes = (items: ReadonlyArray<Prepared>, error: DataverseError): Array<RowOutcome> => {
        const raw = Object.entries(error.details ?? {}).find(([name]) => name.endsWith("BulkApiErrorDetails"))?.[1]
        let details: Array<{ RequestIndex?: unknown; StatusCode?: unknown; Message?: unknown; ErrorCode?: unknown }> =
          []
        try {
          details = typeof raw === "string" ? JSON.parse(raw) : Array.isArray(raw) ? raw : []
        } catch {
          details = []
        }
        if (details.length === 0) {
          return items.map((item) => ({ index: item.index, status: "failed", error }) as RowOutcome)
        }
        const failed = new Map(details.map((d) => [Number(d.RequestIndex), d]))
        return items.map((item, i): RowOutcome => {
          const detail = failed.get(i)
          if (detail === undefined) return succeeded(item, item.id)
          return {
            index: item.index,
            status: "failed",
            error: new DataverseError({
              reason: Number(detail.StatusCode) === 404
                ? "NotFound"
                : Number(detail.StatusCode) === 412
                ? "DuplicateKey"
                : "Validation",
              status: Number(detail.StatusCode),
              code: typeof detail.ErrorCode === "string" ? detail.ErrorCode : error.code,
              message: typeof detail.Message === "string" ? detail.Message : error.message,
              requestId: error.requestId
            })
          }
        })
      }

      const send = (chunk: Chunk.Chunk<readonly [RowInput, number]>) =>
        Effect.gen(function*() {
          const outcomes: Array<RowOutcome> = []
          const items: Array<Prepared> = []
          for (const [input, index] of chunk) {
            const prepared = input instanceof DataverseError ? input : prepare(input, index)
            if (prepared instanceof DataverseError) outcomes.push({ index, status: "failed", error: prepared })
            else items.push(prepared)
          }
          if (items.length > 0) {
            progress.inFlight++
            const sent = yield* (useMultiple ? viaMultiple(items) : viaBatch(items)).pipe(
              Effect.catchAll((error) =>
                Effect.succeed(items.map((item): RowOutcome => ({ index: item.index, status: "failed", error })))
              ),
              Effect.ensuring(Effect.sync(() => progress.inFlight--))
            )
            for (const outcome of sent) outcomes.push(outcome)
          }
          outcomes.sort((a, b) => a.index - b.index)
          for (const outcome of outcomes) {
            if (outcome.status === "failed") progress.failed++
            else progress.succeeded++
          }
          report()
          return outcomes
        })

      // First occurrences run now; a record seen before waits for the next pass.
      const seen = new Set<string>()
      const deferred: Array<readonly [RowInput, number]> = []
      const firstPass = toStream(rows).pipe(
        Stream.zipWithIndex,
        Stream.filter(([input, index]) => {
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
      const sendAll = <E2, R2>(input: Stream.Stream<readonly [RowInput, number], E2, R2>) =>
        input.pipe(Stream.grouped(chunkSize), Stream.mapEffect(send, { concurrency }), Stream.flattenIterables)
      /** Deferred rows, pass by pass: each pass ends before the next starts, so the last write wins. */
      const passes = (
        items: ReadonlyArray<readonly [RowInput, number]>
      ): Stream.Stream<RowOutcome, DataverseError, DataverseClient> => {
        if (items.length === 0) return Stream.empty
        const inPass = new Set<string>()
        const now: Array<readonly [RowInput, number]> = []
        const later: Array<readonly [RowInput, number]> = []
        for (const item of items) {
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
      return Stream.concat(sendAll(firstPass), Stream.suspend(() => passes(deferred)))
    })
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
const withoutKeyAnnotations = (row: Records.Row): Records.Row => {
  if (!Object.keys(row).some((name) => name.startsWith("@odata.") && name !== "@odata.type")) return row
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(row)) {
    if (!name.startsWith("@odata.") || name === "@odata.type") out[name] = value
  }
  return out
}

const bodyOf = (row: Records.Row, _metadata: TableMetadata): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(row)) if (!name.startsWith("@odata.")) out[name] = value
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
  readonly succeeded: number
  readonly failed: number
}

/**
 * Runs a stream of outcomes to its end, calling `onOutcome` for each, and totals them.
 *
 * @since 0.1.0
 */
export const summarize = <E, R>(
  outcomes: Stream.Stream<RowOutcome, E, R>,
  onOutcome: (outcome: RowOutcome) => Effect.Effect<void, E, R> = () => Effect.void
): Effect.Effect<Summary, E, R> =>
  Stream.runFoldEffect(
    outcomes,
    { total: 0, succeeded: 0, failed: 0 },
    (summary, outcome) =>
      Effect.as(onOutcome(outcome), {
        total: summary.total + 1,
        succeeded: summary.succeeded + (outcome.status === "failed" ? 0 : 1),
        failed: summary.failed + (outcome.status === "failed" ? 1 : 0)
      })
  )

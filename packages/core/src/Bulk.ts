/**
 * Bulk operations: rows in, per-row outcomes out, sent in chunks through the `*Multiple`
 * messages with bounded concurrency.
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { DataverseClient, whoAmI } from "./DataverseClient.js"
import { DataverseError } from "./DataverseError.js"
import type { Row } from "./Records.js"

/**
 * What happened to one input row. `index` is the row's 0-based position in the input.
 *
 * @since 0.1.0
 */
export type RowOutcome =
  | { readonly index: number; readonly status: "created"; readonly id: string }
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
}

/**
 * Options of the bulk operations.
 *
 * @since 0.1.0
 */
export interface BulkOptions {
  /** Rows per request. Default 100, the low end of Microsoft's documented 100-1,000. */
  readonly chunkSize?: number
  /** Requests in flight, or `"auto"` (the default): the service's `x-ms-dop-hint`. */
  readonly concurrency?: number | "auto"
  /** Called after every finished chunk. */
  readonly onProgress?: (progress: Progress) => void
}

/**
 * An input item: a row, or a row the caller already found invalid (it is reported as failed
 * at its position and never sent).
 *
 * @since 0.1.0
 */
export type RowInput = Row | DataverseError

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
 * Creates rows through `CreateMultiple`, `chunkSize` rows per request, at most `concurrency`
 * requests in flight. Outcomes come out in input order.
 *
 * A chunk on a standard table is one transaction: when the service refuses it, every row of
 * the chunk is reported failed with the service's error.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Bulk } from "@dv-effect/core"
 * const outcomes = Bulk.createMany("contact", [{ lastname: "A" }, { lastname: "B" }], { chunkSize: 500 }).pipe(
 *   Stream.runCollect
 * )
 * ```
 *
 * @since 0.1.0
 */
export const createMany = <E = never, R = never>(
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, DataverseError | E, DataverseClient | R> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const chunkSize = options.chunkSize ?? 100
      if (!Number.isInteger(chunkSize) || chunkSize < 1) {
        return yield* new DataverseError({
          reason: "InvalidInput",
          message: `chunkSize must be a positive whole number, got ${chunkSize}.`
        })
      }
      const client = yield* DataverseClient
      const metadata = yield* client.table(table)
      const concurrency = yield* resolveConcurrency(options.concurrency)
      const odataType = `Microsoft.Dynamics.CRM.${metadata.logicalName}`
      const url = `${metadata.entitySetName}/Microsoft.Dynamics.CRM.CreateMultiple`
      const progress = { succeeded: 0, failed: 0, requests: 0, inFlight: 0 }
      const report = () => options.onProgress?.({ ...progress })

      const send = (chunk: Chunk.Chunk<readonly [RowInput, number]>) =>
        Effect.gen(function*() {
          const outcomes: Array<RowOutcome> = []
          const targets: Array<Row> = []
          const indexes: Array<number> = []
          for (const [row, index] of chunk) {
            if (row instanceof DataverseError) outcomes.push({ index, status: "failed", error: row })
            else {
              targets.push({ "@odata.type": odataType, ...row })
              indexes.push(index)
            }
          }
          if (targets.length > 0) {
            progress.inFlight++
            progress.requests++
            const result = yield* client.executeJson(
              HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson({ Targets: targets })),
              { idempotent: false }
            ).pipe(
              Effect.flatMap(({ body }) => {
                const ids = (body as { Ids?: unknown } | undefined)?.Ids
                return Array.isArray(ids) && ids.length === targets.length
                  ? Effect.succeed(ids as Array<string>)
                  : Effect.fail(
                    new DataverseError({
                      reason: "Decode",
                      message: `CreateMultiple on ${metadata.entitySetName} answered without one id per target.`
                    })
                  )
              }),
              Effect.mapError((error) =>
                // The OData layer does not know an action the table does not support.
                error.status === 404 && error.code === "0x80060888"
                  ? new DataverseError({
                    ...error,
                    reason: "UnsupportedMessage",
                    message: `Table '${metadata.logicalName}' does not support CreateMultiple (${error.message})`
                  })
                  : error
              ),
              Effect.either,
              Effect.ensuring(Effect.sync(() => progress.inFlight--))
            )
            indexes.forEach((index, i) =>
              outcomes.push(
                result._tag === "Right"
                  ? { index, status: "created", id: String(result.right[i]).toLowerCase() }
                  : { index, status: "failed", error: result.left }
              )
            )
          }
          outcomes.sort((a, b) => a.index - b.index)
          for (const outcome of outcomes) {
            if (outcome.status === "failed") progress.failed++
            else progress.succeeded++
          }
          report()
          return outcomes
        })

      const input = Symbol.iterator in rows
        ? Stream.fromIterable(rows as Iterable<RowInput>)
        : rows as Stream.Stream<RowInput, E, R>
      return input.pipe(
        Stream.zipWithIndex,
        Stream.grouped(chunkSize),
        Stream.mapEffect(send, { concurrency }),
        Stream.flattenIterables
      )
    })
  )

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

import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { BulkOptions, DryRun, Operation, RowInput, RowOutcome, RunSummary } from "../../Bulk.js"
import type { DataverseClient } from "../../DataverseClient.js"
import { DataverseError } from "../../DataverseError.js"
import { toStream } from "../input.js"
import { estimateBytes, groupAdaptively } from "./chunking.js"
import { makeEngine, type RunError } from "./engine.js"
import type { Prepared } from "./prepare.js"
import { emptyCounts, finish, tallyAll } from "./summary.js"

/** `Bulk.stream`. */
export const stream = <E = never, R = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {}
): Stream.Stream<RowOutcome, RunError | E, DataverseClient | R> =>
  Stream.unwrapScoped(
    Effect.map(
      makeEngine(operation, table, rows, options),
      (engine) =>
        // A request's rows are journalled finished once the consumer has pulled past its outcomes
        // (when the next request's outcomes are pulled, or at the end): a consumer that stops or
        // fails midway (`Stream.take`, a failing sink) leaves them to the resumed run, which hands
        // them out again, instead of losing them. In the one stage there was: a stage per request
        // (Stream.flatMap) cost 9% more CPU per 100,000 creates.
        Stream.suspend(() => {
          let pending: Effect.Effect<void, RunError> = Effect.void
          return engine.chunks.pipe(
            Stream.mapEffect((chunk) => {
              const previous = pending
              pending = chunk.finish
              return Effect.as(previous, chunk.outcomes)
            }),
            Stream.flattenIterables,
            Stream.concat(Stream.execute(Effect.suspend(() => pending))),
            // After the last request's rows are journalled: an input cut shorter stops here.
            Stream.concat(Stream.execute(engine.inputEnded))
          )
        })
    )
  )

/** `Bulk.execute`. */
export const execute = <E = never, R = never, E2 = never, R2 = never>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions = {},
  onOutcome?: (outcome: RowOutcome) => Effect.Effect<void, E2, R2>
): Effect.Effect<RunSummary, RunError | E | E2, DataverseClient | R | R2> =>
  Effect.scoped(
    Effect.gen(function*() {
      const engine = yield* makeEngine(operation, table, rows, options)
      const started = yield* Clock.currentTimeMillis
      const counts = emptyCounts()
      yield* Stream.runForEach(
        engine.chunks,
        (chunk) => Effect.zipRight(tallyAll(counts, chunk.outcomes, onOutcome), chunk.finish)
      )
      yield* engine.inputEnded
      const progress = engine.progress()
      return {
        ...finish(counts, (yield* Clock.currentTimeMillis) - started),
        resumed: progress.resumed,
        resumedFailed: engine.finishedBefore.failed,
        landedBefore: progress.landedBefore,
        requests: progress.requests,
        retries: progress.retries,
        throttled: progress.throttled,
        identities: progress.identities.map(({ failed, label, requests, retries, succeeded, throttled }) => ({
          label,
          succeeded,
          failed,
          requests,
          retries,
          throttled
        }))
      }
    })
  )

/** `Bulk.dryRun`. */
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
      // Without a journal, no JournalError can come.
      const engine = yield* Effect.catchTag(makeEngine(operation, table, [], rest), "JournalError", Effect.die)
      const counts = { total: 0, invalid: 0 }
      const valid = Stream.zipWithIndex(toStream(rows)).pipe(
        Stream.mapEffect(([input, index]) => {
          counts.total++
          const prepared = engine.prepare(input, index)
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

import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Stream from "effect/Stream"
import type { ParallelOptions } from "../../Bulk.js"
import { DataverseClient } from "../../DataverseClient.js"
import type { DataverseError } from "../../DataverseError.js"
import { type Input, toStream } from "../input.js"
import { resolveConcurrency } from "./identities.js"

type Parallel = {
  <A, B, E, R>(
    options: ParallelOptions,
    f: (chunk: ReadonlyArray<A>, index: number) => Effect.Effect<B, E, R>
  ): <E2 = never, R2 = never>(
    input: Input<A, E2, R2>
  ) => Stream.Stream<B, E | E2 | DataverseError, R | R2 | DataverseClient>
  <A, B, E, R, E2 = never, R2 = never>(
    input: Input<A, E2, R2>,
    options: ParallelOptions,
    f: (chunk: ReadonlyArray<A>, index: number) => Effect.Effect<B, E, R>
  ): Stream.Stream<B, E | E2 | DataverseError, R | R2 | DataverseClient>
}

/**
 * `Bulk.parallel`: `f` on chunks of `chunkSize` items. Each chunk holds a slot of the connection's
 * throttle controller while it runs, as the engine's requests do: the chunks in flight follow the
 * controller's limit (from a few up to the ceiling, cut on congestion: a 429 not of one request
 * alone, latency rising; wire reference §6), and a Retry-After holds every chunk's requests, since
 * they all go through the connection. The ceiling is `concurrency`, under `"auto"` the service's
 * `x-ms-dop-hint`.
 */
export const parallel: Parallel = dual(
  3,
  <A, B, E, R, E2, R2>(
    input: Input<A, E2, R2>,
    options: ParallelOptions,
    f: (chunk: ReadonlyArray<A>, index: number) => Effect.Effect<B, E, R>
  ): Stream.Stream<B, E | E2 | DataverseError, R | R2 | DataverseClient> =>
    Stream.unwrap(Effect.gen(function*() {
      const { controller } = yield* DataverseClient
      const ceiling = yield* resolveConcurrency(options.concurrency ?? "auto")
      yield* controller.setCeiling(ceiling)
      const progress = { chunks: 0, items: 0, inFlight: 0 }
      const run = ([chunk, index]: readonly [Chunk.Chunk<A>, number]) =>
        controller.withSlot((round) =>
          Effect.gen(function*() {
            progress.inFlight++
            const started = yield* Clock.currentTimeMillis
            const result = yield* f(Chunk.toReadonlyArray(chunk), index).pipe(
              Effect.ensuring(Effect.sync(() => {
                progress.inFlight--
                progress.chunks++
                progress.items += chunk.length
                options.onProgress?.({ ...progress })
              }))
            )
            // The chunk's time per item feeds the latency signal, and a healthy one lets the limit grow.
            yield* controller.observe(round, chunk.length, (yield* Clock.currentTimeMillis) - started)
            return result
          })
        )
      return toStream(input).pipe(
        Stream.grouped(options.chunkSize),
        Stream.zipWithIndex,
        Stream.mapEffect(run, { concurrency: ceiling, unordered: options.ordered !== true })
      )
    }))
)

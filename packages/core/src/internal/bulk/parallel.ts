import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { ParallelProgress } from "../../Bulk.js"
import { toStream } from "../input.js"

/** `Bulk.parallel`: `f` on chunks of `chunkSize` items, at most `concurrency` at a time, in input order. */
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

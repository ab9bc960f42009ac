import * as Chunk from "effect/Chunk"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

/**
 * The rows a bulk function takes: an iterable (an array, a generator) or a `Stream`. The one test
 * of which it is, and the one way to map it: an array stays an array, so that the engine knows
 * its length (the last rows are then shared evenly by the requests in flight).
 */
export type Input<A, E, R> = Iterable<A> | Stream.Stream<A, E, R>

export const isStream = <A, E, R>(input: Input<A, E, R>): input is Stream.Stream<A, E, R> =>
  Stream.StreamTypeId in (input as object)

/**
 * The input as a `Stream`. A stream stays as it is chunked; an iterable goes in chunks of at most
 * `chunkSize`, an array sliced (its iterator would make an object per row).
 */
export const toStream = <A, E, R>(input: Input<A, E, R>, chunkSize = 4096): Stream.Stream<A, E, R> => {
  if (isStream(input)) return input
  if (!Array.isArray(input)) return Stream.rechunk(Stream.fromIterable(input), chunkSize)
  const array = input as ReadonlyArray<A>
  const size = Math.max(1, chunkSize)
  return Stream.unfoldChunk(0, (start) =>
    start >= array.length
      ? Option.none()
      : Option.some([Chunk.unsafeFromArray(array.slice(start, start + size)), start + size] as const))
}

/** `f` on every row, keeping the kind of input: array, lazy iterable or `Stream`. */
export const mapInput = <A, B, E, R>(input: Input<A, E, R>, f: (a: A) => B): Input<B, E, R> => {
  if (isStream(input)) return Stream.map(input, f)
  if (Array.isArray(input)) return (input as ReadonlyArray<A>).map(f)
  return {
    *[Symbol.iterator]() {
      for (const a of input) yield f(a)
    }
  }
}

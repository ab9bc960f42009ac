import * as Stream from "effect/Stream"

/**
 * The rows a bulk function takes: an iterable (an array, a generator) or a `Stream`. The one test
 * of which it is, and the one way to map it: an array stays an array, so that the engine knows
 * its length (the last rows are then shared evenly by the requests in flight).
 */
export type Input<A, E, R> = Iterable<A> | Stream.Stream<A, E, R>

export const isStream = <A, E, R>(input: Input<A, E, R>): input is Stream.Stream<A, E, R> =>
  Stream.StreamTypeId in (input as object)

export const toStream = <A, E, R>(input: Input<A, E, R>): Stream.Stream<A, E, R> =>
  isStream(input) ? input : Stream.fromIterable(input)

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

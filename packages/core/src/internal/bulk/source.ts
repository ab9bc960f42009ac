import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/**
 * The rows of a run, cut into requests as each request is about to be sent: the size of a
 * request follows the latest answers (the first answers tell the cost per row), not what was
 * known when rows were read. One request is formed at a time.
 */
export interface ChunkSource<A, E, R> {
  /** The next request's items, none when the input is done. */
  readonly next: Effect.Effect<Option.Option<Array<A>>, E, R>
}

export const makeChunkSource = <A, E, R>(
  input: Stream.Stream<A, E, R>,
  options: {
    /** Items per request, read as each request is formed, given the items handed out so far. */
    readonly size: (handedOut: number) => number
    readonly maxBytes: number
    readonly bytesOf: (item: A) => number
    /** Whether an item counts towards the size (a row that will not be sent does not). */
    readonly counts: (item: A) => boolean
  }
): Effect.Effect<ChunkSource<A, E, R>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(input)
    const lock = yield* Effect.makeSemaphore(1)
    let buffer: ReadonlyArray<A> = []
    let head = 0
    let done = false
    let handedOut = 0
    /** Refills the buffer; false at the end of the input. */
    const refill: Effect.Effect<boolean, E, R> = pull.pipe(
      Effect.map((chunk) => {
        buffer = Chunk.toReadonlyArray(chunk)
        head = 0
        return true
      }),
      Effect.catchAll(Option.match({
        onNone: () => Effect.sync(() => (done = true, false)),
        onSome: (error: E) => Effect.fail(error)
      }))
    )
    const next = lock.withPermits(1)(Effect.gen(function*() {
      const target = Math.max(1, options.size(handedOut))
      const out: Array<A> = []
      let counted = 0
      let bytes = 0
      while (counted < target) {
        if (head >= buffer.length) {
          if (done || !(yield* refill)) break
          continue
        }
        const item = buffer[head]!
        const itemBytes = options.bytesOf(item)
        // A request is cut before it would pass the byte budget; an item over it goes alone.
        if (counted > 0 && bytes + itemBytes > options.maxBytes) break
        out.push(item)
        head++
        bytes += itemBytes
        if (options.counts(item)) counted++
      }
      handedOut += counted
      return out.length === 0 ? Option.none() : Option.some(out)
    }))
    return { next }
  })

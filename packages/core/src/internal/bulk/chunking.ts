import * as Stream from "effect/Stream"

/**
 * Rows per request. Fixed when the caller chose a number; else it starts small, grows while
 * requests answer well within the target latency, and shrinks when they are slow, time out or
 * are too large.
 */
export interface ChunkSizer {
  readonly current: () => number
  /** A request of `rows` rows answered in `latencyMs`. */
  readonly observe: (rows: number, latencyMs: number) => void
  /** A request timed out or was too large. */
  readonly shrink: () => void
}

export const makeChunkSizer = (
  options: { readonly fixed: number } | { readonly start: number; readonly max: number; readonly targetMs: number }
): ChunkSizer => {
  if ("fixed" in options) {
    return { current: () => options.fixed, observe: () => {}, shrink: () => {} }
  }
  let size = options.start
  return {
    current: () => size,
    observe: (rows, latencyMs) => {
      // Only full chunks say something about the size: the tail of a run is small anyway.
      if (rows < size * 0.9) return
      if (latencyMs < options.targetMs / 2) size = Math.min(options.max, Math.ceil(size * 1.5))
      else if (latencyMs > options.targetMs) size = Math.max(1, Math.floor(size * 0.67))
    },
    shrink: () => {
      size = Math.max(1, Math.floor(size / 2))
    }
  }
}

/**
 * Groups a stream into arrays of at most `size()` items (read when each group starts filling) and
 * at most `maxBytes` of estimated size; an item larger than the budget goes alone. A group is
 * emitted as soon as it is full, without waiting for the next item.
 */
export const groupAdaptively = <A, E, R>(
  input: Stream.Stream<A, E, R>,
  size: () => number,
  maxBytes: number,
  bytesOf: (item: A) => number
): Stream.Stream<Array<A>, E, R> =>
  Stream.suspend(() => {
    let group: Array<A> = []
    let bytes = 0
    let target = 0
    return input.pipe(
      Stream.mapConcat((item) => {
        const itemBytes = bytesOf(item)
        const out: Array<Array<A>> = []
        if (group.length > 0 && bytes + itemBytes > maxBytes) {
          out.push(group)
          group = []
          bytes = 0
        }
        if (group.length === 0) target = size()
        group.push(item)
        bytes += itemBytes
        if (group.length >= target) {
          out.push(group)
          group = []
          bytes = 0
        }
        return out
      }),
      Stream.concat(Stream.suspend(() => (group.length > 0 ? Stream.make(group) : Stream.empty)))
    )
  })

/**
 * A cheap estimate of a row's JSON size in bytes (strings counted one byte a character; the
 * budget leaves room for the difference), without serialising it.
 */
export const estimateBytes = (row: unknown): number => {
  if (row === null || row === undefined) return 4
  switch (typeof row) {
    case "string":
      return row.length + 2
    case "number":
    case "bigint":
      return 12
    case "boolean":
      return 5
    case "object": {
      if (row instanceof Date) return 26
      if (Array.isArray(row)) {
        let n = 2
        for (const item of row) n += estimateBytes(item) + 1
        return n
      }
      let n = 2
      for (const key in row) n += key.length + 4 + estimateBytes((row as Record<string, unknown>)[key])
      return n
    }
    default:
      return 8
  }
}

import * as Stream from "effect/Stream"
import { makeRefusedRowsModel } from "./refusedRows.js"

/**
 * Rows per request. Fixed when the caller chose a number; else it starts small (Microsoft's
 * documented starting range is 100 to 1,000, wire reference §3), and from the first answers,
 * which tell the cost per row, it grows towards what half the target latency would hold, at most
 * fourfold per answer: the round trips of the first requests stay short while the run's
 * concurrency ramps up too, and one noisy answer cannot run away with the size. It
 * shrinks when answers are slow, time out or are too large; after such a refusal it never grows
 * back past the halved size. Once the service refuses rows of a bulk message, it stays at or below
 * the size of least expected cost per row that those refusals make (`refusedRows.ts`).
 */
export interface ChunkSizer {
  /** False when the caller chose the size. */
  readonly adaptive: boolean
  readonly current: () => number
  /** A request of `rows` rows answered in `latencyMs`, undefined when a Retry-After held it. */
  readonly observe: (rows: number, latencyMs: number | undefined) => void
  /** A request of `rows` rows timed out or was too large. */
  readonly shrink: (rows: number) => void
  /** The rows the service refuses (`RefusedRowsModel`): a refusal, its end, its `$batch`. */
  readonly refusing: (rows: number, ms: number | undefined) => void
  readonly settled: () => void
  readonly searched: (rows: number, bad: number, ms: number | undefined) => void
}

export const makeChunkSizer = (
  options: { readonly fixed: number } | { readonly start: number; readonly max: number; readonly targetMs: number }
): ChunkSizer => {
  if ("fixed" in options) {
    const ignore = () => {}
    return {
      adaptive: false,
      current: () => options.fixed,
      observe: ignore,
      shrink: ignore,
      refusing: ignore,
      settled: ignore,
      searched: ignore
    }
  }
  let size = options.start
  // A size the service refused (too large, timed out) is not tried again: growth stops below it.
  let cap = options.max
  const refusedRows = makeRefusedRowsModel()
  // What the refused rows make best, computed when an answer changes it, not per chunk.
  let best = cap
  return {
    adaptive: true,
    current: () => Math.min(size, best),
    observe: (rows, latencyMs) => {
      refusedRows.clean(rows, latencyMs)
      best = refusedRows.best(cap)
      // Small chunks (the tail of a run) say little about the size.
      if (latencyMs === undefined || rows < Math.min(10, size)) return
      if (latencyMs > options.targetMs) {
        size = Math.max(1, Math.floor(Math.min(size, rows) * 0.67))
      } else if (latencyMs < options.targetMs / 2) {
        // Grow towards what half the target latency would hold at this request's cost per row
        // (its fixed cost counted as per row: an underestimate of the size), at most fourfold.
        const projected = Math.floor(((options.targetMs / 2) * rows) / Math.max(latencyMs, 1))
        size = Math.min(cap, Math.max(size, Math.min(projected, rows * 4)))
      }
    },
    // Half the refused request: the requests in flight with it, refused alike, halve it once,
    // not once each.
    shrink: (rows) => {
      const half = Math.max(1, Math.floor(rows / 2))
      size = Math.min(size, half)
      cap = Math.min(cap, half)
      best = Math.min(best, cap)
    },
    refusing: (rows, ms) => {
      refusedRows.refusing(rows, ms)
      best = refusedRows.best(cap)
    },
    settled: () => {
      refusedRows.settled()
      best = refusedRows.best(cap)
    },
    searched: (rows, bad, ms) => {
      refusedRows.searched(rows, bad, ms)
      best = refusedRows.best(cap)
    }
  }
}

/**
 * Groups a stream into arrays of at most `size(grouped)` items (read when each group starts
 * filling, with the number of items already grouped) and at most `maxBytes` of estimated size; an
 * item larger than the budget goes alone. A group is emitted as soon as it is full, without
 * waiting for the next item.
 */
export const groupAdaptively = <A, E, R>(
  input: Stream.Stream<A, E, R>,
  size: (grouped: number) => number,
  maxBytes: number,
  bytesOf: (item: A) => number
): Stream.Stream<Array<A>, E, R> =>
  Stream.suspend(() => {
    let group: Array<A> = []
    let bytes = 0
    let target = 0
    let grouped = 0
    return input.pipe(
      Stream.mapConcat((item) => {
        const itemBytes = bytesOf(item)
        const out: Array<Array<A>> = []
        if (group.length > 0 && bytes + itemBytes > maxBytes) {
          out.push(group)
          grouped += group.length
          group = []
          bytes = 0
        }
        if (group.length === 0) target = size(grouped)
        group.push(item)
        bytes += itemBytes
        if (group.length >= target) {
          out.push(group)
          grouped += group.length
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

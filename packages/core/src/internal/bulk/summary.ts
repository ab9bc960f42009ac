import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { RowOutcome, Summary } from "../../Bulk.js"

type Counts = Omit<Summary, "durationMs" | "rowsPerSecond">

export const emptyCounts = (): { -readonly [K in keyof Counts]: number } => ({
  total: 0,
  succeeded: 0,
  failed: 0,
  created: 0,
  updated: 0,
  upserted: 0,
  deleted: 0,
  absent: 0,
  unchanged: 0,
  skipped: 0
})

/** Adds one outcome to the counts. */
export const tally = (counts: ReturnType<typeof emptyCounts>, outcome: RowOutcome) => {
  counts.total++
  counts[outcome.status === "failed" ? "failed" : "succeeded"]++
  if (outcome.status !== "failed") {
    counts[outcome.status]++
    if (outcome.absent === true) counts.absent++
  }
}

export const finish = (counts: Counts, durationMs: number): Summary => ({
  ...counts,
  durationMs,
  rowsPerSecond: durationMs > 0 ? Math.round((counts.succeeded * 1000) / durationMs) : 0
})

/** `Bulk.summarize`. */
export const summarize = <E, R, E2 = never, R2 = never>(
  outcomes: Stream.Stream<RowOutcome, E, R>,
  onOutcome?: (outcome: RowOutcome) => Effect.Effect<void, E2, R2>
): Effect.Effect<Summary, E | E2, R | R2> =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const counts = emptyCounts()
    yield* Stream.runForEachChunk(outcomes, (chunk) => tallyAll(counts, Chunk.toReadonlyArray(chunk), onOutcome))
    return finish(counts, (yield* Clock.currentTimeMillis) - started)
  })

/** Adds the outcomes to the counts and hands each to `onOutcome`, if any (no effect per row else). */
export const tallyAll = <E, R>(
  counts: ReturnType<typeof emptyCounts>,
  outcomes: ReadonlyArray<RowOutcome>,
  onOutcome: ((outcome: RowOutcome) => Effect.Effect<void, E, R>) | undefined
): Effect.Effect<void, E, R> => {
  // An index over the array: a chunk's iterator makes an object per row.
  for (let i = 0; i < outcomes.length; i++) tally(counts, outcomes[i]!)
  return onOutcome === undefined ? Effect.void : Effect.forEach(outcomes, onOutcome, { discard: true })
}

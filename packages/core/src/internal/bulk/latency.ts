import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { Controller } from "../../DataverseClient.js"

/**
 * Latency against the run's own early baseline: the one congestion signal the service may give
 * without a 429 (wire reference §6: users report "silent" limits, throughput flattening and
 * latency rising well below 52 in flight, with no 429). Only latency the client measures itself
 * is used.
 *
 * A request's cost grows with its rows, so latencies are compared per row, within sizes of the
 * same power of two (the fixed cost of a request weighs alike there). The baseline of a size is
 * the fastest per-row latency seen at that size while healthy; a size without one is compared with
 * the nearest smaller size that has one, whose per-row cost is no lower (so the comparison errs
 * towards "healthy"). The signal is a moving average of the ratios, so that one slow answer does not
 * cut the run's concurrency.
 */
export interface LatencySignal {
  /**
   * A request of `rows` rows answered in `ms`; `count: false` keeps it for the baseline only (an
   * answer that judges an older limit).
   */
  readonly observe: (rows: number, ms: number, count: boolean) => void
  /** The moving average of latency over its baseline (1: as fast as ever). */
  readonly ratio: () => number
  /** Forgets the moving average (after a cut, the next answers judge the new limit). */
  readonly restart: () => void
  /** The fastest milliseconds per row seen at about `rows` rows, if any. */
  readonly baselinePerRow: (rows: number) => number | undefined
}

/** Answers from this far above their baseline do not become it. */
const healthyRatio = 1.25

/** Weight of the latest answer in the moving average. */
const weight = 0.25

const bucketOf = (rows: number) => Math.floor(Math.log2(Math.max(1, rows)))

export const makeLatencySignal = (): LatencySignal => {
  // Fastest ms per row by size bucket.
  const fastest = new Map<number, number>()
  let average = 1
  const reference = (bucket: number): number | undefined => {
    for (let b = bucket; b >= 0; b--) {
      const perRow = fastest.get(b)
      if (perRow !== undefined) return perRow
    }
    return undefined
  }
  return {
    observe: (rows, ms, count) => {
      if (rows < 1 || !(ms >= 0)) return
      const bucket = bucketOf(rows)
      const perRow = Math.max(ms, 0.001) / rows
      const base = reference(bucket)
      const ratio = base === undefined ? 1 : perRow / base
      if (ratio <= healthyRatio) fastest.set(bucket, Math.min(fastest.get(bucket) ?? Infinity, perRow))
      if (count) average = average * (1 - weight) + ratio * weight
    },
    ratio: () => average,
    restart: () => {
      average = 1
    },
    baselinePerRow: (rows) => reference(bucketOf(rows))
  }
}

/**
 * Runs `effect` and gives, beside its result, how long it took when that is the service's time
 * for it: undefined when a Retry-After of the connection held it or a 429 came meanwhile (then
 * the wait, not the work, is in the figure). Latency the client measures itself (wire reference §6).
 */
export const measured = <A, E, R>(
  controller: Controller,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<readonly [A, number | undefined], E, R> =>
  Effect.gen(function*() {
    const before = controller.state()
    const started = yield* Clock.currentTimeMillis
    const result = yield* effect
    const elapsed = (yield* Clock.currentTimeMillis) - started
    const unheld = before.heldUntil <= started && controller.state().throttled === before.throttled
    return [result, unheld ? elapsed : undefined] as const
  })

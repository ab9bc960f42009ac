import * as Effect from "effect/Effect"

/**
 * Requests in flight, adapted to the service by additive increase and multiplicative decrease
 * (wire reference §6, "the ideal client: parallel at the hint, ..., ramps up gradually").
 *
 * - The ceiling is `x-ms-dop-hint` (or the caller's number): never more in flight.
 * - It starts at a few (`initial`) and grows by one per answered request (doubling per round
 *   trip) until the first sign of congestion.
 * - A sign of congestion cuts it, once per round: signs from requests that started before the
 *   last cut are the same congestion seen again. A cut never goes below what the service has
 *   sustained since the previous cut (`sustained`, from the latencies measured, rounded): a
 *   refusal after a long stretch at full speed says the limit was about right, one after a long
 *   wait says it was far too high.
 * - After the first cut it grows back by one per `growthRounds` rounds of healthy answers; when
 *   congestion comes back at or below the limit it was cut from last time (a plateau: a window
 *   limit the service keeps to), each probe upwards waits twice as long as the last, up to 32
 *   times: a failed probe costs a Retry-After for every request of the connection. Growth past
 *   that plateau makes probing quick again.
 */
export interface Limiter {
  /** Runs `effect` holding one slot; `round` is the number of cuts when it started. */
  readonly withSlot: <A, E, R>(effect: (round: number) => Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * A sign of congestion from a request that started in `round`: the limit becomes
   * `max(floor(limit * factor), round(sustained))`, at least one less and at least 1.
   */
  readonly decrease: (round: number, factor: number, sustained: number) => Effect.Effect<void>
  /** A healthy answer. */
  readonly increase: Effect.Effect<void>
  /** Lowers or raises the ceiling (a run that names its own concurrency). */
  readonly setCeiling: (ceiling: number) => Effect.Effect<void>
  readonly current: () => number
  readonly ceiling: () => number
  readonly round: () => number
  readonly inFlight: () => number
}

export const makeLimiter = (options: {
  readonly ceiling: number
  /** Slots at the start. Default: 2 (a few), at most the ceiling. */
  readonly initial?: number
  /** Rounds of healthy answers per added slot after the first cut. Default 4. */
  readonly growthRounds?: number
}) =>
  Effect.gen(function*() {
    let ceiling = options.ceiling
    let limit = Math.min(ceiling, options.initial ?? 2)
    const baseGrowthRounds = options.growthRounds ?? 4
    let growthRounds = baseGrowthRounds
    // The limit the last congestion came at (none yet).
    let plateau = 0
    const semaphore = yield* Effect.makeSemaphore(limit)
    let round = 0
    let streak = 0
    let slowStart = true
    let inFlight = 0
    const resize = (next: number) => {
      if (next === limit) return Effect.void
      limit = next
      return semaphore.resize(limit)
    }
    const limiter: Limiter = {
      withSlot: (effect) =>
        semaphore.withPermits(1)(
          Effect.suspend(() => {
            inFlight++
            return Effect.ensuring(effect(round), Effect.sync(() => inFlight--))
          })
        ),
      decrease: (startedIn, factor, sustained) =>
        Effect.suspend(() => {
          if (startedIn !== round) return Effect.void
          round++
          streak = 0
          slowStart = false
          growthRounds = limit <= plateau ? Math.min(32 * baseGrowthRounds, growthRounds * 2) : baseGrowthRounds
          plateau = limit
          const target = Math.max(Math.floor(limit * factor), Math.round(sustained))
          return resize(Math.max(1, Math.min(limit - 1, target)))
        }),
      increase: Effect.suspend(() => {
        if (limit >= ceiling) return Effect.void
        if (++streak < (slowStart ? 1 : limit * growthRounds)) return Effect.void
        streak = 0
        return resize(limit + 1)
      }),
      setCeiling: (next) =>
        Effect.suspend(() => {
          ceiling = next
          return resize(Math.min(limit, ceiling))
        }),
      current: () => limit,
      ceiling: () => ceiling,
      round: () => round,
      inFlight: () => inFlight
    }
    return limiter
  })

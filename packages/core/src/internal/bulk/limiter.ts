import * as Effect from "effect/Effect"

/**
 * Requests in flight, adapted to the service by additive increase and multiplicative decrease
 * (wire reference §6, "the ideal client: parallel at the hint, ..., ramps up gradually").
 *
 * - The ceiling is `x-ms-dop-hint` (or the caller's number): never more in flight.
 * - It starts at a few (`initial`) and grows by one per answered request (doubling per round
 *   trip) until the first sign of congestion.
 * - A sign of congestion cuts it once per round (signs from requests that started before the
 *   last cut are the same congestion seen again), by at least one:
 *   - a 429 of the concurrent-request limit (0x80072326): by half, and that level is a plateau;
 *   - any other 429 (a window limit, or a code not known): by an eighth. The service keeps its
 *     windows whatever the client's parallelism, and the Retry-After waits pace the client; fewer
 *     requests in flight would only leave the window part unused when it has room again;
 *   - latency well above its baseline (`slow`): by a quarter, and that level is a plateau: more
 *     in flight made each request slower.
 * - After a cut it grows back by one per round of healthy answers (one per `limit` answers) up to
 *   a plateau; above a plateau, by one per `probeRounds` rounds, twice as many after each probe
 *   that met congestion (up to 32 rounds).
 * - `recover`: the service admitted the request sent after the 429 that cut, after its hold (the
 *   window has room again, and a window paces by time, not by requests in flight: §6, a client
 *   that waited what it was told is admitted) or right after it (the refusal was its own, or one
 *   busy server's among several: the cut was for nothing). The limit goes back to where it was
 *   before the window's cuts not yet undone (a second one when the window was still full after
 *   its hold). Not after a cut to a plateau (the concurrent-request limit, slow answers): there a
 *   request admitted says only that one slot freed.
 */
export interface Limiter {
  /** Runs `effect` holding one slot; `round` is the number of cuts when it started. */
  readonly withSlot: <A, E, R>(effect: (round: number) => Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** A 429 of a request that started in `round`, with its Dataverse code. */
  readonly throttled: (round: number, code: string | undefined) => Effect.Effect<void>
  /** Latency well above its baseline, from a request that started in `round`. */
  readonly slow: (round: number) => Effect.Effect<void>
  /** A healthy answer. */
  readonly increase: Effect.Effect<void>
  /** The service admitted the request sent after the last cut's 429 (at once or after its hold): undo that cut. */
  readonly recover: Effect.Effect<void>
  /** Lowers or raises the ceiling (a run that names its own concurrency). */
  readonly setCeiling: (ceiling: number) => Effect.Effect<void>
  readonly current: () => number
  readonly ceiling: () => number
  readonly round: () => number
  readonly inFlight: () => number
}

/** The 429 of the concurrent-request limit (wire reference §5, §6). */
export const concurrencyLimitCode = "0x80072326"

export const makeLimiter = (options: {
  readonly ceiling: number
  /** Slots at the start. Default: 2 (a few), at most the ceiling. */
  readonly initial?: number
  /** Rounds of healthy answers per slot added above a plateau, at first. Default 4. */
  readonly probeRounds?: number
}) =>
  Effect.gen(function*() {
    let ceiling = options.ceiling
    let limit = Math.min(ceiling, options.initial ?? 2)
    const baseProbeRounds = options.probeRounds ?? 4
    let probeRounds = baseProbeRounds
    // The most the service was found to run well; none yet.
    let plateau = Infinity
    const semaphore = yield* Effect.makeSemaphore(limit)
    let round = 0
    let streak = 0
    let slowStart = true
    let inFlight = 0
    // The limit before the last cut, while that cut may be undone (it was not to a plateau).
    let recoverTo = 0
    const resize = (next: number) => {
      if (next === limit) return Effect.void
      limit = next
      return semaphore.resize(limit)
    }
    /** Cuts once per round, to `factor` of the limit but by at least one, to at least 1. */
    const cut = (startedIn: number, factor: number, isPlateau: boolean) =>
      Effect.suspend(() => {
        if (startedIn !== round) return Effect.void
        round++
        streak = 0
        slowStart = false
        // A probe above the plateau met congestion: the next one waits twice as long.
        if (limit > plateau) probeRounds = Math.min(8 * baseProbeRounds, probeRounds * 2)
        const next = Math.max(1, Math.min(limit - 1, Math.floor(limit * factor)))
        if (isPlateau) plateau = next
        // A second window cut before the first was undone (the window still full after its hold)
        // goes back to where the first started.
        recoverTo = isPlateau ? 0 : Math.max(recoverTo, limit)
        return resize(next)
      })
    const limiter: Limiter = {
      withSlot: (effect) =>
        semaphore.withPermits(1)(
          Effect.suspend(() => {
            inFlight++
            return Effect.ensuring(effect(round), Effect.sync(() => inFlight--))
          })
        ),
      throttled: (startedIn, code) =>
        code === concurrencyLimitCode ? cut(startedIn, 0.5, true) : cut(startedIn, 0.875, false),
      slow: (startedIn) => cut(startedIn, 0.75, true),
      recover: Effect.suspend(() => {
        const to = Math.min(recoverTo, ceiling)
        recoverTo = 0
        return to > limit ? resize(to) : Effect.void
      }),
      increase: Effect.suspend(() => {
        if (limit >= ceiling) return Effect.void
        const rounds = slowStart ? 0 : limit < plateau ? 1 : probeRounds
        if (++streak < Math.max(1, rounds * limit)) return Effect.void
        streak = 0
        // Grown back to where the last cut started: there is no cut left to undo.
        if (limit + 1 >= recoverTo) recoverTo = 0
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

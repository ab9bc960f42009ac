import * as Effect from "effect/Effect"

/**
 * Requests in flight, adapted to the service: multiplicative decrease when a request is
 * throttled, one more after each run of `limit` requests that were not, never above the ceiling.
 * A decrease counts once per round: throttles of requests that started before it are the same
 * overload seen again, not a new one.
 */
export interface Limiter {
  /** Runs `effect` holding one slot; `round` is the decrease count when it started. */
  readonly withSlot: <A, E, R>(effect: (round: number) => Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly throttled: (round: number) => Effect.Effect<void>
  readonly succeeded: Effect.Effect<void>
  readonly current: () => number
}

export const makeLimiter = (options: { readonly ceiling: number; readonly adaptive: boolean }) =>
  Effect.gen(function*() {
    const semaphore = yield* Effect.makeSemaphore(options.ceiling)
    let limit = options.ceiling
    let round = 0
    let streak = 0
    const limiter: Limiter = {
      withSlot: (effect) => semaphore.withPermits(1)(Effect.suspend(() => effect(round))),
      throttled: (startedIn) =>
        Effect.suspend(() => {
          if (!options.adaptive || startedIn !== round) return Effect.void
          round++
          streak = 0
          const next = Math.max(1, Math.floor(limit * 0.75))
          if (next === limit) return Effect.void
          limit = next
          return semaphore.resize(limit)
        }),
      succeeded: Effect.suspend(() => {
        if (!options.adaptive || limit >= options.ceiling) return Effect.void
        if (++streak < limit) return Effect.void
        streak = 0
        limit++
        return semaphore.resize(limit)
      }),
      current: () => limit
    }
    return limiter
  })

import * as Effect from "effect/Effect"

/**
 * Requests in flight, adapted to the service. A throttled request halves the limit (once per
 * overload: throttles of requests that started before the cut are the same overload seen again).
 * The limit then grows back by one after each run of successful requests, four times longer after
 * a throttle than before the first: on Dataverse a window limit, once hit, refuses for whole
 * seconds (Retry-After is in seconds and grows when pushed), so probing for it again costs more
 * than the last few requests in flight gain. Never above the ceiling.
 */
export interface Limiter {
  /** Runs `effect` holding one slot; `round` is the number of cuts when it started. */
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
          const next = Math.max(1, Math.floor(limit / 2))
          if (next === limit) return Effect.void
          limit = next
          return semaphore.resize(limit)
        }),
      succeeded: Effect.suspend(() => {
        if (!options.adaptive || limit >= options.ceiling) return Effect.void
        if (++streak < limit * (round === 0 ? 1 : 4)) return Effect.void
        streak = 0
        limit++
        return semaphore.resize(limit)
      }),
      current: () => limit
    }
    return limiter
  })

import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { DataverseError } from "../../DataverseError.js"

/**
 * The throttle signal of one run: when the service tells one worker to wait, every worker waits
 * until the Retry-After ends, instead of collecting more 429s (which lengthen the wait).
 *
 * When an answer says the window is spent (no execution time or requests left), the next
 * request would be refused, and so would every other worker's sent before that 429 comes back:
 * one request goes first as a probe, and the others wait for its answer. A refusal is answered
 * at once, without running anything, so they wait at most `probeGrace` for it: a probe not
 * refused by then was admitted.
 */
export interface Gate {
  /** Milliseconds left to wait at `now`. */
  readonly remaining: (now: number) => number
  /** Whether a request would wait at `now`: held by a Retry-After, or behind a probe. */
  readonly busy: (now: number) => boolean
  /**
   * Waits until the service allows requests again, then runs `send` (alone, when probing);
   * `throttleOf` finds the 429 in its result, held before the other workers are let go.
   */
  readonly pass: <A, E, R>(
    send: Effect.Effect<A, E, R>,
    throttleOf: (result: A) => DataverseError | undefined
  ) => Effect.Effect<A, E, R>
  /**
   * Holds every worker for the error's Retry-After (a 429; other errors do nothing); then one
   * request probes before the others follow.
   */
  readonly hold: (error: DataverseError) => Effect.Effect<void>
  /** An answer said the window is spent: probe with one request before sending more. */
  readonly spent: () => void
}

export const makeGate = (options: { readonly probeGrace?: Duration.DurationInput } = {}): Gate => {
  const grace = Duration.decode(options.probeGrace ?? "250 millis")
  let resumeAt = 0
  let probeNeeded = false
  let probe: Deferred.Deferred<void> | undefined
  // A worker that slept may find the wait extended by another worker's 429 meanwhile, or a probe
  // under way: check again after every wait. `true`: this worker is the probe.
  const enter: Effect.Effect<boolean> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    if (resumeAt > now) return Effect.zipRight(Effect.sleep(Duration.millis(resumeAt - now)), enter)
    if (!probeNeeded) return Effect.succeed(false)
    if (probe === undefined) {
      return Effect.map(Deferred.make<void>(), (deferred) => {
        probe = deferred
        return true
      })
    }
    const current = probe
    return Deferred.await(current).pipe(
      Effect.timeoutOption(grace),
      Effect.zipRight(Effect.sync(() => {
        // Admitted (no refusal within the grace): the window had room after all.
        if (probe === current) probeNeeded = false
      })),
      Effect.zipRight(enter)
    )
  })
  const endProbe = Effect.suspend(() => {
    const current = probe
    probe = undefined
    return current === undefined ? Effect.void : Deferred.succeed(current, undefined)
  })
  const hold = (error: DataverseError): Effect.Effect<void> =>
    error.reason !== "Throttled" || error.retryAfter === undefined
      ? Effect.void
      : Effect.map(Clock.currentTimeMillis, (now) => {
        resumeAt = Math.max(resumeAt, now + Duration.toMillis(error.retryAfter!))
        probeNeeded = true
      })
  return {
    remaining: (now) => Math.max(0, resumeAt - now),
    busy: (now) => resumeAt > now || probe !== undefined,
    pass: (send, throttleOf) =>
      Effect.flatMap(enter, (probing) =>
        probing
          ? send.pipe(
            Effect.tap((result) => {
              const throttle = throttleOf(result)
              if (throttle !== undefined) return hold(throttle)
              probeNeeded = false
              return Effect.void
            }),
            Effect.ensuring(endProbe)
          )
          : send),
    hold,
    spent: () => {
      probeNeeded = true
    }
  }
}

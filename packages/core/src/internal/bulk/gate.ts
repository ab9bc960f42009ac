import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * The Retry-After hold of one connection (one identity). When the service refuses any request
 * with 429, every request of the connection waits until its Retry-After has passed, instead of
 * collecting more 429s: wire reference §6, "a client that waits the Retry-After it was given,
 * sending nothing meanwhile, is admitted then", and "Retry-After grows when a client keeps
 * pushing". The connection sends no affinity cookie (§6), so it cannot tell one web server from
 * another: the hold is the connection's.
 *
 * When a hold ends, one request goes first as a probe and the others wait for its answer, so
 * that the workers do not all collect the next refusal. A refused request does no work (§6), so
 * a refusal comes back as fast as the network answers: the others wait at most a grace of twice
 * the slowest refusal measured (at least `minProbeGrace`); a probe not refused by then was
 * admitted.
 */
export interface Gate {
  /** Epoch milliseconds the current hold ends; in the past when none. */
  readonly heldUntil: () => number
  /**
   * Waits until the connection may send, then runs `send` (first and alone when probing).
   * `refusal` reads its result: the Retry-After in milliseconds of a 429, else undefined; a
   * refusal holds every request of the connection.
   */
  readonly pass: <A, E, R>(
    send: Effect.Effect<A, E, R>,
    refusal: (result: A) => number | undefined
  ) => Effect.Effect<A, E, R>
}

export const makeGate = (options: {
  readonly minProbeGrace?: Duration.DurationInput
  /** Called when a refusal starts or lengthens a hold, with the epoch ms it ends and now. */
  readonly onHold?: (until: number, now: number) => void
} = {}): Gate => {
  const minGrace = Duration.toMillis(Duration.decode(options.minProbeGrace ?? "250 millis"))
  let resumeAt = 0
  let probeNeeded = false
  let probe: Deferred.Deferred<void> | undefined
  let slowestRefusalMs = 0
  const grace = () => Duration.millis(Math.max(minGrace, 2 * slowestRefusalMs))

  // A request that slept may find the hold lengthened by another refusal meanwhile, or a probe
  // under way: look again after every wait. `true`: this request is the probe.
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
      Effect.timeoutOption(grace()),
      Effect.zipRight(Effect.sync(() => {
        // Not refused within the grace: the probe was admitted, the service has room again.
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

  const hold = (now: number, retryAfterMs: number, answeredInMs: number) => {
    slowestRefusalMs = Math.max(slowestRefusalMs, answeredInMs)
    if (now + retryAfterMs > resumeAt) {
      resumeAt = now + retryAfterMs
      options.onHold?.(resumeAt, now)
    }
    probeNeeded = true
  }

  return {
    heldUntil: () => resumeAt,
    pass: (send, refusal) =>
      Effect.flatMap(enter, (probing) =>
        Effect.flatMap(Clock.currentTimeMillis, (started) => {
          const sent = Effect.tap(send, (result) => {
            const retryAfterMs = refusal(result)
            return Effect.map(Clock.currentTimeMillis, (now) => {
              if (retryAfterMs !== undefined) hold(now, retryAfterMs, now - started)
              else if (probing) probeNeeded = false
            })
          })
          return probing ? Effect.ensuring(sent, endProbe) : sent
        }))
  }
}

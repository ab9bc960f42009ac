import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * The Retry-After hold of one connection (one identity), after the wire reference (§6): "a client
 * that waits the Retry-After it was given, sending nothing meanwhile, is admitted then", and
 * "Retry-After grows when a client keeps pushing".
 *
 * A refused request waits its own Retry-After (the caller sleeps it). The connection sends no
 * affinity cookie (§6), so it cannot tell whether the refusal holds every request it would send
 * (one web server, its window spent) or only some (one busy server among several, a refusal of
 * its own). So after a refusal the next request goes alone, as a probe, and the others wait for
 * its answer. A refused request does no work (§6), so a refusal comes back as fast as the network
 * answers: they wait at most a grace of twice the slowest refusal measured (at least
 * `minProbeGrace`); a probe not refused by then was admitted, and the others go on. A refused
 * probe holds every request of the connection until its Retry-After has passed (the hold); then
 * one request probes again before the others follow.
 *
 * Where refusals do hold everything (one server), the probe sent at once only collects one more
 * 429: after such a probe was refused, the next refusals hold everything at once, for one, then
 * two, four... refusals, until a probe sent at once is admitted again.
 */
export interface Gate {
  /** Epoch milliseconds the current hold ends; in the past when none. */
  readonly heldUntil: () => number
  /**
   * Waits until the connection may send, then runs `send` (first and alone when probing).
   * `refusal` reads its result: the Retry-After in milliseconds of a 429, else undefined.
   */
  readonly pass: <A, E, R>(
    send: Effect.Effect<A, E, R>,
    refusal: (result: A) => number | undefined
  ) => Effect.Effect<A, E, R>
}

export const makeGate = (options: {
  readonly minProbeGrace?: Duration.DurationInput
  /** Called when a refused probe starts or lengthens a hold, with the epoch ms it ends and now. */
  readonly onHold?: (until: number, now: number) => void
  /** Called when a probe sent at once after a refusal was admitted: the refusal held nothing else. */
  readonly onAdmittedAtOnce?: () => void
} = {}): Gate => {
  const minGrace = Duration.toMillis(Duration.decode(options.minProbeGrace ?? "50 millis"))
  let resumeAt = 0
  let probeNeeded = false
  let probe: Deferred.Deferred<void> | undefined
  let slowestRefusalMs = 0
  // Refusals to come that hold everything at once, without a probe first, and how many the next
  // refused probe-at-once earns.
  let holdAtOnce = 0
  let nextHoldAtOnce = 1
  // Whether the probe to come follows a hold, or is sent at once after a refusal.
  let probeAfterHold = false
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

  /** `probing`: the refused request was a probe; `early`: sent at once after a refusal, not after a hold. */
  const refused = (now: number, retryAfterMs: number, answeredInMs: number, probing: boolean, early: boolean) => {
    slowestRefusalMs = Math.max(slowestRefusalMs, answeredInMs)
    probeNeeded = true
    if (early) {
      holdAtOnce = nextHoldAtOnce
      nextHoldAtOnce = Math.min(64, nextHoldAtOnce * 2)
    }
    const holdsAll = probing || (resumeAt <= now && holdAtOnce > 0 && holdAtOnce-- > 0)
    if (holdsAll && now + retryAfterMs > resumeAt) {
      resumeAt = now + retryAfterMs
      probeAfterHold = true
      options.onHold?.(resumeAt, now)
    } else if (resumeAt <= now) {
      probeAfterHold = false
    }
  }

  /** A probe sent at once after a refusal was admitted: refusals get a probe first again. */
  const admittedEarly = () => {
    holdAtOnce = 0
    nextHoldAtOnce = 1
    options.onAdmittedAtOnce?.()
  }

  return {
    heldUntil: () => resumeAt,
    pass: (send, refusal) =>
      Effect.flatMap(enter, (probing) =>
        Effect.flatMap(Clock.currentTimeMillis, (started) => {
          const early = probing && !probeAfterHold
          const sent = Effect.tap(send, (result) => {
            const retryAfterMs = refusal(result)
            return Effect.map(Clock.currentTimeMillis, (now) => {
              if (retryAfterMs !== undefined) refused(now, retryAfterMs, now - started, probing, early)
              else if (probing) {
                probeNeeded = false
                if (early) admittedEarly()
              }
            })
          })
          return probing ? Effect.ensuring(sent, endProbe) : sent
        }))
  }
}

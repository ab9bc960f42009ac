import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"

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
 * answers: they wait at most a grace of twice the slowest recent refusal (at least
 * `minProbeGrace`); a probe not refused by then was admitted, and the others go on. "Recent": a
 * slow refusal counts for half as much with each refusal after it, so that one slow refusal (the
 * first request of a connection pays for opening it) does not keep every later probe's followers
 * waiting on its account. A refused probe holds every request of the connection until its
 * Retry-After has passed (the hold); then one request probes again before the others follow.
 *
 * Where refusals do hold everything (one server), the probe sent at once only collects one more
 * 429: after such a probe was refused, the next refusals hold everything at once, for one, then
 * two, four... refusals, until a probe sent at once is admitted again. That is learned per 429
 * code (§6: the three codes are signals a client may rely on): each names a limit of its own, and
 * what one limit's refusals held says nothing of another's.
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
    refusal: (result: A) => Refusal | undefined
  ) => Effect.Effect<A, E, R>
}

/** A 429 as the gate reads it: its Retry-After and its Dataverse code, if any. */
export interface Refusal {
  readonly retryAfterMs: number
  readonly code?: string | undefined
}

/** How refusals of one code are met: held at once, or after a probe. */
interface Escalation {
  /** Refusals to come that hold everything at once, without a probe first. */
  holdAtOnce: number
  /** How many the next refused probe-at-once earns. */
  next: number
}

export const makeGate = (options: {
  readonly minProbeGrace?: Duration.DurationInput
  /** Called when a refused probe starts or lengthens a hold, with the epoch ms it ends and now. */
  readonly onHold?: (until: number, now: number) => void
  /**
   * Called once per probe admitted (not refused within the grace, or answered). `early`: sent at
   * once after a refusal, which held nothing else; else sent after a hold, which the service has
   * room again after (§6: a client that waited what it was told is admitted).
   */
  readonly onProbeAdmitted?: (early: boolean) => Effect.Effect<void>
} = {}): Gate => {
  const minGrace = Duration.toMillis(Duration.decode(options.minProbeGrace ?? "50 millis"))
  let resumeAt = 0
  let probeNeeded = false
  let probe: Deferred.Deferred<void> | undefined
  let slowestRefusalMs = 0
  const escalations = new Map<string, Escalation>()
  const escalationOf = (code: string | undefined): Escalation => {
    const key = code ?? ""
    let escalation = escalations.get(key)
    if (escalation === undefined) {
      escalation = { holdAtOnce: 0, next: 1 }
      escalations.set(key, escalation)
    }
    return escalation
  }
  // The code of the refusal the probe to come answers, and whether that probe follows a hold or
  // is sent at once after the refusal.
  let probeFor: string | undefined
  let probeAfterHold = false
  // Whether the early probe under way was already found admitted (by a follower's grace).
  let admittedSeen = false
  const grace = () => Duration.millis(Math.max(minGrace, 2 * slowestRefusalMs))

  // A request that slept may find the hold lengthened by another refusal meanwhile, or a probe
  // under way: look again after every wait. Resolves with the probe's own deferred when this
  // request is the probe.
  const enter: Effect.Effect<Deferred.Deferred<void> | undefined> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    if (resumeAt > now) return Effect.zipRight(Effect.sleep(Duration.millis(resumeAt - now)), enter)
    if (!probeNeeded) return Effect.succeed(undefined)
    if (probe === undefined) {
      // Made and taken in one step: no other request can become the probe meanwhile.
      const deferred = Deferred.unsafeMake<void>(FiberId.none)
      probe = deferred
      return Effect.succeed(deferred)
    }
    const current = probe
    return Deferred.await(current).pipe(
      Effect.timeoutOption(grace()),
      Effect.zipRight(Effect.suspend(() => {
        // Not refused within the grace: the probe was admitted, the service has room again.
        if (probe !== current || !probeNeeded) return Effect.void
        probeNeeded = false
        return probeAdmitted(!probeAfterHold)
      })),
      Effect.zipRight(enter)
    )
  })

  /** A probe's answer came (or it failed): its followers go on; it is no longer the probe. */
  const endProbe = (own: Deferred.Deferred<void>) =>
    Effect.suspend(() => {
      if (probe === own) probe = undefined
      return Deferred.succeed(own, undefined)
    })

  /** `probing`: the refused request was a probe; `early`: sent at once after a refusal, not after a hold. */
  const refused = (now: number, refusal: Refusal, answeredInMs: number, probing: boolean, early: boolean) => {
    slowestRefusalMs = Math.max(answeredInMs, slowestRefusalMs / 2)
    if (!probeNeeded) {
      probeFor = refusal.code
      // A probe still under way was sent before this refusal (it was found admitted by its
      // grace): its answer says nothing of this one. The next request probes anew.
      if (probe !== undefined && !probing) {
        const stale = probe
        probe = undefined
        Deferred.unsafeDone(stale, Exit.void)
      }
    }
    probeNeeded = true
    let holdsAll: boolean
    if (probing) {
      holdsAll = true
      if (early) {
        // The refusal this probe answered held more than its own request: meet that code's next
        // refusals with a hold at once.
        const escalation = escalationOf(probeFor)
        escalation.holdAtOnce = escalation.next
        escalation.next = Math.min(64, escalation.next * 2)
      }
    } else {
      const escalation = escalationOf(refusal.code)
      holdsAll = resumeAt <= now && escalation.holdAtOnce > 0
      if (holdsAll) escalation.holdAtOnce--
    }
    if (holdsAll && now + refusal.retryAfterMs > resumeAt) {
      resumeAt = now + refusal.retryAfterMs
      probeAfterHold = true
      options.onHold?.(resumeAt, now)
    } else if (resumeAt <= now) {
      probeAfterHold = false
    }
  }

  /** A probe was admitted; sent at once after a refusal, that code's refusals get a probe first again. */
  const probeAdmitted = (early: boolean): Effect.Effect<void> => {
    if (admittedSeen) return Effect.void
    admittedSeen = true
    if (early) {
      const escalation = escalationOf(probeFor)
      escalation.holdAtOnce = 0
      escalation.next = 1
    }
    return options.onProbeAdmitted?.(early) ?? Effect.void
  }

  return {
    heldUntil: () => resumeAt,
    // Uninterruptible between becoming the probe and the finaliser that ends it: an interrupted
    // probe always lets its followers go and a later request probe.
    pass: (send, refusal) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(enter), (own) =>
          Effect.flatMap(Clock.currentTimeMillis, (started) => {
            const early = own !== undefined && !probeAfterHold
            if (own !== undefined) admittedSeen = false
            const sent = Effect.tap(restore(send), (result) => {
              const refusedWith = refusal(result)
              // Still the probe: no refusal since it was sent made another request the probe.
              const probing = own !== undefined && probe === own
              return Effect.flatMap(Clock.currentTimeMillis, (now) => {
                if (refusedWith !== undefined) refused(now, refusedWith, now - started, probing, early)
                else if (probing) {
                  probeNeeded = false
                  return probeAdmitted(early)
                }
                return Effect.void
              })
            })
            return own === undefined ? sent : Effect.ensuring(sent, endProbe(own))
          }))
      )
  }
}

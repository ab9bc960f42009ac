import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { DataverseError } from "../../DataverseError.js"
import { type Gate, makeGate } from "./gate.js"
import { type LatencySignal, makeLatencySignal } from "./latency.js"
import { type Limiter, makeLimiter } from "./limiter.js"

/**
 * The throttle controller of one connection (one identity), shared by every request it sends:
 * the bulk engine's writes, `$batch`, existence checks, lookups, queries and metadata. It acts
 * only on what the wire reference (§6) says a client may rely on: the 429 status, `Retry-After`,
 * `x-ms-dop-hint` and latency it measures itself; never on a message's text, the
 * `x-ms-ratelimit-*` headers (diagnostics only) or affinity cookies.
 *
 * - Every 429 holds every request of the connection for its Retry-After (`Gate`), cuts the
 *   requests in flight (`Limiter`) and is sent again: a refused request did nothing (§6), so
 *   resending is safe even for a create, and throttling never fails a request. Only a wait past
 *   `maxThrottleWait` (counted from the request's first refusal) fails it, with reason `Throttled`.
 * - Latency rising well above the run's baseline (`LatencySignal`) cuts the requests in flight
 *   too; healthy answers add them back, up to the ceiling (`x-ms-dop-hint`).
 */
export interface Controller {
  /** Runs `effect` holding one of the adaptive slots; `round` identifies the limit it started under. */
  readonly withSlot: <A, E, R>(effect: (round: number) => Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Sends through the Retry-After hold. `refusal` reads a result: the 429 it is (as an error with
   * its `retryAfter`), else undefined. A refused request waits and is sent again.
   */
  readonly throttled: <A, R, R2>(
    attempt: Effect.Effect<A, DataverseError, R>,
    refusal: (result: A) => Effect.Effect<DataverseError | undefined, never, R2>
  ) => Effect.Effect<A, DataverseError, R | R2>
  /** A write of `rows` rows, started under `round`, answered in `ms`. */
  readonly observe: (round: number, rows: number, ms: number) => Effect.Effect<void>
  /** The most requests in flight (the dop hint, or the run's own number). */
  readonly setCeiling: (ceiling: number) => Effect.Effect<void>
  readonly state: () => ControllerState
  /**
   * Calls `f` with the end of every hold that starts or lengthens (and the time it started),
   * until the scope closes.
   */
  readonly onHold: (f: (until: number, now: number) => void) => Effect.Effect<void, never, Scope.Scope>
  /** Fastest milliseconds per row seen for requests of about `rows` rows. */
  readonly baselinePerRow: (rows: number) => number | undefined
}

/**
 * What the controller is doing now.
 */
export interface ControllerState {
  /** Requests allowed in flight now. */
  readonly limit: number
  readonly ceiling: number
  /** Slots held now. */
  readonly inFlight: number
  /** Epoch ms the Retry-After hold ends; in the past when none. */
  readonly heldUntil: number
  /** Requests sent, refused ones included. */
  readonly requests: number
  /** 429s received. */
  readonly throttled: number
}

/**
 * A 429 cuts the requests in flight to half (§6: "Retry-After grows when a client keeps
 * pushing"; a refusal is the service saying the client sends too much), but never below what the
 * service sustained since the last cut.
 */
const throttleFactor = 0.5

/** Latency this far above its baseline is congestion (§6, "silent" limits) ... */
const congestedRatio = 1.8
/** ... and cuts gently: latency is a noisier signal than a refusal. */
const latencyFactor = 0.75
/** Answers this close to their baseline let the limit grow. */
const healthyRatio = 1.3

export const makeController = (options: {
  readonly ceiling: number
  readonly maxThrottleWait: Duration.Duration
  readonly initial?: number
}): Effect.Effect<Controller> =>
  Effect.gen(function*() {
    const holdListeners = new Set<(until: number, now: number) => void>()
    const gate: Gate = makeGate({ onHold: (until, now) => holdListeners.forEach((f) => f(until, now)) })
    const limiter: Limiter = yield* makeLimiter({
      ceiling: options.ceiling,
      ...(options.initial === undefined ? {} : { initial: options.initial })
    })
    const latency: LatencySignal = makeLatencySignal()
    const maxWaitMs = Duration.toMillis(options.maxThrottleWait)
    let refusals = 0
    let requests = 0
    // What the service sustained since the last cut: the time its answers took within the epoch
    // (latency measured here), over the epoch's length, i.e. the requests it ran at once on
    // average. At a refusal the epoch ends when the Retry-After does: the wait is part of what the
    // service allows, and the requests still in flight will each run about as long as the others.
    // An epoch without answers (a refusal right after the last) measures nothing: the last
    // measure stands.
    let epochStart: number | undefined
    let busyMs = 0
    let answers = 0
    let lastSustained = 0
    const sustained = (until: number) => {
      if (epochStart === undefined || until <= epochStart || answers === 0) return lastSustained
      const inFlight = limiter.inFlight() * (busyMs / answers)
      lastSustained = (busyMs + inFlight) / (until - epochStart)
      return lastSustained
    }
    const newEpoch = (start: number) => {
      epochStart = start
      busyMs = 0
      answers = 0
      latency.restart()
    }

    const sendThrottled = <A, R, R2>(
      attempt: Effect.Effect<A, DataverseError, R>,
      refusal: (result: A) => Effect.Effect<DataverseError | undefined, never, R2>
    ): Effect.Effect<A, DataverseError, R | R2> => {
      let firstRefusal: number | undefined
      const loop: Effect.Effect<A, DataverseError, R | R2> = Effect.suspend(() => {
        const round = limiter.round()
        return gate.pass(
          Effect.flatMap(Effect.zipRight(Effect.sync(() => requests++), attempt), (result) =>
            Effect.map(refusal(result), (error) => [result, error] as const)),
          ([, error]) =>
            error === undefined ? undefined : retryAfterMs(error)
        ).pipe(Effect.flatMap(([result, error]) => {
          if (error === undefined) return Effect.succeed(result)
          return Effect.flatMap(Clock.currentTimeMillis, (now) => {
            refusals++
            firstRefusal ??= now
            const next = now + retryAfterMs(error)
            const cut = limiter.decrease(round, throttleFactor, sustained(next))
            if (next - firstRefusal > maxWaitMs) {
              return Effect.zipRight(
                cut,
                Effect.fail(
                  new DataverseError({
                    ...error,
                    message: `The service kept refusing requests for longer than ${
                      Duration.format(Duration.millis(maxWaitMs))
                    } (maxThrottleWait): ${error.message}`
                  })
                )
              )
            }
            if (round === limiter.round()) newEpoch(next)
            return Effect.zipRight(cut, loop)
          })
        }))
      })
      return loop
    }

    return {
      withSlot: limiter.withSlot,
      throttled: sendThrottled,
      observe: (round, rows, ms) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          epochStart ??= now - ms
          busyMs += Math.max(0, now - Math.max(now - ms, epochStart))
          answers++
          // Answers to requests sent before the last cut judge the old limit: they keep the
          // baseline but do not move the average.
          if (round !== limiter.round()) return Effect.sync(() => latency.observe(rows, ms, false))
          latency.observe(rows, ms, true)
          if (latency.ratio() > congestedRatio) {
            return Effect.zipRight(limiter.decrease(round, latencyFactor, 0), Effect.sync(() => newEpoch(now)))
          }
          return latency.ratio() < healthyRatio && gate.heldUntil() <= now ? limiter.increase : Effect.void
        }),
      setCeiling: limiter.setCeiling,
      state: () => ({
        limit: limiter.current(),
        ceiling: limiter.ceiling(),
        inFlight: limiter.inFlight(),
        heldUntil: gate.heldUntil(),
        requests,
        throttled: refusals
      }),
      onHold: (f) =>
        Effect.acquireRelease(
          Effect.sync(() => holdListeners.add(f)),
          () => Effect.sync(() => holdListeners.delete(f))
        ),
      baselinePerRow: latency.baselinePerRow
    }
  })

/** A 429's wait: its Retry-After, else a second (§6: key retries on the status). */
const retryAfterMs = (error: DataverseError): number =>
  error.retryAfter === undefined ? 1000 : Duration.toMillis(error.retryAfter)

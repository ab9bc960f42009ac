import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Controller } from "../../DataverseClient.js"
import { DataverseError } from "../../DataverseError.js"
import { type Gate, makeGate } from "./gate.js"
import { type LatencySignal, makeLatencySignal } from "./latency.js"
import { concurrencyLimitCode, type Limiter, makeLimiter } from "./limiter.js"
import { makePacer, type Pacer } from "./pacer.js"

/** Latency this far above its baseline is congestion (§6, "silent" limits)... */
const congestedRatio = 1.8
/** ...and this close to it lets the limit grow. */
const healthyRatio = 1.3

export const makeController = (options: {
  readonly ceiling: number
  readonly maxThrottleWait: Duration.Duration
  readonly initial?: number
}): Effect.Effect<Controller> =>
  Effect.gen(function*() {
    const holdListeners = new Set<(until: number, now: number) => void>()
    const limiter: Limiter = yield* makeLimiter({
      ceiling: options.ceiling,
      ...(options.initial === undefined ? {} : { initial: options.initial })
    })
    const gate: Gate = makeGate({
      onHold: (until, now) => holdListeners.forEach((f) => f(until, now)),
      // A probe admitted after a hold (or at once, after a cut that raced it): a window's cuts go back.
      onProbeAdmitted: () => limiter.recover
    })
    const latency: LatencySignal = makeLatencySignal()
    const pacer: Pacer = makePacer()
    const maxWaitMs = Duration.toMillis(options.maxThrottleWait)
    let refusals = 0
    let requests = 0
    // Requests sent and not yet answered, in slots or not (Records calls hold none).
    let sending = 0
    // When each refused request's own Retry-After wait ends.
    const ownWaits = new Map<object, number>()
    /**
     * `ControllerState.waitingUntil`: the hold's end, or the first own wait's while nothing is on
     * the wire and every slot held is held by a request that waits so (a slot between requests,
     * its chunk's rows being prepared or its outcomes handed on, is not waiting).
     */
    const waitingUntil = (): number =>
      Math.max(
        gate.heldUntil(),
        sending > 0 || ownWaits.size === 0 || ownWaits.size < limiter.inFlight() ? 0 : Math.min(...ownWaits.values())
      )
    // The latency baseline is judged afresh after each cut.
    const newEpoch = () => latency.restart()

    // A congestion episode: from a refusal until the service admits a request sent after it.
    // Refusals within one episode (the requests racing the first refusal, the probe that confirms
    // it, a probe that finds the window still full) are one sign of congestion, not several.
    let episodeSince: number | undefined
    let episodeCut = false

    const sendThrottled = <A, R, R2>(
      attempt: Effect.Effect<A, DataverseError, R>,
      refusal: (result: A) => Effect.Effect<DataverseError | undefined, never, R2>
    ): Effect.Effect<A, DataverseError, R | R2> => {
      let firstRefusal: number | undefined
      let sentAt = 0
      const loop: Effect.Effect<A, DataverseError, R | R2> = Effect.suspend(() => {
        const round = limiter.round()
        // Once refusals were seen, requests go far enough apart not to race one (§6; pacer.ts).
        return pacer.next(Math.max(limiter.current(), sending), gate.heldUntil).pipe(
          Effect.zipRight(gate.pass(
            Clock.currentTimeMillis.pipe(
              Effect.flatMap((now) => {
                requests++
                sending++
                sentAt = now
                return Effect.ensuring(attempt, Effect.sync(() => sending--))
              }),
              Effect.flatMap((result) => Effect.map(refusal(result), (error) => [result, error] as const))
            ),
            ([, error]) => error === undefined ? undefined : { retryAfterMs: retryAfterMs(error), code: error.code }
          )),
          Effect.flatMap(([result, error]) => {
            if (error === undefined) {
              if (episodeSince !== undefined && sentAt >= episodeSince) episodeSince = undefined
              return Effect.map(Clock.currentTimeMillis, (now) => {
                pacer.admitted(now - sentAt)
                return result
              })
            }
            return Effect.flatMap(Clock.currentTimeMillis, (now) => {
              refusals++
              pacer.refused(now - sentAt)
              firstRefusal ??= now
              const next = now + retryAfterMs(error)
              if (episodeSince === undefined) {
                episodeSince = now
                episodeCut = false
              }
              // Every congestion episode, whatever the 429's code, cuts the requests in flight once
              // (§6: key on the status; a refused request did nothing), as soon as it is known to
              // be one: at once for the concurrent-request limit, else when the gate holds every
              // request (the probe sent after the refusal was refused too, or that code's refusals
              // have held everything lately). A lone refusal whose probe is admitted (one busy
              // server among several) cuts nothing: its slot stays idle for its Retry-After anyway.
              // A refusal while no slot is held (metadata before a run) says nothing of parallelism.
              // A request that started before the last cut judges a limit already cut: not this one.
              const cutting = !episodeCut && limiter.inFlight() > 0 && round === limiter.round() &&
                (error.code === concurrencyLimitCode || gate.heldUntil() > now)
              if (cutting) episodeCut = true
              const cut = cutting ? limiter.throttled(round, error.code) : Effect.void
              if (next - firstRefusal > maxWaitMs) {
                return Effect.zipRight(cut, Effect.fail(pastMaxWait(error, now - firstRefusal, next - now, maxWaitMs)))
              }
              if (cutting) newEpoch()
              // The refused request waits what it was told, then goes through the gate again. Its
              // wait is told at once: a run whose requests all wait so is waiting for a
              // Retry-After, though no hold says so (two requests refused together, none to probe).
              const wait = {}
              ownWaits.set(wait, next)
              holdListeners.forEach((f) => f(next, now))
              return cut.pipe(
                Effect.zipRight(Effect.sleep(Duration.millis(next - now))),
                Effect.ensuring(Effect.sync(() => ownWaits.delete(wait))),
                Effect.zipRight(loop)
              )
            })
          })
        )
      })
      return loop
    }

    return {
      withSlot: limiter.withSlot,
      throttled: sendThrottled,
      observe: (round, rows, ms) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          // Answers to requests sent before the last cut judge the old limit: they keep the
          // baseline but do not move the average.
          if (round !== limiter.round()) return Effect.sync(() => latency.observe(rows, ms, false))
          latency.observe(rows, ms, true)
          if (latency.ratio() > congestedRatio) {
            return Effect.zipRight(limiter.slow(round), Effect.sync(newEpoch))
          }
          return latency.ratio() < healthyRatio && gate.heldUntil() <= now ? limiter.increase : Effect.void
        }),
      setCeiling: limiter.setCeiling,
      state: () => ({
        limit: limiter.current(),
        ceiling: limiter.ceiling(),
        inFlight: limiter.inFlight(),
        heldUntil: gate.heldUntil(),
        waitingUntil: waitingUntil(),
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

/** Seconds as a person reads them: `40s`, `2m 5s`. */
const seconds = (ms: number): string => Duration.format(Duration.seconds(Math.ceil(ms / 1000)))

/**
 * The run failure of a request the service would hold longer than `maxThrottleWait` in all: asked
 * at once to wait longer (its first Retry-After), or refused for a while and asked for more.
 */
const pastMaxWait = (error: DataverseError, refusedForMs: number, retryAfterMs: number, maxWaitMs: number) =>
  new DataverseError({
    ...error,
    message: `${
      refusedForMs === 0
        ? `The service asked to wait ${seconds(retryAfterMs)} (Retry-After)`
        : `The service refused a request for ${seconds(refusedForMs)} and asked to wait ${seconds(retryAfterMs)} more`
    }, longer than a run waits for throttling (${
      Duration.format(Duration.millis(maxWaitMs))
    }: maxThrottleWait, --max-throttle-wait): ${error.message}`
  })

/** A 429's wait: its Retry-After, else a second (§6: key retries on the status). */
const retryAfterMs = (error: DataverseError): number =>
  error.retryAfter === undefined ? 1000 : Duration.toMillis(error.retryAfter)

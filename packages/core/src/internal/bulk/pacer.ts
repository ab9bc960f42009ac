import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * The spacing between the requests of one connection, once the service has refused one.
 *
 * The two window limits refuse only after the window is exceeded (wire reference §6), so the
 * request that finds a window full is refused, and so is every request sent before its refusal
 * came back: they race it. Requests that start together finish together, so a client whose
 * requests go in bunches (after a hold, or as its limit grows) sends a bunch into each full
 * window. Once a refusal was seen, requests go at least twice the time a refusal takes to come
 * back apart (latency the client measures itself, §6), so that the next one is sent knowing
 * whether the last was refused. Never more than half an even spread (the latency of the
 * requests over the requests that share the connection): the spacing does not slow a connection
 * that keeps its requests busy. Requests that wait out a hold take their turns after it, so the
 * bunch a hold gathers goes spaced too. Before any refusal, nothing waits.
 */
export interface Pacer {
  /**
   * Waits until the next request may go: `spread`, the requests that share the connection now
   * (allowed in flight, or sent, whichever is more); `heldUntil`, the end of the Retry-After hold
   * (epoch ms), which requests wait out before their spacing.
   */
  readonly next: (spread: number, heldUntil: () => number) => Effect.Effect<void>
  /** An admitted request was answered in `ms`. */
  readonly admitted: (ms: number) => void
  /** A refused request was answered in `ms`. */
  readonly refused: (ms: number) => void
}

/** Weight of the latest answer in the moving averages. */
const weight = 0.25

const average = (mean: number, ms: number) => mean === 0 ? ms : mean * (1 - weight) + ms * weight

export const makePacer = (): Pacer => {
  let admittedMs = 0
  let refusedMs = 0
  let nextAt = 0
  const next = (spread: number, heldUntil: () => number): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const spacing = Math.min(2 * refusedMs, admittedMs / Math.max(1, spread) / 2)
      // Booked in one step: concurrent requests take turns, spacing apart.
      const at = Math.max(now, nextAt, heldUntil())
      nextAt = at + spacing
      if (at <= now) return Effect.void
      // A hold that started meanwhile: the turn comes after it.
      return Effect.zipRight(
        Effect.sleep(Duration.millis(at - now)),
        Effect.suspend(() => heldUntil() > at ? next(spread, heldUntil) : Effect.void)
      )
    })
  return {
    next,
    admitted: (ms) => {
      admittedMs = average(admittedMs, Math.max(0, ms))
    },
    refused: (ms) => {
      // A refusal answered at once still spaces the requests by a millisecond or two.
      refusedMs = average(refusedMs, Math.max(1, ms))
    }
  }
}

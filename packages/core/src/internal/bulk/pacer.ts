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
 * requests over the requests allowed in flight): the spacing does not slow a connection that
 * keeps its slots busy. Before any refusal, nothing waits.
 */
export interface Pacer {
  /** Waits until the next request may go; `limit`: the requests allowed in flight now. */
  readonly next: (limit: number) => Effect.Effect<void>
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
  return {
    next: (limit) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const spacing = Math.min(2 * refusedMs, admittedMs / Math.max(1, limit) / 2)
        const at = Math.max(now, nextAt)
        nextAt = at + spacing
        return at > now ? Effect.sleep(Duration.millis(at - now)) : Effect.void
      }),
    admitted: (ms) => {
      admittedMs = average(admittedMs, Math.max(0, ms))
    },
    refused: (ms) => {
      // A refusal answered at once still spaces the requests by a millisecond or two.
      refusedMs = average(refusedMs, Math.max(1, ms))
    }
  }
}

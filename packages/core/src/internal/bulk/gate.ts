import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { DataverseError } from "../../DataverseError.js"

/**
 * The throttle signal of one run: when the service tells one worker to wait, every worker waits
 * until the Retry-After ends, instead of collecting more 429s (which lengthen the wait).
 */
export interface Gate {
  /** Milliseconds left to wait at `now`. */
  readonly remaining: (now: number) => number
  /** Waits until the service allows requests again. */
  readonly wait: Effect.Effect<void>
  /** Holds every worker for the error's Retry-After (a 429); other errors do nothing. */
  readonly hold: (error: DataverseError) => Effect.Effect<void>
}

export const makeGate = (): Gate => {
  let resumeAt = 0
  const wait: Effect.Effect<void> = Clock.currentTimeMillis.pipe(
    // A worker that slept may find the wait extended by another worker's 429 meanwhile.
    Effect.flatMap((
      now
    ) => (resumeAt > now ? Effect.zipRight(Effect.sleep(Duration.millis(resumeAt - now)), wait) : Effect.void))
  )
  return {
    remaining: (now) => Math.max(0, resumeAt - now),
    wait,
    hold: (error) =>
      error.reason !== "Throttled" || error.retryAfter === undefined
        ? Effect.void
        : Effect.map(Clock.currentTimeMillis, (now) => {
          resumeAt = Math.max(resumeAt, now + Duration.toMillis(error.retryAfter!))
        })
  }
}

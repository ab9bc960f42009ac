/**
 * Retry schedules for Dataverse requests: wait what `Retry-After` says when the service says
 * it, back off exponentially with jitter on other transient failures, never retry a data error.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Schedule from "effect/Schedule"
import { type DataverseError, isTransient } from "./DataverseError.js"

/**
 * Options of `make`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  /** Retries after the first attempt. Default 10. */
  readonly maxRetries?: number
  /** Retries when the host cannot be reached at all (refused, name not found). Default 2. */
  readonly maxUnreachableRetries?: number
  /** First back-off when the service gave no Retry-After. Default 500 ms. */
  readonly baseDelay?: Duration.DurationInput
  /** Longest back-off without Retry-After. Default 30 s. */
  readonly maxDelay?: Duration.DurationInput
  /** Longest Retry-After honoured; a longer one fails instead of waiting. Default 5 minutes. */
  readonly maxRetryAfter?: Duration.DurationInput
}

/**
 * A schedule over `DataverseError`s: recurs while the error is transient and the attempt
 * budget lasts; the delay is the error's `retryAfter` when present, else a jittered
 * exponential back-off capped at `maxDelay`. An unreachable host gets a short budget: it is far
 * more often a wrong URL than a blip.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { type DataverseError, RetryPolicy } from "@dv-effect/core"
 * const retried = (effect: Effect.Effect<string, DataverseError.DataverseError>) =>
 *   Effect.retry(effect, RetryPolicy.make({ maxRetries: 5 }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: RetryOptions = {}
): Schedule.Schedule<[DataverseError, Duration.Duration], DataverseError> => {
  const maxDelay = Duration.decode(options.maxDelay ?? "30 seconds")
  const maxRetryAfter = Duration.decode(options.maxRetryAfter ?? "5 minutes")
  const maxRetries = options.maxRetries ?? 10
  const maxUnreachableRetries = options.maxUnreachableRetries ?? 2
  const backoff = Schedule.exponential(options.baseDelay ?? "500 millis").pipe(
    Schedule.jittered,
    Schedule.map((delay) => Duration.min(delay, maxDelay))
  )
  return Schedule.identity<DataverseError>().pipe(
    Schedule.intersect(backoff),
    // `count` is 0 when deciding on the first retry.
    Schedule.intersect(Schedule.count),
    Schedule.whileOutput(([[error], count]) =>
      isTransient(error) &&
      count < (error.reason === "Unreachable" ? maxUnreachableRetries : maxRetries) &&
      (error.retryAfter === undefined || Duration.lessThanOrEqualTo(error.retryAfter, maxRetryAfter))
    ),
    Schedule.modifyDelay(([[error, backoffDelay]]) => error.retryAfter ?? backoffDelay),
    Schedule.map(([out]) => out)
  )
}

/**
 * The policy the client uses unless told otherwise: `make()` with its defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultPolicy = make()

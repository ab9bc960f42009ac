/**
 * The emulator's performance model: how many web servers answer, the service protection limits
 * each enforces per user, how long requests take, and which faults are injected.
 *
 * Limits are per user **and per web server**, as on the service. A client that returns the
 * `ARRAffinity` cookie sticks to one server; a cookie-less client is spread round-robin.
 *
 * Latency of a request: a bulk message over n records takes `baseMs + n * perRecordMs`; a single
 * operation `baseMs + perOperationMs`; a `$batch` of k operations `baseMs + k * perOperationMs`.
 * That time is held (the request occupies a concurrency slot) and then counted into the
 * execution-time window.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as S from "effect/Schema"
import { firstIssue } from "./internal/decode.js"

/**
 * Fault injection, as probabilities per request (0 to 1), drawn from a seeded generator so a
 * run can be replayed.
 *
 * @since 0.1.0
 */
export interface FaultRates {
  readonly seed: number
  /** A 429 (0x80072322) with `Retry-After: 1`, beyond what the limits produce. */
  readonly throttle: number
  /** A 503 before anything is done. */
  readonly unavailable: number
  /** The connection is reset before the request is applied. */
  readonly resetBeforeCommit: number
  /** The request is applied, then the connection is reset: the client cannot know it landed. */
  readonly resetAfterCommit: number
  /** The request is applied, then no answer comes for `timeoutMs` and the connection is closed. */
  readonly timeout: number
  readonly timeoutMs: number
}

/**
 * A performance profile. `Infinity` means no limit.
 *
 * @since 0.1.0
 */
export interface Profile {
  readonly name: string
  readonly servers: number
  /** Concurrent requests per user and server (the service: 52). */
  readonly concurrencyLimit: number
  readonly windowSeconds: number
  /** Requests per user, server and window (the service: 6,000 per 300 s). */
  readonly requestsPerWindow: number
  /** Execution time per user, server and window (the service: 1,200,000 ms per 300 s). */
  readonly executionMsPerWindow: number
  /** The `x-ms-dop-hint` advertised; also the parallelism the servers run at full speed (`serverCapacity`). */
  readonly dopHint: number
  readonly latency: { readonly baseMs: number; readonly perRecordMs: number; readonly perOperationMs: number }
  /** Seconds added to a client's wait each time it sends a request while told to wait. */
  readonly retryAfterPenaltySeconds: number
  readonly faults: FaultRates
}

const noFaults: FaultRates = {
  seed: 1,
  throttle: 0,
  unavailable: 0,
  resetBeforeCommit: 0,
  resetAfterCommit: 0,
  timeout: 0,
  timeoutMs: 30_000
}

/**
 * `fast`: no latency, no limits, no faults. For tests and for measuring clients' own cost.
 *
 * @since 0.1.0
 */
export const fast: Profile = {
  name: "fast",
  servers: 1,
  concurrencyLimit: Infinity,
  windowSeconds: 300,
  requestsPerWindow: Infinity,
  executionMsPerWindow: Infinity,
  dopHint: 8,
  latency: { baseMs: 0, perRecordMs: 0, perOperationMs: 0 },
  retryAfterPenaltySeconds: 0,
  faults: noFaults
}

/**
 * `realistic`: the documented limits (52 concurrent, 6,000 requests and 1,200,000 ms of execution
 * per 300 s, per user and server), two web servers, and latencies of the order seen on the
 * service (a 1,000-record CreateMultiple takes about 8 s). Runs in real time.
 *
 * @since 0.1.0
 */
export const realistic: Profile = {
  name: "realistic",
  servers: 2,
  concurrencyLimit: 52,
  windowSeconds: 300,
  requestsPerWindow: 6000,
  executionMsPerWindow: 1_200_000,
  dopHint: 8,
  latency: { baseMs: 40, perRecordMs: 8, perOperationMs: 30 },
  retryAfterPenaltySeconds: 5,
  faults: noFaults
}

/**
 * `bench`: the realistic shape scaled down 30x in time (10 s windows with a thirtieth of the
 * budgets), so that a benchmark meets every limit within a short run.
 *
 * @since 0.1.0
 */
export const bench: Profile = {
  name: "bench",
  servers: 1,
  concurrencyLimit: 52,
  windowSeconds: 10,
  requestsPerWindow: 200,
  executionMsPerWindow: 40_000,
  dopHint: 8,
  latency: { baseMs: 20, perRecordMs: 1, perOperationMs: 10 },
  retryAfterPenaltySeconds: 1,
  faults: noFaults
}

/**
 * The named profiles.
 *
 * @since 0.1.0
 */
export const profiles: Readonly<Record<string, Profile>> = { fast, realistic, bench }

const limit = S.optionalWith(S.Union(S.Number.pipe(S.positive()), S.Null), { exact: true })
const nonNegative = S.Number.pipe(S.nonNegative())
const probability = S.Number.pipe(S.between(0, 1))

const ProfileFile = S.Struct({
  extends: S.optionalWith(S.Literal("fast", "realistic", "bench"), { exact: true }),
  name: S.optionalWith(S.String, { exact: true }),
  servers: S.optionalWith(S.Int.pipe(S.between(1, 64)), { exact: true }),
  concurrencyLimit: limit,
  windowSeconds: S.optionalWith(S.Number.pipe(S.positive()), { exact: true }),
  requestsPerWindow: limit,
  executionMsPerWindow: limit,
  dopHint: S.optionalWith(S.Int.pipe(S.positive()), { exact: true }),
  latency: S.optionalWith(
    S.Struct({
      baseMs: S.optionalWith(nonNegative, { exact: true }),
      perRecordMs: S.optionalWith(nonNegative, { exact: true }),
      perOperationMs: S.optionalWith(nonNegative, { exact: true })
    }),
    { exact: true }
  ),
  retryAfterPenaltySeconds: S.optionalWith(nonNegative, { exact: true }),
  faults: S.optionalWith(
    S.Struct({
      seed: S.optionalWith(S.Int, { exact: true }),
      throttle: S.optionalWith(probability, { exact: true }),
      unavailable: S.optionalWith(probability, { exact: true }),
      resetBeforeCommit: S.optionalWith(probability, { exact: true }),
      resetAfterCommit: S.optionalWith(probability, { exact: true }),
      timeout: S.optionalWith(probability, { exact: true }),
      timeoutMs: S.optionalWith(S.Int.pipe(S.positive()), { exact: true })
    }),
    { exact: true }
  )
})

/**
 * Reads a profile from JSON: any field of `Profile`, over `extends` (a named profile, default
 * `fast`); a limit of `null` means none. Returns the profile or a message naming what is wrong.
 *
 * @example
 * ```json
 * { "extends": "bench", "servers": 2, "faults": { "seed": 7, "throttle": 0.05, "resetAfterCommit": 0.005 } }
 * ```
 *
 * @since 0.1.0
 */
export const decodeProfile = (json: unknown): Profile | string => {
  const decoded = S.decodeUnknownEither(ProfileFile, { errors: "first", onExcessProperty: "error" })(json)
  if (Either.isLeft(decoded)) return `Invalid profile: ${firstIssue(decoded.left)}`
  const file = decoded.right
  const base = profiles[file.extends ?? "fast"]!
  const orInfinity = (value: number | null | undefined, fallback: number) =>
    value === undefined ? fallback : value === null ? Infinity : value
  return {
    name: file.name ?? `${base.name}+file`,
    servers: file.servers ?? base.servers,
    concurrencyLimit: orInfinity(file.concurrencyLimit, base.concurrencyLimit),
    windowSeconds: file.windowSeconds ?? base.windowSeconds,
    requestsPerWindow: orInfinity(file.requestsPerWindow, base.requestsPerWindow),
    executionMsPerWindow: orInfinity(file.executionMsPerWindow, base.executionMsPerWindow),
    dopHint: file.dopHint ?? base.dopHint,
    latency: { ...base.latency, ...file.latency },
    retryAfterPenaltySeconds: file.retryAfterPenaltySeconds ?? base.retryAfterPenaltySeconds,
    faults: { ...base.faults, ...file.faults }
  }
}

/**
 * Requests a web server runs at full speed for one user: its share of the dop hint,
 * `floor(dopHint / servers)`, at least 1. The service documents `x-ms-dop-hint` as the
 * parallelism recommended for the environment and says that sending more makes things worse.
 * So a request admitted while k > capacity requests of its user run on its server takes
 * `(k / capacity)^2` times its latency (the requests share the server, and contend for it), and
 * that longer time is what its execution-time window is charged: beyond the hint a client's
 * throughput falls and its budget is spent faster (`slowdown`).
 *
 * @since 0.1.0
 */
export const serverCapacity = (profile: Profile, servers: number = profile.servers): number =>
  Math.max(1, Math.floor(profile.dopHint / servers))

/**
 * How many times its latency a request takes when it is admitted as one of `inFlight` requests
 * running on a server of `capacity` (see `serverCapacity`).
 *
 * @since 0.1.0
 */
export const slowdown = (inFlight: number, capacity: number): number =>
  inFlight <= capacity ? 1 : (inFlight / capacity) ** 2

/**
 * The execution time the model charges for a request doing `records` records through a bulk
 * message and `operations` other operations.
 *
 * @since 0.1.0
 */
export const latencyMs = (profile: Profile, work: { readonly records: number; readonly operations: number }): number =>
  profile.latency.baseMs + work.records * profile.latency.perRecordMs + work.operations * profile.latency.perOperationMs

/**
 * The emulator's performance model: how many web servers answer and how requests are routed to
 * them, the service protection limits each enforces per user, how long requests take, and which
 * faults are injected.
 *
 * Every element is either documented or a modelling choice, and every modelling choice is a field
 * of `Profile`, so that a client is judged across variants of the model instead of being fitted to
 * one. Sources: the wire reference (`dataverse-webapi.md`, section 6) and Microsoft Learn,
 * "Service protection API limits" (api-limits) and "Send parallel requests".
 *
 * Documented: limits are per user **and per web server** (requests and execution time over a
 * 300 s sliding window, concurrent requests); responses set `ARRAffinity` cookies, a client that
 * returns them is routed to the same server (unless "capacity management forces it" elsewhere), a
 * cookie-less client is spread over the servers; `x-ms-dop-hint` is the recommended parallelism
 * of the environment.
 *
 * Modelling choices: latency (a bulk message over n records takes `baseMs + n * perRecordMs`; a
 * single operation `baseMs + perOperationMs`; a `$batch` of k operations `baseMs + k *
 * perOperationMs`), held from admission and then counted into the execution-time window;
 * `jitter` (how much that time varies from one request to the next);
 * `slowdown` (what more parallelism than a server runs at full speed costs); `balancer` (how
 * cookie-less requests are spread and what a cookie value means); the penalty for pushing while
 * throttled; the read lag of elastic tables; faults.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as S from "effect/Schema"
import { firstIssue } from "./internal/decode.js"

/**
 * Fault injection, as probabilities per request (0 to 1), drawn from a seeded generator so a
 * run can be replayed. A modelling choice throughout: the service documents none of these rates.
 *
 * @since 0.1.0
 * @category models
 */
export interface FaultRates {
  readonly seed: number
  /** A 429 (0x80072322) with `Retry-After: 1`, beyond what the limits produce; it starts no hold. */
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
 * What running more requests of one user than a web server runs at full speed costs. A modelling
 * choice: the service documents only that `x-ms-dop-hint` is the recommended parallelism, and
 * users report latency rising well below the concurrency limit (wire reference, section 6).
 *
 * A request admitted as one of k requests of its user in flight on a server of capacity c takes
 * `(k / c) ^ exponent` times its latency when k > c, and is charged that longer time.
 *
 * @since 0.1.0
 * @category models
 */
export interface Slowdown {
  /** 0: no slowdown at all. */
  readonly exponent: number
  /** Requests of one user a server runs at full speed; absent: `floor(dopHint / servers)`, at least 1. */
  readonly capacity?: number
}

/**
 * How much the time of a request varies: each request's time (and the execution it is charged)
 * is multiplied by a factor drawn uniformly from `[1 - spread, 1 + spread]`, from `seed`'s own
 * generator (so that turning faults or random routing on does not change the draws). A modelling
 * choice: the service documents no latency at all. Without it every request of one size takes the
 * same time, so requests sent together complete together for ever after, which no real service
 * does. The mean is unchanged; the model optimum is of the mean times and does not count what
 * varying times cost (a server given more than its capacity in flight at times).
 *
 * @since 0.1.0
 * @category models
 */
export interface Jitter {
  /** 0 to 0.9: how far a factor may be from 1. */
  readonly spread: number
  readonly seed: number
}

/**
 * The load balancer in front of the web servers. Documented: responses set `ARRAffinity`
 * cookies; a client that returns them sticks to one server; a cookie-less client is spread. The
 * rest is a modelling choice: how the spreading is done, whether a kept cookie is honoured (the
 * service may re-route it "if capacity management forces it"), and what a value looks like (its
 * meaning is undocumented). Values are opaque: derived from a secret drawn when the emulator
 * starts, so no client can compute one from a server's number.
 *
 * @since 0.1.0
 * @category models
 */
export interface Balancer {
  /** How requests without an honoured cookie are spread: in turn, or drawn from `seed`'s generator. */
  readonly spread: "roundRobin" | "random"
  /** Seeds `random` spreading; its own generator, so turning faults on does not change routing. */
  readonly seed: number
  /** `honoured`: a cookie naming a server sends the request there; `ignored`: every request is spread. */
  readonly affinity: "honoured" | "ignored"
  /**
   * `stable`: one value per server for the emulator's life; `rotating`: every response sets a
   * fresh value (the last 10,000 issued are still honoured).
   */
  readonly cookies: "stable" | "rotating"
}

/**
 * A performance profile. `Infinity` means no limit.
 *
 * @since 0.1.0
 * @category models
 */
export interface Profile {
  readonly name: string
  /** Web servers behind the load balancer (documented: most environments have several, trials one). */
  readonly servers: number
  /** Concurrent requests per user and server (documented: 52 "or higher"). */
  readonly concurrencyLimit: number
  /** The sliding window of the two window limits (documented: 300 s). */
  readonly windowSeconds: number
  /** Requests per user, server and window (documented: 6,000 per 300 s). */
  readonly requestsPerWindow: number
  /** Execution time per user, server and window (documented: 1,200,000 ms per 300 s). */
  readonly executionMsPerWindow: number
  /** The `x-ms-dop-hint` advertised (documented: the recommended parallelism of the environment). */
  readonly dopHint: number
  /** Modelling choice: the time a request takes and is charged (see the module comment). */
  readonly latency: { readonly baseMs: number; readonly perRecordMs: number; readonly perOperationMs: number }
  /** Modelling choice: how much each request's time varies; absent, none (every named profile). */
  readonly jitter?: Jitter
  /** Modelling choice: the cost of parallelism beyond what a server runs at full speed. */
  readonly slowdown: Slowdown
  /**
   * Modelling choice: seconds each refusal beyond `refusalsBeforePenalty` adds to a hold (the
   * service documents only that the wait is extended for a client that keeps sending).
   */
  readonly retryAfterPenaltySeconds: number
  /**
   * Modelling choice: refusals during one hold (the one that started it included) that cost
   * nothing. At least as many as a client can have outstanding, so that a client whose requests
   * each learn of the hold once is never penalised.
   */
  readonly refusalsBeforePenalty: number
  /** Modelling choice: routing and affinity cookies. */
  readonly balancer: Balancer
  /**
   * Modelling choice: a read of an elastic table without an `MSCRM.SessionToken` as new as a
   * record's creation does not see it for this long (documented: reads without the session token
   * may miss the session's own writes). 0: every read sees every write.
   */
  readonly elasticReadLagMs: number
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

const defaultBalancer: Balancer = { spread: "roundRobin", seed: 1, affinity: "honoured", cookies: "stable" }

/**
 * `fast`: no latency, no limits, no slowdown, no faults. For tests and for measuring clients' own
 * cost.
 *
 * @since 0.1.0
 * @category constructors
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
  slowdown: { exponent: 0 },
  retryAfterPenaltySeconds: 0,
  refusalsBeforePenalty: 52,
  balancer: defaultBalancer,
  elasticReadLagMs: 0,
  faults: noFaults
}

/**
 * `realistic`: the documented limits (52 concurrent, 6,000 requests and 1,200,000 ms of execution
 * per 300 s, per user and server), two web servers, and latencies of the order seen on the
 * service (a 1,000-record CreateMultiple takes about 8 s). Runs in real time.
 *
 * @since 0.1.0
 * @category constructors
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
  slowdown: { exponent: 2 },
  retryAfterPenaltySeconds: 5,
  refusalsBeforePenalty: 52,
  balancer: defaultBalancer,
  elasticReadLagMs: 0,
  faults: noFaults
}

/**
 * `bench`: the realistic shape scaled down 30x in time (10 s windows with a thirtieth of the
 * budgets), so that a benchmark meets every limit within a short run.
 *
 * @since 0.1.0
 * @category constructors
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
  slowdown: { exponent: 2 },
  retryAfterPenaltySeconds: 1,
  refusalsBeforePenalty: 52,
  balancer: defaultBalancer,
  elasticReadLagMs: 0,
  faults: noFaults
}

/**
 * `silent`: `bench`'s numbers without the window limits, and servers that run only 2 requests
 * of a user at full speed though the dop hint says 8: latency and charged time grow with load
 * beyond 2 in flight and no 429 ever comes before the concurrency limit (52). Users report this
 * "silent" throttling (wire reference, section 6: DataverseServiceClient issue 530); a client
 * must notice it from the latency it measures.
 *
 * @since 0.1.0
 * @category constructors
 */
export const silent: Profile = {
  ...bench,
  name: "silent",
  requestsPerWindow: Infinity,
  executionMsPerWindow: Infinity,
  slowdown: { exponent: 2, capacity: 2 }
}

/**
 * The names of the named profiles.
 *
 * @since 0.1.0
 * @category utils
 */
export const profileNames = ["fast", "realistic", "bench", "silent"] as const

/**
 * A named profile.
 *
 * @since 0.1.0
 * @category models
 */
export type ProfileName = typeof profileNames[number]

/**
 * The named profiles.
 *
 * @since 0.1.0
 * @category utils
 */
export const profiles: Readonly<Record<string, Profile>> & Readonly<Record<ProfileName, Profile>> = {
  fast,
  realistic,
  bench,
  silent
}

const limit = S.optionalWith(S.Union(S.Number.pipe(S.positive()), S.Null), { exact: true })
const nonNegative = S.Number.pipe(S.nonNegative())
const probability = S.Number.pipe(S.between(0, 1))
const optional = <A, I, R>(schema: S.Schema<A, I, R>) => S.optionalWith(schema, { exact: true })

const ProfileFile = S.Struct({
  extends: optional(S.Literal(...profileNames)),
  name: optional(S.String),
  servers: optional(S.Int.pipe(S.between(1, 64))),
  concurrencyLimit: limit,
  windowSeconds: optional(S.Number.pipe(S.positive())),
  requestsPerWindow: limit,
  executionMsPerWindow: limit,
  dopHint: optional(S.Int.pipe(S.positive())),
  latency: optional(S.Struct({
    baseMs: optional(nonNegative),
    perRecordMs: optional(nonNegative),
    perOperationMs: optional(nonNegative)
  })),
  jitter: optional(S.Struct({
    spread: S.Number.pipe(S.between(0, 0.9)),
    seed: optional(S.Int)
  })),
  slowdown: optional(S.Struct({
    exponent: optional(nonNegative),
    // null: from the dop hint (to undo the capacity of the profile extended).
    capacity: optional(S.Union(S.Int.pipe(S.positive()), S.Null))
  })),
  retryAfterPenaltySeconds: optional(nonNegative),
  refusalsBeforePenalty: optional(S.Int.pipe(S.nonNegative())),
  balancer: optional(S.Struct({
    spread: optional(S.Literal("roundRobin", "random")),
    seed: optional(S.Int),
    affinity: optional(S.Literal("honoured", "ignored")),
    cookies: optional(S.Literal("stable", "rotating"))
  })),
  elasticReadLagMs: optional(nonNegative),
  faults: optional(S.Struct({
    seed: optional(S.Int),
    throttle: optional(probability),
    unavailable: optional(probability),
    resetBeforeCommit: optional(probability),
    resetAfterCommit: optional(probability),
    timeout: optional(probability),
    timeoutMs: optional(S.Int.pipe(S.positive()))
  }))
})

/**
 * Reads a profile from JSON: any field of `Profile`, over `extends` (a named profile, default
 * `fast`); a limit of `null` means none. Returns the profile or a message naming what is wrong.
 *
 * @example
 * ```json
 * { "extends": "bench", "servers": 2, "balancer": { "spread": "random", "seed": 3 },
 *   "faults": { "seed": 7, "throttle": 0.05, "resetAfterCommit": 0.005 } }
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const decodeProfile = (json: unknown): Profile | string => {
  const decoded = S.decodeUnknownEither(ProfileFile, { errors: "first", onExcessProperty: "error" })(json)
  if (Either.isLeft(decoded)) return `Invalid profile: ${firstIssue(decoded.left)}`
  const file = decoded.right
  const base = profiles[file.extends ?? "fast"]
  const orInfinity = (value: number | null | undefined, fallback: number) =>
    value === undefined ? fallback : value === null ? Infinity : value
  const capacity = file.slowdown?.capacity === undefined ? base.slowdown.capacity : file.slowdown.capacity ?? undefined
  const jitter = file.jitter === undefined
    ? base.jitter
    : { spread: file.jitter.spread, seed: file.jitter.seed ?? base.jitter?.seed ?? 1 }
  return {
    name: file.name ?? `${base.name}+file`,
    servers: file.servers ?? base.servers,
    concurrencyLimit: orInfinity(file.concurrencyLimit, base.concurrencyLimit),
    windowSeconds: file.windowSeconds ?? base.windowSeconds,
    requestsPerWindow: orInfinity(file.requestsPerWindow, base.requestsPerWindow),
    executionMsPerWindow: orInfinity(file.executionMsPerWindow, base.executionMsPerWindow),
    dopHint: file.dopHint ?? base.dopHint,
    latency: { ...base.latency, ...file.latency },
    ...(jitter === undefined ? {} : { jitter }),
    slowdown: {
      exponent: file.slowdown?.exponent ?? base.slowdown.exponent,
      ...(capacity === undefined ? {} : { capacity })
    },
    retryAfterPenaltySeconds: file.retryAfterPenaltySeconds ?? base.retryAfterPenaltySeconds,
    refusalsBeforePenalty: file.refusalsBeforePenalty ?? base.refusalsBeforePenalty,
    balancer: { ...base.balancer, ...file.balancer },
    elasticReadLagMs: file.elasticReadLagMs ?? base.elasticReadLagMs,
    faults: { ...base.faults, ...file.faults }
  }
}

/**
 * Requests of one user a web server runs at full speed: `profile.slowdown.capacity`, or by
 * default its share of the dop hint, `floor(dopHint / servers)`, at least 1 (a modelling choice,
 * see `Slowdown`).
 *
 * @since 0.1.0
 * @category utils
 */
export const serverCapacity = (profile: Profile, servers: number = profile.servers): number =>
  profile.slowdown.capacity ?? Math.max(1, Math.floor(profile.dopHint / servers))

/**
 * How many times its latency a request takes (and is charged) when it is admitted as one of
 * `inFlight` requests of its user on one of `servers` web servers: `(inFlight / capacity) ^
 * exponent` above the server's capacity (`serverCapacity`), else 1.
 *
 * @since 0.1.0
 * @category utils
 */
export const slowdown = (profile: Profile, inFlight: number, servers: number = profile.servers): number => {
  const capacity = serverCapacity(profile, servers)
  return profile.slowdown.exponent === 0 || inFlight <= capacity
    ? 1
    : (inFlight / capacity) ** profile.slowdown.exponent
}

/**
 * The execution time the model charges for a request doing `records` records through a bulk
 * message and `operations` other operations, before any slowdown.
 *
 * @since 0.1.0
 * @category utils
 */
export const latencyMs = (profile: Profile, work: { readonly records: number; readonly operations: number }): number =>
  profile.latency.baseMs + work.records * profile.latency.perRecordMs + work.operations * profile.latency.perOperationMs

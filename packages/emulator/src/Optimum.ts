/**
 * The model optimum: the shortest time the performance model (`Model.ts`) allows for a bulk
 * job, so that a client's measured throughput can be scored against the best possible.
 *
 * For N rows sent through a bulk message (`CreateMultiple`, `UpdateMultiple`, `UpsertMultiple`)
 * in chunks of n, each request holds a concurrency slot for `t(n) = latencyMs(profile, { records:
 * n })` (`baseMs + n * perRecordMs`) and is then counted into its server's execution-time window.
 * Per user and server the model admits a request only while (in this order, as
 * `internal/throttle.ts` checks them) fewer than `concurrencyLimit` are in flight, fewer than
 * `requestsPerWindow` arrived within the last `windowSeconds`, and less than
 * `executionMsPerWindow` of execution completed within it.
 *
 * The optimum is the schedule of an ideal client that knows the model: it is never refused
 * (no 429, no hold, no Retry-After penalty), spreads the chunks evenly over the web servers, and
 * follows the service's guidance, parallel at the dop hint: it keeps its server's share of the
 * hint in flight, `floor(dopHint / servers)`, and no more than the server runs at full speed when
 * the profile slows requests beyond that (`idealInFlight`; more in flight is then slower: the
 * tests drive the model with a greedy client to check this). It sends each chunk at the first
 * instant the model would admit it. That counts the first window's burst (an empty window admits
 * requests at once) and what the model lets through because execution time is counted when a
 * request completes (every request admitted while the sum is under budget runs, including those
 * in flight when it crosses). Network and client costs are zero, so no real client reaches 100%.
 * The best over chunk sizes `minChunkSize..maxChunkSize` (default 1..1,000, the bulk messages'
 * range) is the optimum. A profile's `jitter` is left out: it is the optimum of the mean times.
 *
 * @since 0.1.0
 */
import { latencyMs, type Profile, serverCapacity, slowdown } from "./Model.js"

/**
 * Requests the ideal client keeps in flight on each web server: its share of the dop hint,
 * `floor(dopHint / servers)` (at least 1), but no more than the server's capacity
 * (`Model.serverCapacity`) when the profile slows requests beyond it (`slowdown.exponent > 0`).
 *
 * @since 0.1.0
 * @category utils
 */
export const idealInFlight = (profile: Profile, servers: number = profile.servers): number => {
  const share = Math.max(1, Math.floor(profile.dopHint / servers))
  return profile.slowdown.exponent > 0 ? Math.min(share, serverCapacity(profile, servers)) : share
}

/**
 * What held the ideal client back the longest: a limit it waited on, or `latency` when it never
 * waited (the job took as long as its requests run). `concurrency` is its cap on requests in
 * flight: the service's concurrency limit, or (usually) `idealInFlight` or `maxInFlight`.
 *
 * @since 0.1.0
 * @category models
 */
export type Constraint = "latency" | "concurrency" | "requests" | "executionTime"

/**
 * The ideal schedule of one job at one chunk size.
 *
 * @since 0.1.0
 * @category models
 */
export interface IdealRun {
  readonly rows: number
  readonly chunkSize: number
  /** Requests sent, over all servers. */
  readonly requests: number
  readonly servers: number
  /** Requests in flight per server at most: `maxInFlight` (default `idealInFlight`), under the concurrency limit. */
  readonly inFlight: number
  /** From the first request to the last answer. */
  readonly seconds: number
  /** `rows / seconds`; `Infinity` when the model charges no time at all. */
  readonly rowsPerSecond: number
  readonly binding: Constraint
  /** Milliseconds the ideal client waited on each limit, on the server that finished last. */
  readonly waitedMs: { readonly concurrency: number; readonly requests: number; readonly executionTime: number }
  /**
   * The budgets' long-run rate at this chunk size, without the burst or completion-time counting:
   * `servers * n * min(inFlight / t(n), requestsPerWindow / window, executionMsPerWindow / (t(n) * window))`,
   * with t(n) slowed down as the model slows `inFlight` requests.
   */
  readonly sustainedRowsPerSecond: number
}

/**
 * Options of `optimum` and `schedule`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Rows of the job. */
  readonly rows: number
  /** Web servers; default the profile's. */
  readonly servers?: number
  /**
   * Requests in flight per server at most (under the concurrency limit); default `idealInFlight`.
   * More than the server's capacity are slowed down as the model slows them.
   */
  readonly maxInFlight?: number
  /** Chunk sizes tried by `optimum`: default 1..1,000. */
  readonly minChunkSize?: number
  readonly maxChunkSize?: number
}

/** A binary min-heap of completion times with their execution ms. */
class Completions {
  private readonly at: Array<number> = []
  private readonly ms: Array<number> = []
  get size(): number {
    return this.at.length
  }
  peek(): number {
    return this.at[0]!
  }
  push(at: number, ms: number): void {
    const a = this.at, m = this.ms
    let i = a.length
    a.push(at)
    m.push(ms)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (a[parent]! <= at) break
      a[i] = a[parent]!
      m[i] = m[parent]!
      i = parent
    }
    a[i] = at
    m[i] = ms
  }
  /** Removes the earliest completion and returns its execution ms. */
  pop(): number {
    const a = this.at, m = this.ms
    const top = m[0]!
    const lastAt = a.pop()!
    const lastMs = m.pop()!
    const n = a.length
    if (n > 0) {
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        if (left >= n) break
        const child = left + 1 < n && a[left + 1]! < a[left]! ? left + 1 : left
        if (a[child]! >= lastAt) break
        a[i] = a[child]!
        m[i] = m[child]!
        i = child
      }
      a[i] = lastAt
      m[i] = lastMs
    }
    return top
  }
}

interface ServerRun {
  readonly finishMs: number
  readonly waitedMs: { concurrency: number; requests: number; executionTime: number }
}

/**
 * One server, one user: the greedy schedule of requests costing `costs[i]` ms each, in order,
 * under the admission rules of `internal/throttle.ts` (a completion at the same instant as an
 * admission is counted first, as a client learns of it only from the answer).
 */
const runServer = (
  profile: Profile,
  costs: ReadonlyArray<number>,
  inFlightLimit: number,
  servers: number
): ServerRun => {
  const windowMs = profile.windowSeconds * 1000
  const requestLimit = profile.requestsPerWindow
  const executionLimit = profile.executionMsPerWindow
  const waitedMs = { concurrency: 0, requests: 0, executionTime: 0 }
  const inFlight = new Completions()
  const arrivals: Array<number> = []
  let arrivalHead = 0
  const executionAt: Array<number> = []
  const executionMs: Array<number> = []
  let executionHead = 0
  let executionSum = 0
  let now = 0
  let finishMs = 0
  let next = 0
  while (next < costs.length) {
    while (inFlight.size > 0 && inFlight.peek() <= now) {
      const at = inFlight.peek()
      const ms = inFlight.pop()
      executionAt.push(at)
      executionMs.push(ms)
      executionSum += ms
    }
    const since = now - windowMs
    while (arrivalHead < arrivals.length && arrivals[arrivalHead]! <= since) arrivalHead++
    while (executionHead < executionAt.length && executionAt[executionHead]! <= since) {
      executionSum -= executionMs[executionHead]!
      executionHead++
    }
    const blocked = inFlight.size >= inFlightLimit
      ? "concurrency"
      : arrivals.length - arrivalHead >= requestLimit
      ? "requests"
      : executionSum >= executionLimit
      ? "executionTime"
      : undefined
    if (blocked === undefined) {
      const cost = costs[next++]! * slowdown(profile, inFlight.size + 1, servers)
      arrivals.push(now)
      inFlight.push(now + cost, cost)
      if (now + cost > finishMs) finishMs = now + cost
      continue
    }
    // Nothing changes before the next completion or the next expiry from a window.
    let wake = Infinity
    if (inFlight.size > 0) wake = Math.min(wake, inFlight.peek())
    if (arrivalHead < arrivals.length) wake = Math.min(wake, arrivals[arrivalHead]! + windowMs)
    if (executionHead < executionAt.length) wake = Math.min(wake, executionAt[executionHead]! + windowMs)
    if (!Number.isFinite(wake)) {
      // Cannot happen with positive limits; guards against a profile that admits nothing.
      throw new Error(`Optimum: the profile '${profile.name}' never admits a request (${blocked})`)
    }
    waitedMs[blocked] += wake - now
    now = wake
  }
  return { finishMs, waitedMs }
}

const sustained = (profile: Profile, chunkSize: number, servers: number, inFlight: number): number => {
  // In a steady state of `inFlight` requests, each takes t(n) times the model's slowdown (so
  // without a cap on requests in flight, the rate tends to nothing when the model slows them).
  const unslowed = latencyMs(profile, { records: chunkSize, operations: 0 })
  if (unslowed > 0 && !Number.isFinite(inFlight) && profile.slowdown.exponent > 0) return 0
  const t = unslowed * slowdown(profile, inFlight, servers)
  const windowSeconds = profile.windowSeconds
  const perSecond = Math.min(
    t > 0 ? inFlight / (t / 1000) : Infinity,
    profile.requestsPerWindow / windowSeconds,
    t > 0 ? profile.executionMsPerWindow / t / windowSeconds : Infinity
  )
  return servers * chunkSize * perSecond
}

/**
 * The ideal client's schedule for `options.rows` rows in chunks of `chunkSize`.
 *
 * @example
 * ```ts
 * import { bench } from "@dv-effect/emulator/Model"
 * import { schedule } from "@dv-effect/emulator/Optimum"
 * schedule(bench, 1000, { rows: 100_000 }).rowsPerSecond
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const schedule = (profile: Profile, chunkSize: number, options: Options): IdealRun => {
  const rows = options.rows
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`Optimum: chunk size ${chunkSize}`)
  if (!Number.isInteger(rows) || rows < 0) throw new Error(`Optimum: rows ${rows}`)
  const servers = options.servers ?? profile.servers
  const inFlight = Math.min(profile.concurrencyLimit, options.maxInFlight ?? idealInFlight(profile, servers))
  const requests = Math.ceil(rows / chunkSize)
  const base = {
    rows,
    chunkSize,
    requests,
    servers,
    inFlight,
    sustainedRowsPerSecond: sustained(profile, chunkSize, servers, inFlight)
  }
  const cost = (records: number) => latencyMs(profile, { records, operations: 0 })
  if (requests === 0 || (cost(chunkSize) === 0 && !Number.isFinite(profile.requestsPerWindow))) {
    // Nothing takes time, and no request window makes the client wait.
    const seconds = requests === 0 ? 0 : cost(Math.min(chunkSize, rows)) / 1000
    return {
      ...base,
      seconds,
      rowsPerSecond: seconds > 0 ? rows / seconds : rows > 0 ? Infinity : 0,
      binding: "latency",
      waitedMs: { concurrency: 0, requests: 0, executionTime: 0 }
    }
  }
  // Chunk i goes to server i mod servers; the last chunk holds the remainder.
  const last = rows - (requests - 1) * chunkSize
  let slowest: ServerRun = { finishMs: 0, waitedMs: { concurrency: 0, requests: 0, executionTime: 0 } }
  for (let server = 0; server < Math.min(servers, requests); server++) {
    const costs: Array<number> = []
    for (let i = server; i < requests; i += servers) costs.push(cost(i === requests - 1 ? last : chunkSize))
    const run = runServer(profile, costs, inFlight, servers)
    if (run.finishMs > slowest.finishMs) slowest = run
  }
  const seconds = slowest.finishMs / 1000
  const waited = slowest.waitedMs
  const most = Math.max(waited.concurrency, waited.requests, waited.executionTime)
  const binding: Constraint = most === 0
    ? "latency"
    : most === waited.executionTime
    ? "executionTime"
    : most === waited.requests
    ? "requests"
    : "concurrency"
  return {
    ...base,
    seconds,
    rowsPerSecond: seconds > 0 ? rows / seconds : Infinity,
    binding,
    waitedMs: waited
  }
}

/**
 * The best schedule over chunk sizes (the smallest chunk size among equally fast ones): the
 * model optimum for a bulk job of `options.rows` rows.
 *
 * @example
 * ```ts
 * import { bench } from "@dv-effect/emulator/Model"
 * import { optimum } from "@dv-effect/emulator/Optimum"
 * const best = optimum(bench, { rows: 100_000 })
 * console.log(best.chunkSize, Math.round(best.rowsPerSecond), best.binding)
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const optimum = (profile: Profile, options: Options): IdealRun => {
  const from = options.minChunkSize ?? 1
  const to = Math.min(options.maxChunkSize ?? 1000, Math.max(from, options.rows))
  let best: IdealRun | undefined
  for (let n = from; n <= to; n++) {
    const candidate = schedule(profile, n, options)
    if (best === undefined || candidate.seconds < best.seconds) best = candidate
  }
  return best!
}

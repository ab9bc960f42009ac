/**
 * The state behind the performance model: for each (user, web server), requests in flight, a
 * sliding window of requests and execution time, and how long the user was told to wait.
 * Service protection errors follow the wire reference (section 6): the concurrency limit
 * answers at once; the window limits refuse only once a window is exceeded; Retry-After is the
 * time until the window frees, and grows when a client keeps sending while it should wait.
 */
import { createHash } from "node:crypto"
import { type FaultRates, type Profile, serverCapacity, slowdown } from "../Model.js"
import { Fault } from "./fault.js"

/** Which limit refused a request. */
export type ThrottleKind = "requests" | "executionTime" | "concurrency" | "injected"

const codes: Record<ThrottleKind, string> = {
  requests: "0x80072322",
  executionTime: "0x80072321",
  concurrency: "0x80072326",
  injected: "0x80072322"
}

/** Counters per web server. */
export interface ServerCounters {
  requests: number
  throttled: { requests: number; executionTime: number; concurrency: number; injected: number }
  faults: { unavailable: number; resetBeforeCommit: number; resetAfterCommit: number; timeout: number }
}

/** The fault drawn for a request. */
export type InjectedFault = "none" | "throttle" | "unavailable" | "resetBeforeCommit" | "resetAfterCommit" | "timeout"

interface Lane {
  inFlight: number
  /** Arrival times of admitted requests in the window, oldest first. */
  arrivals: Array<number>
  /** Completed requests' (finish time, execution ms), oldest first. */
  executions: Array<{ readonly at: number; readonly ms: number }>
  executionSum: number
  /** Until when this user was told to wait, and by which limit. */
  blockedUntil: number
  blockedBy: ThrottleKind
}

/** mulberry32: small, fast and seeded, so fault runs replay. */
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The admission decision for one request. */
export type Admission =
  | {
    readonly _tag: "Admitted"
    /**
     * How many times its modelled latency this request takes: more than 1 above the server's
     * capacity (`serverCapacity`, `slowdown`).
     */
    readonly slowdown: number
    readonly release: (executionMs: number) => void
  }
  | { readonly _tag: "Throttled"; readonly kind: ThrottleKind; readonly fault: Fault }

export class ServiceModel {
  readonly counters: Array<ServerCounters>
  private readonly lanes = new Map<string, Lane>()
  private readonly random: () => number
  private nextServer = 0
  private readonly capacity: number
  /** Affinity cookie values, one per server, so a returned cookie maps back to its server. */
  readonly affinityTokens: ReadonlyArray<string>

  constructor(readonly profile: Profile, private readonly now: () => number = Date.now) {
    this.random = seeded(profile.faults.seed)
    this.capacity = serverCapacity(profile)
    this.counters = Array.from({ length: profile.servers }, () => ({
      requests: 0,
      throttled: { requests: 0, executionTime: 0, concurrency: 0, injected: 0 },
      faults: { unavailable: 0, resetBeforeCommit: 0, resetAfterCommit: 0, timeout: 0 }
    }))
    // 64 hex characters, like the service's cookie values.
    this.affinityTokens = Array.from(
      { length: profile.servers },
      (_, i) => createHash("sha256").update(`dv-effect web server ${i}`).digest("hex")
    )
  }

  /** The server a request goes to: the one its affinity cookie names, else the next in turn. */
  pickServer(affinityCookie: string | undefined): number {
    const pinned = affinityCookie === undefined ? -1 : this.affinityTokens.indexOf(affinityCookie)
    if (pinned >= 0) return pinned
    const server = this.nextServer
    this.nextServer = (this.nextServer + 1) % this.profile.servers
    return server
  }

  private lane(user: string, server: number): Lane {
    const key = `${server}:${user}`
    let lane = this.lanes.get(key)
    if (lane === undefined) {
      lane = { inFlight: 0, arrivals: [], executions: [], executionSum: 0, blockedUntil: 0, blockedBy: "requests" }
      this.lanes.set(key, lane)
    }
    return lane
  }

  private expire(lane: Lane, now: number): void {
    const since = now - this.profile.windowSeconds * 1000
    let drop = 0
    while (drop < lane.arrivals.length && lane.arrivals[drop]! <= since) drop++
    if (drop > 0) lane.arrivals.splice(0, drop)
    drop = 0
    while (drop < lane.executions.length && lane.executions[drop]!.at <= since) {
      lane.executionSum -= lane.executions[drop]!.ms
      drop++
    }
    if (drop > 0) lane.executions.splice(0, drop)
  }

  /** When the window frees enough for a new request, in ms from now. */
  private windowWait(lane: Lane, now: number, kind: "requests" | "executionTime"): number {
    const windowMs = this.profile.windowSeconds * 1000
    if (kind === "requests") {
      const excess = lane.arrivals.length - this.profile.requestsPerWindow
      return Math.max(0, lane.arrivals[excess]! + windowMs - now)
    }
    let sum = lane.executionSum
    for (const execution of lane.executions) {
      sum -= execution.ms
      if (sum < this.profile.executionMsPerWindow) return Math.max(0, execution.at + windowMs - now)
    }
    return windowMs
  }

  private throttle(server: number, kind: ThrottleKind, waitMs: number, message: string): Admission {
    this.counters[server]!.throttled[kind]++
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000))
    return {
      _tag: "Throttled",
      kind,
      fault: new Fault(429, codes[kind], message, { "Retry-After": String(retryAfter) })
    }
  }

  /** Decides whether a request of `user` on `server` may run now. */
  admit(user: string, server: number): Admission {
    const now = this.now()
    const lane = this.lane(user, server)
    const profile = this.profile
    this.counters[server]!.requests++
    this.expire(lane, now)
    if (lane.blockedUntil > now) {
      // Pushing while told to wait makes the wait longer.
      lane.blockedUntil += profile.retryAfterPenaltySeconds * 1000
      return this.throttle(server, lane.blockedBy, lane.blockedUntil - now, this.message(lane.blockedBy))
    }
    if (lane.inFlight >= profile.concurrencyLimit) {
      return this.throttle(server, "concurrency", 1000, this.message("concurrency"))
    }
    if (lane.arrivals.length >= profile.requestsPerWindow) {
      lane.blockedUntil = now + this.windowWait(lane, now, "requests")
      lane.blockedBy = "requests"
      return this.throttle(server, "requests", lane.blockedUntil - now, this.message("requests"))
    }
    if (lane.executionSum >= profile.executionMsPerWindow) {
      lane.blockedUntil = now + this.windowWait(lane, now, "executionTime")
      lane.blockedBy = "executionTime"
      return this.throttle(server, "executionTime", lane.blockedUntil - now, this.message("executionTime"))
    }
    lane.inFlight++
    lane.arrivals.push(now)
    let released = false
    return {
      _tag: "Admitted",
      slowdown: slowdown(lane.inFlight, this.capacity),
      release: (executionMs) => {
        if (released) return
        released = true
        lane.inFlight--
        lane.executions.push({ at: this.now(), ms: executionMs })
        lane.executionSum += executionMs
      }
    }
  }

  /** An injected 429, as a fault drawn for an admitted request. */
  injectedThrottle(server: number): Fault {
    this.counters[server]!.throttled.injected++
    return new Fault(429, codes.injected, this.message("requests"), { "Retry-After": "1" })
  }

  /** Draws the fault (if any) for one request. */
  drawFault(server: number): InjectedFault {
    const faults: FaultRates = this.profile.faults
    const total = faults.throttle + faults.unavailable + faults.resetBeforeCommit + faults.resetAfterCommit +
      faults.timeout
    if (total === 0) return "none"
    let roll = this.random()
    const counters = this.counters[server]!.faults
    for (const kind of ["throttle", "unavailable", "resetBeforeCommit", "resetAfterCommit", "timeout"] as const) {
      roll -= faults[kind]
      if (roll < 0) {
        if (kind !== "throttle") counters[kind]++
        return kind
      }
    }
    return "none"
  }

  /** The diagnostic rate-limit headers of a response, in the service's formats. */
  rateLimitHeaders(user: string, server: number): Record<string, string> {
    const lane = this.lane(user, server)
    const headers: Record<string, string> = {}
    if (Number.isFinite(this.profile.requestsPerWindow)) {
      headers["x-ms-ratelimit-burst-remaining-xrm-requests"] = String(
        Math.max(0, this.profile.requestsPerWindow - lane.arrivals.length)
      )
    }
    if (Number.isFinite(this.profile.executionMsPerWindow)) {
      const seconds = Math.max(0, (this.profile.executionMsPerWindow - lane.executionSum) / 1000)
      headers["x-ms-ratelimit-time-remaining-xrm-requests"] = seconds.toLocaleString("en-US", {
        minimumFractionDigits: 2,
        maximumFractionDigits: 2
      })
    }
    return headers
  }

  private message(kind: ThrottleKind): string {
    const profile = this.profile
    switch (kind) {
      case "concurrency":
        return `Number of concurrent requests exceeded the limit of ${profile.concurrencyLimit}.`
      case "executionTime":
        return `Combined execution time of incoming requests exceeded limit of ${
          profile.executionMsPerWindow.toLocaleString("en-US")
        } milliseconds over time window of ${profile.windowSeconds} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.`
      default:
        return `Number of requests exceeded the limit of ${profile.requestsPerWindow} over time window of ${profile.windowSeconds} seconds.`
    }
  }
}

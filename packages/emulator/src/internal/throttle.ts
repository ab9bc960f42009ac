/**
 * The state behind the performance model: for each (user, web server) lane, the requests in
 * flight, sliding windows of arrivals and of execution time, and the hold a window refusal
 * starts; the load balancer; the faults drawn.
 *
 * Documented (wire reference, section 6; Microsoft Learn, api-limits):
 * - the three limits, per user and per web server, with their codes and messages; the
 *   concurrency limit answers at once, the window limits refuse only once a window is exceeded
 *   (so admission counts completed requests only, not those in flight);
 * - a refusal carries `Retry-After`, the seconds "before any new requests from the user can be
 *   processed", and later requests are refused "until the Retry-After duration has ended";
 * - a client that keeps sending while throttled gets longer waits;
 * - a refused request does no work and consumes no budget (wire reference: "What a faithful model
 *   must do").
 *
 * Modelling choices:
 * - a window refusal holds the lane until the windows have room for a new request, counting the
 *   charges of requests in flight when they will have completed (the model knows them); that is
 *   the `Retry-After`, rounded up to whole seconds, at least 1;
 * - refusals during one hold beyond `refusalsBeforePenalty` each extend it by
 *   `retryAfterPenaltySeconds`: how "the duration will be extended" for a client that keeps pushing;
 * - a concurrency refusal starts no hold; its `Retry-After` is the time until the lane's first
 *   request in flight completes;
 * - an injected 429 (`faults.throttle`) says `Retry-After: 1` and starts no hold;
 * - a request's time varies by `jitter` (none in the named profiles).
 */
import type { ServerCounters } from "../Emulator.js"
import { type FaultRates, type Profile, slowdown } from "../Model.js"
import { Balancer } from "./balancer.js"
import { Fault } from "./fault.js"
import { seeded } from "./random.js"

/** Which limit refused a request. */
export type ThrottleKind = "requests" | "executionTime" | "concurrency" | "injected"

const codes: Record<ThrottleKind, string> = {
  requests: "0x80072322",
  executionTime: "0x80072321",
  concurrency: "0x80072326",
  injected: "0x80072322"
}

export type { ServerCounters }

/** The fault drawn for a request. */
export type InjectedFault = "none" | "throttle" | "unavailable" | "resetBeforeCommit" | "resetAfterCommit" | "timeout"

/** An admitted request, until it completes. */
interface Running {
  readonly admittedAt: number
  /** What it will be charged, in ms, once known (`Admitted.charge`); it completes at `admittedAt + charge`. */
  charge: number | undefined
}

/** The refusals of a lane until `until`, started by a window refusal. */
interface Hold {
  until: number
  readonly kind: "requests" | "executionTime"
  /** Refusals during this hold, the one that started it included. */
  refusals: number
}

interface Lane {
  readonly running: Set<Running>
  /** Arrival times of admitted requests in the window, oldest first. */
  readonly arrivals: Array<number>
  /**
   * Completed requests' finish times and charges, oldest first. Charges are whole microseconds,
   * so that sums are exact and the hold's end agrees with the admission check to the last digit.
   */
  readonly executions: Array<{ readonly at: number; readonly micros: number }>
  executionMicros: number
  hold: Hold | undefined
}

/** The admission decision for one request. */
export type Admission =
  | {
    readonly _tag: "Admitted"
    /**
     * How many times its modelled latency this request takes: more than 1 above the server's
     * capacity (`Model.slowdown`).
     */
    readonly slowdown: number
    /**
     * Declares what the request will be charged: it completes at its admission plus
     * `executionMs`. Holds started meanwhile count it then.
     */
    readonly charge: (executionMs: number) => void
    /** The request completed (or ended early), charged `executionMs`. Only the first call counts. */
    readonly release: (executionMs: number) => void
  }
  | { readonly _tag: "Throttled"; readonly kind: ThrottleKind; readonly fault: Fault }

const emptyCounters = (): ServerCounters => ({
  requests: 0,
  throttled: { requests: 0, executionTime: 0, concurrency: 0, injected: 0 },
  faults: { unavailable: 0, resetBeforeCommit: 0, resetAfterCommit: 0, timeout: 0 }
})

export class ServiceModel {
  readonly counters: Array<ServerCounters>
  private readonly lanes = new Map<string, Lane>()
  private readonly random: () => number
  private readonly jitterRandom: () => number
  private readonly balancer: Balancer

  constructor(readonly profile: Profile, private readonly now: () => number = Date.now) {
    this.random = seeded(profile.faults.seed)
    this.jitterRandom = seeded(profile.jitter?.seed ?? 1)
    this.balancer = new Balancer(profile.balancer, profile.servers)
    this.counters = Array.from({ length: profile.servers }, emptyCounters)
  }

  /** The server a request goes to, by its `ARRAffinity` cookie and the balancer's rules. */
  pickServer(affinityCookie: string | undefined): number {
    return this.balancer.route(affinityCookie)
  }

  /** The `ARRAffinity` value a response from `server` sets. */
  affinityCookie(server: number): string {
    return this.balancer.cookie(server)
  }

  /** Forgets every window, hold and counter (the routing and its cookies stay). */
  reset(): void {
    this.lanes.clear()
    for (const counters of this.counters) Object.assign(counters, emptyCounters())
  }

  /** Until when the lane of `user` on `server` is held by a window refusal, if it is. */
  heldUntil(user: string, server: number): number | undefined {
    const hold = this.lanes.get(`${server}:${user}`)?.hold
    return hold !== undefined && hold.until > this.now() ? hold.until : undefined
  }

  private lane(user: string, server: number): Lane {
    const key = `${server}:${user}`
    let lane = this.lanes.get(key)
    if (lane === undefined) {
      lane = { running: new Set(), arrivals: [], executions: [], executionMicros: 0, hold: undefined }
      this.lanes.set(key, lane)
    }
    return lane
  }

  private get windowMs(): number {
    return this.profile.windowSeconds * 1000
  }

  private expire(lane: Lane, now: number): void {
    const since = now - this.windowMs
    let drop = 0
    while (drop < lane.arrivals.length && lane.arrivals[drop]! <= since) drop++
    if (drop > 0) lane.arrivals.splice(0, drop)
    drop = 0
    while (drop < lane.executions.length && lane.executions[drop]!.at <= since) {
      lane.executionMicros -= lane.executions[drop]!.micros
      drop++
    }
    if (drop > 0) lane.executions.splice(0, drop)
  }

  /**
   * When the request window has room again: once enough of the oldest arrivals have left it that
   * fewer than the limit remain (nothing is admitted meanwhile).
   */
  private requestsRoom(lane: Lane, now: number): number {
    const excess = lane.arrivals.length - this.profile.requestsPerWindow
    return excess < 0 ? now : lane.arrivals[excess]! + this.windowMs
  }

  /**
   * The earliest time `tau >= from` at which the execution charged within `(tau - window, tau]`
   * is under the limit, counting the requests in flight at their completion (admission +
   * charge): a sweep over the times the sum changes, sorted, O(n log n).
   */
  private executionRoom(lane: Lane, now: number, from: number): number {
    const limit = this.profile.executionMsPerWindow * 1000
    if (!Number.isFinite(limit)) return from
    const windowMs = this.windowMs
    const changes: Array<{ readonly at: number; readonly micros: number }> = []
    let sum = 0
    const add = (at: number, micros: number) => {
      if (at + windowMs <= from) return
      if (at <= from) sum += micros
      else changes.push({ at, micros })
      changes.push({ at: at + windowMs, micros: -micros })
    }
    for (const execution of lane.executions) add(execution.at, execution.micros)
    for (const running of lane.running) {
      if (running.charge !== undefined) {
        add(Math.max(now, running.admittedAt + running.charge), Math.round(running.charge * 1000))
      }
    }
    if (sum < limit) return from
    changes.sort((a, b) => a.at - b.at)
    for (let i = 0; i < changes.length;) {
      const at = changes[i]!.at
      while (i < changes.length && changes[i]!.at === at) sum += changes[i++]!.micros
      if (sum < limit) return at
    }
    // Unreachable with a positive limit: once every charge has left the window the sum is 0.
    return from + windowMs
  }

  /** When the lane's first request in flight completes (a second from now if none has declared its charge). */
  private firstCompletion(lane: Lane, now: number): number {
    let first = Infinity
    for (const running of lane.running) {
      if (running.charge !== undefined) first = Math.min(first, running.admittedAt + running.charge)
    }
    return Number.isFinite(first) ? first : now + 1000
  }

  private refuse(server: number, kind: ThrottleKind, waitMs: number): Admission {
    this.counters[server]!.throttled[kind]++
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000))
    return {
      _tag: "Throttled",
      kind,
      fault: new Fault(429, codes[kind], this.message(kind), { "Retry-After": String(retryAfter) })
    }
  }

  /** Decides whether a request of `user` on `server` may run now. */
  admit(user: string, server: number): Admission {
    const now = this.now()
    const lane = this.lane(user, server)
    const profile = this.profile
    this.counters[server]!.requests++
    this.expire(lane, now)
    const hold = lane.hold
    if (hold !== undefined && now < hold.until) {
      // Refused while held: no work, no budget. Only a client that keeps pushing beyond what its
      // requests in flight can each learn of the hold makes the wait longer.
      hold.refusals++
      if (hold.refusals > profile.refusalsBeforePenalty) hold.until += profile.retryAfterPenaltySeconds * 1000
      return this.refuse(server, hold.kind, hold.until - now)
    }
    // At or after the hold's end, the request is judged on the windows afresh.
    lane.hold = undefined
    if (lane.running.size >= profile.concurrencyLimit) {
      return this.refuse(server, "concurrency", this.firstCompletion(lane, now) - now)
    }
    const requestsFull = lane.arrivals.length >= profile.requestsPerWindow
    if (requestsFull || lane.executionMicros >= profile.executionMsPerWindow * 1000) {
      // Nothing is admitted until both windows have room; requests only leave the request window.
      const until = this.executionRoom(lane, now, requestsFull ? this.requestsRoom(lane, now) : now)
      const kind = requestsFull ? "requests" : "executionTime"
      lane.hold = { until, kind, refusals: 1 }
      return this.refuse(server, kind, until - now)
    }
    const running: Running = { admittedAt: now, charge: undefined }
    lane.running.add(running)
    lane.arrivals.push(now)
    let released = false
    return {
      _tag: "Admitted",
      slowdown: slowdown(profile, lane.running.size),
      charge: (executionMs) => {
        if (!released) running.charge = executionMs
      },
      release: (executionMs) => {
        if (released) return
        released = true
        lane.running.delete(running)
        const micros = Math.round(executionMs * 1000)
        if (micros > 0) {
          lane.executions.push({ at: this.now(), micros })
          lane.executionMicros += micros
        }
      }
    }
  }

  /** The factor the next admitted request's time is multiplied by (`Profile.jitter`); 1 without. */
  jitterFactor(): number {
    const spread = this.profile.jitter?.spread ?? 0
    return spread === 0 ? 1 : 1 + spread * (2 * this.jitterRandom() - 1)
  }

  /** An injected 429, as a fault drawn for an admitted request: `Retry-After: 1`, no hold. */
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

  /**
   * The diagnostic rate-limit headers of a response, in the service's formats (wire reference,
   * section 6: for diagnostics only). Both count the lane's window on this server (a modelling
   * choice: Microsoft's page says the time remaining covers "all connections using the same user
   * account").
   */
  rateLimitHeaders(user: string, server: number): Record<string, string> {
    const lane = this.lane(user, server)
    this.expire(lane, this.now())
    const headers: Record<string, string> = {}
    if (Number.isFinite(this.profile.requestsPerWindow)) {
      headers["x-ms-ratelimit-burst-remaining-xrm-requests"] = String(
        Math.max(0, this.profile.requestsPerWindow - lane.arrivals.length)
      )
    }
    if (Number.isFinite(this.profile.executionMsPerWindow)) {
      const seconds = Math.max(0, this.profile.executionMsPerWindow / 1000 - lane.executionMicros / 1e6)
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

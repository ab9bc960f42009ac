/**
 * Clients against the real `ServiceModel` on a virtual clock: a small discrete-event simulation
 * (no sockets, no sleeps), so that what the model does to a client's retry policy is exact and
 * does not depend on the machine.
 */
import { describe, expect, it } from "vitest"
import { ServiceModel } from "../src/internal/throttle.js"
import * as Model from "../src/Model.js"
import * as Optimum from "../src/Optimum.js"

/**
 * How workers react to a 429: `own`, each waits the Retry-After it was given, then resends (a
 * DynamicsWebApi loop); `shared`, all wait until the latest Retry-After any of them was given;
 * `ignore`, each resends every 100 ms whatever it was told.
 */
type Policy = "own" | "shared" | "ignore"

interface Run {
  /** When the last row was written, in seconds; undefined if the run did not finish. */
  readonly seconds: number | undefined
  readonly rowsWritten: number
  readonly refusals: number
  /** Refusals that found their lane held and lengthened the hold (the penalty for pushing). */
  readonly extensions: number
  /** From the first 429 to the next admission, in ms (Infinity when none came). */
  readonly firstRefusalToAdmission: number
}

const simulate = (
  profile: Model.Profile,
  options: {
    readonly rows: number
    readonly chunkSize: number
    readonly workers: number
    readonly policy: Policy
    /** Virtual time after which the simulation stops, in ms. */
    readonly untilMs: number
  }
): Run => {
  let now = 0
  const model = new ServiceModel(profile, () => now)
  // Pending events, at most one per worker: [time, order (completions first), sequence, action].
  const events: Array<{ at: number; order: number; sequence: number; run: () => void }> = []
  let sequence = 0
  const at = (time: number, order: number, run: () => void): void => {
    events.push({ at: time, order, sequence: sequence++, run })
  }
  let nextRow = 0
  let rowsWritten = 0
  let finishedAt = 0
  let refusals = 0
  let firstRefusal: number | undefined
  let readmitted: number | undefined
  let gate = 0
  let extensions = 0

  const send = (rows: number): void => {
    if (options.policy === "shared" && now < gate) return at(gate, 1, () => send(rows))
    const server = model.pickServer(undefined)
    const heldBefore = model.heldUntil("user", server)
    const admission = model.admit("user", server)
    if (admission._tag === "Admitted") {
      if (firstRefusal !== undefined && readmitted === undefined) readmitted = now
      const ms = Model.latencyMs(profile, { records: rows, operations: 0 }) * admission.slowdown
      admission.charge(ms)
      return at(now + ms, 0, () => {
        admission.release(ms)
        rowsWritten += rows
        finishedAt = now
        take()
      })
    }
    refusals++
    firstRefusal ??= now
    if (heldBefore !== undefined && model.heldUntil("user", server)! > heldBefore) extensions++
    const retryAfterMs = Number(admission.fault.headers["Retry-After"]) * 1000
    expect(Number.isInteger(retryAfterMs / 1000) && retryAfterMs >= 1000).toBe(true)
    if (options.policy === "shared") gate = Math.max(gate, now + retryAfterMs)
    at(now + (options.policy === "ignore" ? 100 : retryAfterMs), 1, () => send(rows))
  }
  const take = (): void => {
    if (nextRow >= options.rows) return
    const rows = Math.min(options.chunkSize, options.rows - nextRow)
    nextRow += rows
    send(rows)
  }

  for (let worker = 0; worker < options.workers; worker++) take()
  while (events.length > 0) {
    let first = 0
    for (let i = 1; i < events.length; i++) {
      const a = events[i]!, b = events[first]!
      if (a.at < b.at || (a.at === b.at && (a.order < b.order || (a.order === b.order && a.sequence < b.sequence)))) {
        first = i
      }
    }
    const event = events.splice(first, 1)[0]!
    if (event.at > options.untilMs) break
    now = event.at
    event.run()
  }
  return {
    seconds: rowsWritten === options.rows ? finishedAt / 1000 : undefined,
    rowsWritten,
    refusals,
    extensions,
    firstRefusalToAdmission: firstRefusal === undefined
      ? 0
      : readmitted === undefined
      ? Infinity
      : readmitted - firstRefusal
  }
}

const job = { rows: 60_000, chunkSize: 500, workers: 8, untilMs: 600_000 } as const

describe("clients that honour Retry-After finish (bench, 60,000 creates per web server in chunks of 500, 8 workers)", () => {
  /**
   * The bound: the ideal client (`Optimum`) is never refused and sends at the first instant the
   * model admits. Honouring whole-second Retry-After values costs a client at most a second per
   * hold beyond that instant, and a hold starts only when a window is spent, about once per
   * window of 10 s; twice the optimum's time covers it with room to spare.
   */
  // On 4 servers the 8 workers run 2 requests on each, 2 x 520 ms of execution a second: under
  // the budget of 4,000, so no window is ever exceeded.
  describe.each([[1, true], [2, true], [4, false]] as const)("on %i web server(s)", (servers, throttled) => {
    // As many rows per server as on one.
    const rows = job.rows * servers
    const profile = { ...Model.bench, servers }
    const best = Optimum.optimum(profile, { rows, servers })

    it.each(["own", "shared"] as const)("workers that wait as told (%s Retry-After)", (policy) => {
      const run = simulate(profile, { ...job, rows, policy })
      expect(run.rowsWritten).toBe(rows)
      expect(run.refusals > 0).toBe(throttled)
      // Each worker learns of a hold once at most, far below refusalsBeforePenalty (52): no
      // hold ever grows. (Had every early arrival pushed the hold, the 'own' loop would never end.)
      expect(run.extensions).toBe(0)
      expect(run.seconds).toBeGreaterThanOrEqual(best.seconds)
      expect(run.seconds).toBeLessThanOrEqual(2 * best.seconds)
    })
  })
})

describe("a client that ignores Retry-After", () => {
  it("is refused longer after its first 429 than one that waits as told", () => {
    const honouring = simulate(Model.bench, { ...job, policy: "own" })
    const pushing = simulate(Model.bench, { ...job, policy: "ignore", untilMs: 120_000 })
    expect(honouring.firstRefusalToAdmission).toBeGreaterThan(0)
    expect(honouring.firstRefusalToAdmission).toBeLessThanOrEqual(Model.bench.windowSeconds * 1000)
    // Eight workers resending every 100 ms pass 52 refusals within a second of the hold, and
    // then add a second to it with every refusal: it is never admitted again.
    expect(pushing.firstRefusalToAdmission).toBeGreaterThan(10 * honouring.firstRefusalToAdmission)
    expect(pushing.seconds).toBeUndefined()
    expect(pushing.extensions).toBeGreaterThan(0)
  })
})

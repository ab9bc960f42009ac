import { describe, expect, it } from "vitest"
import { ServiceModel } from "../src/internal/throttle.js"
import * as Model from "../src/Model.js"
import * as Optimum from "../src/Optimum.js"

const profile = (overrides: Partial<Model.Profile>): Model.Profile => ({ ...Model.fast, ...overrides })
const latency = (baseMs: number, perRecordMs: number) => ({ baseMs, perRecordMs, perOperationMs: 0 })

describe("Optimum.schedule (hand-computed)", () => {
  it("within the server's capacity and without limits, the job takes as long as one request", () => {
    // Two chunks of 5, both sent at 0, each t = 10 + 5 * 1 = 15 ms.
    const plan = Optimum.schedule(profile({ latency: latency(10, 1) }), 5, { rows: 10 })
    expect(plan.requests).toBe(2)
    expect(plan.seconds).toBeCloseTo(0.015)
    expect(plan.rowsPerSecond).toBeCloseTo(10 / 0.015)
    expect(plan.binding).toBe("latency")
  })

  it("no latency and no limits: infinitely fast; a request window still makes the client wait", () => {
    expect(Optimum.schedule(Model.fast, 100, { rows: 1000 }).rowsPerSecond).toBe(Infinity)
    expect(Optimum.optimum(Model.fast, { rows: 1000 }).rowsPerSecond).toBe(Infinity)
    // 10 requests at 3 per 1 s window: sent at 0, 1, 2 and 3 s.
    const windowed = Optimum.schedule(profile({ requestsPerWindow: 3, windowSeconds: 1 }), 100, { rows: 1000 })
    expect(windowed.seconds).toBe(3)
    expect(windowed.binding).toBe("requests")
  })

  it("without a cap on requests in flight, the budgets' sustained rate tends to nothing when the model slows them", () => {
    const p = profile({ latency: latency(10, 1), slowdown: { exponent: 2 } })
    expect(Optimum.schedule(p, 10, { rows: 100, maxInFlight: Infinity }).sustainedRowsPerSecond).toBe(0)
    // At the capacity (8): 8 requests of 10 rows every 20 ms.
    expect(Optimum.schedule(p, 10, { rows: 100 }).sustainedRowsPerSecond).toBeCloseTo(4000)
    // Without a slowdown, nothing but the budgets bounds it.
    const unslowed = profile({ latency: latency(10, 1), requestsPerWindow: 100, windowSeconds: 1 })
    expect(Optimum.schedule(unslowed, 10, { rows: 100, maxInFlight: Infinity }).sustainedRowsPerSecond)
      .toBeCloseTo(1000)
  })

  it("the ideal client keeps the hint's share in flight, no more than a server runs at full speed", () => {
    expect(Optimum.idealInFlight(Model.bench)).toBe(8)
    expect(Optimum.idealInFlight(Model.bench, 2)).toBe(4)
    expect(Optimum.idealInFlight(Model.bench, 16)).toBe(1)
    // silent: the hint says 8, the server runs 2 at full speed.
    expect(Optimum.idealInFlight(Model.silent)).toBe(2)
    // Without a slowdown, parallel at the hint whatever the capacity.
    expect(Optimum.idealInFlight(profile({ slowdown: { exponent: 0, capacity: 2 } }))).toBe(8)
    expect(Optimum.schedule(Model.silent, 100, { rows: 1000 }).inFlight).toBe(2)
    // 10 requests of 120 ms, 2 at a time: 5 rounds, no window.
    expect(Optimum.schedule(Model.silent, 100, { rows: 1000 }).seconds).toBeCloseTo(0.6)
  })

  it("one in flight: requests run back to back", () => {
    // 10 rows in chunks of 5 with one slot: 15 ms + 15 ms.
    const plan = Optimum.schedule(profile({ concurrencyLimit: 1, latency: latency(10, 1) }), 5, { rows: 10 })
    expect(plan.seconds).toBeCloseTo(0.03)
    expect(plan.binding).toBe("concurrency")
    expect(plan.waitedMs).toEqual({ concurrency: 15, requests: 0, executionTime: 0 })
  })

  it("the request window: the first window's burst at once, then one window per budget", () => {
    // 2 requests per 1 s window, 100 ms each, 5 single-row requests: sent at 0, 0, 1000, 1000, 2000.
    const p = profile({ requestsPerWindow: 2, windowSeconds: 1, latency: latency(100, 0) })
    const plan = Optimum.schedule(p, 1, { rows: 5 })
    expect(plan.seconds).toBeCloseTo(2.1)
    expect(plan.binding).toBe("requests")
    expect(plan.waitedMs.requests).toBe(2000)
    // Budgets alone: 2 requests per second of 1 row.
    expect(plan.sustainedRowsPerSecond).toBeCloseTo(2)
  })

  it("the execution window counts a request when it completes", () => {
    // 250 ms per 1 s window, 2 in flight, 100 ms per request, 6 requests:
    // 2 at 0; at 100 the sum is 200 < 250, 2 more; at 200 the sum is 400: wait until the two
    // that completed at 100 leave the window (1100), then the last 2 run to 1200.
    const p = profile({ concurrencyLimit: 2, executionMsPerWindow: 250, windowSeconds: 1, latency: latency(100, 0) })
    const plan = Optimum.schedule(p, 1, { rows: 6 })
    expect(plan.seconds).toBeCloseTo(1.2)
    expect(plan.rowsPerSecond).toBeCloseTo(5)
    expect(plan.binding).toBe("executionTime")
    expect(plan.waitedMs).toEqual({ concurrency: 200, requests: 0, executionTime: 900 })
  })

  it("bench, 100,000 rows in chunks of 1,000: waves of the server's capacity, paused by the window", () => {
    // t = 20 + 1000 = 1020 ms; the server's capacity is the dop hint, 8. Waves of 8 at 0, 1020,
    // ..., 4080 have completed 40,800 ms >= 40,000 at 5,100; the first leaves the 10 s window at
    // 11,020, and waves 6 to 10 run until 16,120, when the window is spent again until 22,040;
    // the last 20 requests (8, 8, 4) end at 25,100.
    const plan = Optimum.schedule(Model.bench, 1000, { rows: 100_000 })
    expect(plan.inFlight).toBe(8)
    expect(plan.seconds).toBeCloseTo(25.1)
    expect(plan.rowsPerSecond).toBeCloseTo(100_000 / 25.1)
    expect(plan.waitedMs.executionTime).toBe(2 * 5920)
    // 4,000 rows/s from the execution budget: 40,000 ms per 10 s at 1,000 rows per 1,020 ms.
    expect(plan.sustainedRowsPerSecond).toBeCloseTo(40_000 / 1020 / 10 * 1000)
  })

  it("two servers share the rows and the dop hint; a cap on requests in flight is honoured", () => {
    // 50 chunks per server, 4 in flight on each (8 / 2): 10 waves have completed 40,800 ms at
    // 10,200; the first leaves the window at 11,020, and from then on one wave leaves as one
    // completes: waves 11, 12 and 13 (2 requests) start at 11,020, 12,040 and 13,060.
    const shared = Optimum.schedule(Model.bench, 1000, { rows: 100_000, servers: 2 })
    expect(shared.inFlight).toBe(4)
    expect(shared.seconds).toBeCloseTo(14.08)
    expect(shared.waitedMs.executionTime).toBe(820)
    // 2 in flight: 25 waves of 2, 2,040 ms each, never more than 40,000 ms in a 10 s window.
    const capped = Optimum.schedule(Model.bench, 1000, { rows: 100_000, servers: 2, maxInFlight: 2 })
    expect(capped.inFlight).toBe(2)
    expect(capped.seconds).toBeCloseTo(25.5)
    expect(capped.binding).toBe("concurrency")
  })

  it("a partial last chunk costs only its own rows", () => {
    // 7 rows in chunks of 5: 15 ms and 12 ms, in parallel.
    const plan = Optimum.schedule(profile({ latency: latency(10, 1), concurrencyLimit: 52 }), 5, { rows: 7 })
    expect(plan.seconds).toBeCloseTo(0.015)
  })
})

describe("Optimum.optimum", () => {
  it("picks the chunk size that fits the job into the fewest windows", () => {
    // Chunks of 694 take t = 714 ms, so a wave of 8 costs 5,712 ms and 7 waves (39,984 ms) stay
    // under the 40,000 budget: 8 waves run back to back, then the window is spent until the
    // first wave leaves it at 10,714. 145 requests (the last of 64 rows, 84 ms) are 8 waves, a
    // wait, 8 waves, a wait until 21,428, then 2 waves and the last request: 22,940 ms, better
    // than 1,000 per chunk (25.1 s).
    const best = Optimum.optimum(Model.bench, { rows: 100_000 })
    expect(best.chunkSize).toBe(694)
    expect(best.requests).toBe(145)
    expect(best.seconds).toBeCloseTo(22.94)
    expect(best.waitedMs.executionTime).toBe(2 * 5002)
  })

  it("at most 100 rows per request, the request window binds", () => {
    // 1,000 requests of t = 120 ms at 200 per 10 s: each window's 200 go in 25 waves of 8, 3 s;
    // the fifth window starts at 40 s, so its last wave ends at 43 s.
    const best = Optimum.optimum(Model.bench, { rows: 100_000, maxChunkSize: 100 })
    expect(best.chunkSize).toBe(100)
    expect(best.binding).toBe("requests")
    expect(best.seconds).toBeCloseTo(43)
  })

  it("small jobs: as few rows per request as the server's capacity allows", () => {
    const best = Optimum.optimum(Model.bench, { rows: 10 })
    // t(n) = 20 + n; 8 run at once, so five 2-row requests take 22 ms; ten 1-row requests take
    // two rounds of 21 ms, and one of 10 rows takes 30 ms.
    expect(best.chunkSize).toBe(2)
    expect(best.seconds).toBeCloseTo(0.022)
  })
})

describe("Optimum against the model itself", () => {
  /**
   * A client that knows the model drives the real `ServiceModel` on a virtual clock: it sends
   * whenever it may (with `greedy`, also beyond the ideal client's cap), waits for a completion
   * when refused for concurrency and exactly until the hold's end (to the millisecond, not the
   * whole seconds of Retry-After) when refused by a window. Kept to the ideal cap, it must finish
   * when the optimum says it does.
   */
  const drive = (p: Model.Profile, chunkSize: number, rows: number, greedy = false) => {
    const capacity = greedy ? Infinity : Optimum.idealInFlight(p)
    const clock = { now: 0 }
    const model = new ServiceModel(p, () => clock.now)
    const requests = Math.ceil(rows / chunkSize)
    const inFlight: Array<{ at: number; ms: number; release: (ms: number) => void }> = []
    let sent = 0
    let finish = 0
    const advance = (to: number) => {
      inFlight.sort((a, b) => a.at - b.at)
      while (inFlight.length > 0 && inFlight[0]!.at <= to) {
        const done = inFlight.shift()!
        clock.now = done.at
        done.release(done.ms)
      }
      clock.now = to
    }
    while (sent < requests) {
      if (inFlight.length >= capacity) {
        advance(Math.min(...inFlight.map((r) => r.at)))
        continue
      }
      const admission = model.admit("u", 0)
      if (admission._tag === "Admitted") {
        const records = sent === requests - 1 ? rows - (requests - 1) * chunkSize : chunkSize
        const ms = Model.latencyMs(p, { records, operations: 0 }) * admission.slowdown
        admission.charge(ms)
        inFlight.push({ at: clock.now + ms, ms, release: admission.release })
        finish = Math.max(finish, clock.now + ms)
        sent++
        continue
      }
      const wake = admission.kind === "concurrency"
        ? Math.min(...inFlight.map((r) => r.at))
        : model.heldUntil("u", 0)!
      advance(wake)
    }
    return finish / 1000
  }

  it.each([1000, 500, 100, 37])("bench, 30,000 rows in chunks of %i", (chunkSize) => {
    expect(Optimum.schedule(Model.bench, chunkSize, { rows: 30_000 }).seconds).toBeCloseTo(
      drive(Model.bench, chunkSize, 30_000),
      6
    )
  })

  it.each([1000, 938, 694, 500, 100, 37])(
    "bench: a client that sends beyond the server's capacity is slower, in chunks of %i",
    (chunkSize) => {
      const best = Optimum.optimum(Model.bench, { rows: 100_000 }).seconds
      const greedy = drive(Model.bench, chunkSize, 100_000, true)
      expect(greedy).toBeGreaterThan(best)
      expect(greedy).toBeGreaterThan(Optimum.schedule(Model.bench, chunkSize, { rows: 100_000 }).seconds)
    }
  )

  it("silent: parallel at the hint is slower than at the servers' real capacity, and nothing is refused", () => {
    const atCapacity = Optimum.schedule(Model.silent, 100, { rows: 10_000 })
    const atHint = Optimum.schedule(Model.silent, 100, { rows: 10_000, maxInFlight: 8 })
    // 100 requests of 120 ms, 2 at a time.
    expect(atCapacity.seconds).toBeCloseTo(6)
    expect(drive(Model.silent, 100, 10_000)).toBeCloseTo(atCapacity.seconds, 6)
    expect(atHint.seconds).toBeGreaterThan(2 * atCapacity.seconds)
    expect([atHint.waitedMs.requests, atHint.waitedMs.executionTime]).toEqual([0, 0])
  })

  it("realistic timings over a scaled-down window", () => {
    const p = {
      ...Model.realistic,
      servers: 1,
      windowSeconds: 20,
      requestsPerWindow: 60,
      executionMsPerWindow: 100_000
    }
    for (const chunkSize of [1000, 250, 10]) {
      expect(Optimum.schedule(p, chunkSize, { rows: 20_000 }).seconds).toBeCloseTo(
        drive(p, chunkSize, 20_000),
        6
      )
    }
  })
})

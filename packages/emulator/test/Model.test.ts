import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import { ServiceModel } from "../src/internal/throttle.js"
import * as Model from "../src/Model.js"

const profile = (overrides: Partial<Model.Profile>): Model.Profile => ({ ...Model.fast, ...overrides })

/** A model on a clock the test moves by hand. */
const modelAt = (p: Model.Profile) => {
  const clock = { now: 1_000_000 }
  return { model: new ServiceModel(p, () => clock.now), clock }
}

describe("ServiceModel", () => {
  it("varies each request's time by its jitter, within the spread, replayed from its own seed", () => {
    const draws = (p: Model.Profile) => {
      const { model } = modelAt(p)
      return Array.from({ length: 1000 }, () => (model.drawFault(0), model.jitterFactor()))
    }
    expect(new Set(draws(profile({})))).toEqual(new Set([1]))
    const jittered = draws(profile({ jitter: { spread: 0.3, seed: 4 } }))
    expect(Math.min(...jittered)).toBeGreaterThanOrEqual(0.7)
    expect(Math.max(...jittered)).toBeLessThanOrEqual(1.3)
    expect(Math.abs(jittered.reduce((a, b) => a + b, 0) / jittered.length - 1)).toBeLessThan(0.02)
    // Uniform over the spread: a standard deviation of 0.3 / sqrt(3), about 0.17.
    const sd = Math.sqrt(jittered.reduce((a, f) => a + (f - 1) ** 2, 0) / jittered.length)
    expect(sd).toBeGreaterThan(0.15)
    expect(sd).toBeLessThan(0.19)
    // The same seed replays the same times, whatever the faults draw; another seed does not.
    const withFaults = profile({
      jitter: { spread: 0.3, seed: 4 },
      faults: { ...Model.fast.faults, seed: 9, throttle: 0.5 }
    })
    expect(draws(withFaults)).toEqual(jittered)
    expect(draws(profile({ jitter: { spread: 0.3, seed: 5 } }))).not.toEqual(jittered)
  })

  it("refuses the request after the window's budget with 0x80072322 and a truthful Retry-After", () => {
    const { clock, model } = modelAt(
      profile({ requestsPerWindow: 3, windowSeconds: 60, retryAfterPenaltySeconds: 5, refusalsBeforePenalty: 1 })
    )
    for (let i = 0; i < 3; i++) {
      const admitted = model.admit("u", 0)
      expect(admitted._tag).toBe("Admitted")
      if (admitted._tag === "Admitted") admitted.release(0)
      clock.now += 10_000
    }
    const refused = model.admit("u", 0)
    expect(refused._tag).toBe("Throttled")
    if (refused._tag !== "Throttled") return
    expect(refused.fault.status).toBe(429)
    expect(refused.fault.code).toBe("0x80072322")
    expect(refused.fault.message).toBe("Number of requests exceeded the limit of 3 over time window of 60 seconds.")
    // The oldest request leaves the 60 s window 30 s from now.
    expect(refused.fault.headers["Retry-After"]).toBe("30")
    // Pushing while told to wait, beyond the refusals allowed (1 here), adds the penalty.
    clock.now += 1_000
    const pushed = model.admit("u", 0)
    expect(pushed._tag === "Throttled" && pushed.fault.headers["Retry-After"]).toBe("34")
    // Honouring the wait is enough.
    clock.now += 34_000
    expect(model.admit("u", 0)._tag).toBe("Admitted")
    expect(model.counters[0]!.throttled.requests).toBe(2)
  })

  it("counts execution time when requests finish and refuses with 0x80072321 once the budget is spent", () => {
    const { clock, model } = modelAt(profile({ executionMsPerWindow: 1_000, windowSeconds: 10 }))
    const a = model.admit("u", 0)
    const b = model.admit("u", 0)
    expect([a._tag, b._tag]).toEqual(["Admitted", "Admitted"])
    if (a._tag === "Admitted") a.release(600)
    clock.now += 2_000
    if (b._tag === "Admitted") b.release(600)
    const refused = model.admit("u", 0)
    expect(refused._tag === "Throttled" && [refused.fault.code, refused.fault.headers["Retry-After"]]).toEqual([
      "0x80072321",
      "8"
    ])
    clock.now += 8_000
    expect(model.admit("u", 0)._tag).toBe("Admitted")
  })

  it("a refused request does no work and consumes no budget", () => {
    const { clock, model } = modelAt(
      profile({ requestsPerWindow: 2, executionMsPerWindow: 1_000, windowSeconds: 10, refusalsBeforePenalty: 1000 })
    )
    for (let i = 0; i < 2; i++) {
      const admitted = model.admit("u", 0)
      if (admitted._tag === "Admitted") admitted.release(400)
    }
    // 100 refusals over the next 9.9 s: none counts as a request or as execution time.
    for (let i = 0; i < 100; i++) {
      clock.now += 99
      expect(model.admit("u", 0)._tag).toBe("Throttled")
    }
    expect(model.counters[0]!.throttled.requests).toBe(100)
    expect(model.counters[0]!.requests).toBe(102)
    clock.now = 1_000_000 + 10_000
    // Both admitted requests left the window at 10 s: the whole budget is there again.
    expect(model.rateLimitHeaders("u", 0)).toEqual({
      "x-ms-ratelimit-burst-remaining-xrm-requests": "2",
      "x-ms-ratelimit-time-remaining-xrm-requests": "1.00"
    })
    expect(model.admit("u", 0)._tag).toBe("Admitted")
    expect(model.admit("u", 0)._tag).toBe("Admitted")
  })

  it("holds until the execution window has room, counting the charges of the requests still in flight", () => {
    const { clock, model } = modelAt(profile({ executionMsPerWindow: 1_000, windowSeconds: 10 }))
    const t0 = clock.now
    const admit = () => {
      const admission = model.admit("u", 0)
      if (admission._tag !== "Admitted") throw new Error(`refused: ${admission.fault.message}`)
      return admission
    }
    // A: 600 ms, done at 600. B: 5,000 ms, in flight until 5,000. C: 500 ms from 600 to 1,100.
    const a = admit()
    const b = admit()
    a.charge(600)
    b.charge(5_000)
    clock.now = t0 + 600
    a.release(600)
    const c = admit()
    c.charge(500)
    clock.now = t0 + 1_100
    c.release(500)
    // 1,100 ms completed: refused. Counting completed requests only, the window would have room
    // at 10,600 (A leaves it); but B completes at 5,000 and its 5,000 ms stay in the window until
    // 15,000: that is when a new request can run.
    clock.now = t0 + 2_000
    const refused = model.admit("u", 0)
    expect(refused._tag === "Throttled" && [refused.fault.code, refused.fault.headers["Retry-After"]]).toEqual([
      "0x80072321",
      "13"
    ])
    expect(model.heldUntil("u", 0)).toBe(t0 + 15_000)
    clock.now = t0 + 5_000
    b.release(5_000)
    clock.now = t0 + 14_999
    const early = model.admit("u", 0)
    expect(early._tag === "Throttled" && early.fault.headers["Retry-After"]).toBe("1")
    // A client that waited what it was told, sending nothing meanwhile, is admitted then.
    clock.now = t0 + 15_000
    expect(model.admit("u", 0)._tag).toBe("Admitted")
  })

  it("lengthens a hold only for refusals beyond refusalsBeforePenalty", () => {
    const { clock, model } = modelAt(
      profile({ requestsPerWindow: 1, windowSeconds: 10, refusalsBeforePenalty: 3, retryAfterPenaltySeconds: 5 })
    )
    const t0 = clock.now
    expect(model.admit("u", 0)._tag).toBe("Admitted")
    const retryAfters = [1_000, 2_000, 3_000, 4_000, 5_000].map((at) => {
      clock.now = t0 + at
      const refused = model.admit("u", 0)
      return refused._tag === "Throttled" ? refused.fault.headers["Retry-After"] : "admitted"
    })
    // The first three refusals (the one that started the hold included) are free: 9, 8, 7 s to
    // the window's room at 10 s; the fourth and fifth add 5 s each.
    expect(retryAfters).toEqual(["9", "8", "7", "11", "15"])
    // A sixth refusal, at 19.999 s, pushes the end to 25 s.
    clock.now = t0 + 19_999
    expect(model.admit("u", 0)._tag).toBe("Throttled")
    clock.now = t0 + 25_000
    expect(model.admit("u", 0)._tag).toBe("Admitted")
  })

  it("slows requests beyond the server's share of the dop hint, by the profile's exponent", () => {
    // A hint of 4 over 2 servers: 2 run at full speed on each.
    const { model } = modelAt(profile({ dopHint: 4, servers: 2, slowdown: { exponent: 2 } }))
    const slowdowns = Array.from({ length: 4 }, () => {
      const admitted = model.admit("u", 0)
      return admitted._tag === "Admitted" ? admitted.slowdown : 0
    })
    expect(slowdowns).toEqual([1, 1, 2.25, 4])
    // The other server, and another user, have their own share.
    const other = model.admit("u", 1)
    const otherUser = model.admit("v", 0)
    expect([other, otherUser].map((a) => a._tag === "Admitted" && a.slowdown)).toEqual([1, 1])
    // Exponent 0: no slowdown at all; an explicit capacity overrides the hint's share.
    expect([1, 5, 50].map((k) => Model.slowdown(Model.fast, k))).toEqual([1, 1, 1])
    const linear = profile({ slowdown: { exponent: 1, capacity: 3 } })
    expect(Model.serverCapacity(linear)).toBe(3)
    expect([3, 6].map((k) => Model.slowdown(linear, k))).toEqual([1, 2])
    // silent: a hint of 8, but 2 run at full speed.
    expect(Model.serverCapacity(Model.silent)).toBe(2)
    expect(Model.slowdown(Model.silent, 8)).toBe(16)
    expect(Model.serverCapacity(Model.bench)).toBe(8)
  })

  it("answers the concurrency limit at once with 0x80072326, Retry-After until a slot frees, and no hold", () => {
    const { clock, model } = modelAt(profile({ concurrencyLimit: 2 }))
    const first = model.admit("u", 0)
    const second = model.admit("u", 0)
    if (first._tag === "Admitted") first.charge(7_000)
    if (second._tag === "Admitted") second.charge(2_500)
    const third = model.admit("u", 0)
    expect(third._tag === "Throttled" && third.fault.code).toBe("0x80072326")
    expect(third._tag === "Throttled" && third.fault.message).toBe(
      "Number of concurrent requests exceeded the limit of 2."
    )
    // The second completes in 2.5 s.
    expect(third._tag === "Throttled" && third.fault.headers["Retry-After"]).toBe("3")
    expect(model.heldUntil("u", 0)).toBeUndefined()
    clock.now += 100
    if (first._tag === "Admitted") first.release(100)
    expect(model.admit("u", 0)._tag).toBe("Admitted")
  })

  it("keeps limits per user and per server, and spreads cookie-less requests round-robin", () => {
    const { model } = modelAt(profile({ requestsPerWindow: 1, servers: 2 }))
    expect([model.pickServer(undefined), model.pickServer(undefined), model.pickServer(undefined)]).toEqual([0, 1, 0])
    expect(model.pickServer(model.affinityCookie(1))).toBe(1)
    expect(model.pickServer(model.affinityCookie(1))).toBe(1)
    expect(model.admit("u", 0)._tag).toBe("Admitted")
    expect(model.admit("u", 1)._tag).toBe("Admitted")
    expect(model.admit("v", 0)._tag).toBe("Admitted")
    expect(model.admit("u", 0)._tag).toBe("Throttled")
  })

  it("issues opaque affinity cookies: 64 hex characters, new with every emulator, not derived from the server's number", () => {
    const p = profile({ servers: 3 })
    const one = new ServiceModel(p)
    const other = new ServiceModel(p)
    const values = [0, 1, 2].map((server) => one.affinityCookie(server))
    for (const value of values) expect(value).toMatch(/^[0-9a-f]{64}$/)
    expect(new Set(values).size).toBe(3)
    // Stable for the emulator's life, different in another one.
    expect(one.affinityCookie(2)).toBe(values[2])
    expect(other.affinityCookie(2)).not.toBe(values[2])
    expect(values).not.toContain(createHash("sha256").update("dv-effect web server 2").digest("hex"))
    // A value this emulator never issued pins nothing: the request is spread.
    expect([other.affinityCookie(1), other.affinityCookie(1)].map((c) => one.pickServer(c))).toEqual([0, 1])
  })

  it("routes as the profile's balancer says: seeded random spreading, ignored affinity, rotating cookies", () => {
    const spread = (balancer: Partial<Model.Balancer>, faults: Partial<Model.FaultRates> = {}) => {
      const model = new ServiceModel(
        profile({
          servers: 4,
          balancer: { ...Model.fast.balancer, ...balancer },
          faults: { ...Model.fast.faults, ...faults }
        })
      )
      return Array.from({ length: 40 }, () => {
        model.drawFault(0)
        return model.pickServer(undefined)
      })
    }
    const random = spread({ spread: "random", seed: 5 })
    expect(new Set(random)).toEqual(new Set([0, 1, 2, 3]))
    expect(random).not.toEqual(spread({ spread: "roundRobin" }))
    // Replayed by its own seed; faults drawn from their own generator do not change it.
    expect(spread({ spread: "random", seed: 5 }, { seed: 9, unavailable: 0.5 })).toEqual(random)
    expect(spread({ spread: "random", seed: 6 })).not.toEqual(random)

    const ignoring = new ServiceModel(
      profile({ servers: 2, balancer: { ...Model.fast.balancer, affinity: "ignored" } })
    )
    const pinned = ignoring.affinityCookie(1)
    expect([0, 1, 2, 3].map(() => ignoring.pickServer(pinned))).toEqual([0, 1, 0, 1])

    const rotating = new ServiceModel(
      profile({ servers: 2, balancer: { ...Model.fast.balancer, cookies: "rotating" } })
    )
    const first = rotating.affinityCookie(1)
    const second = rotating.affinityCookie(1)
    expect(second).not.toBe(first)
    // Any value issued recently still names its server.
    expect([first, second, first].map((c) => rotating.pickServer(c))).toEqual([1, 1, 1])
    for (let i = 0; i < 10_000; i++) rotating.affinityCookie(0)
    expect([rotating.pickServer(first), rotating.pickServer(first)]).toEqual([0, 1])
  })

  it("draws the same faults for the same seed", () => {
    const faults = { ...Model.fast.faults, seed: 42, throttle: 0.2, unavailable: 0.2, resetAfterCommit: 0.2 }
    const draw = () => {
      const { model } = modelAt(profile({ faults }))
      return Array.from({ length: 50 }, () => model.drawFault(0))
    }
    const first = draw()
    expect(draw()).toEqual(first)
    expect(new Set(first)).toEqual(new Set(["none", "throttle", "unavailable", "resetAfterCommit"]))
  })

  it("writes the rate-limit headers in the service's formats", () => {
    const { model } = modelAt(profile({ requestsPerWindow: 6000, executionMsPerWindow: 1_200_000 }))
    const admitted = model.admit("u", 0)
    if (admitted._tag === "Admitted") admitted.release(250)
    expect(model.rateLimitHeaders("u", 0)).toEqual({
      "x-ms-ratelimit-burst-remaining-xrm-requests": "5999",
      "x-ms-ratelimit-time-remaining-xrm-requests": "1,199.75"
    })
  })

  it("reset forgets windows, holds and counters", () => {
    const { model } = modelAt(profile({ requestsPerWindow: 1 }))
    model.admit("u", 0)
    expect(model.admit("u", 0)._tag).toBe("Throttled")
    model.reset()
    expect(model.counters[0]).toEqual({
      requests: 0,
      throttled: { requests: 0, executionTime: 0, concurrency: 0, injected: 0 },
      faults: { unavailable: 0, resetBeforeCommit: 0, resetAfterCommit: 0, timeout: 0 }
    })
    expect(model.admit("u", 0)._tag).toBe("Admitted")
  })
})

describe("decodeProfile", () => {
  it("extends a named profile and reads null as no limit", () => {
    const decoded = Model.decodeProfile({
      extends: "bench",
      servers: 2,
      requestsPerWindow: null,
      faults: { seed: 7, throttle: 0.05 }
    })
    expect(decoded).toMatchObject({
      servers: 2,
      requestsPerWindow: Infinity,
      windowSeconds: 10,
      faults: { seed: 7, throttle: 0.05, unavailable: 0 }
    })
  })
  it("reads the modelling choices: slowdown, balancer, penalty and elastic read lag", () => {
    const decoded = Model.decodeProfile({
      extends: "silent",
      slowdown: { exponent: 1 },
      refusalsBeforePenalty: 8,
      balancer: { spread: "random", seed: 4, cookies: "rotating" },
      elasticReadLagMs: 250
    })
    expect(decoded).toMatchObject({
      requestsPerWindow: Infinity,
      slowdown: { exponent: 1, capacity: 2 },
      refusalsBeforePenalty: 8,
      balancer: { spread: "random", seed: 4, affinity: "honoured", cookies: "rotating" },
      elasticReadLagMs: 250
    })
    // null: the capacity comes from the dop hint again.
    const fromHint = Model.decodeProfile({ extends: "silent", slowdown: { capacity: null } })
    expect(typeof fromHint !== "string" && Model.serverCapacity(fromHint)).toBe(8)
    expect(Model.decodeProfile({ extends: "bench" })).toMatchObject({
      slowdown: { exponent: 2 },
      refusalsBeforePenalty: 52,
      balancer: Model.bench.balancer
    })
  })
  it("reads the jitter, with its own seed; no named profile has one", () => {
    expect(Model.decodeProfile({ extends: "bench", jitter: { spread: 0.3 } })).toMatchObject({
      jitter: { spread: 0.3, seed: 1 },
      latency: Model.bench.latency
    })
    expect(Model.decodeProfile({ jitter: { spread: 0, seed: 5 } })).toMatchObject({ jitter: { spread: 0, seed: 5 } })
    for (const name of Model.profileNames) expect(Model.profiles[name].jitter).toBeUndefined()
    expect(Model.decodeProfile({ extends: "bench" })).not.toHaveProperty("jitter")
    expect(Model.decodeProfile({ jitter: { spread: 1 } })).toMatch(/^Invalid profile: .*spread/s)
  })
  it("names what is wrong", () => {
    expect(Model.decodeProfile({ servers: 0 })).toMatch(/^Invalid profile: .*servers/s)
    expect(Model.decodeProfile({ faults: { throttle: 2 } })).toMatch(/^Invalid profile:/)
    expect(Model.decodeProfile({ serverz: 1 })).toMatch(/serverz/)
    for (
      const [json, field] of [
        [{ balancer: { spread: "leastLoaded" } }, "balancer.spread"],
        [{ balancer: { affinity: "sometimes" } }, "balancer.affinity"],
        [{ slowdown: { exponent: -1 } }, "slowdown.exponent"],
        [{ slowdown: { capacity: 1.5 } }, "slowdown.capacity"],
        [{ refusalsBeforePenalty: -1 }, "refusalsBeforePenalty"],
        [{ elasticReadLagMs: "soon" }, "elasticReadLagMs"],
        [{ extends: "slow" }, "extends"]
      ] as const
    ) {
      const message = Model.decodeProfile(json)
      expect(message).toMatch(new RegExp(`^Invalid profile: ${field.replace(".", "\\.")}: `))
      expect(message).not.toContain("\n")
    }
  })
})

describe("the model over HTTP", () => {
  it("charges each request its jittered time", async () => {
    const emulator = await Emulator.start({
      profile: profile({
        executionMsPerWindow: 10_000,
        windowSeconds: 300,
        latency: { baseMs: 200, perRecordMs: 0, perOperationMs: 0 },
        jitter: { spread: 0.5, seed: 3 }
      })
    })
    try {
      const remaining = async () => {
        const response = await fetch(`${emulator.info.webApiUrl}WhoAmI`, {
          headers: { Authorization: `Bearer ${emulator.info.accessToken}` }
        })
        expect(response.status).toBe(200)
        return Number(response.headers.get("x-ms-ratelimit-time-remaining-xrm-requests")!.replace(/,/g, ""))
      }
      // The draws of seed 3, as the model makes them.
      const { model } = modelAt(profile({ jitter: { spread: 0.5, seed: 3 } }))
      const [first, second] = [model.jitterFactor(), model.jitterFactor()]
      expect(first).not.toBeCloseTo(second, 1)
      // The header has two decimals: within half a hundredth of a second of what was charged.
      expect(Math.abs(await remaining() - (10 - 0.2 * first))).toBeLessThanOrEqual(0.0051)
      expect(Math.abs(await remaining() - (10 - 0.2 * (first + second)))).toBeLessThanOrEqual(0.0051)
    } finally {
      await emulator.close()
    }
  })

  it("sets affinity cookies, advertises the dop hint and the remaining budget, and answers 429 with Retry-After", async () => {
    const emulator = await Emulator.start({
      profile: profile({ servers: 2, requestsPerWindow: 2, windowSeconds: 300, dopHint: 4 })
    })
    try {
      const get = (cookie?: string) =>
        fetch(`${emulator.info.webApiUrl}WhoAmI`, {
          headers: {
            Authorization: `Bearer ${emulator.info.accessToken}`,
            ...(cookie === undefined ? {} : { Cookie: cookie })
          }
        })
      const first = await get()
      expect(first.status).toBe(200)
      expect(first.headers.get("x-ms-dop-hint")).toBe("4")
      expect(first.headers.get("x-ms-ratelimit-burst-remaining-xrm-requests")).toBe("1")
      const cookie = first.headers.getSetCookie().find((c) => c.startsWith("ARRAffinity="))!
      expect(cookie).toMatch(/^ARRAffinity=[0-9a-f]{64}; Path=\/; HttpOnly/)
      const pinned = cookie.split(";")[0]!
      // With the cookie, every request lands on the first server and meets its limit.
      expect((await get(pinned)).status).toBe(200)
      const throttled = await get(pinned)
      expect(throttled.status).toBe(429)
      expect(Number(throttled.headers.get("retry-after"))).toBeGreaterThan(250)
      expect(((await throttled.json()) as { error: { code: string } }).error.code).toBe("0x80072322")
      // Without it, the next request goes to the other server, which still has budget.
      expect((await get()).status).toBe(200)
      expect(emulator.servers.map((s) => s.throttled.requests)).toEqual([1, 0])
    } finally {
      await emulator.close()
    }
  })

  it("applies a request and then resets the connection when that fault is drawn", async () => {
    const emulator = await Emulator.start({
      profile: profile({ faults: { ...Model.fast.faults, resetAfterCommit: 1 } })
    })
    try {
      const attempt = fetch(`${emulator.info.webApiUrl}contacts`, {
        method: "POST",
        headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ lastname: "Landed" })
      })
      await expect(attempt).rejects.toThrow()
      expect(emulator.store.table("contact")!.scan().map((r) => r.values.lastname)).toEqual(["Landed"])
      expect(emulator.servers[0]!.faults.resetAfterCommit).toBe(1)
    } finally {
      await emulator.close()
    }
  })

  it("holds a bulk request for baseMs + n * perRecordMs", async () => {
    const emulator = await Emulator.start({
      profile: profile({ latency: { baseMs: 50, perRecordMs: 2, perOperationMs: 0 } })
    })
    try {
      const started = performance.now()
      const response = await fetch(`${emulator.info.webApiUrl}contacts/Microsoft.Dynamics.CRM.CreateMultiple`, {
        method: "POST",
        headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({
          Targets: Array.from(
            { length: 100 },
            (_, i) => ({ "@odata.type": "Microsoft.Dynamics.CRM.contact", lastname: `L${i}` })
          )
        })
      })
      expect(response.status).toBe(200)
      // 50 + 100 * 2 = 250 ms at least; an outcome of the model, not a timing assertion on the machine.
      expect(performance.now() - started).toBeGreaterThanOrEqual(245)
    } finally {
      await emulator.close()
    }
  })
})

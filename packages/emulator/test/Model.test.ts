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
  it("refuses the request after the window's budget with 0x80072322 and a truthful Retry-After", () => {
    const { clock, model } = modelAt(profile({ requestsPerWindow: 3, windowSeconds: 60, retryAfterPenaltySeconds: 5 }))
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
    // Pushing while told to wait adds the penalty.
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

  it("slows requests beyond the server's share of the dop hint, by the square of the excess", () => {
    // A hint of 4 over 2 servers: 2 run at full speed on each.
    const { model } = modelAt(profile({ dopHint: 4, servers: 2 }))
    const slowdowns = Array.from({ length: 4 }, () => {
      const admitted = model.admit("u", 0)
      return admitted._tag === "Admitted" ? admitted.slowdown : 0
    })
    expect(slowdowns).toEqual([1, 1, 2.25, 4])
    // The other server, and another user, have their own share.
    const other = model.admit("u", 1)
    const otherUser = model.admit("v", 0)
    expect([other, otherUser].map((a) => a._tag === "Admitted" && a.slowdown)).toEqual([1, 1])
  })

  it("answers the concurrency limit at once with 0x80072326, and frees the slot on release", () => {
    const { model } = modelAt(profile({ concurrencyLimit: 2 }))
    const first = model.admit("u", 0)
    model.admit("u", 0)
    const third = model.admit("u", 0)
    expect(third._tag === "Throttled" && third.fault.code).toBe("0x80072326")
    expect(third._tag === "Throttled" && third.fault.message).toBe(
      "Number of concurrent requests exceeded the limit of 2."
    )
    if (first._tag === "Admitted") first.release(0)
    expect(model.admit("u", 0)._tag).toBe("Admitted")
  })

  it("keeps limits per user and per server, and spreads cookie-less requests round-robin", () => {
    const { model } = modelAt(profile({ requestsPerWindow: 1, servers: 2 }))
    expect([model.pickServer(undefined), model.pickServer(undefined), model.pickServer(undefined)]).toEqual([0, 1, 0])
    expect(model.pickServer(model.affinityTokens[1])).toBe(1)
    expect(model.admit("u", 0)._tag).toBe("Admitted")
    expect(model.admit("u", 1)._tag).toBe("Admitted")
    expect(model.admit("v", 0)._tag).toBe("Admitted")
    expect(model.admit("u", 0)._tag).toBe("Throttled")
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
  it("names what is wrong", () => {
    expect(Model.decodeProfile({ servers: 0 })).toMatch(/^Invalid profile: .*servers/s)
    expect(Model.decodeProfile({ faults: { throttle: 2 } })).toMatch(/^Invalid profile:/)
    expect(Model.decodeProfile({ serverz: 1 })).toMatch(/serverz/)
  })
})

describe("the model over HTTP", () => {
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

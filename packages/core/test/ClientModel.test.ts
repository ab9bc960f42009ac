import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import * as RetryPolicy from "../src/RetryPolicy.js"

const whoAmITimes = (n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* DataverseClient.whoAmI
    return yield* Effect.flatMap(DataverseClient.DataverseClient, (client) => client.stats)
  })

const connect = (info: Emulator.StartInfo, options: Partial<DataverseClient.ClientOptions> = {}) =>
  DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken), ...options })

describe("the client against the emulator's performance model", () => {
  it.live("retries 503s, counts every retry, and reports them in stats and metrics", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const before = (yield* Metric.value(DataverseClient.metrics.retries)).count
      const stats = yield* whoAmITimes(20).pipe(
        Effect.provide(
          connect(emulator.info, { retryPolicy: RetryPolicy.make({ baseDelay: "1 millis", maxDelay: "5 millis" }) })
        )
      )
      const injected = emulator.servers[0]!.faults.unavailable
      expect(injected).toBeGreaterThan(0)
      expect(stats.retries).toBe(injected)
      expect(stats.requests).toBe(20 + injected)
      expect((yield* Metric.value(DataverseClient.metrics.retries)).count - before).toBe(injected)
    }).pipe(
      Effect.provide(
        Emulator.layer({
          identity: false,
          profile: { ...Model.fast, faults: { ...Model.fast.faults, seed: 3, unavailable: 0.3 } }
        })
      )
    ))

  it.live("spreads requests over the web servers, or sticks to one with affinity cookies", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      yield* whoAmITimes(6).pipe(Effect.provide(connect(emulator.info)))
      expect(emulator.servers.map((s) => s.requests)).toEqual([3, 3])
      yield* whoAmITimes(6).pipe(Effect.provide(connect(emulator.info, { affinityCookies: true })))
      const after = emulator.servers.map((s) => s.requests)
      // The first request of the pinned connection lands where round-robin puts it; the rest follow its cookie.
      expect(Math.max(...after) - 3).toBeGreaterThanOrEqual(5)
      expect(after[0]! + after[1]!).toBe(12)
    }).pipe(Effect.provide(Emulator.layer({ identity: false, profile: { ...Model.fast, servers: 2 } }))))

  it.live("waits out every 429 and sends the request again, as a throttle and not as a retry", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const stats = yield* whoAmITimes(7).pipe(Effect.provide(connect(emulator.info)))
      const refused = emulator.servers[0]!.throttled.requests
      // Three requests a second: the fourth and the seventh wait for the window.
      expect(refused).toBeGreaterThanOrEqual(2)
      expect(stats).toEqual({ requests: 7 + refused, throttled: refused, retries: 0 })
    }).pipe(
      Effect.provide(
        Emulator.layer({ identity: false, profile: { ...Model.fast, windowSeconds: 1, requestsPerWindow: 3 } })
      )
    ))
})

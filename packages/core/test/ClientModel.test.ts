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
  DataverseClient.layer({ url: info.url, credentials: Credentials.staticToken(info.accessToken), ...options })

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

  it.live("counts the web servers by their cookies and sends to the one withWebServer names", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const hints = yield* Effect.gen(function*() {
        const client = yield* DataverseClient.DataverseClient
        yield* whoAmITimes(2)
        const seen = yield* client.hints
        expect(seen.webServers).toBe(2)
        expect(seen.webServerIds).toHaveLength(2)
        const before = emulator.servers.map((s) => s.requests)
        yield* DataverseClient.withWebServer(whoAmITimes(5), seen.webServerIds[1])
        const after = emulator.servers.map((s) => s.requests)
        // The ids come in the order the servers answered: round-robin starts at server 0.
        expect([after[0]! - before[0]!, after[1]! - before[1]!]).toEqual([0, 5])
        return yield* client.hints
      }).pipe(Effect.provide(connect(emulator.info)))
      expect(hints.webServers).toBe(2)
    }).pipe(Effect.provide(Emulator.layer({ identity: false, profile: { ...Model.fast, servers: 2 } }))))
})

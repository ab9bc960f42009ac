/**
 * Several identities in one run (issue 15, item 1): a connection built from several credentials
 * sends a run's rows through all of them, each under its own controller; a throttled identity
 * pauses alone; a run failure names the identity; exactly-once, the journal and smart mode hold
 * across identities. Counted in the store, by the emulator's `createdby` of each record.
 */
import * as Emulator from "@dv-effect/emulator/Emulator"
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Http from "node:http"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import * as Journal from "../src/Journal.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import { frontDoor } from "./support/frontDoor.js"
import { stoppedRun } from "./support/runs.js"

const contacts = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ lastname: `${prefix}${i}` }))
const quickRetries = RetryPolicy.make({ baseDelay: "1 millis", maxRetries: 3, maxUnreachableRetries: 1 })

const startEmulator = (users: number) =>
  Effect.acquireRelease(
    Effect.promise(() => Emulator.start({ users, identity: false })),
    (emulator) => Effect.promise(() => emulator.close())
  )

/** The records of `prefix`, by the systemuser that created them. */
const createdBy = (emulator: Emulator.RunningEmulator, prefix: string) => {
  const byUser = new Map<string, number>()
  const names: Array<string> = []
  for (const record of emulator.store.table("contact")?.scan() ?? []) {
    const name = String(record.values.lastname)
    if (!name.startsWith(prefix)) continue
    names.push(name)
    const by = (record.values.createdby as { id: string } | undefined)?.id ?? "nobody"
    byUser.set(by, (byUser.get(by) ?? 0) + 1)
  }
  return { names: names.sort(), byUser }
}

const tokens = (emulator: Emulator.RunningEmulator) =>
  emulator.info.users.map((user) => Credentials.staticToken(Redacted.make(user.accessToken)))

const bearer = (request: Http.IncomingMessage) => request.headers.authorization?.replace(/^Bearer /, "")
const isWrite = (request: Http.IncomingMessage) =>
  request.method === "POST" && request.url?.includes("Microsoft.Dynamics.CRM.CreateMultiple") === true

describe("a run over several identities", () => {
  it.scopedLive("spreads the rows over every identity, each counted apart; every row lands once", () =>
    Effect.gen(function*() {
      const emulator = yield* startEmulator(3)
      const rows = contacts(3000, "many-")
      const summary = yield* Bulk.execute("create", "contact", rows, { chunkSize: 50, concurrency: 2 }).pipe(
        Effect.provide(DataverseClient.layerNode({
          url: emulator.info.url,
          credentials: tokens(emulator),
          labels: ["app1", "app2", "app3"]
        }))
      )
      expect(summary.created).toBe(3000)
      const stored = createdBy(emulator, "many-")
      expect(stored.names).toEqual(rows.map((row) => row.lastname).sort())
      // Each identity's summary is what the store says it created.
      expect(summary.identities.map((identity) => identity.label)).toEqual(["app1", "app2", "app3"])
      emulator.info.users.forEach((user, i) => {
        const identity = summary.identities[i]!
        expect(identity.succeeded).toBeGreaterThan(0)
        expect(stored.byUser.get(user.userId)).toBe(identity.succeeded)
      })
      expect(summary.identities.reduce((sum, identity) => sum + identity.requests, 0)).toBe(summary.requests)
    }))

  it.scopedLive("goes on with the other identities while one waits out its Retry-After", () =>
    Effect.gen(function*() {
      const emulator = yield* startEmulator(2)
      const [first, second] = emulator.info.users
      const events: Array<string> = []
      let refused = 0
      const door = yield* frontDoor(emulator.info.url, {
        seen: (request) => {
          if (!isWrite(request)) return
          events.push(`${bearer(request) === first!.accessToken ? "first" : "second"}`)
        },
        // The first identity's first three writes are refused, for a second each.
        throttle: (request) =>
          isWrite(request) && bearer(request) === first!.accessToken && refused < 3
            ? (refused++, events.push("first refused"), 1)
            : undefined
      })
      const summary = yield* Bulk.execute("create", "contact", contacts(2000, "pause-"), {
        chunkSize: 20,
        concurrency: 2
      }).pipe(
        Effect.provide(DataverseClient.layerNode({ url: door.url, credentials: tokens(emulator) }))
      )
      expect(summary.created).toBe(2000)
      expect(createdBy(emulator, "pause-").names).toHaveLength(2000)
      expect(summary.identities[0]!.throttled).toBe(3)
      expect(summary.identities[1]!.throttled).toBe(0)
      // Between the first identity's first refusal and its next admitted write, the second one
      // kept writing.
      const firstRefusal = events.indexOf("first refused")
      const firstAdmitted = events.findIndex((event, i) =>
        i > firstRefusal && event === "first" &&
        events[i + 1] !== "first refused"
      )
      expect(firstRefusal).toBeGreaterThanOrEqual(0)
      const between = events.slice(firstRefusal, firstAdmitted === -1 ? undefined : firstAdmitted)
      expect(between.filter((event) => event === "second").length).toBeGreaterThan(5)
      expect(stored(emulator, second!.userId, "pause-")).toBe(summary.identities[1]!.succeeded)
    }))

  it.scopedLive("stops on one identity's run failure, naming it; a resume with other identities lands every row once", () =>
    Effect.gen(function*() {
      const emulator = yield* startEmulator(2)
      const [first, second] = emulator.info.users
      const journal = Journal.memory()
      const rows = contacts(1500, "stop-")
      // The second identity's token stops working after 20 requests; no refresh cures it.
      let calls = 0
      const expiring: Credentials.TokenProvider = {
        getToken: Effect.sync(() => Redacted.make(calls++ < 20 ? second!.accessToken : "revoked")),
        invalidate: Effect.void
      }
      const { error, failed } = yield* stoppedRun(
        rows,
        journal,
        DataverseClient.layerNode({
          url: emulator.info.url,
          credentials: [Credentials.staticToken(first!.accessToken), expiring],
          labels: ["app1", "app2"],
          retryPolicy: quickRetries
        })
      )
      expect(error._tag).toBe("DataverseError")
      expect(error._tag === "DataverseError" && error.reason).toBe("Unauthorized")
      expect(error.message).toMatch(/^identity app2: /)
      expect(failed).toEqual([])
      const landed = createdBy(emulator, "stop-").names.length
      expect(landed).toBeGreaterThan(0)
      expect(landed).toBeLessThan(1500)
      // Resumed with the identities the other way round.
      const summary = yield* Bulk.execute("create", "contact", rows, { chunkSize: 10, concurrency: 2, journal }).pipe(
        Effect.provide(
          DataverseClient.layerNode({ url: emulator.info.url, credentials: [...tokens(emulator)].reverse() })
        )
      )
      expect(summary.failed).toBe(0)
      expect(summary.resumed + summary.created).toBe(1500)
      expect(createdBy(emulator, "stop-").names).toEqual(rows.map((row) => row.lastname).sort())
    }))

  it.scopedLive("takes several comma-separated tokens from DATAVERSE_ACCESS_TOKEN (layerEnvironment), one identity each", () =>
    Effect.gen(function*() {
      const emulator = yield* startEmulator(2)
      const users = emulator.info.users
      const whoIsEach = Effect.gen(function*() {
        const client = yield* DataverseClient.DataverseClient
        return yield* Effect.forEach(
          client.identities,
          (identity) =>
            Effect.map(
              Effect.provideService(DataverseClient.whoAmI, DataverseClient.DataverseClient, identity),
              (me) => [identity.label, me.UserId]
            )
        )
      })
      const answered = yield* whoIsEach.pipe(
        Effect.provide(DataverseClient.layerEnvironment()),
        Effect.withConfigProvider(ConfigProvider.fromMap(
          new Map([
            ["DATAVERSE_URL", emulator.info.url],
            ["DATAVERSE_ACCESS_TOKEN", users.map((user) => user.accessToken).join(", ")]
          ])
        ))
      )
      expect(answered).toEqual([["1", users[0]!.userId], ["2", users[1]!.userId]])
    }))

  it.scopedLive("refuses two identities of one user before a row goes, and labels that do not fit", () =>
    Effect.gen(function*() {
      const emulator = yield* startEmulator(2)
      const [first] = emulator.info.users
      const again = yield* Effect.promise(() => emulator.issueToken({ user: 0 }))
      const sameUser = yield* Effect.flip(
        Bulk.execute("create", "contact", contacts(10, "same-")).pipe(
          Effect.provide(DataverseClient.layerNode({
            url: emulator.info.url,
            credentials: [Credentials.staticToken(first!.accessToken), Credentials.staticToken(again)],
            labels: ["a", "b"]
          }))
        )
      )
      expect(sameUser._tag === "DataverseError" && sameUser.reason).toBe("InvalidInput")
      expect(sameUser.message).toContain(`identities a and b sign in as the same user (${first!.userId})`)
      expect(createdBy(emulator, "same-").names).toEqual([])
      const labels = (given: ReadonlyArray<string>) =>
        Effect.flip(
          Effect.provide(
            DataverseClient.DataverseClient,
            DataverseClient.layerNode({
              url: emulator.info.url,
              credentials: tokens(emulator),
              labels: given
            })
          )
        )
      expect((yield* labels(["only one"])).message).toBe("1 labels for 2 credentials: give one label per credential.")
      expect((yield* labels(["a", "a"])).message).toBe("The label 'a' names two identities.")
    }))

  it.scopedLive("keeps smart mode's per-row outcomes across identities", () =>
    Effect.gen(function*() {
      const emulator = yield* startEmulator(2)
      const layer = DataverseClient.layerNode({ url: emulator.info.url, credentials: tokens(emulator) })
      const first = contacts(600, "smart-").map((row, i) => ({ ...row, emailaddress1: `${i}@example.com` }))
      yield* Bulk.execute("create", "contact", first.slice(0, 400), { chunkSize: 25, concurrency: 2 }).pipe(
        Effect.provide(layer)
      )
      // Rows 0-199 unchanged, 200-399 changed, 400-599 new: keyed by lastname.
      const again = first.map((row, i) => i >= 200 && i < 400 ? { ...row, emailaddress1: `new-${i}@example.com` } : row)
      const outcomes = new Map<string, number>()
      const summary = yield* Bulk.execute(
        "upsert",
        "contact",
        again,
        { chunkSize: 25, concurrency: 2, smart: true, key: ["lastname"] },
        (outcome) => Effect.sync(() => void outcomes.set(outcome.status, (outcomes.get(outcome.status) ?? 0) + 1))
      ).pipe(Effect.provide(layer))
      expect(Object.fromEntries(outcomes)).toEqual({ unchanged: 200, updated: 200, created: 200 })
      expect(summary.identities.every((identity) => identity.succeeded > 0)).toBe(true)
      const stored = emulator.store.table("contact")!.scan().filter((r) =>
        String(r.values.lastname).startsWith("smart-")
      )
      expect(stored).toHaveLength(600)
      expect(stored.filter((r) => String(r.values.emailaddress1).startsWith("new-"))).toHaveLength(200)
    }))
})

const stored = (emulator: Emulator.RunningEmulator, userId: string, prefix: string) =>
  createdBy(emulator, prefix).byUser.get(userId) ?? 0

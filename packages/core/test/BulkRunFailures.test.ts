/**
 * Run failures against row failures (issue 13): a token no refresh cures, an outage that outlasts
 * the retries, an unreachable service and a journal that cannot be written stop the run; none of
 * their rows is reported failed or journalled as finished, and a resumed run lands every row
 * exactly once. A credential that refreshes carries the run through. Counted in the store.
 */
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import { type DataverseError, isRunFailure } from "../src/DataverseError.js"
import { stopsAtOnce } from "../src/internal/bulk/outcomes.js"
import * as Journal from "../src/Journal.js"
import * as Records from "../src/Records.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import { frontDoor } from "./support/frontDoor.js"
import { stoppedRun } from "./support/runs.js"

const contacts = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ lastname: `${prefix}${i}` }))
const lastnames = (emulator: Emulator.RunningEmulator) =>
  emulator.store.table("contact")?.scan().map((r) => String(r.values.lastname)) ?? []
const expectEachOnce = (emulator: Emulator.RunningEmulator, n: number, prefix: string) => {
  const names = lastnames(emulator).filter((name) => name.startsWith(prefix)).sort()
  expect(names).toEqual(contacts(n, prefix).map((row) => row.lastname).sort())
}
const quickRetries = RetryPolicy.make({ baseDelay: "1 millis", maxRetries: 3, maxUnreachableRetries: 1 })
const connect = (url: string, credentials: Credentials.Credential) =>
  DataverseClient.layerNode({ url, credentials, retryPolicy: quickRetries })

/**
 * A run stopped by a run failure, then resumed on a healthy connection: no row was reported failed,
 * some but not all landed before the stop, and after the resume every row is in the store once.
 * Answers the stopping error.
 */
const stopThenResume = (emulator: Emulator.RunningEmulator, prefix: string, layer: ReturnType<typeof connect>) =>
  Effect.gen(function*() {
    const journal = Journal.memory()
    const rows = contacts(200, prefix)
    const { error, failed } = yield* stoppedRun(rows, journal, layer)
    expect(failed).toEqual([])
    const landed = lastnames(emulator).length
    expect(landed).toBeGreaterThan(0)
    expect(landed).toBeLessThan(200)
    const summary = yield* Bulk.execute("create", "contact", rows, { chunkSize: 10, concurrency: 2, journal }).pipe(
      Effect.provide(connect(emulator.info.url, Credentials.staticToken(emulator.info.accessToken)))
    )
    expect(summary.failed).toBe(0)
    expect(summary.resumed + summary.created).toBe(200)
    expectEachOnce(emulator, 200, prefix)
    return error
  })

/** A token the service accepts for the first `goodCalls` requests, then one it refuses; no refresh helps. */
const expiringStatic = (good: string, bad: string, goodCalls: number): Credentials.TokenProvider => {
  let calls = 0
  return { getToken: Effect.sync(() => Redacted.make(calls++ < goodCalls ? good : bad)), invalidate: Effect.void }
}

/**
 * A token that "expires" after `uses` requests; `invalidate` (after the 401) gets a fresh one, good
 * for `uses` more, as the msal flows do.
 */
const refreshing = (good: string, bad: string, uses: number) => {
  let left = uses
  const state = { refreshes: 0 }
  const provider: Credentials.TokenProvider = {
    getToken: Effect.sync(() => Redacted.make(left-- > 0 ? good : bad)),
    invalidate: Effect.sync(() => {
      left = uses
      state.refreshes++
    })
  }
  return { provider, state }
}

/**
 * A door in front of the emulator that goes down at the `writesAt`-th bulk write (at once when 0):
 * answering 503 to everything (`"unavailable"`), or closing (`"closed"`: the host unreachable).
 */
const failingDoor = (target: string, writesAt: number, how: "unavailable" | "closed") =>
  Effect.gen(function*() {
    let writes = 0
    let down = writesAt <= 0
    const door: { close: () => void } = { close: () => {} }
    const opened = yield* frontDoor(target, {
      seen: (request) => {
        if (down || !request.url?.includes("CreateMultiple") || ++writes < writesAt) return
        down = true
        if (how === "closed") door.close()
      },
      refuse: () => down
    })
    door.close = opened.close
    return opened
  })

describe("run failures", () => {
  it("are the failures no row causes", () => {
    // reason, stops the run at once, is a run failure (at once, or once the retries are spent)
    const table: ReadonlyArray<readonly [DataverseError["reason"], boolean, boolean]> = [
      ["Throttled", true, true],
      ["Unauthorized", true, true],
      ["Forbidden", true, true],
      ["Decode", true, true],
      ["Timeout", false, true],
      ["Transport", false, true],
      ["ServiceUnavailable", false, true],
      ["Unreachable", false, true],
      ["Validation", false, false],
      ["NotFound", false, false],
      ["DuplicateKey", false, false],
      ["PreconditionFailed", false, false],
      ["PayloadTooLarge", false, false],
      ["InvalidInput", false, false],
      ["UnsupportedMessage", false, false],
      ["Unknown", false, false]
    ]
    const error = (reason: DataverseError["reason"]) => ({ reason }) as DataverseError
    expect(table.map(([reason]) => [reason, stopsAtOnce(error(reason)), isRunFailure(error(reason))])).toEqual(table)
  })

  it.live("a token that stops working stops the run, blaming no row; a resume with a good one lands every row once", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const wrongAudience = yield* Effect.promise(() => emulator.issueToken({ audience: "https://elsewhere.example" }))
      const error = yield* stopThenResume(
        emulator,
        "E",
        connect(emulator.info.url, expiringStatic(emulator.info.accessToken, wrongAudience, 12))
      )
      expect(error._tag === "DataverseError" && error.reason).toBe("Unauthorized")
    }).pipe(Effect.provide(Emulator.layer({ identity: false }))))

  it.live("a stop while every request waits for its Retry-After leaves no row unsure: a 429 did nothing", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const journal = Journal.memory()
      const rows = contacts(200, "W")
      // One request at a time: once it waits, nothing else happens until the stop.
      const load = (accessToken: string, chunkSize: number, onProgress: (progress: Bulk.Progress) => void) =>
        Bulk.execute("create", "contact", rows, { chunkSize, concurrency: 1, journal, onProgress }).pipe(
          Effect.provide(connect(emulator.info.url, Credentials.staticToken(accessToken)))
        )
      let latest: Bulk.Progress | undefined
      let reports = 0
      const waiting = yield* Deferred.make<void>()
      const run = yield* Effect.fork(load(emulator.info.accessToken, 10, (progress) => {
        latest = progress
        reports++
        if (progress.waitingUntil !== undefined) Deferred.unsafeDone(waiting, Effect.void)
      }))
      yield* Deferred.await(waiting)
      const reportsBeforeStop = reports
      yield* Fiber.interrupt(run)
      // No report after the stop: the waits it tore down would read as requests in flight.
      expect(reports).toBe(reportsBeforeStop)
      const landed = lastnames(emulator).length
      expect(landed).toBeGreaterThan(0)
      expect(latest).toMatchObject({ succeeded: landed, rowsInFlight: 0 })
      // The journal has those rows as not sent after all: a resume (as another user, whose limits
      // are its own, in requests of 200 rows) looks none up, and lands every row once.
      let checking = -1
      const resumed = yield* load(emulator.info.users[1]!.accessToken, 200, (progress) => {
        if (checking === -1) checking = progress.checking
      })
      expect(checking).toBe(0)
      expect(resumed).toMatchObject({ resumed: landed, created: 200 - landed, failed: 0 })
      expectEachOnce(emulator, 200, "W")
    }).pipe(
      // Twelve requests a minute: the metadata and a few chunks go, then Retry-After waits of up to a minute.
      Effect.provide(
        Emulator.layer({
          identity: false,
          users: 2,
          profile: { ...Model.fast, windowSeconds: 60, requestsPerWindow: 12 }
        })
      )
    ))

  it.live("rows an earlier run sent without an answer stay to be looked up, though this run stopped before sending them", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const journal = Journal.memory()
      const job = { operation: "create", table: "contact" } as const
      // An earlier run sent rows 0 to 39 and got no answer.
      yield* (yield* journal.open(job)).sent(Array.from({ length: 40 }, (_, i) => i))
      // This run looks the first ten up (none found), sends them, and every write is refused for a
      // minute: past its limit, the run stops with them refused only.
      const door = yield* frontDoor(emulator.info.url, {
        throttle: (request) => (request.method === "POST" ? 60 : undefined)
      })
      const layer = DataverseClient.layerNode({
        url: door.url,
        credentials: Credentials.staticToken(emulator.info.accessToken),
        retryPolicy: quickRetries,
        maxThrottleWait: "1 second"
      })
      const error = yield* Effect.flip(
        Bulk.execute("create", "contact", contacts(40, "U"), { chunkSize: 10, concurrency: 1, journal }).pipe(
          Effect.provide(layer)
        )
      )
      expect(error._tag === "DataverseError" && error.reason).toBe("Throttled")
      // They may have landed in the earlier run, whatever the lookup found: still to be looked up.
      const after = yield* journal.open(job)
      expect([...after.state.unanswered].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i))
      expect(lastnames(emulator)).toEqual([])
    })).pipe(Effect.provide(Emulator.layer({ identity: false }))))

  it.live("a credential that refreshes after a 401 carries the run through", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const wrongAudience = yield* Effect.promise(() => emulator.issueToken({ audience: "https://elsewhere.example" }))
      const { provider, state } = refreshing(emulator.info.accessToken, wrongAudience, 7)
      const summary = yield* Bulk.execute("create", "contact", contacts(200, "F"), { chunkSize: 10, concurrency: 2 })
        .pipe(Effect.provide(connect(emulator.info.url, provider)))
      expect(summary).toMatchObject({ created: 200, failed: 0 })
      expect(state.refreshes).toBeGreaterThan(2)
      expectEachOnce(emulator, 200, "F")
    }).pipe(Effect.provide(Emulator.layer({ identity: false }))))

  it.live("a 401 answer is read to its end: with one socket, every refresh still finds it free", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const wrongAudience = yield* Effect.promise(() => emulator.issueToken({ audience: "https://elsewhere.example" }))
      const { provider, state } = refreshing(emulator.info.accessToken, wrongAudience, 4)
      // An unread 401 would hold the only socket until the server drops it (a minute).
      const summary = yield* Bulk.execute("create", "contact", contacts(60, "S"), { chunkSize: 10, concurrency: 1 })
        .pipe(
          Effect.provide(DataverseClient.layerNode({ url: emulator.info.url, credentials: provider, maxSockets: 1 })),
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => "stuck waiting for a socket" })
        )
      expect(summary).toMatchObject({ created: 60, failed: 0 })
      expect(state.refreshes).toBeGreaterThanOrEqual(2)
      expectEachOnce(emulator, 60, "S")
    }).pipe(Effect.provide(Emulator.layer({ identity: false }))))

  for (const how of ["unavailable", "closed"] as const) {
    it.live(`an outage past the retries (${how}) stops the run, blaming no row; the resume lands every row once`, () =>
      Effect.scoped(Effect.gen(function*() {
        const emulator = yield* Emulator.Emulator
        const door = yield* failingDoor(emulator.info.url, 5, how)
        const error = yield* stopThenResume(
          emulator,
          "O",
          connect(door.url, Credentials.staticToken(emulator.info.accessToken))
        )
        expect(error._tag === "DataverseError" && error.reason).toBe(
          how === "unavailable" ? "ServiceUnavailable" : "Unreachable"
        )
      })).pipe(Effect.provide(Emulator.layer({ identity: false }))))
  }

  it.live("a journal that cannot be written stops the run; the resume asks what landed and creates each row once", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const store = Journal.memory()
      let writes = 0
      // Finished entries fail after the third, as on a full disk.
      const full: Journal.Journal = {
        open: (job) =>
          Effect.map(store.open(job), (session) => ({
            ...session,
            finished: (ok, failedRows) =>
              ++writes > 3
                ? Effect.fail(new Journal.JournalError({ reason: "Unwritable", message: "ENOSPC: no space left" }))
                : session.finished(ok, failedRows)
          }))
      }
      const rows = contacts(200, "J")
      const { error, failed } = yield* stoppedRun(
        rows,
        full,
        connect(emulator.info.url, Credentials.staticToken(emulator.info.accessToken))
      )
      expect(error._tag).toBe("JournalError")
      expect(failed).toEqual([])
      const landed = lastnames(emulator).length
      const checking: Array<number> = []
      const summary = yield* Bulk.execute("create", "contact", rows, {
        chunkSize: 10,
        concurrency: 2,
        journal: store,
        onProgress: (progress) => checking.push(progress.checking)
      }).pipe(Effect.provide(connect(emulator.info.url, Credentials.staticToken(emulator.info.accessToken))))
      expect(summary).toMatchObject({ resumed: 30, created: 170, failed: 0 })
      // Rows the stopped run landed without journalling them finished are found, and counted so
      // (its requests still in flight at the stop may have landed after the count above).
      expect(summary.landedBefore).toBeGreaterThanOrEqual(Math.max(1, landed - 30))
      // The rows of the requests the stopped run sent are looked up first, and progress says so.
      expect(checking[0]).toBeGreaterThanOrEqual(10)
      expect(checking.at(-1)).toBe(0)
      expectEachOnce(emulator, 200, "J")
    }).pipe(Effect.provide(Emulator.layer({ identity: false }))))
})

describe("a caller's retry schedule", () => {
  it.live("decides when and how often, never whether: a data error is not retried, an outage is", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const retryPolicy = Schedule.recurs(3)
      const direct = DataverseClient.layerNode({
        url: emulator.info.url,
        credentials: Credentials.staticToken(emulator.info.accessToken),
        retryPolicy
      })
      const missing = yield* Effect.gen(function*() {
        const client = yield* DataverseClient.DataverseClient
        yield* client.table("contact")
        const before = yield* client.stats
        const error = yield* Effect.flip(Records.retrieve("contact", "00000000-0000-4000-8000-000000000001"))
        const after = yield* client.stats
        return { error, requests: after.requests - before.requests, retries: after.retries }
      }).pipe(Effect.provide(direct))
      expect(missing).toMatchObject({ error: { reason: "NotFound" }, requests: 1, retries: 0 })

      // Down from the start: every request answers 503.
      const door = yield* failingDoor(emulator.info.url, 0, "unavailable")
      const outage = yield* Effect.gen(function*() {
        const error = yield* Effect.flip(Records.retrieve("contact", "00000000-0000-4000-8000-000000000001"))
        const client = yield* DataverseClient.DataverseClient
        return { error, stats: yield* client.stats }
      }).pipe(
        Effect.provide(
          DataverseClient.layerNode({
            url: door.url,
            credentials: Credentials.staticToken(emulator.info.accessToken),
            retryPolicy
          })
        )
      )
      expect(outage.error.reason).toBe("ServiceUnavailable")
      // The table's definition four times (three retries); the five requests sent beside it, once.
      expect(outage.stats).toMatchObject({ requests: 9, retries: 3 })
    })).pipe(Effect.provide(Emulator.layer({ identity: false }))))
})

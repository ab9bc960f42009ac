// The client of bench/identities.mjs in a process of its own (forked by `startRunner` with IPC,
// preloaded with probe.mjs), so that the engine and the emulator never share an event loop. It
// builds the job's rows before the clock starts, then waits for { info, identities: n }: the
// emulator's start contract and how many of its application users to send as. It runs one
// `Bulk.execute("create", ...)` with the default options over a connection of the first n users'
// static tokens, timed (wall, CPU, event-loop use) from the start of Bulk.execute to its end, and
// follows each identity from the progress events: how long it had a request in flight, was held
// by a Retry-After, or sat idle while rows were still waiting to be sent.
//
// argv: <JSON { scenario }>   ->  { ready: true }   <- { info, identities }   -> the figures
import * as Bulk from "@dv-effect/core/Bulk"
import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import { Effect } from "effect"
import { performance } from "node:perf_hooks"
import { jobRows } from "./rows.mjs"

const { scenario } = JSON.parse(process.argv[2])
const rows = jobRows(scenario)

/** Epoch milliseconds with sub-millisecond precision, comparable with the engine's `waitingUntil`. */
const now = () => performance.timeOrigin + performance.now()

/** Per-second buckets of the time series, kept small enough for the results JSON. */
const bucketMs = 1000

/**
 * Time-weighted state of every identity between progress events. Events fire on every chunk's
 * start and finish and when a Retry-After starts, so between two events an identity's requests in
 * flight do not change; a hold ends at its `waitingUntil`, which may fall between events.
 */
const makeTracker = (n, total, started) => {
  const each = Array.from({ length: n }, () => ({
    busyMs: 0, // at least one request (chunk) in flight, a chunk waiting out a Retry-After included
    sendingMs: 0, // the same, but not held by a Retry-After: requests on the wire
    firstBusyAt: undefined, // milliseconds from the start of Bulk.execute to its first request
    heldMs: 0, // waiting out a Retry-After
    starvedMs: 0, // nothing in flight, not held, while rows were unsent, once the run's first request went
    inFlightMs: 0, // integral of requests in flight: divided by the wall time, the mean
    concurrencyMs: 0, // integral of the requests it was allowed in flight
    maxInFlight: 0
  }))
  let state = Array.from({ length: n }, () => ({ inFlight: 0, waitingUntil: undefined, concurrency: 0 }))
  let unsent = total
  // Until the first request of any identity, no identity could send: the run's lookups (table
  // metadata, each identity's dop hint) come first. That is in `firstBusyAt`, not in idle time.
  let sending = false
  let at = started
  let events = 0
  /** Per second: each identity's busy milliseconds and rows done by the end of the second. */
  const series = []
  const bucket = (t) => {
    const i = Math.floor((t - started) / bucketMs)
    while (series.length <= i) series.push({ busyMs: new Array(n).fill(0), succeeded: new Array(n).fill(0) })
    return series[i]
  }
  /** Adds the time from `at` to `t` under the state in force. */
  const advance = (t) => {
    for (let from = at; from < t;) {
      // Split at bucket edges so each second gets its share.
      const to = Math.min(t, started + (Math.floor((from - started) / bucketMs) + 1) * bucketMs)
      const dt = to - from
      const b = bucket(from)
      state.forEach((s, i) => {
        const held = s.waitingUntil === undefined ? 0 : Math.min(dt, Math.max(0, s.waitingUntil - from))
        const e = each[i]
        e.heldMs += held
        e.inFlightMs += s.inFlight * dt
        e.concurrencyMs += s.concurrency * dt
        if (s.inFlight > 0) {
          e.busyMs += dt
          e.sendingMs += dt - held
          b.busyMs[i] += dt
        } else if (sending && unsent > 0) e.starvedMs += dt - held
      })
      from = to
    }
    at = Math.max(at, t)
  }
  const onProgress = (progress) => {
    const t = now()
    advance(t)
    events++
    state = progress.identities.map((p) => ({
      inFlight: p.inFlight,
      waitingUntil: p.waitingUntil,
      concurrency: p.concurrency
    }))
    unsent = total - progress.succeeded - progress.failed - progress.rowsInFlight
    if (progress.inFlight > 0) sending = true
    const b = bucket(t)
    progress.identities.forEach((p, i) => {
      if (p.inFlight > 0 && each[i].firstBusyAt === undefined) each[i].firstBusyAt = t - started
      each[i].maxInFlight = Math.max(each[i].maxInFlight, p.inFlight)
      b.succeeded[i] = p.succeeded
    })
  }
  const finish = (t) => {
    advance(t)
    // Carry each identity's running total into the seconds without an event.
    for (let i = 1; i < series.length; i++) {
      series[i].succeeded = series[i].succeeded.map((v, j) => Math.max(v, series[i - 1].succeeded[j]))
    }
    return { each, events, series }
  }
  return { onProgress, finish }
}

process.once("message", async ({ info, identities: n }) => {
  const users = info.users.slice(0, n)
  const layer = DataverseClient.layerNode({
    url: info.url,
    credentials: users.map((user) => Credentials.staticToken(user.accessToken)),
    labels: users.map((_, i) => String(i + 1))
  })
  const program = Effect.gen(function*() {
    // The connection (one sign-in per identity) is built before the clock starts.
    const cpu = process.cpuUsage()
    const loop = performance.eventLoopUtilization()
    const started = now()
    const tracker = makeTracker(n, rows.length, started)
    const summary = yield* Bulk.execute("create", scenario.table, rows, { onProgress: tracker.onProgress })
    const ended = now()
    const used = process.cpuUsage(cpu)
    const { each, events, series } = tracker.finish(ended)
    return {
      wallMs: ended - started,
      jobCpuMs: (used.user + used.system) / 1000,
      eventLoopUtilization: performance.eventLoopUtilization(loop).utilization,
      summary: {
        created: summary.created,
        failed: summary.failed,
        requests: summary.requests,
        retries: summary.retries,
        throttled: summary.throttled,
        identities: summary.identities.map((identity) => ({ ...identity }))
      },
      tracked: each,
      events,
      series
    }
  })
  const result = await Effect.runPromise(Effect.provide(program, layer))
  process.send(result, () => process.exit(0))
})
process.send({ ready: true })

// One trial: one contender's job on a fresh emulator, then what the emulator saw (its counters)
// and what landed (the markers in its store, rows.mjs). Shared by bench/run.mjs and bench/matrix.mjs.
import { startHost } from "./processes.mjs"
import { expectation } from "./rows.mjs"

const sum = (values) => values.reduce((a, b) => a + b, 0)

/** What the web servers counted between two `stats`, summed over servers. */
export const traffic = (before, after) => {
  const total = (stats, f) => sum(stats.servers.map(f))
  const delta = (f) => total(after, f) - total(before, f)
  const limits = (s) => s.throttled.requests + s.throttled.executionTime + s.throttled.concurrency
  return {
    /** Every HTTP request the emulator answered. */
    requests: after.counters.requests - before.counters.requests,
    /** Requests the web servers' throttling model saw (the denominator of 429s per request). */
    serverRequests: delta((s) => s.requests),
    /** 429s, from the limits and injected. */
    throttled: delta((s) => limits(s) + s.throttled.injected),
    /** 429s from the limits alone: what a client's pacing can avoid. */
    limitThrottled: delta(limits),
    faultsInjected: delta((s) =>
      s.faults.unavailable + s.faults.resetBeforeCommit + s.faults.resetAfterCommit + s.faults.timeout
    )
  }
}

/**
 * Runs `contender` ({ ready, run(info), kill }, started before the emulator so its loading is not
 * timed) on a fresh emulator for `scenario`, seeded first for updates and upserts.
 */
export const trial = async (scenario, count, contender) => {
  let host
  try {
    host = await startHost(scenario)
    if (scenario.op !== "create") await host.request("seed", { scenario })
    await contender.ready
    const before = await host.request("stats")
    const run = await contender.run(host.info)
    const after = await host.request("stats")
    const check = await host.request("check", { expect: expectation(scenario, count) })
    return {
      ...run,
      rows: count,
      capped: count < scenario.rows,
      ...traffic(before, after),
      ...check,
      profile: host.profile
    }
  } finally {
    contender.kill()
    await host?.stop()
  }
}

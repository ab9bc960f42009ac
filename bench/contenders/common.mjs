// What the hand-written contenders share, written as a careful user would:
//
// - the degree of parallelism is the service's `x-ms-dop-hint`, read from one `WhoAmI`;
// - a 429 holds *every* worker until its `Retry-After` has passed (one shared gate), because the
//   service lengthens the wait of a user who keeps sending while told to wait; the request is
//   then sent again, as often as it is throttled. `makeRetrier({ wait: "worker" })` is the
//   simpler loop of issue 12: only the worker that got the 429 waits its own `Retry-After`;
// - a 503 or a broken connection is sent again after an exponential backoff (0.5 s, 1 s, ...),
//   up to 10 times (429s do not count); like most hand-written loops, this does not ask whether
//   a create may already have landed;
// - any other error (a data error) is final: the rows of that request are counted as failed.
import { DynamicsWebApi } from "dynamics-web-api"
import { setTimeout as sleep } from "node:timers/promises"

export const entitySets = { contact: "contacts", dve_product: "dve_products" }

export const connect = (info) =>
  new DynamicsWebApi({
    serverUrl: info.url,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => info.accessToken
  })

/** The service's recommended parallelism, from one `WhoAmI` (DynamicsWebApi does not expose response headers). */
export const dopHint = async (info) => {
  const response = await fetch(`${info.webApiUrl}WhoAmI`, {
    headers: { authorization: `Bearer ${info.accessToken}`, accept: "application/json" }
  })
  await response.arrayBuffer()
  return Number(response.headers.get("x-ms-dop-hint") ?? 4)
}

const transientCodes = new Set(["ECONNRESET", "EPIPE", "ECONNREFUSED", "ETIMEDOUT", "UND_ERR_SOCKET"])
const isTransient = (error) =>
  error?.status === 503 || error?.status === 502 || error?.status === 504 ||
  transientCodes.has(error?.code) || transientCodes.has(error?.cause?.code) ||
  /socket hang up|ECONNRESET|fetch failed|other side closed/i.test(String(error?.message))

const retryAfterMs = (error) => {
  const raw = error?.headers?.["retry-after"] ?? error?.headers?.["Retry-After"] ??
    (typeof error?.headers?.get === "function" ? error.headers.get("retry-after") : undefined)
  const seconds = Number(raw)
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 5000
}

const maxTransientRetries = 10

/**
 * Shared by the workers of one run: the 429 wait and the counts. `wait: "shared"` (the default)
 * holds every worker until the latest Retry-After given to any; `"worker"` holds only the
 * worker that was told to wait.
 */
export const makeRetrier = ({ wait = "shared" } = {}) => {
  if (wait !== "shared" && wait !== "worker") throw new Error(`unknown 429 wait ${wait}`)
  const stats = { requests: 0, throttled: 0, retries: 0 }
  let sharedResumeAt = 0
  const attempt = async (send) => {
    let resumeAt = 0
    const gate = () => (wait === "shared" ? sharedResumeAt : resumeAt)
    for (let transient = 0;;) {
      // Another worker may have pushed the shared gate further while this one slept: look again.
      for (let ms = gate() - Date.now(); ms > 0; ms = gate() - Date.now()) await sleep(ms)
      stats.requests++
      try {
        return await send()
      } catch (error) {
        if (error?.status === 429) {
          stats.throttled++
          resumeAt = Date.now() + retryAfterMs(error)
          sharedResumeAt = Math.max(sharedResumeAt, resumeAt)
        } else if (isTransient(error) && transient < maxTransientRetries) {
          await sleep(Math.min(30_000, 500 * 2 ** transient++))
        } else {
          throw error
        }
        stats.retries++
      }
    }
  }
  return { stats, attempt }
}

/** Runs `work(item)` over `items` with `concurrency` workers, in input order. */
export const pool = async (items, concurrency, work) => {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      await work(items[index], index)
    }
  }))
}

export const chunks = (rows, size) => {
  const out = []
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size))
  return out
}

/** The OData key segment a row is addressed by, for update (primary key) and upsert (alternate key). */
export const keyOf = (scenario, row) => scenario.op === "upsert" ? `dve_sku='${row.dve_sku}'` : row.contactid

/** The row without its key columns (they go in the URL). */
export const dataOf = (scenario, row) => {
  const { contactid: _id, dve_sku: _sku, ...data } = row
  return scenario.op === "create" ? row : data
}

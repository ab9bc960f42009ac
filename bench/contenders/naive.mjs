// The naive baseline: one row at a time, one request each, with Node's own `fetch` (POST for
// creates, PATCH for updates and upserts), waiting Retry-After on a 429 and nothing else.
import { setTimeout as sleep } from "node:timers/promises"
import { dataOf, entitySets, keyOf } from "./common.mjs"

export const run = async ({ info, scenario, rows }) => {
  const collection = entitySets[scenario.table]
  const headers = {
    authorization: `Bearer ${info.accessToken}`,
    "content-type": "application/json; charset=utf-8",
    accept: "application/json",
    "OData-Version": "4.0"
  }
  const stats = { requests: 0, throttled: 0, retries: 0 }
  let succeeded = 0
  let failed = 0
  for (const row of rows) {
    const url = scenario.op === "create"
      ? `${info.webApiUrl}${collection}`
      : `${info.webApiUrl}${collection}(${keyOf(scenario, row)})`
    for (let tries = 0;; tries++) {
      stats.requests++
      let response
      try {
        response = await fetch(url, {
          method: scenario.op === "create" ? "POST" : "PATCH",
          headers: scenario.op === "update" ? { ...headers, "If-Match": "*" } : headers,
          body: JSON.stringify(dataOf(scenario, row))
        })
        await response.arrayBuffer()
      } catch {
        failed++
        break
      }
      if (response.status === 429 && tries < 10) {
        stats.throttled++
        stats.retries++
        await sleep(Number(response.headers.get("retry-after") ?? 5) * 1000)
        continue
      }
      if (response.ok) succeeded++
      else failed++
      break
    }
  }
  return { succeeded, failed, ...stats, concurrency: 1 }
}

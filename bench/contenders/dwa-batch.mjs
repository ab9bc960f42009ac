// DynamicsWebApi `$batch` as users write it (issue 7): `startBatch()`, 1,000 operations
// (`create` / `update` / `upsert` by alternate key), `executeBatch({ continueOnError: true,
// inChangeSet: false })` so a bad row fails alone. A DynamicsWebApi instance holds one batch at a
// time, so each of the `x-ms-dop-hint` workers has its own instance; a 429 on the batch holds
// every worker for its Retry-After and the whole batch is sent again (common.mjs).
import { chunks, connect, dataOf, dopHint, entitySets, keyOf, makeRetrier, pool } from "./common.mjs"

export const run = async ({ info, scenario, rows }) => {
  const concurrency = await dopHint(info)
  const clients = Array.from({ length: concurrency }, () => connect(info))
  const { stats, attempt } = makeRetrier()
  const collection = entitySets[scenario.table]
  let succeeded = 0
  let failed = 0
  const free = [...clients]
  await pool(chunks(rows, 1000), concurrency, async (chunk) => {
    const dwa = free.pop()
    try {
      const results = await attempt(() => {
        dwa.startBatch()
        for (const row of chunk) {
          if (scenario.op === "create") void dwa.create({ collection, data: row })
          else if (scenario.op === "update") {
            void dwa.update({ collection, key: keyOf(scenario, row), data: dataOf(scenario, row) })
          } else void dwa.upsert({ collection, key: keyOf(scenario, row), data: dataOf(scenario, row) })
        }
        return dwa.executeBatch({ continueOnError: true, inChangeSet: false })
      })
      for (const result of results) {
        if (result instanceof Error) failed++
        else succeeded++
      }
    } catch {
      failed += chunk.length
    } finally {
      free.push(dwa)
    }
  })
  return { succeeded, failed, ...stats, concurrency }
}

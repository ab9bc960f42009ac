// DynamicsWebApi one request per row as users write it (issue 7): `create` / `update` /
// `upsert` (by alternate key), `x-ms-dop-hint` rows in flight, the shared 429 gate and transient
// retry of common.mjs.
import { connect, dataOf, dopHint, entitySets, keyOf, makeRetrier, pool } from "./common.mjs"

export const run = async ({ info, scenario, rows }) => {
  const dwa = connect(info)
  const concurrency = await dopHint(info)
  const { stats, attempt } = makeRetrier()
  const collection = entitySets[scenario.table]
  let succeeded = 0
  let failed = 0
  await pool(rows, concurrency, async (row) => {
    try {
      await attempt(() =>
        scenario.op === "create"
          ? dwa.create({ collection, data: row })
          : scenario.op === "update"
          ? dwa.update({ collection, key: keyOf(scenario, row), data: dataOf(scenario, row) })
          : dwa.upsert({ collection, key: keyOf(scenario, row), data: dataOf(scenario, row) })
      )
      succeeded++
    } catch {
      failed++
    }
  })
  return { succeeded, failed, ...stats, concurrency }
}

// DynamicsWebApi, the best hand-written loop (issue 7): `callAction` CreateMultiple /
// UpdateMultiple / UpsertMultiple in chunks of 500, `x-ms-dop-hint` requests in parallel, a 429
// holding every worker for its Retry-After (common.mjs). A chunk refused for a data error fails
// as a whole: on a standard table the message is one transaction, and a hand-written loop
// reports the chunk (splitting it and resending is what an engine does, not this loop).
//
// A scenario may configure the loop (bench/matrix.mjs does): `loop: { chunkSize, wait }`, with
// `wait: "shared"` (the default, above) or `"worker"` (each worker waits the Retry-After it was
// given and resends, the others carry on). Without `loop` it runs as described above.
import { chunks, connect, dopHint, entitySets, makeRetrier, pool } from "./common.mjs"

export const run = async ({ info, scenario, rows }) => {
  const dwa = connect(info)
  const concurrency = await dopHint(info)
  const { chunkSize = 500, wait = "shared" } = scenario.loop ?? {}
  const { stats, attempt } = makeRetrier({ wait })
  const collection = entitySets[scenario.table]
  const odataType = `Microsoft.Dynamics.CRM.${scenario.table}`
  const message = { create: "CreateMultiple", update: "UpdateMultiple", upsert: "UpsertMultiple" }[scenario.op]
  const target = (row) => {
    if (scenario.op !== "upsert") return { "@odata.type": odataType, ...row }
    const { dve_sku, ...data } = row
    return { "@odata.type": odataType, "@odata.id": `${collection}(dve_sku='${dve_sku}')`, ...data }
  }
  let succeeded = 0
  let failed = 0
  await pool(chunks(rows, chunkSize), concurrency, async (chunk) => {
    const Targets = chunk.map(target)
    try {
      await attempt(() =>
        dwa.callAction({ collection, actionName: `Microsoft.Dynamics.CRM.${message}`, action: { Targets } })
      )
      succeeded += chunk.length
    } catch {
      failed += chunk.length
    }
  })
  return { succeeded, failed, ...stats, concurrency, chunkSize, wait }
}

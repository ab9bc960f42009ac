/**
 * Reliability under faults: the library engine against an emulator that throttles (429), answers
 * 503, resets connections before and after committing, and lets requests time out, drawn from a
 * seeded generator so that every run can be replayed. After each create, update, upsert and
 * delete, on a standard table with an alternate key (dve_product) and on an elastic table
 * (dve_reading), the store must equal the expected set exactly: nothing lost, nothing doubled,
 * every value right, and no part of a refused chunk written.
 */
import * as Bulk from "@dv-effect/core/Bulk"
import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import * as RetryPolicy from "@dv-effect/core/RetryPolicy"
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

/** mulberry32, so the data of a seed is the same on every run. */
const random = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Scenario {
  readonly seed: number
  /** The client's own per-request timeout; below the emulator's `timeoutMs` it is the client that gives up. */
  readonly clientTimeoutMs: number
  readonly faults: Omit<Model.FaultRates, "seed">
}

const scenarios: ReadonlyArray<Scenario> = [
  {
    // The server drops the connection 25 ms after committing: an answer that never comes.
    seed: 101,
    clientTimeoutMs: 30_000,
    faults: {
      throttle: 0.02,
      unavailable: 0.05,
      resetBeforeCommit: 0.05,
      resetAfterCommit: 0.08,
      timeout: 0.05,
      timeoutMs: 25
    }
  },
  {
    seed: 202,
    clientTimeoutMs: 30_000,
    faults: {
      throttle: 0.01,
      unavailable: 0.03,
      resetBeforeCommit: 0.08,
      resetAfterCommit: 0.12,
      timeout: 0.03,
      timeoutMs: 25
    }
  },
  {
    // The server commits and then stays silent; the client's own timeout gives up first.
    seed: 303,
    clientTimeoutMs: 800,
    faults: {
      throttle: 0.01,
      unavailable: 0.04,
      resetBeforeCommit: 0.04,
      resetAfterCommit: 0.06,
      timeout: 0.03,
      timeoutMs: 5_000
    }
  }
]

const rowCount = 200
const bulk: Bulk.BulkOptions = { chunkSize: 20, concurrency: 4 }

type Values = Record<string, unknown>

/** The stored records of a table, as `identity -> tracked columns`, failing on any identity seen twice. */
const storedBy = (
  emulator: Emulator.RunningEmulator,
  table: string,
  identity: (id: string, values: Values) => string,
  columns: ReadonlyArray<string>
): Map<string, Values> => {
  const out = new Map<string, Values>()
  for (const record of emulator.store.table(table)!.scan()) {
    const key = identity(record.id, record.values)
    if (out.has(key)) throw new Error(`${table}: '${key}' is stored twice`)
    const projected: Values = {}
    for (const column of columns) projected[column] = record.values[column] ?? null
    out.set(key, projected)
  }
  return out
}

const sorted = (map: ReadonlyMap<string, Values>) => [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

describe.each(scenarios)("the engine under seeded faults (seed $seed)", (scenario) => {
  let emulator: Awaited<ReturnType<typeof Emulator.start>>
  let client: ReturnType<typeof DataverseClient.layerNode>
  const next = random(scenario.seed)
  let retries = 0
  const execute = async (
    operation: Bulk.Operation,
    table: string,
    rows: ReadonlyArray<Values>,
    options: Bulk.BulkOptions = {}
  ) => {
    const summary = await Effect.runPromise(
      Effect.provide(Bulk.execute(operation, table, rows, { ...bulk, ...options }), client)
    )
    retries += summary.retries
    return summary
  }

  beforeAll(async () => {
    emulator = await Emulator.start({
      identity: false,
      profile: { ...Model.fast, faults: { seed: scenario.seed, ...scenario.faults } }
    })
    client = DataverseClient.layerNode({
      url: emulator.info.url,
      credentials: Credentials.staticToken(emulator.info.accessToken),
      timeout: `${scenario.clientTimeoutMs} millis`,
      retryPolicy: RetryPolicy.make({ baseDelay: "1 millis", maxRetries: 30 })
    })
  })
  afterAll(async () => {
    const { faults, throttled } = emulator.servers[0]!
    const drawn = { ...faults, throttle: throttled.injected }
    // The runs were not clean: the engine retried, and every kind of fault drawn at 5% or more per
    // request (over some 150 requests) was met at least once.
    expect(retries).toBeGreaterThan(0)
    for (const kind of ["throttle", "unavailable", "resetBeforeCommit", "resetAfterCommit", "timeout"] as const) {
      if (scenario.faults[kind] >= 0.05) expect(drawn[kind], kind).toBeGreaterThan(0)
    }
    expect(Object.values(drawn).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5)
    await emulator.close()
  })

  it("dve_product (standard, alternate key dve_sku): create, update, upsert and delete land exactly", async () => {
    const columns = ["dve_name", "dve_price", "dve_quantity"]
    const bySku = () => storedBy(emulator, "dve_product", (_, values) => String(values.dve_sku), columns)
    // Three SKUs already exist: their rows must fail alone, and the rest of their chunks land.
    emulator.seed("dve_product", [
      { dve_sku: "P-0007", dve_name: "Held", dve_price: 1, dve_quantity: 1 },
      { dve_sku: "P-0100", dve_name: "Held", dve_price: 1, dve_quantity: 1 },
      { dve_sku: "P-0151", dve_name: "Held", dve_price: 1, dve_quantity: 1 }
    ])
    const held = new Set(["P-0007", "P-0100", "P-0151"])
    const expected = new Map<string, Values>()
    for (const sku of held) expected.set(sku, { dve_name: "Held", dve_price: 1, dve_quantity: 1 })

    const sku = (i: number) => `P-${String(i).padStart(4, "0")}`
    const creates = Array.from({ length: rowCount }, (_, i) => ({
      dve_sku: sku(i),
      dve_name: `Product ${i}`,
      dve_price: Math.round(next() * 100_000) / 100,
      dve_quantity: Math.floor(next() * 1000)
    }))
    for (const row of creates) {
      if (!held.has(row.dve_sku)) {
        expected.set(row.dve_sku, { dve_name: row.dve_name, dve_price: row.dve_price, dve_quantity: row.dve_quantity })
      }
    }
    const created = await execute("create", "dve_product", creates)
    expect(created).toMatchObject({ total: rowCount, created: rowCount - held.size, failed: held.size })
    expect(sorted(bySku())).toEqual(sorted(expected))

    // Update by alternate key: new prices for every other product.
    const updates = creates.filter((_, i) => i % 2 === 0).map((row) => ({
      dve_sku: row.dve_sku,
      dve_price: Math.round(next() * 100_000) / 100
    }))
    for (const row of updates) expected.set(row.dve_sku, { ...expected.get(row.dve_sku)!, dve_price: row.dve_price })
    const updated = await execute("update", "dve_product", updates, { key: ["dve_sku"] })
    expect(updated).toMatchObject({ total: updates.length, updated: updates.length, failed: 0 })
    expect(sorted(bySku())).toEqual(sorted(expected))

    // Upsert by alternate key: the second half changes, and as many new products appear.
    const upserts = Array.from({ length: rowCount }, (_, i) => i + rowCount / 2).map((i) => ({
      dve_sku: sku(i),
      dve_name: `Product ${i} v2`,
      dve_price: Math.round(next() * 100_000) / 100,
      dve_quantity: Math.floor(next() * 1000)
    }))
    for (const row of upserts) {
      expected.set(row.dve_sku, { dve_name: row.dve_name, dve_price: row.dve_price, dve_quantity: row.dve_quantity })
    }
    const upserted = await execute("upsert", "dve_product", upserts, { key: ["dve_sku"] })
    expect(upserted).toMatchObject({ total: upserts.length, upserted: upserts.length, failed: 0 })
    expect(sorted(bySku())).toEqual(sorted(expected))

    // Delete by alternate key: every third product.
    const deletes = [...expected.keys()].filter((_, i) => i % 3 === 0).map((dve_sku) => ({ dve_sku }))
    for (const row of deletes) expected.delete(row.dve_sku)
    const deleted = await execute("delete", "dve_product", deletes, { key: ["dve_sku"] })
    expect(deleted).toMatchObject({ total: deletes.length, deleted: deletes.length, failed: 0 })
    expect(sorted(bySku())).toEqual(sorted(expected))
  })

  it("dve_reading (elastic, partitioned): create, update, upsert and delete land exactly", async () => {
    const columns = ["dve_name", "partitionid", "dve_sensor", "dve_value"]
    const byName = () => storedBy(emulator, "dve_reading", (_, values) => String(values.dve_name), columns)
    const partition = (i: number) => `sensor-${i % 5}`
    const creates = Array.from({ length: rowCount }, (_, i) => ({
      dve_name: `R${i}`,
      partitionid: partition(i),
      dve_sensor: `S${i % 7}`,
      dve_value: Math.round(next() * 1_000_000) / 1000
    }))
    const expected = new Map<string, Values>(creates.map((row) => [row.dve_name, { ...row }]))
    const created = await execute("create", "dve_reading", creates)
    expect(created).toMatchObject({ total: rowCount, created: rowCount, failed: 0 })
    expect(sorted(byName())).toEqual(sorted(expected))

    const idOf = new Map(emulator.store.table("dve_reading")!.scan().map((r) => [String(r.values.dve_name), r.id]))
    // Update by id and partition: a new value for every other reading.
    const updates = creates.filter((_, i) => i % 2 === 1).map((row) => ({
      dve_readingid: idOf.get(row.dve_name)!,
      partitionid: row.partitionid,
      dve_value: Math.round(next() * 1_000_000) / 1000
    }))
    for (const [i, row] of updates.entries()) {
      const name = creates.filter((_, j) => j % 2 === 1)[i]!.dve_name
      expected.set(name, { ...expected.get(name)!, dve_value: row.dve_value })
    }
    const updated = await execute("update", "dve_reading", updates)
    expect(updated).toMatchObject({ total: updates.length, updated: updates.length, failed: 0 })
    expect(sorted(byName())).toEqual(sorted(expected))

    // Upsert by id: half replace existing readings (an elastic upsert replaces the whole record),
    // half create new ones with ids of the caller's choosing.
    const newId = (i: number) => `00000000-0000-4000-8000-${String(scenario.seed * 10_000 + i).padStart(12, "0")}`
    const upserts = Array.from({ length: rowCount }, (_, i) => {
      const existing = i < rowCount / 2
      const name = existing ? `R${i * 2}` : `N${i}`
      return {
        dve_readingid: existing ? idOf.get(name)! : newId(i),
        dve_name: name,
        partitionid: existing ? partition(i * 2) : partition(i),
        dve_sensor: `U${i % 3}`,
        dve_value: Math.round(next() * 1_000_000) / 1000
      }
    })
    for (const { dve_readingid: _, ...row } of upserts) expected.set(row.dve_name, row)
    const upserted = await execute("upsert", "dve_reading", upserts)
    expect(upserted).toMatchObject({ total: upserts.length, upserted: upserts.length, failed: 0 })
    expect(sorted(byName())).toEqual(sorted(expected))

    // Delete (DeleteMultiple) by id and partition: every third reading.
    const everyId = new Map(emulator.store.table("dve_reading")!.scan().map((r) => [String(r.values.dve_name), r]))
    const doomed = [...expected.keys()].filter((_, i) => i % 3 === 0)
    const deletes = doomed.map((name) => ({
      dve_readingid: everyId.get(name)!.id,
      partitionid: String(everyId.get(name)!.values.partitionid)
    }))
    for (const name of doomed) expected.delete(name)
    const deleted = await execute("delete", "dve_reading", deletes)
    expect(deleted).toMatchObject({ total: deletes.length, deleted: deletes.length, failed: 0 })
    expect(sorted(byName())).toEqual(sorted(expected))
  })
})

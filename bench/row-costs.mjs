// What the engine does to every row before and after the wire, step by step, beside what any
// client does (a target object and its JSON): the per-row floor of issue 12's CPU target. Each
// step runs alone over the same rows (those of the matrix's update or create scenario), in this
// process, with no stream, fiber or HTTP around it; strings are flattened first, as every client
// pays that once. The steps are the engine's own functions (packages/core/dist/internal), run as
// the engine runs them, on the table's metadata as an emulator describes it.
//
//   node bench/row-costs.mjs [--op update|create] [--rows N] [--reps N]
//
// The sum of the engine-only steps, over the DynamicsWebApi loop's whole CPU per row
// (`node bench/prof-engine.mjs`), is the least the engine's CPU ratio can be with its per-row work.
import { Credentials, DataverseClient, Metadata } from "@dv-effect/core"
import * as Emulator from "@dv-effect/emulator/Emulator"
import { Effect } from "effect"
import { parseArgs } from "node:util"
import { estimateBytes } from "../packages/core/dist/internal/bulk/chunking.js"
import { idMaker, newRunId } from "../packages/core/dist/internal/bulk/ids.js"
import { succeeded } from "../packages/core/dist/internal/bulk/outcomes.js"
import { makePasses } from "../packages/core/dist/internal/bulk/passes.js"
import { makePrepare, recordIdentity } from "../packages/core/dist/internal/bulk/prepare.js"
import { emptyCounts, tally } from "../packages/core/dist/internal/bulk/summary.js"
import { validateRow } from "../packages/core/dist/internal/validate.js"
import { jobRows } from "./lib/rows.mjs"

const { values } = parseArgs({
  options: {
    op: { type: "string", default: "update" },
    rows: { type: "string", default: "100000" },
    reps: { type: "string", default: "7" }
  }
})
const operation = values.op
if (operation !== "create" && operation !== "update") throw new Error(`--op is create or update, not ${operation}`)
// The first repetition warms the compiler: at least one more is measured.
if (!(Number(values.reps) >= 2)) throw new Error(`--reps is 2 or more, not ${values.reps}`)
const count = Number(values.rows)

const emulator = await Emulator.start({ port: 0, profile: "fast" })
const metadata = await Effect.runPromise(
  Metadata.table("contact").pipe(
    Effect.provide(
      DataverseClient.layerNode({
        url: emulator.info.url,
        credentials: Credentials.staticToken(emulator.info.accessToken)
      })
    )
  )
)
await emulator.close()

const odataType = `Microsoft.Dynamics.CRM.${metadata.logicalName}`

/** Fresh rows with flat strings (what a parser hands over): reading a character flattens one. */
const freshRows = () => {
  const rows = jobRows({ op: operation, table: "contact" }, count)
  for (const row of rows) for (const name in row) if (typeof row[name] === "string") row[name].charCodeAt(0)
  return rows
}

/** Each step: what it does to every row; `engine: true` for the engine's own, else what any client does. */
const steps = [
  {
    name: "validate against metadata",
    engine: true,
    run: (rows) => {
      for (const row of rows) validateRow(metadata, row, operation === "create")
    }
  },
  {
    name: "prepare (validate, annotations, id)",
    engine: true,
    run: (rows, state) => {
      const prepare = makePrepare({ operation, metadata, key: undefined, smart: false, idFor: idMaker(newRunId()) })
      state.prepared = rows.map((row, index) => prepare(row, index))
    }
  },
  {
    // Creates without their own id have no identity (the engine's ids are new): the set is not
    // touched, as in the engine.
    name: "duplicate records (identity, set)",
    engine: true,
    run: (rows, state) => {
      const passes = makePasses(() => undefined)
      for (const item of state.prepared) passes.admit(item, recordIdentity(operation, item, undefined))
    }
  },
  {
    name: "request size estimate",
    engine: true,
    run: (rows, state) => {
      let bytes = 0
      for (const item of state.prepared) bytes += estimateBytes(item.row)
      state.bytes = bytes
    }
  },
  {
    name: "outcome and tally",
    engine: true,
    run: (rows, state) => {
      const counts = emptyCounts()
      for (const item of state.prepared) tally(counts, succeeded(operation, item, item.id))
    }
  },
  {
    name: "target objects (any client)",
    engine: false,
    run: (rows, state) => {
      state.targets = rows.map((row) => ({ "@odata.type": odataType, ...row }))
    }
  },
  {
    name: "JSON of 1,000-row requests (any client)",
    engine: false,
    run: (rows, state) => {
      for (let i = 0; i < state.targets.length; i += 1000) {
        JSON.stringify({ Targets: state.targets.slice(i, i + 1000) })
      }
    }
  }
]

const timings = new Map(steps.map((step) => [step.name, []]))
for (let rep = 0; rep < Number(values.reps); rep++) {
  const rows = freshRows()
  const state = {}
  for (const step of steps) {
    const t0 = process.cpuUsage()
    step.run(rows, state)
    const used = process.cpuUsage(t0)
    // The first repetition warms the compiler.
    if (rep > 0) timings.get(step.name).push(((used.user + used.system) / 1000) * (100_000 / count))
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const line = (name, ms) => console.log(`${name.padEnd(42)} ${ms.toFixed(0).padStart(5)} ms per 100k rows`)
console.log(`${operation} of ${count} contact rows: CPU, median of ${Number(values.reps) - 1} runs`)
let engineOnly = 0
let shared = 0
for (const step of steps) {
  const ms = median(timings.get(step.name))
  line(step.name, ms)
  // "prepare" includes the validation measured alone above it.
  if (step.engine && step.name !== "validate against metadata") engineOnly += ms
  if (!step.engine) shared += ms
}
line("engine-only steps", engineOnly)
line("steps any client takes", shared)
console.log(`engine-only steps over the steps any client takes: ${(engineOnly / shared).toFixed(2)}x`)

// Runs one library contender in this process (a child of the driver, forked with IPC and
// preloaded with probe.mjs). It loads the contender and builds the job's rows while the driver
// starts the emulator, then waits for the emulator's start contract, times the job alone (wall
// and this process's CPU) and sends the result. argv: <contender> <JSON { scenario, count }>
import { jobRows } from "./rows.mjs"

const [name, json] = process.argv.slice(2)
const { scenario, count } = JSON.parse(json)
const contender = await import(`../contenders/${name}.mjs`)
const rows = jobRows(scenario, count)

process.once("message", async ({ info }) => {
  const cpu = process.cpuUsage()
  const started = performance.now()
  const result = await contender.run({ info, scenario, rows })
  const wallMs = performance.now() - started
  const used = process.cpuUsage(cpu)
  process.send({ ...result, wallMs, jobCpuMs: (used.user + used.system) / 1000 }, () => process.exit(0))
})
process.send({ ready: true })

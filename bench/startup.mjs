// Measures what the foundation issue names: the cold start of `dv-effect --help` (target < 1 s)
// and the demo's import rate. Run with `npm run bench` (it builds first).
import { spawnSync } from "node:child_process"
import * as Os from "node:os"
import { fileURLToPath } from "node:url"

const bin = fileURLToPath(new URL("../apps/cli/bin/dv-effect.js", import.meta.url))
const runs = Number(process.env.BENCH_RUNS ?? 10)

const time = (args) => {
  const started = process.hrtime.bigint()
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.status !== 0) throw new Error(`dv-effect ${args.join(" ")} exited ${result.status}: ${result.stderr}`)
  return { ms, stdout: result.stdout }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

console.log(`machine: ${Os.cpus().length} x ${Os.cpus()[0]?.model ?? "cpu"}, node ${process.version}`)

const help = Array.from({ length: runs }, () => time(["--help"]).ms)
const helpMedian = median(help)
console.log(
  `dv-effect --help   median ${helpMedian.toFixed(0)} ms, min ${Math.min(...help).toFixed(0)} ms, max ${
    Math.max(...help).toFixed(0)
  } ms` +
    ` over ${runs} runs; target 1000 ms: ${(helpMedian / 1000).toFixed(2)}x of target (${
      helpMedian < 1000 ? "met" : "NOT met"
    })`
)
const bare = Array.from({ length: runs }, () => {
  const started = process.hrtime.bigint()
  spawnSync(process.execPath, ["-e", ""])
  return Number(process.hrtime.bigint() - started) / 1e6
})
console.log(`node -e ""         median ${median(bare).toFixed(0)} ms (the floor any Node CLI pays)`)

const demoRuns = Number(process.env.BENCH_DEMO_RUNS ?? 3)
const rates = []
for (let i = 0; i < demoRuns; i++) {
  const { ms, stdout } = time(["demo"])
  const rate = Number(/contact rows\/s\s+(\d+)/.exec(stdout)?.[1])
  rates.push(rate)
  console.log(`dv-effect demo     run ${i + 1}: ${rate} contact rows/s, ${ms.toFixed(0)} ms wall for the whole command`)
}
console.log(
  `dv-effect demo     median ${
    median(rates)
  } rows/s (10,000 contacts, CreateMultiple, in-process emulator, profile without limits)`
)

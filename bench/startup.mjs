// Measures the cold start of `dv-effect --help` (issue 14's target: at most 300 ms from the global
// install) beside a bare `node -e ""`, and the demo's import rate. Run with `npm run bench` (it
// builds first). The global install is the packed tarball installed into a temporary prefix, as
// `npm install -g` does; BENCH_GLOBAL=0 skips it.
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { pack } from "../scripts/pack.mjs"

const bin = fileURLToPath(new URL("../apps/cli/bin/dv-effect.js", import.meta.url))
const runs = Number(process.env.BENCH_RUNS ?? 10)
const targetMs = 300

const time = (command, args) => {
  const started = process.hrtime.bigint()
  const result = spawnSync(command, args, { encoding: "utf8" })
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} exited ${result.status}: ${result.stderr}`)
  return { ms, stdout: result.stdout }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

console.log(`machine: ${Os.cpus().length} x ${Os.cpus()[0]?.model ?? "cpu"}, node ${process.version}`)

// The global install: the CLI tarball alone in an empty prefix.
let work
const contenders = [
  { label: `node -e ""`, command: process.execPath, args: ["-e", ""] },
  { label: "dv-effect --help (clone)", command: process.execPath, args: [bin, "--help"] }
]
if (process.env.BENCH_GLOBAL !== "0") {
  work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-startup-"))
  const cli = pack({ out: Path.join(work, "packs"), build: false, quiet: true }).find((p) => p.name === "dv-effect")
  const prefix = Path.join(work, "prefix")
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  const installed = spawnSync(
    npm,
    ["install", "-g", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", prefix, cli.file],
    { cwd: work, encoding: "utf8" }
  )
  if (installed.status !== 0) throw new Error(`npm install -g failed: ${installed.stderr}`)
  contenders.push({
    label: "dv-effect --help (global install)",
    command: Path.join(prefix, process.platform === "win32" ? "dv-effect.cmd" : "bin/dv-effect"),
    args: ["--help"]
  })
}

// Interleaved, after one warm-up each, so that a busy moment of the machine weighs on all alike.
for (const contender of contenders) time(contender.command, contender.args)
const times = contenders.map(() => [])
for (let i = 0; i < runs; i++) {
  contenders.forEach((contender, j) => times[j].push(time(contender.command, contender.args).ms))
}
contenders.forEach((contender, j) => {
  const ms = median(times[j])
  const verdict = contender.args[0] === "-e"
    ? "(the floor any Node CLI pays)"
    : `target ${targetMs} ms: ${ms <= targetMs ? "met" : "NOT met"}`
  console.log(
    `${contender.label.padEnd(34)} median ${ms.toFixed(0).padStart(4)} ms, min ${
      Math.min(...times[j]).toFixed(0).padStart(4)
    } ms, max ${Math.max(...times[j]).toFixed(0).padStart(4)} ms over ${runs} runs; ${verdict}`
  )
})
if (work !== undefined) Fs.rmSync(work, { recursive: true, force: true })

const demoRuns = Number(process.env.BENCH_DEMO_RUNS ?? 3)
const rates = []
for (let i = 0; i < demoRuns; i++) {
  const { ms, stdout } = time(process.execPath, [bin, "demo"])
  const rate = Number(/contact rows\/s\s+(\d+)/.exec(stdout)?.[1])
  rates.push(rate)
  console.log(`dv-effect demo     run ${i + 1}: ${rate} contact rows/s, ${ms.toFixed(0)} ms wall for the whole command`)
}
if (demoRuns > 0) {
  console.log(
    `dv-effect demo     median ${
      median(rates)
    } rows/s (10,000 contacts, CreateMultiple, in-process emulator, profile without limits)`
  )
}

// Preloaded (`node --import ./bench/lib/probe.mjs ...`) into every contender process, the CLI
// included: on exit it writes the process's own CPU time and peak RSS (VmHWM) to the file named
// by BENCH_PROBE, so every contender is measured the same way, whatever it runs.
import * as Fs from "node:fs"

const out = process.env.BENCH_PROBE
if (out !== undefined && out !== "") {
  process.on("exit", () => {
    const cpu = process.cpuUsage()
    let peakRssKb = 0
    try {
      peakRssKb = Number(/VmHWM:\s+(\d+) kB/.exec(Fs.readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0)
    } catch {
      peakRssKb = Math.round(process.resourceUsage().maxRSS)
    }
    Fs.writeFileSync(out, JSON.stringify({ cpuMs: (cpu.user + cpu.system) / 1000, peakRssKb }))
  })
}

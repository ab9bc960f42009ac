// Figures and their printing, shared by bench/run.mjs and bench/matrix.mjs.
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** `--name` flags and `--name value` options of this process's arguments. */
export const parseArgs = (argv = process.argv.slice(2)) => ({
  flag: (name) => argv.includes(`--${name}`),
  option: (name) => {
    const at = argv.indexOf(`--${name}`)
    return at >= 0 ? argv[at + 1] : undefined
  }
})

/** The median of the defined values (the lower one of an even count). */
export const median = (values) => {
  const sorted = values.filter((v) => v !== undefined && !Number.isNaN(v)).sort((a, b) => a - b)
  return sorted.length === 0 ? undefined : sorted[Math.floor((sorted.length - 1) / 2)]
}

export const fmt = (value, digits = 0) =>
  value === undefined || Number.isNaN(value)
    ? "-"
    : value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })

/** A markdown table: the first column left-aligned, the others right-aligned. */
export const table = (header, lines) => {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  const row = (cells) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`
  return [
    row(header),
    `|${widths.map((w, i) => (i === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`,
    ...lines.map(row)
  ].join("\n")
}

export const machine = () => ({
  cpus: Os.cpus().length,
  model: Os.cpus()[0]?.model ?? "cpu",
  memoryGb: Math.round(Os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${Os.platform()} ${Os.release()}`,
  loadAverage: Os.loadavg()
})

export const describeMachine = (m) =>
  `machine: ${m.cpus} x ${m.model}, ${m.memoryGb} GB, node ${m.node}, load ${
    m.loadAverage.map((l) => l.toFixed(2)).join(" ")
  }`

/** Writes `data` to bench/results/<timestamp><suffix>.json; returns the path relative to the working directory. */
export const writeResults = (suffix, data) => {
  const dir = fileURLToPath(new URL("../results/", import.meta.url))
  Fs.mkdirSync(dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, "-")
  const file = Path.join(dir, `${stamp}${suffix}.json`)
  Fs.writeFileSync(file, `${JSON.stringify(data, (_, v) => (v === Infinity ? "Infinity" : v), 2)}\n`)
  return Path.relative(process.cwd(), file)
}

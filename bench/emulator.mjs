// The emulator's own speed and memory (issue targets: ingest through CreateMultiple at 50,000
// records/s or more in the `fast` profile; 1,000,000 records held under 1.5 GB RSS).
// The emulator runs as its own process (`dv-effect emulator`); this process only sends
// pre-serialised CreateMultiple bodies, so the figure is the emulator's, not the client's.
//
//   node bench/emulator.mjs            # 1,000,000 records
//   BENCH_RECORDS=200000 node bench/emulator.mjs
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { Agent, request } from "undici"

const total = Number(process.env.BENCH_RECORDS ?? 1_000_000)
const chunk = Number(process.env.BENCH_CHUNK ?? 1000)
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 4)
const bin = fileURLToPath(new URL("../apps/cli/bin/dv-effect.js", import.meta.url))

const child = spawn(process.execPath, [bin, "emulator", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] })
const info = await new Promise((resolve) =>
  Readline.createInterface({ input: child.stdout }).once("line", (l) => resolve(JSON.parse(l)))
)
const rss = (field) => {
  const status = Fs.readFileSync(`/proc/${child.pid}/status`, "utf8")
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024
}

const dispatcher = new Agent({ connections: concurrency, pipelining: 1 })
const url = `${info.webApiUrl}contacts/Microsoft.Dynamics.CRM.CreateMultiple`
const headers = { authorization: `Bearer ${info.accessToken}`, "content-type": "application/json" }
const body = (start, count) =>
  JSON.stringify({
    Targets: Array.from({ length: count }, (_, i) => ({
      "@odata.type": "Microsoft.Dynamics.CRM.contact",
      firstname: `First${start + i}`,
      lastname: `Last${start + i}`,
      emailaddress1: `person${start + i}@bench.example.com`,
      telephone1: "+1-206-555-0100",
      creditlimit: (start + i) % 50000
    }))
  })

// Bodies are built before the clock starts.
const bodies = []
for (let start = 0; start < total; start += chunk) bodies.push(body(start, Math.min(chunk, total - start)))

let next = 0
let written = 0
const started = performance.now()
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < bodies.length) {
    const payload = bodies[next++]
    const response = await request(url, { method: "POST", headers, body: payload, dispatcher })
    const text = await response.body.text()
    if (response.statusCode !== 200) {
      throw new Error(`CreateMultiple answered ${response.statusCode}: ${text.slice(0, 200)}`)
    }
    written += JSON.parse(text).Ids.length
  }
}))
const seconds = (performance.now() - started) / 1000
const rate = Math.round(written / seconds)
console.log(
  `machine: node ${process.version}, emulator profile fast, CreateMultiple of ${chunk}, ${concurrency} in flight`
)
console.log(
  `ingest      ${written} records in ${seconds.toFixed(1)} s = ${rate} records/s; target 50,000: ${
    (rate / 50000).toFixed(2)
  }x (${rate >= 50000 ? "met" : "NOT met"})`
)
const held = rss("VmRSS")
const peak = rss("VmHWM")
console.log(
  `memory      ${written} records held: RSS ${held.toFixed(0)} MB, peak ${peak.toFixed(0)} MB; target 1,536 MB: ${
    (peak / 1536).toFixed(2)
  }x (${peak < 1536 ? "met" : "NOT met"})`
)

// Paging the whole table back, 5,000 at a time, as an export would.
const readStarted = performance.now()
let pageUrl = `${info.webApiUrl}contacts?$select=lastname`
let read = 0
while (pageUrl !== undefined) {
  const response = await request(pageUrl, { headers: { ...headers, prefer: "odata.maxpagesize=5000" }, dispatcher })
  const page = JSON.parse(await response.body.text())
  read += page.value.length
  pageUrl = page["@odata.nextLink"]
}
const readSeconds = (performance.now() - readStarted) / 1000
console.log(`read back   ${read} records in ${readSeconds.toFixed(1)} s = ${Math.round(read / readSeconds)} records/s`)
child.kill("SIGTERM")
await dispatcher.close()

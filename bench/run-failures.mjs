// Issue 13's two measured cases, through the CLI as a user runs it, on the `bench` profile (one
// web server, an emulator process of its own), rows counted in the emulator's store:
//
//   expired token  `dv-effect create contact --file rows.jsonl --journal j --rejects r.jsonl
//                  --access-token <token> --chunk-size 100 --concurrency 2`, the token valid for 4 s;
//                  then `--resume` with a fresh token.
//   kill + resume  the same load with the default options, killed (SIGKILL) once 15,000 rows
//                  landed; then `--resume`: its wall time, requests and 429s.
//
//   node bench/run-failures.mjs [--rows 40000]          (run `npm run build` first)
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { clearInterval, setInterval } from "node:timers"
import { startHost } from "./lib/processes.mjs"
import { fmt, parseArgs, table } from "./lib/report.mjs"
import { expectation, jobRows } from "./lib/rows.mjs"
import { traffic } from "./lib/trial.mjs"

const args = parseArgs()
const rows = Number(args.option("rows") ?? 40_000)
const cli = new URL("../apps/cli/bin/dv-effect.js", import.meta.url).pathname
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-run-failures-"))
const scenario = { op: "create", table: "contact", profile: "bench", servers: 1, rows }
const file = Path.join(dir, "rows.jsonl")
Fs.writeFileSync(file, jobRows(scenario).map((row) => JSON.stringify(row)).join("\n") + "\n")

/** Runs the CLI; `killWhen` (polled every 250 ms) SIGKILLs it when it answers true. */
const dvEffect = (argv, { killWhen } = {}) =>
  new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(process.execPath, [cli, ...argv], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, XDG_STATE_HOME: dir }
    })
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += d))
    child.stdout.resume()
    let timer
    if (killWhen !== undefined) {
      timer = setInterval(async () => {
        if (await killWhen()) child.kill("SIGKILL")
      }, 250)
    }
    child.on("exit", (code, signal) => {
      clearInterval(timer)
      resolve({ code: code ?? signal, seconds: (performance.now() - started) / 1000, stderr })
    })
  })

const lines = (path) => (Fs.existsSync(path) ? Fs.readFileSync(path, "utf8").split("\n").filter(Boolean).length : 0)
const lastLine = (text) => text.trim().split("\n").at(-1) ?? ""
const results = []

/**
 * One case on a fresh emulator: a first run of `args(info, "first")` that stops (by itself, or
 * killed when `killWhen` says so), then `args(info, "resume")` with --resume; the store checked.
 */
const stopThenResume = async (name, hostOptions, args, { killWhen, rejects } = {}) => {
  const host = await startHost({ ...scenario, ...hostOptions })
  const expect = expectation(scenario, rows)
  const landedNow = async () => (await host.request("check", { expect })).landed
  const first = await dvEffect(await args(host, "first"), {
    ...(killWhen === undefined ? {} : { killWhen: async () => killWhen(await landedNow()) })
  })
  const landed = await landedNow()
  const before = await host.request("stats")
  const second = await dvEffect([...(await args(host, "resume")), "--resume"])
  const after = await host.request("stats")
  results.push({
    name,
    first: {
      ...first,
      landed,
      rejected: rejects === undefined ? 0 : lines(rejects),
      said: killWhen === undefined ? lastLine(first.stderr) : "killed"
    },
    resume: { ...second, ...traffic(before, after) },
    check: await host.request("check", { expect })
  })
  await host.stop()
}

// 1. A static token valid for 4 s, with the flags; the resume with a fresh one.
{
  const rejects = Path.join(dir, "token-rejects.jsonl")
  const common = ["create", "contact", "--file", file, "--journal", Path.join(dir, "token.journal")]
  await stopThenResume("expired token", { tokenLifetimeSeconds: 4 }, async (host, run) => [
    ...common,
    ...["--rejects", rejects, "--url", host.info.url, "--chunk-size", "100", "--concurrency", "2"],
    "--access-token",
    run === "first" ? host.info.accessToken : await host.request("token", { lifetimeSeconds: 3600 })
  ], { rejects })
}

// 2. Killed midway (SIGKILL) with the default options, resumed at once.
await stopThenResume("kill + resume", {}, (host) => [
  ...["create", "contact", "--file", file, "--journal", Path.join(dir, "kill.journal")],
  ...["--url", host.info.url, "--access-token", host.info.accessToken]
], { killWhen: (landed) => landed >= Math.min(15_000, rows / 2) })

console.log(`\n${rows.toLocaleString("en-US")} rows, profile bench, one web server\n`)
console.log(table(
  ["case", "1st exit", "1st s", "landed", "rejected", "resume exit", "resume s", "requests", "429s", "lost", "dup"],
  results.map((r) => [
    r.name,
    String(r.first.code),
    fmt(r.first.seconds, 1),
    fmt(r.first.landed),
    fmt(r.first.rejected),
    String(r.resume.code),
    fmt(r.resume.seconds, 1),
    fmt(r.resume.serverRequests),
    fmt(r.resume.throttled),
    fmt(r.check.lost),
    fmt(r.check.duplicated)
  ])
))
for (const r of results) console.log(`${r.name}, first run's last line: ${r.first.said}`)
Fs.rmSync(dir, { recursive: true, force: true })

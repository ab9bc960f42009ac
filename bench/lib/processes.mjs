// The processes of a trial, shared by bench/run.mjs, bench/matrix.mjs and bench/identities.mjs: a
// fresh emulator (emulator-host.mjs) and the contender, a library in a process of its own
// (runner.mjs, or another runner file) or any node command (the CLI), each preloaded with
// probe.mjs so all are measured alike.
import { fork, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { clearTimeout, setTimeout } from "node:timers"
import { fileURLToPath } from "node:url"

const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const probe = here("./probe.mjs")
const runner = here("./runner.mjs")

/** A file for one process's probe, removed once read. */
const probeFile = () => Path.join(Os.tmpdir(), `dv-bench-probe-${process.pid}-${process.hrtime.bigint()}.json`)

const readProbe = (file) => {
  try {
    return JSON.parse(Fs.readFileSync(file, "utf8"))
  } catch {
    return { cpuMs: NaN, peakRssKb: NaN }
  } finally {
    Fs.rmSync(file, { force: true })
  }
}

/** A fresh emulator process for one trial; `request(type, payload)` talks to it over IPC. */
export const startHost = async (scenario) => {
  const child = fork(here("./emulator-host.mjs"), [
    JSON.stringify({
      profile: scenario.profile,
      servers: scenario.servers,
      ...(scenario.users === undefined ? {} : { users: scenario.users }),
      ...(scenario.tokenLifetimeSeconds === undefined ? {} : { tokenLifetimeSeconds: scenario.tokenLifetimeSeconds })
    })
  ], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
    serialization: "advanced"
  })
  const pending = new Map()
  let nextId = 0
  const ready = await new Promise((resolve, reject) => {
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`the emulator host exited ${code}`)))
    child.on("message", (message) => {
      if (message.type === "ready") return resolve(message)
      const waiter = pending.get(message.id)
      pending.delete(message.id)
      if (message.error !== undefined) waiter?.reject(new Error(message.error))
      else waiter?.resolve(message.result)
    })
  })
  child.removeAllListeners("exit")
  const request = (type, payload = {}) =>
    new Promise((resolve, reject) => {
      const id = nextId++
      pending.set(id, { resolve, reject })
      child.send({ id, type, ...payload })
    })
  const stop = () =>
    new Promise((resolve) => {
      child.once("exit", resolve)
      child.disconnect()
      setTimeout(() => child.kill("SIGKILL"), 5000).unref()
    })
  return { info: ready.info, profile: ready.profile, request, stop, pid: child.pid }
}

/** Spawns `node --import probe.mjs <args>`; resolves with wall time, exit code, stdout and the probe. */
export const measured = (args, { env = {}, stdoutFile } = {}) =>
  new Promise((resolve, reject) => {
    const probed = probeFile()
    const out = stdoutFile === undefined ? "pipe" : Fs.openSync(stdoutFile, "w")
    const started = performance.now()
    const child = spawn(process.execPath, ["--import", probe, ...args], {
      stdio: ["ignore", out, "pipe"],
      env: { ...process.env, ...env, BENCH_PROBE: probed }
    })
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)))
    child.once("error", reject)
    child.once("exit", (code) => {
      const wallMs = performance.now() - started
      if (typeof out === "number") Fs.closeSync(out)
      const { cpuMs, peakRssKb } = readProbe(probed)
      resolve({ code, wallMs, stdout, stderr, cpuMs, peakRssMb: peakRssKb / 1024 })
    })
  })

/**
 * A runner file (an ES module under bench/lib) in a process of its own, forked with IPC and
 * preloaded with probe.mjs. The runner sends one message when it is ready (its libraries loaded,
 * its rows built), then answers the one message `run(message)` sends it and exits. `run` resolves
 * with `{ reply, peakRssMb }`; a runner that has not answered after `timeoutMs` is killed and
 * rejected. `name` says whose failure it was in errors.
 */
export const startRunner = (file, argv, { name = Path.basename(file), timeoutMs = Infinity } = {}) => {
  const probed = probeFile()
  const child = fork(file, argv, {
    execArgv: ["--import", probe],
    stdio: ["ignore", "ignore", "pipe", "ipc"],
    env: { ...process.env, BENCH_PROBE: probed }
  })
  let stderr = ""
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)))
  const exited = new Promise((resolve) => child.once("exit", resolve))
  const failed = (what) => exited.then((code) => Promise.reject(new Error(`${name} ${what} (exit ${code}): ${stderr}`)))
  const ready = Promise.race([new Promise((resolve) => child.once("message", resolve)), failed("did not start")])
  const run = async (message) => {
    let timer
    const timedOut = new Promise((_, reject) => {
      if (!Number.isFinite(timeoutMs)) return
      timer = setTimeout(() => {
        child.kill("SIGKILL")
        reject(new Error(`${name} timed out after ${Math.round(timeoutMs / 1000)} s`))
      }, timeoutMs)
    })
    const answered = new Promise((resolve) => child.once("message", resolve))
    child.send(message)
    try {
      const reply = await Promise.race([answered, failed("failed"), timedOut])
      await exited
      return { reply, peakRssMb: readProbe(probed).peakRssKb / 1024 }
    } finally {
      clearTimeout(timer)
    }
  }
  return { ready, run, kill: () => child.kill("SIGKILL") }
}

/**
 * A library contender (bench/contenders/<module>.mjs) in a process of its own, loaded and with
 * its rows built before the clock starts. `run(info)` sends the emulator's start contract and
 * resolves with the job's figures: wall time and CPU of the job alone, peak RSS of the process.
 * A job that has not answered after `timeoutMs` is killed and rejected.
 */
export const startLibrary = (module, scenario, count, { timeoutMs = Infinity } = {}) => {
  const child = startRunner(runner, [module, JSON.stringify({ scenario, count })], { name: module, timeoutMs })
  const run = async (info) => {
    const { reply: result, peakRssMb } = await child.run({ info })
    return {
      wallMs: result.wallMs,
      cpuMs: result.jobCpuMs,
      cpuScope: "job",
      peakRssMb,
      succeeded: result.succeeded,
      failed: result.failed,
      retries: result.retries,
      concurrency: result.concurrency
    }
  }
  return { ready: child.ready, run, kill: child.kill }
}

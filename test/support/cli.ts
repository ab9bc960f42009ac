/**
 * Runs the built `dv-effect` CLI as a separate process, as a user would.
 */
import * as Emulator from "@dv-effect/emulator/Emulator"
import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { afterAll, expect } from "vitest"

export const binPath = fileURLToPath(new URL("../../apps/cli/bin/dv-effect.js", import.meta.url))

export interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `dv-effect <args>` to completion, feeding `stdin` if given. */
export const run = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Readonly<Record<string, string>>; readonly stdin?: string } = {}
): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, ...args], {
      env: { ...cleanEnv(), ...options.env },
      stdio: ["pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(options.stdin ?? "")
  })

/**
 * A config directory of the tests' own, so that a developer's saved profiles never change what
 * a test sees, and a state directory (XDG_STATE_HOME), so that the journals imports keep by
 * default never land in the real home. Removed after the test file (each file imports this module
 * afresh), and at exit should the file not get there; a worker's `exit` event alone does not come
 * when the pool ends it with a signal.
 */
const configDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-config-"))
const stateDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-state-"))
const removeDirs = () => {
  Fs.rmSync(configDir, { recursive: true, force: true })
  Fs.rmSync(stateDir, { recursive: true, force: true })
}
afterAll(removeDirs)
process.on("exit", removeDirs)

/** The environment without connection variables a developer may have set. */
export const cleanEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (
      value !== undefined && !key.startsWith("DATAVERSE_") && !key.startsWith("AZURE_") && !key.startsWith("DV_EFFECT_")
    ) {
      env[key] = value
    }
  }
  env.DV_EFFECT_CONFIG_DIR = configDir
  env.XDG_STATE_HOME = stateDir
  return env
}

/** How a process ended: its exit code, or the signal that ended it. */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface StartedEmulator {
  readonly info: {
    readonly url: string
    readonly webApiUrl: string
    readonly accessToken: string
    readonly userId: string
    readonly [key: string]: unknown
  }
  /** The port it listens on (to start another one there). */
  readonly port: number
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<Exit>
  /** Sends `signal` and resolves with the exit code. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

/**
 * Starts `dv-effect emulator --port <port> <extraArgs>` (port 0: any free one) and waits for its
 * start-contract line; `spawned` is handed the process as soon as it is spawned.
 */
export const startEmulator = (
  extraArgs: ReadonlyArray<string> = [],
  options: { readonly port?: number; readonly spawned?: (child: ChildProcess) => void } = {}
): Promise<StartedEmulator> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, "emulator", "--port", String(options.port ?? 0), ...extraArgs], {
      env: cleanEnv(),
      stdio: ["pipe", "pipe", "pipe"]
    })
    options.spawned?.(child)
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const exited = new Promise<Exit>((done) => child.on("exit", (code, signal) => done({ code, signal })))
    const lines = Readline.createInterface({ input: child.stdout })
    lines.once("line", (line) => {
      try {
        const info: StartedEmulator["info"] = JSON.parse(line)
        resolve({
          info,
          port: Number(new URL(info.url).port),
          child,
          exited,
          stop: (signal = "SIGTERM") => {
            child.kill(signal)
            return exited.then((exit) => exit.code)
          }
        })
      } catch (error) {
        reject(new Error(`the first stdout line is not JSON: ${line} (${String(error)})`))
      }
    })
    void exited.then((exit) => reject(new Error(`the emulator exited with ${exit.code} before starting: ${stderr}`)))
  })

/**
 * An in-process emulator for a test file, a temporary directory, and the env that points the CLI at
 * both (XDG_STATE_HOME is `<dir>/state`, so default journals are kept there).
 */
export interface EmulatorFixture {
  readonly emulator: Emulator.RunningEmulator
  readonly dir: string
  readonly env: Record<string, string>
  /** Where the CLI keeps default journals under this fixture's env. */
  readonly runsDir: string
  /** Stops the emulator and removes the directory. */
  readonly close: () => Promise<void>
}

/** Writes `text` to `name` in `dir`; answers the path. */
export const writeFile = (dir: string, name: string, text: string): string => {
  const path = Path.join(dir, name)
  Fs.writeFileSync(path, text)
  return path
}

/** Starts an emulator with `options` and makes a temporary directory named from `prefix`. */
export const startEmulatorFixture = async (
  options: Emulator.EmulatorOptions,
  prefix: string
): Promise<EmulatorFixture> => {
  const emulator = await Emulator.start(options)
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))
  const state = Path.join(dir, "state")
  return {
    emulator,
    dir,
    env: { DATAVERSE_URL: emulator.info.url, DATAVERSE_ACCESS_TOKEN: emulator.info.accessToken, XDG_STATE_HOME: state },
    runsDir: Path.join(state, "dv-effect", "runs"),
    close: async () => {
      await emulator.close()
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** Creates a record over HTTP (`Prefer: return=representation`) and answers it. */
export const postRecord = async (
  emulator: { readonly info: { readonly webApiUrl: string; readonly accessToken: string } },
  entitySet: string,
  body: unknown
): Promise<Record<string, unknown>> => {
  const response = await fetch(`${emulator.info.webApiUrl}${entitySet}`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${emulator.info.accessToken}`,
      "Content-Type": "application/json",
      Prefer: "return=representation"
    },
    body: JSON.stringify(body)
  })
  expect(response.status).toBeLessThan(300)
  return (await response.json()) as Record<string, unknown>
}

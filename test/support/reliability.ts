/**
 * The CLI as a process that a reliability test stops: started, polled to a stop point, frozen,
 * killed or interrupted, and its journal read as it goes (test/reliability-crash.test.ts,
 * test/reliability-run-failures.test.ts).
 */
import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as Fs from "node:fs"
import { afterEach, expect } from "vitest"
import { binPath, cleanEnv, type Exit } from "./cli.js"

// -------------------------------------------------------------------------------------------------
// Processes

/** Processes still running at the end of a test are killed (SIGKILL also ends a stopped process). */
const children = new Set<ChildProcess>()
afterEach(() => {
  for (const child of children) child.kill("SIGKILL")
  children.clear()
})

/** Kills `child` at the end of the test, should it still be running then. */
export const killAfterTest = (child: ChildProcess) => {
  children.add(child)
  child.on("close", () => children.delete(child))
}

export interface Cli {
  readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<Exit>
  readonly ended: () => boolean
  readonly stdout: () => string
  readonly stderr: () => string
}

/** Starts `dv-effect <args>` with `env` over `base` (by default the clean environment of `run`). */
export const startCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  base: NodeJS.ProcessEnv = cleanEnv()
): Cli => {
  const child = spawn(process.execPath, [binPath, ...args], { env: { ...base, ...env }, stdio: "pipe" })
  killAfterTest(child)
  child.stdin.end()
  let stdout = ""
  let stderr = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  let ended = false
  const exited = new Promise<Exit>((resolve) =>
    child.on("close", (code, signal) => {
      ended = true
      resolve({ code, signal })
    })
  )
  return { child, exited, ended: () => ended, stdout: () => stdout, stderr: () => stderr }
}

/** Runs `dv-effect <args>` to its end. */
export const runCli = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const cli = startCli(args, env)
  const exit = await cli.exited
  return { ...exit, stdout: cli.stdout(), stderr: cli.stderr() }
}

/**
 * Polls `condition` every `intervalMs` until it holds (true), or `unless` holds first (false);
 * fails after `timeoutMs`, naming `what`.
 */
export const waitFor = async (
  what: string,
  condition: () => boolean | Promise<boolean>,
  options: { readonly unless?: () => boolean; readonly timeoutMs?: number; readonly intervalMs?: number } = {}
): Promise<boolean> => {
  const deadline = Date.now() + (options.timeoutMs ?? 90_000)
  for (;;) {
    if (await condition()) return true
    if (options.unless?.()) return false
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 5))
  }
}

/** Waits for the process to end, failing after `timeoutMs`. */
export const exitWithin = (cli: Cli, timeoutMs: number, what: string): Promise<Exit> =>
  Promise.race([
    cli.exited,
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`${what}: no exit within ${timeoutMs} ms; stderr:\n${cli.stderr()}`)),
        timeoutMs
      )
        .unref()
    )
  ])

/** Freezes the CLI (SIGSTOP): it sends nothing more, and the requests it has in flight stay there. */
export const freeze = (cli: Cli) => cli.child.kill("SIGSTOP")

/** Lets a frozen CLI go on (SIGCONT); returns when. */
export const thaw = (cli: Cli): number => {
  cli.child.kill("SIGCONT")
  return Date.now()
}

/** SIGKILL: the process ends at once, by that signal. */
export const expectKilled = async (target: { readonly child: ChildProcess; readonly exited: Promise<Exit> }) => {
  target.child.kill("SIGKILL")
  expect((await target.exited).signal).toBe("SIGKILL")
}

/**
 * Ctrl-C (SIGINT): exit 130 and no stack trace; with a `journal`, the last words name the command
 * that resumes the run, and the journal has no torn line. Waits for the exit at most `timeoutMs`
 * when given.
 */
export const interrupt = async (
  cli: Cli,
  options: { readonly journal?: string | undefined; readonly timeoutMs?: number } = {}
) => {
  cli.child.kill("SIGINT")
  const exit = await (options.timeoutMs === undefined
    ? cli.exited
    : exitWithin(cli, options.timeoutMs, "the interrupted run"))
  expect(exit.code, cli.stderr()).toBe(130)
  expect(cli.stderr()).not.toMatch(/\n\s+at /)
  if (options.journal !== undefined) {
    expect(cli.stderr()).toContain(`--journal ${options.journal} --resume`)
    // A clean stop leaves no torn line.
    expect(Fs.readFileSync(options.journal, "utf8").endsWith("\n"), "a torn journal line").toBe(true)
  }
}

// -------------------------------------------------------------------------------------------------
// Imports and their journals

/** The journalled import these tests stop and resume. */
export const importArgs = (source: string, journal: string, rejects: string, chunkSize = 100, concurrency = 4) => [
  "create",
  "contact",
  "-f",
  source,
  "--chunk-size",
  String(chunkSize),
  "--concurrency",
  String(concurrency),
  "--journal",
  journal,
  "--rejects",
  rejects
]

export interface JournalView {
  /** Complete lines, parsed (a torn last line is left out). */
  readonly entries: ReadonlyArray<Record<string, unknown>>
  readonly sentLines: number
  readonly okLines: number
  /** Rows finished (ok or failed for good). */
  readonly ok: ReadonlySet<number>
  readonly failed: ReadonlySet<number>
  /** Rows in requests sent without a recorded end. */
  readonly sent: ReadonlySet<number>
  /** The last complete line is a `sent` entry: a request is in flight. */
  readonly inFlight: boolean
}

const expand = (ranges: unknown, into: Set<number>) => {
  for (const [first, last] of (ranges ?? []) as Array<[number, number]>) {
    for (let i = first; i <= last; i++) into.add(i)
  }
}

/** The journal's complete lines, as they are now (a missing file reads as empty). */
export const readJournal = (path: string): JournalView => {
  const text = Fs.existsSync(path) ? Fs.readFileSync(path, "utf8") : ""
  const whole = text.slice(0, text.lastIndexOf("\n") + 1)
  const entries = whole.split("\n").filter((line) => line !== "").map((line) =>
    JSON.parse(line) as Record<string, unknown>
  )
  const ok = new Set<number>()
  const failed = new Set<number>()
  const sent = new Set<number>()
  let sentLines = 0
  let okLines = 0
  for (const entry of entries.slice(1)) {
    if ("sent" in entry) {
      sentLines++
      expand(entry.sent, sent)
    }
    if ("ok" in entry) {
      okLines++
      expand(entry.ok, ok)
      expand(entry.failed, failed)
    }
  }
  // The header (the first line) has no `sent`.
  const last = entries[entries.length - 1]
  return { entries, sentLines, okLines, ok, failed, sent, inFlight: last !== undefined && "sent" in last }
}

/**
 * Polls the journal every 2 ms (a condition, not a clock): true once `condition` holds while the
 * process runs, false when it ends first.
 */
export const journalReaches = (
  cli: Cli,
  journal: string,
  condition: (view: JournalView) => boolean,
  what = "the stop point"
) => waitFor(what, () => !cli.ended() && condition(readJournal(journal)), { unless: cli.ended, intervalMs: 2 })

/**
 * What an import keeps so that a stopped run can go on: the default journal of a job (under
 * `$XDG_STATE_HOME/dv-effect/runs/`, named from the job so that `--resume` alone finds it), what a
 * journal file records, and the command that resumes a run, rebuilt from the user's command line
 * without its secrets.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "./CliError.js"

// ---------------------------------------------------------------------------------------------
// The default journal

/**
 * Where default journals are kept: `$XDG_STATE_HOME/dv-effect/runs` (an absolute
 * `XDG_STATE_HOME` only, as the XDG spec says), else `~/.local/state/dv-effect/runs`.
 *
 * @since 0.2.0
 */
export const runsDir = (env: NodeJS.ProcessEnv = process.env): string => {
  const state = env.XDG_STATE_HOME
  const base = state !== undefined && Path.isAbsolute(state) ? state : Path.join(Os.homedir(), ".local", "state")
  return Path.join(base, "dv-effect", "runs")
}

/**
 * What names a job: a run of the same job, and only that, finds the same default journal.
 *
 * @since 0.2.0
 */
export interface JobName {
  /** The org URL. */
  readonly url: string
  readonly operation: string
  readonly table: string
  /** The input file (resolved to an absolute path), or `-` for stdin. */
  readonly input: string
  /** `--key`, as columns. */
  readonly key: ReadonlyArray<string> | undefined
  /** `--partition`, as given. */
  readonly partition: string | undefined
}

/**
 * The default journal's file name: `<operation>-<table>-<hash>.journal`, the hash being the first
 * 12 hex digits of a SHA-256 of the job.
 *
 * @since 0.2.0
 */
export const journalName = (job: JobName): string => {
  const hash = Crypto.createHash("sha256")
    .update(JSON.stringify([
      job.url.replace(/\/+$/, "").toLowerCase(),
      job.operation,
      job.table.toLowerCase(),
      job.input,
      job.key ?? [],
      job.partition ?? ""
    ]))
    .digest("hex")
    .slice(0, 12)
  return `${job.operation}-${job.table.replace(/[^A-Za-z0-9_.-]/g, "_")}-${hash}.journal`
}

/**
 * The default journal of a job, its directory created (mode 0700) when missing.
 *
 * @since 0.2.0
 */
export const defaultJournal = (job: JobName, dir: string = runsDir()): Effect.Effect<string, CliError> =>
  Effect.try({
    try: () => {
      Fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
      return Path.join(dir, journalName(job))
    },
    catch: (error) =>
      new CliError({
        message: `Cannot create the journal directory ${dir}: ${
          (error as Error).message
        } (pass --journal <file> or --no-journal).`,
        cause: error
      })
  })

/**
 * What a journal file records: whether it is there, its header's job (undefined when the first
 * line is not a whole dv-effect header), how many entries of rows follow the header (0: no row was
 * ever sent), and the rows it finished.
 *
 * @since 0.2.0
 */
export interface JournalFile {
  readonly exists: boolean
  readonly job?: { readonly operation: string; readonly table: string; readonly input: string | undefined }
  readonly entries: number
  readonly finished: number
}

const headerJob = (text: string): JournalFile["job"] => {
  // A first line without its newline is torn: the engine starts the journal over.
  if (!text.includes("\n")) return undefined
  try {
    const header = JSON.parse(text.slice(0, text.indexOf("\n"))) as Record<string, unknown>
    if (header["journal"] !== "dv-effect") return undefined
    return {
      operation: String(header["operation"]),
      table: String(header["table"]),
      input: typeof header["input"] === "string" ? header["input"] : undefined
    }
  } catch {
    return undefined
  }
}

const rowsIn = (ranges: unknown): number => {
  let count = 0
  if (!Array.isArray(ranges)) return 0
  for (const range of ranges) {
    if (Array.isArray(range) && typeof range[0] === "number" && typeof range[1] === "number") {
      count += range[1] - range[0] + 1
    }
  }
  return count
}

/**
 * Reads what a journal file records (a line that is not JSON counts as an entry that finished
 * nothing).
 *
 * @since 0.2.0
 */
export const inspectJournal = (path: string): Effect.Effect<JournalFile, CliError> =>
  Effect.try({
    try: (): JournalFile => {
      if (!Fs.existsSync(path)) return { exists: false, entries: 0, finished: 0 }
      const text = Fs.readFileSync(path, "utf8")
      const lines = text.split("\n").filter((line) => line.trim() !== "")
      let finished = 0
      let entries = 0
      for (const line of lines.slice(1)) {
        try {
          const entry = JSON.parse(line) as { sent?: unknown; ok?: unknown; failed?: unknown }
          finished += rowsIn(entry.ok) + rowsIn(entry.failed)
          // The input's fingerprint is recorded before any row is sent: it is not a row's entry.
          if (entry.sent !== undefined || entry.ok !== undefined || entry.failed !== undefined) entries++
        } catch {
          // a torn or damaged line: the engine says so when it opens the journal
          entries++
        }
      }
      const job = headerJob(text)
      return { exists: true, ...(job === undefined ? {} : { job }), entries, finished }
    },
    catch: (error) =>
      new CliError({ message: `Cannot read the journal ${path}: ${(error as Error).message}`, cause: error })
  })

/**
 * Removes a journal file (a default journal whose run finished).
 *
 * @since 0.2.0
 */
export const removeJournal = (path: string): Effect.Effect<void> =>
  Effect.sync(() => Fs.rmSync(path, { force: true })).pipe(Effect.orElse(() => Effect.void))

// ---------------------------------------------------------------------------------------------
// The resume command

/**
 * Options whose value is a secret: never repeated in a command dv-effect prints. The ones
 * `Connection` takes as flags (`--access-token`, `--connection-string`), and the names of the
 * secrets it reads from the environment only, should one ever be passed.
 *
 * @since 0.2.0
 */
export const secretOptions: ReadonlyArray<string> = [
  "--access-token",
  "--connection-string",
  "--client-secret",
  "--password",
  "--certificate-password"
]

/** Options the resume command sets itself. */
const replaced: ReadonlyArray<string> = ["--journal", "--resume", "--no-journal"]
const takesValue: ReadonlySet<string> = new Set([...secretOptions, "--journal"])

/**
 * One argument quoted for a POSIX shell: as it is when it holds no special character, else in
 * single quotes (control characters, which would break the line, as `$'\n'`).
 *
 * @since 0.2.0
 */
export const shellQuote = (arg: string): string => {
  if (arg !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(arg)) {
    return `$'${
      arg.replace(/[\\']/g, (c) => `\\${c}`).replace(
        // eslint-disable-next-line no-control-regex
        /[\x00-\x1f\x7f]/g,
        (c) => c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`
      )
    }'`
  }
  return `'${arg.replace(/'/g, "'\\''")}'`
}

/**
 * The command that resumes a run: the user's arguments (`process.argv` after the script) without
 * `--journal`, `--resume` and the values of secret options, then `--journal <journal> --resume`.
 * `secretsLeftOut` says whether a secret option was dropped (the user signs in the same way).
 *
 * @since 0.2.0
 */
export const resumeCommand = (
  argv: ReadonlyArray<string>,
  journal: string
): { readonly command: string; readonly secretsLeftOut: boolean } => {
  const kept: Array<string> = []
  let secretsLeftOut = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const name = arg.startsWith("--") && arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg
    const secret = secretOptions.includes(name)
    if (secret) secretsLeftOut = true
    if (secret || replaced.includes(name)) {
      // `--flag value`: the value goes too.
      if (name === arg && takesValue.has(name) && i + 1 < argv.length) i++
      continue
    }
    kept.push(arg)
  }
  return {
    command: ["dv-effect", ...kept, "--journal", journal, "--resume"].map(shellQuote).join(" "),
    secretsLeftOut
  }
}

/**
 * How to go on after a run stopped early, as the end of the line that says why: the resume
 * command when a journal is kept (`undefined` without one).
 *
 * @since 0.2.0
 */
export const resumeHint = (options: {
  readonly journal: string | undefined
  readonly argv: ReadonlyArray<string>
  readonly stdin: boolean
}): string => {
  if (options.journal === undefined) return "Without a journal a new run sends every row again."
  const { command, needs } = resumeOf({ ...options, journal: options.journal })
  return `Resume with: ${command}${needs.length === 0 ? "" : ` (${needs.map((need) => `with ${need}`).join(", ")})`}`
}

/**
 * The command that resumes a run (`resumeCommand`) and what it needs besides itself: the same
 * sign-in when a secret was left out, the same rows on stdin when the run read them there.
 *
 * @since 0.2.0
 */
export const resumeOf = (options: {
  readonly journal: string
  readonly argv: ReadonlyArray<string>
  readonly stdin: boolean
}): { readonly command: string; readonly needs: ReadonlyArray<string> } => {
  const { command, secretsLeftOut } = resumeCommand(options.argv, options.journal)
  return {
    command,
    needs: [
      ...(secretsLeftOut ? ["the same sign-in"] : []),
      ...(options.stdin ? ["the same rows, in the same order, on stdin"] : [])
    ]
  }
}

/**
 * A message and a hint on one line: the message's first line, ended as a sentence, then the hint.
 *
 * @since 0.2.0
 */
export const withHint = (message: string, hint: string): string => {
  const first = message.split("\n")[0]!.trim()
  return `${first}${/[.!?]$/.test(first) ? "" : "."} ${hint}`
}

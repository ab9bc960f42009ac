/**
 * `dv-effect create|update|upsert|delete <table>`: rows from a file or stdin (CSV, JSON lines or
 * a JSON array), coerced by the table's metadata, through the bulk engine, with progress, a
 * rejects file, a journal to resume from (by default one per job, kept while the run is
 * unfinished), partitions, dry runs and a summary.
 *
 * A run failure (sign-in, permissions, an outage, throttling past its limit, a journal or rejects
 * file that cannot be written) stops the run with exit 1 and one line: the cause and the command
 * that resumes it. Row failures are reported per row (exit 2).
 *
 * @since 0.1.0
 */
import * as Bulk from "@dv-effect/core/Bulk"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import { DataverseError, isRunFailure } from "@dv-effect/core/DataverseError"
import * as Journal from "@dv-effect/core/Journal"
import * as Metadata from "@dv-effect/core/Metadata"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "./CliError.js"
import * as Coerce from "./Coerce.js"
import * as Connection from "./Connection.js"
import { RowsRejected } from "./ExitCode.js"
import { autoOrWhole, checked, concurrencyOption, list, parseDuration, seconds } from "./Flags.js"
import * as Help from "./Help.js"
import * as Input from "./Input.js"
import * as Output from "./Output.js"
import * as ProgressReporter from "./ProgressReporter.js"
import * as Rejects from "./Rejects.js"
import * as Runs from "./Runs.js"

const verbs: Record<Bulk.Operation, { readonly done: string; readonly about: string }> = {
  create: { done: "Created", about: "Create rows (CreateMultiple where the table supports it, else $batch)" },
  update: { done: "Updated", about: "Update rows by primary key or --key columns (UpdateMultiple or $batch)" },
  upsert: {
    done: "Upserted",
    about: "Create or update rows by primary key or --key columns (UpsertMultiple or $batch)"
  },
  delete: {
    done: "Deleted",
    about: "Delete rows by primary key or --key columns (DeleteMultiple on elastic tables, else $batch)"
  }
}

const options = {
  connection: Connection.options,
  table: Args.text({ name: "table" }).pipe(Args.withDescription("Table logical name, e.g. contact")),
  file: Options.text("file").pipe(
    Options.withAlias("f"),
    Options.withPseudoName("path"),
    Options.withDescription("A CSV, JSON-lines or JSON-array file, or - for stdin"),
    Options.withDefault("-")
  ),
  format: Options.choice("format", Input.inputFormats).pipe(
    Options.withDescription("Input format (default: by extension, else by first character)"),
    Options.optional
  ),
  delimiter: Options.text("delimiter").pipe(
    Options.withPseudoName("char"),
    Options.withDescription("CSV field delimiter, one character, or tab (default: , or a tab for .tsv)"),
    Options.optional
  ),
  key: Options.text("key").pipe(
    Options.withPseudoName("columns"),
    Options.withDescription(
      "Alternate-key columns, comma-separated (default: primary key); in smart mode any columns that name one record each"
    ),
    Options.optional
  ),
  chunkSize: checked(
    Options.text("chunk-size").pipe(
      Options.withPseudoName("n|auto"),
      Options.withDescription("Rows per request; auto starts at 100, adapts to latency"),
      Options.withDefault("auto")
    ),
    autoOrWhole("--chunk-size")
  ),
  concurrency: concurrencyOption,
  strategy: Options.choice("strategy", ["auto", "multiple", "batch", "single"] as const).pipe(
    Options.withPseudoName("how"),
    Options.withDescription("multiple (*Multiple messages), batch ($batch), single or auto"),
    Options.withDefault("auto" as const)
  ),
  bypass: Options.text("bypass").pipe(
    Options.withPseudoName("sync,async"),
    Options.withDescription("Skip custom business logic: sync, async or both"),
    Options.optional
  ),
  tag: Options.text("tag").pipe(
    Options.withPseudoName("text"),
    Options.withDescription("A tag the plug-ins can read (the tag parameter of each request)"),
    Options.optional
  ),
  smart: Options.boolean("smart").pipe(
    Options.withDescription("Look records up: skip unchanged rows, update changed, create missing")
  ),
  noCreate: Options.boolean("no-create").pipe(Options.withDescription("With --smart: never create a record")),
  noUpdate: Options.boolean("no-update").pipe(Options.withDescription("With --smart: never update a record")),
  allColumns: Options.boolean("all-columns").pipe(
    Options.withDescription("With --smart: send all columns of a changed row, not just changes")
  ),
  dryRun: Options.boolean("dry-run").pipe(
    Options.withDescription("Read, coerce and check every row, print the plan; write nothing")
  ),
  rejects: Options.text("rejects").pipe(
    Options.withPseudoName("file"),
    Options.withDescription("Write failed rows here as JSON lines (input, status, code, message)"),
    Options.optional
  ),
  journal: Options.text("journal").pipe(
    Options.withPseudoName("file"),
    Options.withDescription(
      "Record finished rows here for --resume (default: one per job)"
    ),
    Options.optional
  ),
  noJournal: Options.boolean("no-journal").pipe(
    Options.withDescription("Keep no journal: a stopped run cannot be resumed")
  ),
  resume: Options.boolean("resume").pipe(
    Options.withDescription("Continue the stopped run its journal records, skipping finished rows")
  ),
  maxThrottleWait: checked(
    Options.text("max-throttle-wait").pipe(
      Options.withPseudoName("duration"),
      Options.withDescription("Stop the run, resumable, once 429s hold a request this long: 90s, 30m"),
      Options.withDefault("1h")
    ),
    (text) => parseDuration("--max-throttle-wait", text)
  ),
  partition: Options.text("partition").pipe(
    Options.withPseudoName("i/n"),
    Options.withDescription("Take slice i of n of the rows (position mod n = i-1), e.g. 2/4"),
    Options.optional
  ),
  output: Options.choice("output", ["text", "json"] as const).pipe(
    Options.withAlias("o"),
    Options.withDescription("text: summary on stderr; json: summary as JSON on stdout"),
    Options.withDefault("text" as const)
  )
}

/** The flags of the import commands, grouped for their help. */
const sections: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
  ["INPUT", ["file", "format", "delimiter", "partition"]],
  ["MATCHING", ["key", "smart", "no-create", "no-update", "all-columns"]],
  ["REQUESTS", ["strategy", "chunk-size", "concurrency", "max-throttle-wait", "bypass", "tag"]],
  ["RUN", ["dry-run", "rejects", "journal", "no-journal", "resume", "output"]]
]

type ImportArgs = Command.Command.ParseConfig<typeof options>

const parseBypass = (text: string): Effect.Effect<{ sync: boolean; async: boolean }, CliError> => {
  const parts = list(text)
  const bad = parts.find((part) => part !== "sync" && part !== "async")
  if (bad === undefined && parts.length > 0) {
    return Effect.succeed({ sync: parts.includes("sync"), async: parts.includes("async") })
  }
  const near = bad === undefined ? undefined : Metadata.suggest(bad, ["sync", "async"], 1)[0]
  return Effect.fail(
    new CliError({
      message: `--bypass takes sync, async or sync,async, got '${text}'${
        near === undefined ? "." : `; did you mean '${near}'${parts.length > 1 ? ` for '${bad}'` : ""}?`
      }`
    })
  )
}

/**
 * A `--journal` file, after checking it fits the flags: an existing run needs --resume, and reads
 * its rows as the stopped run did: a file (`identity`, its path and size), or stdin or a pipe
 * (none, told by the first rows). The engine refuses the other case too, in the library's terms.
 */
const checkJournal = (
  path: string,
  resume: boolean,
  identity: string | undefined,
  job: { readonly operation: string; readonly table: string }
) =>
  Effect.gen(function*() {
    const exists = Fs.existsSync(path) && Fs.statSync(path).size > 0
    if (exists && !resume) {
      return yield* new CliError({
        message:
          `--journal ${path} already records a run: add --resume to continue it, or remove the file to start over.`
      })
    }
    if (!exists && resume) return yield* new CliError({ message: `--resume: the journal ${path} does not exist.` })
    // A journal of another job, or not a journal, is the engine's to name when it opens it.
    const recorded = exists ? (yield* Runs.inspectJournal(path)).job : undefined
    const sameJob = recorded !== undefined && recorded.operation === job.operation && recorded.table === job.table
    if (sameJob && (recorded.input === undefined) !== (identity === undefined)) {
      return yield* new CliError({
        message: recorded.input === undefined
          ? `--journal ${path} records a run that read its rows from stdin or a pipe; this one reads ${identity}: give the same rows, in the same order, on stdin (< file) to resume.`
          : `--journal ${path} records a run over ${recorded.input}; this one reads stdin or a pipe: resume with that file as -f.`
      })
    }
    return path
  })

/**
 * The default journal of a job: with --resume it must record a run; without, one that records an
 * unfinished run is refused (a journal whose run never sent a row is replaced).
 */
const checkDefaultJournal = (job: Runs.JobName, resume: boolean) =>
  Effect.gen(function*() {
    const dir = Runs.runsDir()
    const path = yield* Runs.defaultJournal(job, dir)
    const recorded = yield* Runs.inspectJournal(path)
    if (resume) {
      if (!recorded.exists) {
        // A stopped run of this operation and table under other settings (a flag added or left out).
        const prefix = Runs.journalName(job).replace(/[^-]+\.journal$/, "")
        const others = Fs.readdirSync(dir).filter((name) => name.startsWith(prefix) && name.endsWith(".journal"))
        const none =
          `--resume: no stopped run of this job is recorded in ${dir} (a run that finished removed its journal; for a journal of your own, pass --journal <file>)`
        // Each named with the input its run read, the setting a user most often changes.
        const named: Array<string> = []
        for (const name of others) {
          const other = Path.join(dir, name)
          const input = (yield* Effect.either(Runs.inspectJournal(other))).pipe(
            Either.match({ onLeft: () => undefined, onRight: (file) => file.job?.input })
          )
          named.push(`${other} (over ${input ?? "stdin or a pipe"})`)
        }
        return yield* new CliError({
          message: others.length === 0
            ? `${none}.`
            : `${none}; a job is its org, input, --key and --partition, and ${
              others.length === 1 ? "a journal" : `${others.length} journals`
            } of ${job.operation} ${job.table} under other settings ${others.length === 1 ? "is" : "are"} there: ${
              named.join(", ")
            } (resume with the input and flags its run had, or pass --journal <file>).`
        })
      }
      return path
    }
    if (recorded.entries > 0) {
      return yield* new CliError({
        message: `An unfinished run of this job is recorded in ${path} (${
          recorded.finished.toLocaleString("en-US")
        } rows finished): add --resume to continue it, or delete that file to start over.`
      })
    }
    if (recorded.exists) yield* Runs.removeJournal(path)
    return path
  })

/**
 * Whether resuming cures what stopped the run: a run failure, a journal that could not be written
 * (a full disk), a rejects file likewise. A journal that records another job, or is damaged, is
 * not; nor is a problem of the input or of the flags.
 */
const isResumable = (error: unknown): boolean =>
  (error instanceof DataverseError && isRunFailure(error)) ||
  (error instanceof Journal.JournalError && error.reason === "Unwritable") ||
  error instanceof Rejects.RejectsError

/**
 * How to go on after a stop: the resume command when the journal holds the run. `failed`: a
 * failure stopped it (its cause is to be fixed first), not Ctrl-C.
 */
const stopHint = (args: ImportArgs, journalPath: string | undefined, failed: boolean): string =>
  journalPath !== undefined && !Fs.existsSync(journalPath)
    ? `No row was sent: ${failed ? "once that is fixed, " : ""}run the same command again.`
    : Runs.resumeHint({ journal: journalPath, argv: process.argv.slice(2), stdin: args.file === "-" })

/** A run failure: the error with the resume hint at the end of its first line. */
const withResumeHint = <E>(error: E, hint: () => string): E => {
  if (!isResumable(error)) return error
  if (error instanceof DataverseError) {
    return new DataverseError({ ...error, message: Runs.withHint(error.message, hint()) }) as E
  }
  if (error instanceof Journal.JournalError) {
    return new Journal.JournalError({ ...error, message: Runs.withHint(error.message, hint()) }) as E
  }
  if (error instanceof Rejects.RejectsError) {
    return new Rejects.RejectsError({ ...error, message: Runs.withHint(error.message, hint()) }) as E
  }
  return error
}

/**
 * A file input as the journal knows it: a resume over another file (or a changed one) is refused.
 * Rows are named by position, so a file written again is another input even at the same path and
 * size: a re-export in another order (a query without ORDER BY) would skip rows never sent and
 * send others twice. Its modification time tells it apart.
 * A pipe given as a path (`/dev/stdin`, `<(zcat ...)`) has no size to tell inputs apart: like
 * stdin, it is told by its first rows (the journal's fingerprint).
 */
const inputIdentity = (file: string): string | undefined => {
  const stat = Fs.existsSync(file) ? Fs.statSync(file) : undefined
  if (stat !== undefined && !stat.isFile()) return undefined
  return `${Path.resolve(file)} (${stat?.size ?? 0} bytes, modified ${
    stat === undefined ? "never" : stat.mtime.toISOString()
  })`
}

/**
 * What Ctrl-C says: the rows finished, those in requests without an answer (they may have
 * landed), and how to go on.
 */
const stoppedMessage = (
  operation: Bulk.Operation,
  smart: boolean,
  latest: Bulk.Progress | undefined,
  journal: string | undefined,
  resuming: boolean,
  hint: () => string
): string => {
  const stopped = stoppedCounts(latest, resuming)
  if (journal !== undefined) return `${stopped} ${hint()}`
  const twice = createdTwice(operation, smart, latest)
  if (twice !== undefined) {
    return `${stopped} Without a journal a new run sends every row again: ${twice} would be created a second time (unless the rows carry their own ids).`
  }
  const unanswered = latest?.rowsInFlight ?? 0
  const smartTwice = unanswered > 0 && smart ? `; creates among the ${n(unanswered)} may then be created twice` : ""
  return `${stopped} Without a journal a new run sends every row again${smartTwice}.`
}

/**
 * The line before a run failure's own (which says why and how to go on): what the run did, if it
 * did anything. Without a journal, also what a new run would create twice.
 */
const failedRunMessage = (
  operation: Bulk.Operation,
  smart: boolean,
  latest: Bulk.Progress | undefined,
  journal: string | undefined,
  resuming: boolean
): string | undefined => {
  if (latest === undefined || latest.succeeded + latest.failed + latest.rowsInFlight === 0) return undefined
  const stopped = stoppedCounts(latest, resuming)
  const twice = journal === undefined ? createdTwice(operation, smart, latest) : undefined
  return twice === undefined
    ? stopped
    : `${stopped} ${twice[0]!.toUpperCase()}${
      twice.slice(1)
    } would be created a second time by a new run (unless the rows carry their own ids).`
}

/** A count as the summary and stop lines write it: `18,200`. */
const n = (value: number) => value.toLocaleString("en-US")

/** Rows finished by the run, and rows in requests it sent without an answer. */
const stoppedCounts = (latest: Bulk.Progress | undefined, resuming: boolean): string => {
  const finished = latest === undefined ? 0 : latest.succeeded + latest.failed
  const unanswered = latest?.rowsInFlight ?? 0
  // Rows an earlier run finished are counted as the re-read skips them: no total here.
  const resumed = resuming || (latest?.resumed ?? 0) > 0
  return `Stopped: ${n(finished)} row${finished === 1 ? "" : "s"} finished${
    resumed ? " by this run (the journal keeps those of the runs before)" : ""
  }${unanswered === 0 ? "" : `; ${n(unanswered)} more were in requests without an answer and may have landed`}.`
}

/** A new run of creates has new ids: the records this one made (or may have made), made again. */
const createdTwice = (operation: Bulk.Operation, smart: boolean, latest: Bulk.Progress | undefined) => {
  const created = latest?.succeeded ?? 0
  const unanswered = latest?.rowsInFlight ?? 0
  if (operation !== "create" || smart || (created === 0 && unanswered === 0)) return undefined
  return [
    ...(created > 0 ? [`the ${n(created)} created`] : []),
    ...(unanswered > 0 ? [`those of the ${n(unanswered)} that landed`] : [])
  ].join(", and ")
}

/**
 * Whether a path names the input: the same path, or the same file through a link (`-`: the file
 * stdin is redirected from). A file system without inode numbers (0) tells by path alone.
 */
const sameFile = (path: string, input: string): boolean => {
  if (input !== "-" && Path.resolve(path) === Path.resolve(input)) return true
  try {
    const x = Fs.statSync(path, { bigint: true })
    const y = input === "-" ? Fs.fstatSync(0, { bigint: true }) : Fs.statSync(input, { bigint: true })
    return x.ino !== 0n && x.dev === y.dev && x.ino === y.ino
  } catch {
    return false
  }
}

/** The service's "record does not exist" (wire reference §5): the row's record, or one a lookup names. */
const recordMissingCode = "0x80040217"

/**
 * ` (the row's <what>: a=1, b=2)`: the values `columns` of the row as read (an object) hold, the
 * empty ones left out, for a failure the service's message does not tie to a value; empty when none.
 */
const valuesOf = (what: string, raw: unknown, columns: (row: Record<string, unknown>) => ReadonlyArray<string>) => {
  if (typeof raw !== "object" || raw === null) return ""
  const row = raw as Record<string, unknown>
  const named = columns(row).filter((column) => row[column] !== undefined && row[column] !== null && row[column] !== "")
  return named.length === 0 ? "" : ` (the row's ${what}: ${named.map((c) => `${c}=${String(row[c])}`).join(", ")})`
}

/**
 * ` (the row's lookups: parentcustomerid@account.accountnumber=A-999)`: the lookups of a row the
 * service found a record missing for, which its message does not tie to a column.
 */
const lookupsOf = (table: Metadata.TableMetadata, raw: unknown): string =>
  valuesOf("lookups", raw, (row) => Coerce.lookupKeys(table, row))

/** A duplicate key (wire reference §5): the row's values of the table's keys. */
const duplicateKeyCode = "0x80040237"

/**
 * ` (the row's key values: accountnumber=A-1)`: the row's values of the table's primary key (a
 * duplicate may be of the row's own id) and of its alternate keys' columns, which the service's
 * duplicate-key message names by column only.
 */
const keyValuesOf = (table: Metadata.TableMetadata, raw: unknown): string =>
  valuesOf("key values", raw, () => [
    ...new Set([table.primaryIdAttribute, ...table.keys.flatMap((key) => key.keyAttributes)])
  ])

/** Failures printed on stderr when a rejects file holds them all anyway. */
const stderrFailuresWithRejects = 10

/** What the flags say beyond their own values: their combinations, `--bypass`, `--partition`, `--key`. */
const settingsOf = (operation: Bulk.Operation, args: ImportArgs) =>
  Effect.gen(function*() {
    const bypass = Option.isSome(args.bypass) ? yield* parseBypass(args.bypass.value) : undefined
    const partition = Option.isSome(args.partition)
      ? yield* Either.match(Input.parsePartition(args.partition.value), {
        onLeft: (error) => Effect.fail(error),
        onRight: (p) => Effect.succeed(p)
      })
      : undefined
    if ((args.noCreate || args.noUpdate || args.allColumns) && !args.smart) {
      return yield* new CliError({ message: "--no-create, --no-update and --all-columns go with --smart." })
    }
    if (args.smart && operation === "delete") {
      return yield* new CliError({ message: "--smart does not apply to delete." })
    }
    if (args.dryRun && (Option.isSome(args.journal) || args.resume)) {
      return yield* new CliError({
        message: `--dry-run writes nothing: leave out ${Option.isSome(args.journal) ? "--journal" : "--resume"}.`
      })
    }
    // Opening the rejects file (or the journal) would empty the input before a row is read.
    for (const [flag, path] of [["--rejects", args.rejects], ["--journal", args.journal]] as const) {
      if (Option.isSome(path) && sameFile(path.value, args.file)) {
        return yield* new CliError({
          message: `${flag} names the input${
            args.file === "-" ? ", which stdin is redirected from" : ` file ${args.file}`
          }: write it to another file.`
        })
      }
    }
    // A spreadsheet user naming the file .csv would get JSON lines under a CSV name.
    if (Option.isSome(args.rejects) && /\.(csv|tsv)$/i.test(args.rejects.value)) {
      const path = args.rejects.value
      return yield* new CliError({
        message: `--rejects ${path}: the rejects file holds JSON lines (each failed row as read, with its error), not ${
          path.slice(-3).toUpperCase()
        }; name it ${path.replace(/\.(csv|tsv)$/i, ".jsonl")} (jq -c .input gives the rows back to fix and load again).`
      })
    }
    if (args.noJournal && (Option.isSome(args.journal) || args.resume)) {
      return yield* new CliError({
        message: `--no-journal keeps no journal: leave out ${Option.isSome(args.journal) ? "--journal" : "--resume"}.`
      })
    }
    const key = Option.isSome(args.key) ? list(args.key.value) : undefined
    const bulkOptions: Bulk.BulkOptions = {
      chunkSize: args.chunkSize,
      concurrency: args.concurrency,
      strategy: args.strategy,
      ...(key === undefined ? {} : { key }),
      ...(bypass === undefined ? {} : { bypass }),
      ...(Option.isSome(args.tag) ? { tag: args.tag.value } : {}),
      ...(args.smart
        ? { smart: { create: !args.noCreate, update: !args.noUpdate, allColumns: args.allColumns } }
        : {})
    }
    return { partition, key, bulkOptions }
  })

/**
 * The run's journal: the one `--journal` names, else the job's default one (kept unless
 * `--no-journal`, removed once its run finished), none for a dry run or an in-process emulator.
 */
const journalsOf = (operation: Bulk.Operation, args: ImportArgs, url: string, key: ReadonlyArray<string> | undefined) =>
  Effect.gen(function*() {
    const explicitJournal = Option.isSome(args.journal)
      ? yield* checkJournal(
        args.journal.value,
        args.resume,
        args.file === "-" ? undefined : inputIdentity(args.file),
        { operation, table: args.table }
      )
      : undefined
    // Every write run keeps a journal unless told not to: the job's default one, found again by --resume.
    const job: Runs.JobName = {
      url,
      operation,
      table: args.table,
      input: args.file === "-" ? "-" : Path.resolve(args.file),
      key,
      partition: Option.getOrUndefined(args.partition)
    }
    // The default journal is removed once its run finished, also when named with --journal (as the
    // printed resume command names it). An in-process emulator ends with the process: nothing to resume.
    const defaultJournal = args.noJournal || args.dryRun || (args.connection.emulator && explicitJournal === undefined)
      ? undefined
      : explicitJournal === undefined
      ? yield* checkDefaultJournal(job, args.resume)
      : Path.resolve(explicitJournal) === Path.join(Runs.runsDir(), Runs.journalName(job))
      ? explicitJournal
      : undefined
    const journalPath = explicitJournal ?? defaultJournal
    if (args.resume && journalPath === undefined) {
      return yield* new CliError({
        message: "--resume with --emulator needs --journal <file>: the journal to continue."
      })
    }
    return { explicitJournal, defaultJournal, journalPath }
  })

/**
 * Why a CSV header cannot name the records of an update, upsert or delete: it has neither the
 * primary key column nor (with `--key`) every key column. Undefined when it can.
 */
const namingProblem = (
  name: string,
  header: ReadonlyArray<string>,
  metadata: Metadata.TableMetadata,
  key: ReadonlyArray<string> | undefined
): string | undefined => {
  const has = new Set(header)
  if (key !== undefined) {
    const missing = key.filter((column) => !has.has(column))
    return missing.length === 0 ?
      undefined :
      `${name}: the header has no ${missing.map((column) => `'${column}'`).join(", ")} column, which --key names.`
  }
  if (has.has(metadata.primaryIdAttribute)) return undefined
  const usable = metadata.keys.filter((k) => k.keyAttributes.every((column) => has.has(column)))
  const hint = usable.length > 0
    ? `; pass --key ${usable[0]!.keyAttributes.join(",")} to name them by the alternate key it has`
    : metadata.keys.length > 0
    ? ` or the columns of an alternate key (--key ${metadata.keys[0]!.keyAttributes.join(",")})`
    : ""
  return `${name}: the header has no '${metadata.primaryIdAttribute}' column to name each record by${hint}.`
}

/**
 * Why a CSV header column in the Web API's own form (`<navigation property>@odata.bind`) binds no
 * lookup (`Metadata.checkBindName`): said once, before any row, even when the first rows leave it
 * empty.
 */
const bindingProblem = (metadata: Metadata.TableMetadata, header: ReadonlyArray<string>): string | undefined => {
  for (const column of header) {
    if (!column.endsWith("@odata.bind")) continue
    const bound = Metadata.checkBindName(metadata, column)
    if (Either.isLeft(bound)) return bound.left.message
  }
  return undefined
}

/**
 * Why a CSV header of one column cannot be meant: it holds a delimiter other than the one read
 * with (a file separated by `;`, tabs or `|`), so that every row would fail on that column.
 */
const delimiterProblem = (name: string, header: ReadonlyArray<string>): string | undefined => {
  if (header.length !== 1) return undefined
  const found = [";", "\t", "|"].find((delimiter) => header[0]!.includes(delimiter))
  if (found === undefined) return undefined
  const shown = found === "\t" ? "tab" : `'${found}'`
  return `${name}: the header is one column, '${header[0]}': pass --delimiter ${shown} if its fields are separated by ${
    found === "\t" ? "tabs" : `'${found}'`
  }.`
}

/** The input's rows, coerced to the table's columns, each tracked to its line for rejects. */
const rowsOf = (
  operation: Bulk.Operation,
  args: ImportArgs,
  partition: Input.Partition | undefined,
  key: ReadonlyArray<string> | undefined
) =>
  Effect.gen(function*() {
    const source = yield* Input.open({
      file: args.file,
      format: Option.getOrUndefined(args.format),
      delimiter: Option.getOrUndefined(args.delimiter)
    })
    const client = yield* DataverseClient.DataverseClient
    const metadata = yield* client.table(args.table)
    const coercer = yield* Coerce.make(args.table, {
      columnProblems: source.format === "csv" ? "fail" : "row",
      source: source.name,
      // Smart mode may create or update a row: only columns writable both ways are kept then.
      ...(operation === "create" || (operation === "update" && !args.smart) ? { operation } : {})
    })
    // A delete needs only what names the record: other columns (a query's output) are not checked.
    const naming = new Set([metadata.primaryIdAttribute, "partitionid", ...(key ?? [])])
    const forOperation = (row: Bulk.RowInput): Bulk.RowInput => {
      if (operation !== "delete" || !(typeof row === "object" && row !== null) || "_tag" in row) return row
      const out: Record<string, unknown> = {}
      for (const name in row) if (naming.has(name)) out[name] = (row as Record<string, unknown>)[name]
      return out
    }
    // What would fail every row alike is said once, at the first row, before any row is sent: a
    // CSV header of one column holding another delimiter, or without the columns that name each
    // record; a rejects file fed back as it is.
    // Smart mode creates a row that names no record; a header that names none would create every
    // row, and again on every run: refused as without --smart, saying why.
    const smartNaming = (problem: string | undefined) =>
      problem === undefined || !args.smart
        ? problem
        : `${
          problem.replace(/\.$/, "")
        }: with --smart every row would be created, and again on every run (for new records only, use create).`
    let firstChecked = false
    const checkFirst = (row: Bulk.RowInput) =>
      Effect.suspend(() => {
        if (firstChecked) return Effect.void
        firstChecked = true
        const header = source.format === "csv" ? source.header() : undefined
        const problem = header !== undefined
          ? delimiterProblem(source.name, header) ?? bindingProblem(metadata, header) ??
            (operation === "create" ? undefined : smartNaming(namingProblem(source.name, header, metadata, key)))
          : source.format !== "csv" && Rejects.isRejectsLine(row)
          ? `${source.name} holds the lines of a rejects file: take the rows out first, e.g. jq -c .input ${
            args.file === "-" ? "rejects.jsonl" : args.file
          } > retry.jsonl.`
          : undefined
        return problem === undefined ? Effect.void : Effect.fail(new CliError({ message: problem }))
      })
    const records = partition === undefined ? source.records : Input.partitionRecords(source.records, partition)
    // A CSV of a header alone is checked as if a row of blanks followed: a misspelt column or a
    // header that names no record is said now, not on the first day the file has rows.
    const headerAlone = Stream.execute(Effect.suspend(() => {
      const header = source.format === "csv" ? source.header() : undefined
      if (firstChecked || header === undefined) return Effect.void
      const blanks: Bulk.RowInput = Object.fromEntries(header.map((column) => [column, ""]))
      return Effect.zipRight(checkFirst(blanks), Effect.asVoid(coercer.coerce(forOperation(blanks))))
    }))
    const coerced = Stream.concat(
      Stream.mapEffect(
        records,
        (record) =>
          Effect.zipRight(
            checkFirst(record.row),
            Effect.map(coercer.coerce(forOperation(record.row)), (row): Input.InputRecord => ({ ...record, row }))
          )
      ),
      headerAlone
    )
    // A partition's rows are about one in `count` of those read: its ETA counts only those.
    return { size: Input.partitionSize(source.size, partition), tracked: Input.track(coerced), metadata }
  })

/**
 * What a failed row leaves: a line in the rejects file (`--rejects`) and, for the first ones, on
 * stderr. A rejects line that cannot be written fails here, before the engine journals the row
 * finished.
 */
const failuresOf = (
  args: ImportArgs,
  tracked: ReturnType<typeof Input.track>,
  table: Metadata.TableMetadata
) =>
  Effect.gen(function*() {
    // A dry run writes nothing, the rejects file neither: its failures all go to stderr.
    const write = Option.isSome(args.rejects) && !args.dryRun
      ? yield* Rejects.open(args.rejects.value, args.resume)
      : undefined
    const counts = { shown: 0, failed: 0 }
    const onOutcome = (outcome: Bulk.RowOutcome): Effect.Effect<void, Rejects.RejectsError> => {
      const record = tracked.settle(outcome.index)
      if (outcome.status !== "failed") {
        return Effect.void
      }
      counts.failed++
      const location = record?.location ?? `row ${outcome.index + 1}`
      const error = outcome.error
      const written = write === undefined ? Effect.void : write({
        row: location,
        line: record?.line,
        input: record?.raw,
        status: "failed",
        reason: error.reason,
        code: error.code,
        message: error.message
      })
      if (write !== undefined && counts.shown >= stderrFailuresWithRejects) {
        return written
      }
      counts.shown++
      const code = error.code === undefined ? "" : ` [${error.code}]`
      const which = error.code === recordMissingCode
        ? lookupsOf(table, record?.raw)
        : error.code === duplicateKeyCode
        ? keyValuesOf(table, record?.raw)
        : ""
      return Effect.zipRight(written, Output.stderr(`${location}: ${error.message}${code}${which}\n`))
    }
    return { counts, onOutcome }
  })

/** `--dry-run`: the rows checked and the plan said, nothing written. */
const dryRunOf = <E, R>(
  operation: Bulk.Operation,
  args: ImportArgs,
  rows: Stream.Stream<Bulk.RowInput, E, R>,
  bulkOptions: Bulk.BulkOptions,
  onOutcome: (outcome: Bulk.RowOutcome) => Effect.Effect<void, Rejects.RejectsError>
) =>
  Effect.gen(function*() {
    const report = yield* Bulk.dryRun(operation, args.table, rows, bulkOptions, onOutcome)
    const { plan } = report
    if (args.output === "json") {
      yield* Output.stdout(`${JSON.stringify({ dryRun: true, ...report })}\n`)
    } else {
      yield* Output.stderr(
        [
          `Dry run: nothing was written.`,
          `  rows           ${report.total} (${report.valid} valid, ${report.invalid} invalid)`,
          `  table          ${plan.table} (${plan.tableType.toLowerCase()}, entity set ${plan.entitySet})`,
          `  strategy       ${plan.strategy}${plan.message === undefined ? "" : ` (${plan.message})`}`,
          `  chunk size     ${plan.chunkSize === "auto" ? `auto, from ${plan.startChunkSize}` : plan.chunkSize}`,
          `  concurrency    up to ${plan.concurrency}`,
          `  requests       ${report.requests}${plan.chunkSize === "auto" ? " at most" : ""}`,
          ""
        ].join("\n")
      )
    }
    if (report.invalid > 0) return yield* new RowsRejected({ rejected: report.invalid })
  })

/** The load itself: the engine over the rows, with progress, the journal and the resume hint. */
const load = (
  operation: Bulk.Operation,
  args: ImportArgs,
  input: Effect.Effect.Success<ReturnType<typeof rowsOf>>,
  journalPath: string | undefined,
  bulkOptions: Bulk.BulkOptions,
  onOutcome: (outcome: Bulk.RowOutcome) => Effect.Effect<void, Rejects.RejectsError>
) =>
  Effect.suspend(() => {
    const reporter = ProgressReporter.make(`${operation} ${args.table}`, input.size)
    let latest: Bulk.Progress | undefined
    let cause: string | undefined
    const hint = (failed: boolean) => () => stopHint(args, journalPath, failed)
    return Bulk.execute(operation, args.table, input.tracked.rows, {
      ...bulkOptions,
      ...(journalPath === undefined ? {} : { journal: Journal.file(journalPath) }),
      inputIdentity: args.file === "-" ? undefined : inputIdentity(args.file),
      onResumed: (index) => void input.tracked.settle(index),
      onProgress: (progress) => {
        latest = progress
        reporter.update(progress)
      }
    }, onOutcome).pipe(
      // The run's failure is reported once, in full with --verbose: a fiber of the run that ends
      // with it (a worker) would log it again as "unhandled", a debug log --verbose shows.
      Effect.locally(FiberRef.unhandledErrorLogLevel, Option.none()),
      // The cause as it came, for -o json's stop object (the line below gets the hint).
      Effect.tapError((error) => Effect.sync(() => (cause = error.message.split("\n")[0]))),
      // A run failure (sign-in, permissions, an outage, throttling past --max-throttle-wait, the
      // journal or the rejects file) blames no row: say how to go on in the same line.
      Effect.mapError((error) => withResumeHint(error, hint(true))),
      // After a fatal error the error line is the last word, not a progress line.
      Effect.onExit((exit) => Effect.sync(() => reporter.stop({ final: exit._tag === "Success" }))),
      // Before that line (printed last, by the CLI's error report): what the run did.
      // A resume the journal refuses over other rows may have resumed the rows before them (the
      // same rows) first: said too.
      Effect.tapError((error) => {
        const otherInput = error instanceof Journal.JournalError && error.reason === "Mismatch"
        if (!isResumable(error) && !otherInput) return Effect.void
        const did = failedRunMessage(operation, args.smart, latest, journalPath, args.resume)
        return Effect.zipRight(
          did === undefined ? Effect.void : Output.stderr(`${did}\n`),
          stoppedJson({ operation, args, journalPath, latest, stopped: "failed", error: cause })
        )
      }),
      Effect.onInterrupt(() =>
        Effect.zipRight(
          Output.stderr(`${stoppedMessage(operation, args.smart, latest, journalPath, args.resume, hint(false))}\n`),
          stoppedJson({ operation, args, journalPath, latest, stopped: "interrupted" })
        )
      )
    )
  })

/**
 * With `-o json`, a stopped run's line on stdout, as a finished run's summary is: what it did
 * (`latest`: its last progress, none when it stopped before its load) and how to resume it, for a
 * script to read.
 */
const stoppedJson = (options: {
  readonly operation: Bulk.Operation
  readonly args: ImportArgs
  readonly journalPath: string | undefined
  readonly latest: Bulk.Progress | undefined
  readonly stopped: "interrupted" | "failed"
  readonly error?: string | undefined
}) => {
  const { args, journalPath, latest } = options
  if (args.output !== "json") return Effect.void
  const resumable = journalPath !== undefined && Fs.existsSync(journalPath)
  const resume = resumable
    ? Runs.resumeOf({ journal: journalPath, argv: process.argv.slice(2), stdin: args.file === "-" })
    : undefined
  return Output.stdout(`${
    JSON.stringify({
      table: args.table,
      operation: options.operation,
      stopped: options.stopped,
      ...(options.error === undefined ? {} : { error: options.error }),
      succeeded: latest?.succeeded ?? 0,
      failed: latest?.failed ?? 0,
      rowsInFlight: latest?.rowsInFlight ?? 0,
      resumed: latest?.resumed ?? 0,
      journal: resumable ? journalPath : null,
      resume: resume?.command ?? null,
      // What the command needs besides itself, as the hint on stderr says.
      resumeNeeds: resume?.needs ?? []
    })
  }\n`)
}

/** The summary: one JSON line (`-o json`), or the sentence and each identity's figures. */
const printSummary = (
  operation: Bulk.Operation,
  args: ImportArgs,
  summary: Bulk.RunSummary,
  journals: Effect.Effect.Success<ReturnType<typeof journalsOf>>
) =>
  Effect.gen(function*() {
    if (args.output === "json") {
      yield* Output.stdout(
        `${
          JSON.stringify({
            table: args.table,
            operation,
            ...summary,
            ...(Option.isSome(args.rejects) ? { rejects: args.rejects.value } : {}),
            ...(journals.explicitJournal === undefined || journals.defaultJournal !== undefined
              ? {}
              : { journal: journals.explicitJournal })
          })
        }\n`
      )
    } else {
      const plural = (value: number, word: string) => `${n(value)} ${word}${value === 1 ? "" : "s"}`
      const resumed = summary.resumed > 0
        ? `; ${n(summary.resumed)} finished in an earlier run${
          summary.resumedFailed > 0 ? ` (${n(summary.resumedFailed)} of them failed)` : ""
        }`
        : ""
      // Smart mode sorts rows into several outcomes: name each rather than one verb.
      const done = args.smart
        ? `Done with ${n(summary.succeeded)} of ${n(summary.total)} ${args.table} rows (${
          [
            `${n(summary.unchanged)} unchanged`,
            `${n(summary.created)} created`,
            `${n(summary.updated)} updated`,
            ...(summary.skipped > 0 ? [`${n(summary.skipped)} skipped`] : [])
          ].join(", ")
        })`
        : `${verbs[operation].done} ${
          n(
            summary[
              operation === "create"
                ? "created"
                : operation === "update"
                ? "updated"
                : operation === "upsert"
                ? "upserted"
                : "deleted"
            ]
          )
        } of ${n(summary.total)} ${args.table} rows${
          // Counted deleted (a delete sent again must not fail), but a mistyped key looks alike.
          summary.absent > 0
            ? ` (${n(summary.absent)} of them ${summary.absent === 1 ? "was" : "were"} not there)`
            : ""}${
          // Counted created (the job created them), but this run sent them nothing.
          summary.landedBefore > 0
            ? ` (${n(summary.landedBefore)} of them by the stopped run, found landed)`
            : ""}`
      yield* Output.stderr(
        `${done} in ${seconds(summary.durationMs)} (${n(summary.rowsPerSecond)} rows/s, ${
          plural(summary.requests, "request")
        }, ${summary.retries === 1 ? "1 retry" : `${n(summary.retries)} retries`}, ${
          n(summary.throttled)
        } throttled)${resumed}; ${n(summary.failed)} failed${
          summary.failed > 0 && Option.isSome(args.rejects) ? ` (see ${args.rejects.value})` : ""
        }.\n`
      )
      // An export that failed upstream often leaves an empty file: say so rather than pass silently.
      if (summary.total === 0 && summary.resumed === 0) {
        yield* Output.stderr(`The input (${args.file === "-" ? "stdin" : args.file}) holds no rows.\n`)
      }
      // Several identities: what each did, so an idle or throttled one shows.
      if (summary.identities.length > 1) {
        yield* Output.stderr(
          summary.identities.map((identity) =>
            `  ${identity.label}: ${n(identity.succeeded)} rows, ${plural(identity.requests, "request")}, ${
              n(identity.throttled)
            } throttled${identity.failed > 0 ? `, ${n(identity.failed)} failed` : ""}\n`
          ).join("")
        )
      }
    }
  })

/**
 * An import command: the flags' settings, the journal, the rows, then a dry run or the load and
 * its summary. Rows rejected (now or by an earlier run of the journal) end it with `RowsRejected`.
 */
const runImport = (operation: Bulk.Operation, args: ImportArgs) =>
  Effect.gen(function*() {
    const { bulkOptions, key, partition } = yield* settingsOf(operation, args)
    const client = yield* DataverseClient.DataverseClient
    const journals = yield* journalsOf(operation, args, client.url, key)
    // A run failure before the load (the table's metadata read past --max-throttle-wait, a
    // sign-in refused) says how to go on too: a resume's journal is there already.
    const input = yield* rowsOf(operation, args, partition, key).pipe(
      // -o json's stop object, with nothing done yet.
      Effect.tapError((error) =>
        isResumable(error)
          ? stoppedJson({
            operation,
            args,
            journalPath: journals.journalPath,
            latest: undefined,
            stopped: "failed",
            error: error.message.split("\n")[0]
          })
          : Effect.void
      ),
      Effect.mapError((error) => withResumeHint(error, () => stopHint(args, journals.journalPath, true)))
    )
    const failures = yield* failuresOf(args, input.tracked, input.metadata)
    if (args.dryRun) return yield* dryRunOf(operation, args, input.tracked.rows, bulkOptions, failures.onOutcome)
    const summary = yield* load(operation, args, input, journals.journalPath, bulkOptions, failures.onOutcome).pipe(
      // A run that stopped before it recorded a row, for a reason resuming does not cure (an
      // input the header check refused), leaves nothing to resume: its default journal goes too.
      // One the stop message names (an update refused by a full disk) stays, for that command.
      Effect.tapError((error) => {
        const path = journals.defaultJournal
        if (path === undefined || isResumable(error)) return Effect.void
        return Runs.inspectJournal(path).pipe(
          Effect.flatMap((journal) => journal.exists && journal.entries === 0 ? Runs.removeJournal(path) : Effect.void),
          Effect.ignore
        )
      })
    )
    // The run finished: its default journal has nothing left to resume.
    if (journals.defaultJournal !== undefined) yield* Runs.removeJournal(journals.defaultJournal)
    if (failures.counts.failed > failures.counts.shown && Option.isSome(args.rejects)) {
      yield* Output.stderr(
        `... and ${failures.counts.failed - failures.counts.shown} more failed rows, all in ${args.rejects.value}\n`
      )
    }
    yield* printSummary(operation, args, summary, journals)
    // Rows an earlier run rejected are still rejected: the load as a whole did not fully succeed.
    if (failures.counts.failed > 0 || summary.resumedFailed > 0) {
      return yield* new RowsRejected({ rejected: failures.counts.failed + summary.resumedFailed })
    }
  }).pipe(Effect.scoped)

const examples: Record<Bulk.Operation, ReadonlyArray<Help.Example>> = {
  create: [
    ["dv-effect create contact --file contacts.csv --rejects rejects.jsonl", "Load a CSV, keeping the failed rows"],
    ["dv-effect create contact -f contacts.csv --dry-run", "Check every row and print the plan; write nothing"],
    ["dv-effect create contact -f big.jsonl --resume", "Continue a load stopped by a crash, Ctrl-C or a run failure"]
  ],
  update: [
    [
      "dv-effect query contact --select contactid,emailaddress1 | jq -c '.emailaddress1 |= ascii_downcase' | dv-effect update contact",
      "Fix a column through a pipe"
    ],
    ["dv-effect update dve_product --key dve_sku -f prices.csv --smart", "By alternate key, skipping unchanged rows"]
  ],
  upsert: [
    ["dv-effect upsert dve_product --key dve_sku -f products.csv", "Create or update by alternate key"],
    ["dv-effect upsert contact -f contacts.jsonl --smart --no-create", "Only update the records that exist and differ"]
  ],
  delete: [
    [
      "dv-effect query contact --filter \"lastname eq 'Test'\" --select contactid | dv-effect delete contact",
      "Delete what a query found"
    ],
    ["dv-effect delete dve_product --key dve_sku -f gone.csv", "Delete by alternate key"]
  ]
}

const makeCommand = (operation: Bulk.Operation) =>
  Command.make(operation, options, (args) => runImport(operation, args)).pipe(
    // The connection, sized and bounded by the flags: one socket per request in flight.
    Command.provide(({ concurrency, connection, maxThrottleWait }) =>
      Connection.layer(connection, { maxSockets: concurrency === "auto" ? 64 : concurrency, maxThrottleWait })
    ),
    Command.withDescription(
      Help.withExamples(verbs[operation].about, examples[operation], {
        sections,
        // Smart mode looks records up to write them: a delete refuses its flags.
        ...(operation === "delete" ? { hidden: ["smart", "no-create", "no-update", "all-columns"] } : {})
      })
    )
  )

/**
 * The `create` command.
 *
 * @since 0.1.0
 */
export const createCommand = makeCommand("create")

/**
 * The `update` command.
 *
 * @since 0.1.0
 */
export const updateCommand = makeCommand("update")

/**
 * The `upsert` command.
 *
 * @since 0.1.0
 */
export const upsertCommand = makeCommand("upsert")

/**
 * The `delete` command.
 *
 * @since 0.1.0
 */
export const deleteCommand = makeCommand("delete")

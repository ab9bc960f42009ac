/**
 * Writing to stdout (data only) and stderr (everything else), with back-pressure.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as StreamM from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "./CliError.js"

const write = (stream: NodeJS.WriteStream, text: string): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (text === "" || stream.write(text)) resume(Effect.void)
    else stream.once("drain", () => resume(Effect.void))
  })

/**
 * Writes to stdout, waiting for it to drain when its buffer is full.
 *
 * @since 0.1.0
 */
export const stdout = (text: string): Effect.Effect<void> => write(process.stdout, text)

/**
 * Writes to stderr.
 *
 * @since 0.1.0
 */
export const stderr = (text: string): Effect.Effect<void> => write(process.stderr, text)

/**
 * Output formats of commands that print records.
 *
 * @since 0.1.0
 */
export type RecordFormat = "jsonl" | "json"

/**
 * Writes a stream of records to stdout as JSON lines or as one JSON array, a chunk at a time.
 *
 * @since 0.1.0
 */
export const writeRecords = <E, R>(
  records: Stream.Stream<Readonly<Record<string, unknown>>, E, R>,
  format: RecordFormat
): Effect.Effect<number, E, R> =>
  Effect.gen(function*() {
    let count = 0
    if (format === "json") yield* stdout("[")
    yield* StreamM.runForEachChunk(records, (chunk) => {
      let text = ""
      for (const record of chunk) {
        if (format === "json") text += `${count === 0 ? "\n" : ",\n"}  ${JSON.stringify(record)}`
        else text += `${JSON.stringify(record)}\n`
        count++
      }
      return stdout(text)
    })
    if (format === "json") yield* stdout(count === 0 ? "]\n" : "\n]\n")
    return count
  })

/**
 * Drops OData annotations at every depth, also inside records that came along through `$expand`,
 * so that output can be piped back into an import. In a record read, every `@` name is an
 * annotation (`@odata.type` included); the rule for rows to write, which keep `@odata.type` and
 * `x@odata.bind`, is `Records.withoutReadAnnotations`.
 *
 * @since 0.1.0
 */
export const withoutAnnotationsDeep = (record: Readonly<Record<string, unknown>>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const key in record) if (!key.includes("@")) out[key] = stripNested(record[key])
  return out
}

const stripNested = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(stripNested)
    : typeof value === "object" && value !== null
    ? withoutAnnotationsDeep(value as Record<string, unknown>)
    : value

// ---------------------------------------------------------------------------------------------
// CSV, and files

/**
 * Output formats of commands that print tables of records: JSON lines, one JSON array, or CSV.
 *
 * @since 0.1.0
 */
export type TableFormat = RecordFormat | "csv"

/**
 * One CSV field: empty for null and undefined, `true`/`false`, numbers as JSON writes them,
 * objects and arrays as JSON text. Quoted (quotes doubled) when it holds a delimiter, a quote, a
 * line break, leading or trailing spaces, or is the text `null` in any case (`Null`, `NULL`: which
 * `dv-effect` imports read as null when unquoted).
 *
 * @since 0.1.0
 */
export const csvField = (value: unknown): string => {
  if (value === null || value === undefined) return ""
  const text = typeof value === "string"
    ? value
    : typeof value === "object"
    ? JSON.stringify(value)
    : String(value)
  return /[",\r\n]|^\s|\s$|^null$/i.test(text) ? `"${text.replace(/"/g, "\"\"")}"` : text
}

/**
 * One CSV line (with its line break) of `values`.
 *
 * @since 0.1.0
 */
export const csvLine = (values: ReadonlyArray<unknown>): string => `${values.map(csvField).join(",")}\n`

/**
 * Options of `writeTable`.
 *
 * @since 0.1.0
 */
export interface WriteTableOptions {
  /** CSV: the columns, in order. When left out, the columns of the first chunk (page), in order of appearance. */
  readonly columns?: ReadonlyArray<string> | undefined
  /**
   * CSV, with `columns`: also the columns of the first chunk that `columns` does not name, after
   * them (a FetchXML query's link-entity columns); later new ones are left out, as without `columns`.
   */
  readonly moreColumns?: boolean | undefined
  /** Called once, with a sentence, when CSV rows have columns the header does not. */
  readonly warn?: ((message: string) => Effect.Effect<void>) | undefined
  /** How to name the columns, as the warning advises. Default: `name the columns with --select`. */
  readonly advice?: string | undefined
}

/**
 * Writes a stream of records through `write` (which should wait while its sink is full) as JSON
 * lines, one JSON array, or CSV with a header row, a chunk at a time; returns how many were
 * written. CSV columns come from `options.columns` (with `moreColumns`, and those of the first
 * chunk it does not name), else from the first chunk; columns that first appear later are left
 * out (and `warn` says so once, with `advice`).
 *
 * @since 0.1.0
 */
export const writeTable = <E, R, E2>(
  records: Stream.Stream<Readonly<Record<string, unknown>>, E, R>,
  format: TableFormat,
  write: (text: string) => Effect.Effect<void, E2>,
  options: WriteTableOptions = {}
): Effect.Effect<number, E | E2, R> =>
  Effect.gen(function*() {
    let count = 0
    let columns: ReadonlyArray<string> | undefined = options.columns
    let known: ReadonlySet<string> = new Set(columns)
    const extend = columns !== undefined && options.moreColumns === true
    const headed = columns !== undefined && !extend
    let warned = false
    // Nothing is written before the first rows arrive, so a query that fails at once prints nothing.
    let started = false
    const start = () => {
      started = true
      return format === "json" ? "[" : format === "csv" && columns !== undefined ? csvLine(columns) : ""
    }
    yield* StreamM.runForEachChunk(records, (chunk) =>
      Effect.gen(function*() {
        if (chunk.length === 0) return
        if (format === "csv" && (columns === undefined || (extend && !started))) {
          const seen = new Set<string>(columns)
          for (const record of chunk) for (const key in record) seen.add(key)
          columns = [...seen]
          known = seen
        }
        let text = started ? "" : start()
        let extra: Set<string> | undefined
        for (const record of chunk) {
          if (format === "json") text += `${count === 0 ? "\n" : ",\n"}  ${JSON.stringify(record)}`
          else if (format === "jsonl") text += `${JSON.stringify(record)}\n`
          else {
            text += csvLine(columns!.map((column) => record[column]))
            if (!headed && !warned) {
              for (const key in record) {
                if (!known.has(key)) (extra ??= new Set()).add(key)
              }
            }
          }
          count++
        }
        yield* write(text)
        if (extra !== undefined && options.warn !== undefined) {
          warned = true
          yield* options.warn(
            `Columns first seen after the first page are left out of the CSV: ${[...extra].join(", ")} (${
              options.advice ?? "name the columns with --select"
            }).`
          )
        }
      }))
    const end = format === "json" ? (count === 0 ? "]\n" : "\n]\n") : ""
    yield* write(started ? end : start() + end)
    return count
  })

/**
 * A file being written: text goes to a temporary file next to it, which `commit` renames into
 * place; closing the scope without `commit` removes it, so a failed run leaves no half file.
 *
 * @since 0.1.0
 */
export interface FileOutput {
  /** Writes, waiting while the file's buffer is full. */
  readonly write: (text: string) => Effect.Effect<void, CliError>
  /** Flushes and closes the file, then renames it to its path. */
  readonly commit: Effect.Effect<void, CliError>
}

/**
 * Removes the temporary files of `path` that a killed run left (`kill -9` runs no finaliser): those
 * whose process is gone. One of a process still running (another run writing the same file) stays.
 */
const removeStaleTemporaries = (path: string): Effect.Effect<void> =>
  Effect.promise(async () => {
    const prefix = `.${Path.basename(path)}.`
    let names: Array<string> = []
    try {
      names = await Fs.promises.readdir(Path.dirname(path))
    } catch {
      return
    }
    for (const name of names) {
      const pid = name.startsWith(prefix) && name.endsWith(".tmp") ? name.slice(prefix.length, -4) : ""
      if (!/^\d+$/.test(pid) || isRunning(Number(pid))) continue
      await Fs.promises.rm(Path.join(Path.dirname(path), name), { force: true }).catch(() => undefined)
    }
  })

/** Whether a process of this id runs (one of another user counts: signalling it is refused, not absent). */
const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Opens `path` for writing (through a temporary file, see `FileOutput`). Fails with one line
 * naming `flag` when the file cannot be created.
 *
 * @since 0.1.0
 */
export const openFile = (path: string, flag = "--out"): Effect.Effect<FileOutput, CliError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* removeStaleTemporaries(path)
    const temporary = Path.join(Path.dirname(path), `.${Path.basename(path)}.${process.pid}.tmp`)
    const problem = (error: unknown) =>
      new CliError({
        message: `Cannot write ${flag} ${path}: ${
          (error as NodeJS.ErrnoException).code === "ENOENT"
            ? "no such directory"
            : (error as NodeJS.ErrnoException).code === "EACCES"
            ? "permission denied"
            : (error as Error).message
        }`,
        cause: error
      })
    const handle = yield* Effect.tryPromise({ try: () => Fs.promises.open(temporary, "w", 0o644), catch: problem })
    const stream = handle.createWriteStream()
    let failure: CliError | undefined
    stream.on("error", (error) => (failure ??= problem(error)))
    let committed = false
    yield* Effect.addFinalizer(() =>
      committed ? Effect.void : Effect.promise(async () => {
        await new Promise<void>((resolve) => {
          stream.once("close", () => resolve())
          stream.destroy()
        })
        await Fs.promises.rm(temporary, { force: true })
      })
    )
    const write = (text: string) =>
      Effect.async<void, CliError>((resume) => {
        if (failure !== undefined) return resume(Effect.fail(failure))
        if (text === "" || stream.write(text)) return resume(Effect.void)
        const onDrain = () => {
          stream.off("error", onError)
          resume(Effect.void)
        }
        const onError = (error: unknown) => {
          stream.off("drain", onDrain)
          resume(Effect.fail(failure ?? problem(error)))
        }
        stream.once("drain", onDrain)
        stream.once("error", onError)
      })
    const commit = Effect.tryPromise({
      try: async () => {
        if (failure !== undefined) throw failure
        await new Promise<void>((resolve, reject) => {
          stream.once("error", reject)
          stream.end(() => resolve())
        })
        await Fs.promises.rename(temporary, path)
        committed = true
      },
      catch: (error) => (error instanceof CliError ? error : failure ?? problem(error))
    })
    return { write, commit }
  })

/**
 * Reading rows to import: CSV, JSON lines or a JSON array, from a file or stdin, streamed with
 * back-pressure so that memory stays flat however long the input is. A bad row is an item of the
 * stream (a `Bulk.InvalidRow`, which the engine reports failed with reason `InvalidInput`), never
 * the end of it; every row knows where it came from (`line 17`, `row 17 (line 18)`, `element 17`)
 * and carries the record as it was written, for a rejects file.
 *
 * @since 0.1.0
 */
import { InvalidRow, type RowInput } from "@dv-effect/core/Bulk"
import { type CsvError, type Options as CsvOptions, parse as parseCsv } from "csv-parse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Readable } from "node:stream"
import { CliError } from "./CliError.js"

// ---------------------------------------------------------------------------------------------
// JSON lines (the original reader, kept for the commands that use it)

/**
 * Parses one JSONL line into a row, or into the error saying why it is not one (the caller
 * names the line when it reports it).
 *
 * @since 0.1.0
 */
export const parseJsonLine = (text: string): RowInput => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    return new InvalidRow({ message: `not valid JSON (${(error as Error).message})` })
  }
  return asRow(value)
}

const invalidRow = (message: string): RowInput => new InvalidRow({ message })

const asRow = (value: unknown): RowInput =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : invalidRow(
      `expected a JSON object, got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`
    )

const checkReadable = (path: string): Effect.Effect<void, CliError> =>
  path === "-" ? Effect.void : Effect.tryPromise({
    try: () => Fs.promises.access(path, Fs.constants.R_OK),
    catch: (error) =>
      new CliError({
        message: `Cannot read --file ${path}: ${
          (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message
        }`
      })
  })

/** How many of the ascending `values` are at most `limit`. */
const countAtMost = (values: ReadonlyArray<number>, limit: number) => {
  let lo = 0
  let hi = values.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (values[mid]! <= limit) lo = mid + 1
    else hi = mid
  }
  return lo
}

// ---------------------------------------------------------------------------------------------
// Any format

/**
 * The formats an import reads: `csv` (a header row, then one record per row), `jsonl` (one JSON
 * object per line) and `json` (one JSON array of objects).
 *
 * @since 0.1.0
 */
export type InputFormat = "csv" | "jsonl" | "json"

/**
 * The input formats, for a `--format` flag.
 *
 * @since 0.1.0
 */
export const inputFormats: ReadonlyArray<InputFormat> = ["csv", "jsonl", "json"]

/**
 * The key under which a CSV record with more fields than the header keeps its extra fields (an
 * array, in order), in `InputRecord.raw` and so in a rejects file's `input`. An import refuses a
 * row that has it (see `Coerce.reservedKeyProblem`): move the values to their columns, or remove it.
 *
 * @since 0.2.0
 */
export const extraFieldsKey = "@dv-effect.extra"

/**
 * The key under which a record that cannot be read as a row (not JSON, not an object, a CSV
 * record whose quoting is broken) keeps its text as written, in `InputRecord.raw` and so in a
 * rejects file's `input`. An import refuses a row that has it: write the row's columns instead.
 *
 * @since 0.2.0
 */
export const unreadTextKey = "@dv-effect.text"

/**
 * Whether a key is reserved by dv-effect (`@dv-effect.` and a name): never a column, refused on import.
 *
 * @since 0.2.0
 */
export const isReservedKey = (key: string): boolean => key.startsWith("@dv-effect.")

const unread = (text: string | undefined): Record<string, unknown> => ({ [unreadTextKey]: text ?? "" })

/**
 * One row of an input, with where it came from and how it was written.
 *
 * @since 0.1.0
 */
export interface InputRecord {
  /** 0-based position among the input's rows (blank lines are not rows; bad rows are). */
  readonly index: number
  /**
   * The row as read, not yet coerced (CSV values are strings; an empty CSV field is left out and an
   * unquoted `null` is `null`), or why it is not a row: a `Bulk.InvalidRow` whose message does not
   * name the row (`location` does).
   */
  readonly row: RowInput
  /**
   * The record as written, for a rejects file, always an object keyed by column, so that its JSON
   * imported again gives the same row: the JSON object; for CSV the row as read (empty fields left
   * out, an unquoted `null` as `null`), a record with more fields than the header keeping the extra
   * ones under `extraFieldsKey`, one with fewer leaving the missing columns out. A record that is
   * not an object or cannot be read keeps its text under `unreadTextKey`.
   */
  readonly raw: Readonly<Record<string, unknown>>
  /** The 1-based line the row starts on (JSON array: the element's 1-based number). */
  readonly line: number
  /** Where the row is, for people: `line 17` (JSONL), `row 17 (line 18)` (CSV), `element 17` (JSON). */
  readonly location: string
}

/**
 * An opened input: its format, and its rows as a lazy stream (nothing is read until it runs; run
 * it once). The stream fails only when the input cannot be read at all or is not of its format
 * (a JSON array that is not an array, a CSV header with an empty or repeated column name); a bad
 * row is an item.
 *
 * @since 0.1.0
 */
export interface InputSource {
  readonly format: InputFormat
  /** `stdin`, or the path as given. */
  readonly name: string
  readonly records: Stream.Stream<InputRecord, CliError>
  /**
   * The location of the row at a 0-based position, once the stream has read it (`line 17`,
   * `row 17 (line 18)`, `element 17`). It remembers one number per blank line and per multi-line
   * CSV record; records carry their `location` themselves, which needs nothing kept.
   */
  readonly describe: (index: number) => string
  /**
   * CSV: the header's column names, once the stream has read it (every row has those columns and
   * no others); undefined before, and for JSON.
   */
  readonly header: () => ReadonlyArray<string> | undefined
  /**
   * The size of a file input (stdin too when it is a regular file): its bytes, and how many the
   * reader has consumed so far, for progress. Undefined for a pipe or a terminal.
   */
  readonly size: InputSize | undefined
}

/**
 * The bytes of a file input, and how many of them the reader has consumed so far (counted as the
 * parser takes them, so read-ahead does not run ahead of the rows).
 *
 * @since 0.1.0
 */
export interface InputSize {
  readonly totalBytes: number
  readonly bytesRead: () => number
  /** The records the parser has made of those bytes so far (bad ones too). */
  readonly rowsRead: () => number
}

/**
 * The size of one partition's share of an input: its rows read, one in `count` of the file's.
 *
 * @since 0.2.0
 */
export const partitionSize = (size: InputSize | undefined, partition: Partition | undefined): InputSize | undefined =>
  size === undefined || partition === undefined
    ? size
    : { ...size, rowsRead: () => Math.round(size.rowsRead() / partition.count) }

/**
 * How to open an input.
 *
 * @since 0.1.0
 */
export interface OpenOptions {
  /** A path, or `-` for stdin. */
  readonly file: string
  /** The format; when left out, taken from the extension, else from the first character. */
  readonly format?: InputFormat | undefined
  /**
   * The CSV field delimiter, one character, or `tab` (any case) or `\t` for a tab; `,` by default,
   * a tab for a `.tsv` file.
   */
  readonly delimiter?: string | undefined
}

/**
 * The format a file name says: `.csv` or `.tsv` (tab-separated), `.jsonl` or `.ndjson`, `.json`
 * (any case); undefined for anything else and for stdin (`-`).
 *
 * @since 0.1.0
 */
export const formatOfPath = (path: string): InputFormat | undefined => {
  if (path === "-") return undefined
  switch (Path.extname(path).toLowerCase()) {
    case ".csv":
    case ".tsv":
      return "csv"
    case ".jsonl":
    case ".ndjson":
      return "jsonl"
    case ".json":
      return "json"
    default:
      return undefined
  }
}

/**
 * The format an input's first non-blank character says: `[` a JSON array, `{` JSON lines,
 * anything else CSV. An empty input (undefined) reads as JSON lines: no rows.
 *
 * @since 0.1.0
 */
export const formatOfFirstChar = (char: string | undefined): InputFormat =>
  char === "[" ? "json" : char === "{" || char === undefined ? "jsonl" : "csv"

/**
 * Opens an input: checks that the file can be read and settles its format (reading from the
 * start of stdin or of a file without a known extension until the first non-blank character;
 * those bytes are read again by the rows). Fails with one line naming `--file` when the file
 * cannot be read.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as Input from "./Input.js"
 * const rows = Effect.flatMap(Input.open({ file: "contacts.csv" }), (source) =>
 *   Stream.runForEach(source.records, (record) => Effect.log(record.location, record.row)))
 * ```
 *
 * @since 0.1.0
 */
export const open = (options: OpenOptions): Effect.Effect<InputSource, CliError> =>
  Effect.gen(function*() {
    const file = options.file
    const name = file === "-" ? "stdin" : file
    // A tab is hard to type as a flag's value: `tab` and `\t` stand for it.
    const delimiter = options.delimiter === undefined
      ? Path.extname(file).toLowerCase() === ".tsv" ? "\t" : ","
      : /^(tab|\\t)$/i.test(options.delimiter)
      ? "\t"
      : options.delimiter
    if (delimiter.length !== 1 || /["\r\n]/.test(delimiter)) {
      return yield* new CliError({
        message:
          `The CSV delimiter must be one character other than a quote or a line break, or tab, got '${delimiter}'.`
      })
    }
    // `--delimiter \t` unquoted reaches us as `t`: no letter or digit separates fields.
    if (/^[\p{L}\p{N}]$/u.test(delimiter)) {
      return yield* new CliError({
        message:
          `The CSV delimiter cannot be a letter or a digit, got '${delimiter}' (for tabs: --delimiter tab, or '\\t' quoted).`
      })
    }
    yield* checkReadable(file)
    const readError = (error: unknown) =>
      error instanceof CliError
        ? error
        : new CliError({ message: `Reading ${name} failed: ${(error as Error).message}`, cause: error })
    const known = options.format ?? formatOfPath(file)
    const encoding: Encoding = { invalid: false }
    // Bytes are opened lazily, once: by the sniffing below or by the stream.
    let opened: AsyncIterator<Uint8Array> | undefined
    let head: Array<Uint8Array> = []
    let bytesRead = 0
    let rowsRead = 0
    const openBytes = (): AsyncIterator<Uint8Array> => {
      const input: NodeJS.ReadableStream = file === "-" ? process.stdin : Fs.createReadStream(file)
      const iterator = (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
      return utf8Of({
        next: async () => {
          const next = await iterator.next()
          if (next.done !== true) bytesRead += next.value.byteLength
          return next
        },
        return: async (value?: unknown) => iterator.return?.(value) ?? { done: true, value: undefined }
      }, encoding)
    }
    const totalBytes = yield* fileSize(file)
    const size: InputSize | undefined = totalBytes === undefined ? undefined : {
      totalBytes,
      bytesRead: () => bytesRead,
      rowsRead: () => rowsRead
    }
    let format: InputFormat
    if (known !== undefined) format = known
    else {
      const sniffed = yield* Effect.tryPromise({
        try: () => sniff(openBytes()),
        catch: readError
      })
      opened = sniffed.iterator
      head = sniffed.head
      format = formatOfFirstChar(sniffed.first)
    }
    const bytes = (): AsyncIterable<Uint8Array> => {
      const iterator = opened ?? openBytes()
      const buffered = head
      opened = undefined
      head = []
      return prepend(buffered, iterator)
    }
    const reader = format === "csv"
      ? csvReader(name, delimiter, encoding)
      : format === "json"
      ? jsonArrayReader(name, encoding)
      : jsonLinesReader(name, encoding)
    const records = Stream.suspend(() =>
      Stream.fromAsyncIterable(reader.read(bytes()), (error) => error instanceof CliError ? error : readError(error))
    ).pipe(Stream.mapConcat((batch) => {
      rowsRead += batch.length
      return batch
    }))
    return { format, name, records, describe: reader.describe, header: reader.header ?? (() => undefined), size }
  })

/** The bytes of a regular file (stdin's when it is one); undefined for a pipe, a terminal or on error. */
const fileSize = (file: string): Effect.Effect<number | undefined> =>
  Effect.promise(async () => {
    try {
      const stat = file === "-" ? Fs.fstatSync(0) : await Fs.promises.stat(file)
      return stat.isFile() ? stat.size : undefined
    } catch {
      return undefined
    }
  })

/**
 * Whether the bytes of an input so far held a sequence its encoding does not allow: then a
 * `\uFFFD` in a row is a byte the decoder replaced, and the row is refused, not stored with it.
 * (A real `\uFFFD` in a file that also holds such bytes is refused alike.)
 *
 * @since 0.2.0
 */
export interface Encoding {
  invalid: boolean
}

/**
 * The input as UTF-8 bytes, whatever reads them: UTF-16 (told by its byte order mark, as
 * PowerShell 5 and Excel's "Unicode text" write it) re-encoded, anything else checked to be UTF-8
 * as it passes, so that the rows of a file in another encoding (Windows-1252, Latin-1: Excel's
 * plain "CSV") that hold a letter it encodes otherwise fail, rather than being stored with `�`.
 *
 * @since 0.2.0
 */
export const utf8Of = (source: AsyncIterator<Uint8Array>, encoding: Encoding): AsyncIterator<Uint8Array> => {
  const generator = async function*() {
    let first: Uint8Array = new Uint8Array(0)
    // The first two bytes tell a UTF-16 byte order mark.
    for (let next = await source.next();; next = await source.next()) {
      if (next.done === true) break
      first = first.length === 0 ? next.value : Buffer.concat([first, next.value])
      if (first.length >= 2) break
    }
    if (first.length === 0) return
    const utf16 = first[0] === 0xff && first[1] === 0xfe
      ? new TextDecoder("utf-16le")
      : first[0] === 0xfe && first[1] === 0xff
      ? new TextDecoder("utf-16be")
      : undefined
    const encoder = new TextEncoder()
    // The same text decoded strictly, until a sequence fails: a lone surrogate or an odd last
    // byte of UTF-16, a byte that is no UTF-8 (marked before the reader decodes this chunk).
    const check = new TextDecoder(utf16?.encoding ?? "utf-8", { fatal: true })
    const checked = (chunk: Uint8Array, done: boolean) => {
      if (encoding.invalid) return
      try {
        check.decode(chunk, { stream: !done })
      } catch {
        encoding.invalid = true
      }
    }
    const pass = (chunk: Uint8Array, done: boolean): Uint8Array => {
      checked(chunk, done)
      return utf16 === undefined ? chunk : encoder.encode(utf16.decode(chunk, { stream: !done }))
    }
    yield pass(first, false)
    for (let next = await source.next(); next.done !== true; next = await source.next()) yield pass(next.value, false)
    const end = pass(new Uint8Array(0), true)
    if (end.length > 0) yield end
  }
  const iterator = generator()
  return {
    next: () => iterator.next(),
    return: async (value?: unknown) => {
      await source.return?.(value)
      return iterator.return(undefined)
    }
  }
}

/** Why a row read from bytes that are not UTF-8 is refused. */
const notUtf8 =
  "is not UTF-8 text (a byte here is no UTF-8 character); save the file as UTF-8 (Excel: \"CSV UTF-8\") or convert it (iconv -f WINDOWS-1252 -t UTF-8, for a file from Excel on Windows)"

/** Whether text read from `encoding`'s input holds a byte the decoder replaced. */
const replaced = (encoding: Encoding, text: string) => encoding.invalid && text.includes("\uFFFD")

/** Reads until the first non-blank character (a BOM is blank here), keeping what it read. */
const sniff = async (iterator: AsyncIterator<Uint8Array>) => {
  const head: Array<Uint8Array> = []
  const decoder = new TextDecoder("utf-8")
  for (;;) {
    const next = await iterator.next()
    if (next.done === true) return { iterator, head, first: undefined }
    head.push(next.value)
    const text = decoder.decode(next.value, { stream: true })
    const match = /[^\s\uFEFF]/.exec(text)
    if (match !== null) return { iterator, head, first: match[0] }
  }
}

/** `head`, then the rest of `iterator`, closing it when the consumer stops early. */
const prepend = (head: ReadonlyArray<Uint8Array>, iterator: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> => ({
  async *[Symbol.asyncIterator]() {
    try {
      for (const chunk of head) yield chunk
      for (;;) {
        const next = await iterator.next()
        if (next.done === true) return
        yield next.value
      }
    } finally {
      await iterator.return?.()
    }
  }
})

/** A format's reader: bytes to batches of records, and positions to locations. */
interface Reader {
  readonly read: (bytes: AsyncIterable<Uint8Array>) => AsyncIterable<ReadonlyArray<InputRecord>>
  readonly describe: (index: number) => string
  readonly header?: () => ReadonlyArray<string> | undefined
}

/**
 * Positions whose line is not the previous row's line plus one: `line = index + offset` from
 * each breakpoint on. Constant memory for inputs without blank lines or multi-line records.
 */
const lineMap = () => {
  const indexes: Array<number> = []
  const offsets: Array<number> = []
  let offset = 1
  return {
    record: (index: number, line: number) => {
      if (line - index !== offset) {
        offset = line - index
        indexes.push(index)
        offsets.push(offset)
      }
    },
    lineOf: (index: number) => {
      const at = countAtMost(indexes, index)
      return index + (at === 0 ? 1 : offsets[at - 1]!)
    }
  }
}

/**
 * Why the first line of a JSON lines input says the input is in another shape, or undefined: a
 * JSON array (`-o json`), an object spread over lines (`jq` without `-c`), or not JSON (a CSV).
 * Read as JSON lines, each of its lines would fail as a row of its own.
 */
const notJsonLines = (first: string): string | undefined => {
  const text = first.trim()
  if (text.startsWith("[")) return "the input is a JSON array, not JSON lines: pass --format json"
  if (text === "{") {
    return "an object spread over several lines: JSON lines hold one object a line (jq -c, ConvertTo-Json -Compress)"
  }
  if (!text.startsWith("{")) {
    return "the input is not JSON lines (the first line is no JSON object): pass --format csv if it is CSV"
  }
  return undefined
}

const jsonLinesReader = (name: string, encoding: Encoding): Reader => {
  const lines = lineMap()
  return {
    describe: (index) => `line ${lines.lineOf(index)}`,
    async *read(bytes) {
      const decoder = new TextDecoder("utf-8")
      // The line not yet ended, in the pieces it arrived in: a line of many chunks is joined once,
      // and only the new text is searched for its end (else a long line costs its length squared).
      let pending: Array<string> = []
      let line = 0
      let index = 0
      const take = (text: string, batch: Array<InputRecord>) => {
        line++
        const clean = (line === 1 ? text.replace(/^\uFEFF/, "") : text).replace(/\r$/, "")
        if (clean.trim() === "") return
        const mangled = replaced(encoding, clean)
        if (index === 0 && !mangled) {
          const problem = notJsonLines(clean)
          if (problem !== undefined) throw new CliError({ message: `${name} line ${line}: ${problem}.` })
        }
        const row = mangled ? invalidRow(notUtf8) : parseJsonLine(clean)
        lines.record(index, line)
        batch.push({
          index,
          row,
          raw: row instanceof InvalidRow ? unread(clean) : row,
          line,
          location: `line ${line}`
        })
        index++
      }
      for await (const chunk of bytes) {
        const text = decoder.decode(chunk, { stream: true })
        const batch: Array<InputRecord> = []
        let start = 0
        for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
          const piece = text.slice(start, end)
          take(pending.length === 0 ? piece : pending.join("") + piece, batch)
          pending = []
          start = end + 1
        }
        if (start < text.length) pending.push(text.slice(start))
        if (batch.length > 0) yield batch
      }
      const rest = pending.join("") + decoder.decode()
      if (rest !== "") {
        const batch: Array<InputRecord> = []
        take(rest, batch)
        if (batch.length > 0) yield batch
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// JSON array

/**
 * Splits a JSON array into the text of its elements as characters arrive, without parsing them
 * (each element is parsed alone, so one bad element is one bad row). Strings, escapes and nesting
 * are followed; a stray character between elements belongs to the next element.
 */
class JsonArraySplitter {
  /** `start`: before `[`; `between`: before an element; `element`: inside one; `end`: after `]`. */
  state: "start" | "between" | "element" | "end" = "start"
  private depth = 0
  private inString = false
  private escaped = false
  private parts: Array<string> = []
  /** Set when the text is not a JSON array: what was found instead. */
  problem: string | undefined

  /** Feeds text; returns the elements it completed, in order. */
  push(text: string): Array<string> {
    const done: Array<string> = []
    let start = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      switch (this.state) {
        case "start": {
          if (isBlank(c)) continue
          if (c === 0x5b /* [ */) this.state = "between"
          else {
            this.problem = `expected a JSON array of records, but it starts with '${text[i]}'`
            return done
          }
          continue
        }
        case "between": {
          if (isBlank(c)) continue
          if (c === 0x5d /* ] */) {
            this.state = "end"
            continue
          }
          this.state = "element"
          start = i
          this.depth = 0
          this.inString = false
          this.escaped = false
          if (c === 0x2c /* , */) {
            // An empty element: `[,` or `,,`.
            done.push("")
            this.state = "between"
            continue
          }
          i--
          continue
        }
        case "element": {
          if (this.inString) {
            if (this.escaped) this.escaped = false
            else if (c === 0x5c /* \ */) this.escaped = true
            else if (c === 0x22 /* " */) this.inString = false
            continue
          }
          if (c === 0x22) this.inString = true
          else if (c === 0x7b /* { */ || c === 0x5b /* [ */) this.depth++
          else if ((c === 0x7d /* } */ || c === 0x5d) && this.depth > 0) this.depth--
          else if (this.depth === 0 && (c === 0x2c || c === 0x5d)) {
            this.parts.push(text.slice(start, i))
            done.push(this.parts.join(""))
            this.parts = []
            this.state = c === 0x5d ? "end" : "between"
          }
          continue
        }
        case "end": {
          if (isBlank(c)) continue
          this.problem = `there is text after the closing ']' of the array ('${text[i]}')`
          return done
        }
      }
    }
    if (this.state === "element") this.parts.push(text.slice(start))
    return done
  }

  /** The text of an element the input ended inside of, if any. */
  unfinished(): string | undefined {
    return this.state === "element" ? this.parts.join("") : undefined
  }
}

const isBlank = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0xfeff

const jsonArrayReader = (name: string, encoding: Encoding): Reader => ({
  describe: (index) => `element ${index + 1}`,
  async *read(bytes) {
    const decoder = new TextDecoder("utf-8")
    const splitter = new JsonArraySplitter()
    let index = 0
    const record = (text: string, row: RowInput): InputRecord => {
      const at = index++
      return {
        index: at,
        row,
        raw: row instanceof InvalidRow ? unread(text.trim()) : row,
        line: at + 1,
        location: `element ${at + 1}`
      }
    }
    const element = (text: string) =>
      record(
        text,
        text.trim() === ""
          ? invalidRow("empty element")
          : replaced(encoding, text)
          ? invalidRow(notUtf8)
          : parseJsonLine(text)
      )
    const fail = (problem: string) => new CliError({ message: `${name}: ${problem}.` })
    for await (const chunk of bytes) {
      const elements = splitter.push(decoder.decode(chunk, { stream: true }))
      const batch = elements.map(element)
      if (batch.length > 0) yield batch
      if (splitter.problem !== undefined) throw fail(splitter.problem)
    }
    const last = splitter.push(decoder.decode()).map(element)
    if (last.length > 0) yield last
    if (splitter.problem !== undefined) throw fail(splitter.problem)
    const unfinished = splitter.unfinished()
    if (unfinished !== undefined) {
      yield [record(unfinished, invalidRow("the input ends inside this element (is the file cut off?)"))]
    } else if (splitter.state === "between") {
      throw fail(`the JSON array is not closed: the input ends after element ${index}`)
    }
  }
})

// ---------------------------------------------------------------------------------------------
// CSV

type CsvItem =
  | { readonly record: ReadonlyArray<string>; readonly raw: string }
  | { readonly skipped: Error; readonly raw: string | undefined }

/** The 1-based line a CSV field list started on, knowing where the previous one ended. */
const csvReader = (name: string, delimiter: string, encoding: Encoding): Reader => {
  const lines = lineMap()
  let header: ReadonlyArray<string> | undefined
  return {
    describe: (index) => `row ${index + 1} (line ${lines.lineOf(index)})`,
    // The named columns: nameless ones at the end are the reader's to check, not a column's name.
    header: () => header?.filter((column) => column !== ""),
    async *read(bytes) {
      let parser: ReturnType<typeof parseCsv> | undefined = undefined
      const options: CsvOptions = {
        bom: true,
        delimiter,
        record_delimiter: ["\r\n", "\n", "\r"],
        // Empty lines come as records of one empty field and are skipped here, counting lines.
        skip_empty_lines: false,
        relax_column_count: true,
        // A quote inside an unquoted field is kept as written (`5" floppy`).
        relax_quotes: true,
        raw: true,
        skip_records_with_error: true,
        // Errors become items in order with the records around them, not the end of the stream.
        on_skip: (error: CsvError | undefined, raw: string | undefined) => {
          if (error !== undefined) parser!.push({ skipped: error, raw } satisfies CsvItem)
          return undefined
        }
      }
      parser = parseCsv(options)
      const source = Readable.from(bytes, { objectMode: false })
      source.on("error", (error) => parser!.destroy(error))
      source.pipe(parser)
      let ended = 0 // the line the previous record ended on
      let index = 0
      let batch: Array<InputRecord> = []
      // The line a record starts on, and the line it ends on, from the line breaks in its fields
      // (csv-parse's own count takes a CRLF inside quotes for two lines).
      const startOf = (breaks: number) => {
        const start = ended + 1
        ended = start + breaks
        return start
      }
      const push = (line: number, row: RowInput, raw: Readonly<Record<string, unknown>>) => {
        lines.record(index, line)
        index++
        batch.push({ index: index - 1, row, raw, line, location: `row ${index} (line ${line})` })
      }
      try {
        for await (const item of parser as AsyncIterable<CsvItem>) {
          if ("skipped" in item) {
            const line = startOf(lineBreaks((item.raw ?? "").replace(/^[\r\n]+|[\r\n]+$/g, "")))
            const problem = (item.skipped as { code?: string }).code === "CSV_QUOTE_NOT_CLOSED"
              ? `a quote opened in this row is never closed, so the rest of the input (to line ${ended}) is part of it`
              : item.skipped.message
            if (header === undefined) {
              throw new CliError({ message: `${name} line ${line}: the header row cannot be read: ${problem}.` })
            }
            push(line, invalidRow(problem), unread(item.raw))
          } else if (item.raw.includes("\"") && strayAfterQuote(item.raw, delimiter) !== undefined) {
            // `"B1"x`: csv-parse's relaxed quoting would keep the quotes as text; it is a broken field.
            const field = strayAfterQuote(item.raw, delimiter)!
            const line = startOf(lineBreaks(item.raw.replace(/^[\r\n]+|[\r\n]+$/g, "")))
            const problem = `field ${field} has text after its closing quote`
            if (header === undefined) {
              throw new CliError({ message: `${name} line ${line}: the header row cannot be read: ${problem}.` })
            }
            push(line, invalidRow(problem), unread(item.raw.replace(/^[\r\n]+|[\r\n]+$/g, "")))
          } else {
            // Fields written `null` (any case: SQL Server's exports write NULL) without quotes are
            // null; `"null"` is the text. (csv-parse's `cast` would say which fields were quoted, at
            // six times the cost of parsing.)
            const fields = item.record.some(isNullWord) ? withNulls(item.record, item.raw, delimiter) : item.record
            let breaks = 0
            for (const field of fields) if (field !== null) breaks += lineBreaks(field)
            const line = startOf(breaks)
            if (fields.every((field) => field === null ? false : field.trim() === "")) continue
            if (replaced(encoding, item.raw)) {
              if (header === undefined) throw new CliError({ message: `${name} line ${line}: the header ${notUtf8}.` })
              push(line, invalidRow(notUtf8), unread(item.raw.replace(/^[\r\n]+|[\r\n]+$/g, "")))
            } else if (header === undefined) header = checkHeader(name, line, fields)
            else push(line, ...csvRow(header, fields))
          }
          if (batch.length >= 512 || parser.readableLength === 0) {
            yield batch
            batch = []
          }
        }
        if (batch.length > 0) yield batch
      } finally {
        source.destroy()
        parser.destroy()
      }
    }
  }
}

/**
 * The 1-based number of the first quoted field followed by text before its delimiter (`"B1"x`),
 * reading the raw text of the record; undefined when every quoted field ends properly.
 */
const strayAfterQuote = (raw: string, delimiter: string): number | undefined => {
  const text = raw.replace(/^[\r\n]+/, "")
  let field = 1
  let atStart = true
  let inQuotes = false
  let closed = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (inQuotes) {
      if (c === "\"") {
        if (text[i + 1] === "\"") i++
        else {
          inQuotes = false
          closed = true
        }
      }
    } else if (c === delimiter) {
      field++
      atStart = true
      closed = false
    } else if (closed) {
      if (c !== "\r" && c !== "\n") return field
    } else if (atStart) {
      inQuotes = c === "\""
      atStart = false
    }
  }
  return undefined
}

/**
 * `fields` with those written `null` without quotes as null, reading the quoting from the raw
 * text of the record.
 */
const withNulls = (fields: ReadonlyArray<string>, raw: string, delimiter: string): Array<string | null> => {
  const quoted: Array<boolean> = []
  const text = raw.replace(/^[\r\n]+/, "")
  let atStart = true
  let inQuotes = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (inQuotes) {
      if (c === "\"") {
        if (text[i + 1] === "\"") i++
        else inQuotes = false
      }
    } else if (c === delimiter) {
      if (atStart) quoted.push(false)
      atStart = true
    } else if (atStart) {
      quoted.push(c === "\"")
      inQuotes = c === "\""
      atStart = false
    }
  }
  if (atStart) quoted.push(false)
  return fields.map((field, i) => (isNullWord(field) && quoted[i] !== true ? null : field))
}

/** `null` in any case (`NULL`, as SQL Server writes it). */
const isNullWord = (field: string): boolean => field.length === 4 && field.toLowerCase() === "null"

/** Line breaks in `text`, a CRLF counting once. */
const lineBreaks = (text: string) => {
  let count = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x0a) count++
    else if (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a) count++
  }
  return count
}

const checkHeader = (name: string, line: number, fields: ReadonlyArray<string | null>): ReadonlyArray<string> => {
  const names = fields.map((field) => (field ?? "null").trim())
  // Nameless columns at the end (a trailing delimiter on every line, as spreadsheets export):
  // kept in the header's width, their fields must be empty (`csvRow`).
  let named = names.length
  while (named > 1 && names[named - 1] === "") named--
  const seen = new Map<string, number>()
  names.slice(0, named).forEach((column, i) => {
    if (column === "") {
      throw new CliError({ message: `${name} line ${line}: the header's column ${i + 1} has no name.` })
    }
    const earlier = seen.get(column)
    if (earlier !== undefined) {
      throw new CliError({
        message: `${name} line ${line}: the header names '${column}' twice (columns ${earlier + 1} and ${i + 1}).`
      })
    }
    seen.set(column, i)
  })
  return names
}

/**
 * A CSV record as a row (empty fields left out) and as its raw form (the same object), or why it
 * is not a row: the wrong number of fields, its raw form then keyed by column all the same (the
 * missing columns left out, extra fields under `extraFieldsKey`).
 */
const csvRow = (
  header: ReadonlyArray<string>,
  fields: ReadonlyArray<string | null>
): [RowInput, Readonly<Record<string, unknown>>] => {
  const row: Record<string, unknown> = {}
  const shared = Math.min(fields.length, header.length)
  let unnamed: number | undefined
  for (let i = 0; i < shared; i++) {
    const field = fields[i]!
    if (field === "") continue
    if (header[i] === "") unnamed ??= i
    else row[header[i]!] = field
  }
  if (unnamed !== undefined) {
    return [invalidRow(`field ${unnamed + 1} has a value, but the header's column ${unnamed + 1} has no name`), row]
  }
  // A row may leave out the nameless columns at the end.
  if (fields.length === header.length || (fields.length < header.length && header[fields.length] === "")) {
    return [row, row]
  }
  if (fields.length > header.length) row[extraFieldsKey] = fields.slice(header.length)
  // Too few: the named columns are what it lacks; too many: every column, nameless ones included.
  const named = header.indexOf("") === -1 ? header.length : header.indexOf("")
  const expected = fields.length < header.length ? named : header.length
  return [
    invalidRow(`has ${fields.length} field${fields.length === 1 ? "" : "s"}, but the header has ${expected}`),
    row
  ]
}

// ---------------------------------------------------------------------------------------------
// Partitions

/**
 * One slice of an input shared by `count` runs: the rows whose 0-based position `p` has
 * `p % count === index - 1`. The same input gives the same slices every time, and the slices of
 * `1/n` to `n/n` together are the whole input, each row in exactly one.
 *
 * @since 0.1.0
 */
export interface Partition {
  /** 1-based: which slice, from 1 to `count`. */
  readonly index: number
  readonly count: number
}

/**
 * Parses `--partition i/n` (`1/4`): whole numbers with 1 ≤ i ≤ n. Left: one line naming the flag.
 *
 * @since 0.1.0
 */
export const parsePartition = (text: string): Either.Either<Partition, CliError> => {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text)
  const index = match === null ? NaN : Number(match[1])
  const count = match === null ? NaN : Number(match[2])
  return Number.isSafeInteger(index) && Number.isSafeInteger(count) && index >= 1 && index <= count
    ? Either.right({ index, count })
    : Either.left(
      new CliError({
        message: `--partition must be i/n with 1 <= i <= n (e.g. 2/4 for the second of four), got '${text}'.`
      })
    )
}

/**
 * Whether the row at 0-based `position` of the input belongs to `partition`.
 *
 * @since 0.1.0
 */
export const inPartition = (position: number, partition: Partition): boolean =>
  position % partition.count === partition.index - 1

/**
 * Keeps the records of one partition (by their position in the whole input, bad rows included,
 * so that each bad row is reported by exactly one of the runs).
 *
 * @since 0.1.0
 */
export const partitionRecords = <E, R>(
  records: Stream.Stream<InputRecord, E, R>,
  partition: Partition
): Stream.Stream<InputRecord, E, R> =>
  partition.count === 1 ? records : Stream.filter(records, (record) => inPartition(record.index, partition))

// ---------------------------------------------------------------------------------------------
// Rows in flight

/**
 * The rows of records for the bulk engine, with the records kept until their outcome arrives.
 * The engine numbers the rows it receives from 0; `get` and `settle` take that number.
 *
 * @since 0.1.0
 */
export interface TrackedRows<E, R> {
  /** The rows, in order, for `Bulk.stream` and friends. */
  readonly rows: Stream.Stream<RowInput, E, R>
  /** The record behind the engine's row `position`, while it is kept. */
  readonly get: (position: number) => InputRecord | undefined
  /** Returns and forgets the record behind the engine's row `position`: call it once per outcome. */
  readonly settle: (position: number) => InputRecord | undefined
  /** How many records are kept (rows sent and not yet settled). */
  readonly pending: () => number
}

/**
 * Hands the rows of `records` to the engine and keeps each record (its location and raw form)
 * until `settle` is called with the engine's row number, so that memory follows the rows in
 * flight, not the input. Settle every outcome, successes too.
 *
 * @example
 * ```ts
 * import { Bulk } from "@dv-effect/core"
 * import { Effect, Stream } from "effect"
 * import * as Input from "./Input.js"
 * const program = Effect.gen(function*() {
 *   const source = yield* Input.open({ file: "contacts.csv" })
 *   const tracked = Input.track(source.records)
 *   yield* Stream.runForEach(Bulk.createMany("contact", tracked.rows), (outcome) => {
 *     const record = tracked.settle(outcome.index)
 *     return outcome.status === "failed"
 *       ? Effect.logError(`${record?.location}: ${outcome.error.message}`)
 *       : Effect.void
 *   })
 * })
 * ```
 *
 * @since 0.1.0
 */
export const track = <E, R>(records: Stream.Stream<InputRecord, E, R>): TrackedRows<E, R> => {
  const kept = new Map<number, InputRecord>()
  let position = 0
  return {
    rows: Stream.suspend(() => {
      position = 0
      return Stream.map(records, (record) => {
        kept.set(position++, record)
        return record.row
      })
    }),
    get: (at) => kept.get(at),
    settle: (at) => {
      const record = kept.get(at)
      kept.delete(at)
      return record
    },
    pending: () => kept.size
  }
}

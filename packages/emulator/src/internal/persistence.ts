/**
 * Persistence of the store in a data directory (`--data-dir`): a snapshot of every record plus
 * a journal of the changes committed since, appended once a second. A restart reads both; a
 * `kill -9` loses at most the last second of writes. A clean stop writes a fresh snapshot and
 * empties the journal; so does a flush that finds the journal larger than the snapshot.
 *
 * Only committed changes are journalled: a rolled-back transaction leaves no trace.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Readline from "node:readline"
import type { Change, Store, StoredRecord, TableStore } from "../Store.js"

const format = "dv-effect-emulator/1"

/** A snapshot line: a table's logical name and one record. */
interface SnapshotLine {
  readonly t: string
  readonly r: StoredRecord
}

/** A journal line: a committed change, or the store cleared (`Emulator.reset()`). */
type JournalLine =
  | { readonly op: "put"; readonly t: string; readonly r: StoredRecord }
  | { readonly op: "delete"; readonly t: string; readonly id: string }
  | { readonly op: "clear" }

export interface Persistence {
  /** Flushes the journal, writes a snapshot and empties the journal. */
  readonly close: () => Promise<void>
  /** Writes what is pending to the journal now. */
  readonly flush: () => Promise<void>
  /** Records restored at start. */
  readonly restored: number
}

const readLines = async (file: string, onLine: (line: string, last: boolean) => void): Promise<void> => {
  if (!Fs.existsSync(file)) return
  const lines = Readline.createInterface({ input: Fs.createReadStream(file), crlfDelay: Infinity })
  let previous: string | undefined
  for await (const line of lines) {
    if (previous !== undefined) onLine(previous, false)
    previous = line
  }
  if (previous !== undefined) onLine(previous, true)
}

/**
 * Opens (or creates) a data directory for `store`: restores what it holds, then journals every
 * committed change.
 */
export const open = async (
  directory: string,
  store: Store,
  options: { readonly flushIntervalMs?: number; readonly onWarning?: (message: string) => void } = {}
): Promise<Persistence> => {
  await Fs.promises.mkdir(directory, { recursive: true })
  const snapshotFile = Path.join(directory, "snapshot.jsonl")
  const journalFile = Path.join(directory, "journal.jsonl")
  const warn = options.onWarning ?? (() => {})
  let maxSeq = 0
  let restored = 0
  const unknownTables = new Set<string>()
  const tableOf = (name: string) => {
    const table = store.table(name)
    if (table === undefined) unknownTables.add(name)
    return table
  }
  const track = (record: StoredRecord) => {
    maxSeq = Math.max(maxSeq, record.seq, record.version)
  }
  // A data directory saved before a column was date-only (`contact.birthdate` until 0.2.0) holds
  // date-times there: kept, an Edm.Date property would read back as a date and time.
  let cutToDay = 0
  const dateOnlyColumns = new Map<TableStore, ReadonlyArray<string>>()
  const restore = (table: TableStore, record: StoredRecord) => {
    let dateOnly = dateOnlyColumns.get(table)
    if (dateOnly === undefined) {
      dateOnly = table.definition.columns.filter((c) => c.dateTimeBehavior === "DateOnly").map((c) => c.logicalName)
      dateOnlyColumns.set(table, dateOnly)
    }
    let values = record.values
    for (const logicalName of dateOnly) {
      const value = values[logicalName]
      if (typeof value !== "string" || !value.includes("T")) continue
      // Stored date-times are UTC ISO text: their day is the first ten characters.
      values = { ...values, [logicalName]: value.slice(0, 10) }
      cutToDay++
    }
    if (values !== record.values) {
      // Two times of one day in an alternate key are one key once cut: say which record it finds.
      for (const key of table.definition.keys) {
        if (!key.keyAttributes.some((a) => dateOnly.includes(a))) continue
        const other = table.getByKey(key.logicalName, key.keyAttributes.map((a) => values[a]))
        if (other !== undefined && other.id !== record.id) {
          warn(
            `${table.definition.logicalName} records ${other.id} and ${record.id} share the key ${key.logicalName} once their date-only values are cut to the day; the key finds ${record.id}`
          )
        }
      }
    }
    table.restore(values === record.values ? record : { ...record, values })
    track(record)
  }

  await readLines(snapshotFile, (line, last) => {
    if (line.startsWith("{\"format\"")) return
    try {
      const { r, t } = JSON.parse(line) as SnapshotLine
      const table = tableOf(t)
      if (table === undefined) return
      restore(table, r)
      restored++
    } catch {
      // A snapshot is written to a temporary file and renamed, so only a foreign edit breaks one.
      if (!last) warn(`${snapshotFile}: a line is not valid JSON and was skipped`)
    }
  })
  await readLines(journalFile, (line, last) => {
    let entry: JournalLine
    try {
      entry = JSON.parse(line) as JournalLine
    } catch {
      // The last line may have been cut short by a kill: everything before it is whole.
      if (!last) warn(`${journalFile}: a line is not valid JSON and was skipped`)
      return
    }
    if (entry.op === "clear") {
      for (const table of store.tables) table.clear()
      return
    }
    const table = tableOf(entry.t)
    if (table === undefined) return
    if (entry.op === "put") {
      restore(table, entry.r)
    } else {
      table.forget(entry.id)
    }
  })
  if (unknownTables.size > 0) warn(`records of tables not in the schema were ignored: ${[...unknownTables].join(", ")}`)
  if (cutToDay > 0) {
    const one = cutToDay === 1
    warn(
      `${cutToDay} ${one ? "value" : "values"} of date-only columns held a time (saved when the column took one) and ${
        one ? "was" : "were"
      } cut to ${one ? "its" : "their"} day`
    )
  }
  store.advanceSeq(maxSeq)
  restored = store.tables.reduce((n, table) => n + table.size, 0)

  let pending: Array<string> = []
  store.onCommit = (change: Change) => {
    pending.push(
      JSON.stringify(
        change.op === "put"
          ? { op: "put", t: change.table, r: change.record }
          : change.op === "delete"
          ? { op: "delete", t: change.table, id: change.id }
          : { op: "clear" }
      )
    )
  }

  const writeSnapshotSync = () => {
    const temporary = `${snapshotFile}.tmp`
    const fd = Fs.openSync(temporary, "w")
    try {
      Fs.writeSync(fd, `${JSON.stringify({ format, seq: store.lastSeq })}\n`)
      for (const table of store.tables) {
        let chunk = ""
        for (const record of table.scan()) {
          chunk += `${JSON.stringify({ t: table.definition.logicalName, r: record })}\n`
          if (chunk.length > 1 << 20) {
            Fs.writeSync(fd, chunk)
            chunk = ""
          }
        }
        if (chunk !== "") Fs.writeSync(fd, chunk)
      }
      Fs.fsyncSync(fd)
    } finally {
      Fs.closeSync(fd)
    }
    Fs.renameSync(temporary, snapshotFile)
    Fs.writeFileSync(journalFile, "")
  }

  // Appends are chained so that the journal keeps the commit order.
  let writing: Promise<void> = Promise.resolve()
  const flush = (): Promise<void> => {
    writing = writing.then(async () => {
      if (pending.length === 0) return
      const lines = pending
      pending = []
      await Fs.promises.appendFile(journalFile, `${lines.join("\n")}\n`)
      const journalSize = (await Fs.promises.stat(journalFile)).size
      const snapshotSize = Fs.existsSync(snapshotFile) ? (await Fs.promises.stat(snapshotFile)).size : 0
      // Compact when the journal outgrows the snapshot (and is worth it): one synchronous pass,
      // so no change can slip between the snapshot and the truncation.
      if (journalSize > 16 * 1024 * 1024 && journalSize > snapshotSize) {
        pending = []
        writeSnapshotSync()
      }
    })
    return writing
  }

  const timer = setInterval(() => {
    flush().catch((error: unknown) => warn(`writing the journal failed: ${String(error)}`))
  }, options.flushIntervalMs ?? 1000)
  timer.unref()

  return {
    restored,
    flush,
    close: async () => {
      clearInterval(timer)
      await flush()
      store.onCommit = undefined
      writeSnapshotSync()
    }
  }
}

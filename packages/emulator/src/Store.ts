/**
 * The emulator's in-memory store: one table store per table definition, records in insertion
 * order (the order queries page in), a primary-key index and one index per alternate key.
 *
 * Writes are synchronous, so a request's writes are applied between two turns of the event loop
 * and no other request ever sees part of them. `Store.transaction` adds rollback: every write
 * inside it is logged, and undone if the transaction's function returns a `Fault`.
 *
 * @since 0.1.0
 */
import type { TableDefinition } from "./TableSchema.js"

/**
 * A lookup value as stored: the target table and the record id.
 *
 * @since 0.1.0
 * @category models
 */
export interface LookupValue {
  readonly table: string
  readonly id: string
}

/**
 * A stored record. `values` maps column logical names to JSON values or lookups.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoredRecord {
  readonly id: string
  /** Position in insertion order; an update keeps it, paging continues after the last `seq` served. */
  readonly seq: number
  /** Row version, the `@odata.etag`; changes on every write. */
  readonly version: number
  readonly values: Readonly<Record<string, unknown>>
  /** Elastic tables: when the record expires (`ttlinseconds`), in ms since the epoch. */
  readonly expiresAt?: number | undefined
}

/**
 * A record ready to be written: validated, with its id decided.
 *
 * @since 0.1.0
 * @category models
 */
export interface PreparedRecord {
  readonly id: string
  readonly values: Readonly<Record<string, unknown>>
}

/**
 * A Dataverse error as the service reports it: HTTP status, hex error code and message. Store
 * and validation code return these; the HTTP layer turns them into the JSON body
 * `{"error":{"code","message"}}`.
 *
 * @since 0.1.0
 * @category models
 */
export class Fault {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly message: string,
    readonly headers: Readonly<Record<string, string>> = {}
  ) {}
}

/**
 * A committed change, as the persistence journal records it.
 *
 * @since 0.1.0
 * @category models
 */
export type Change =
  | { readonly op: "put"; readonly table: string; readonly record: StoredRecord }
  | { readonly op: "delete"; readonly table: string; readonly id: string }
  | { readonly op: "clear" }

const keyString = (values: ReadonlyArray<unknown>): string =>
  JSON.stringify(values.map((v) => (typeof v === "string" ? v.toLowerCase() : v)))

const ttlOf = (values: Readonly<Record<string, unknown>>, now: number): number | undefined => {
  const ttl = values["ttlinseconds"]
  return typeof ttl === "number" && ttl > 0 ? now + ttl * 1000 : undefined
}

/**
 * The records of one table.
 *
 * @since 0.1.0
 * @category models
 */
export class TableStore {
  private readonly byId = new Map<string, StoredRecord>()
  /**
   * Insertion order as parallel arrays of ids and positions (two flat arrays cost far less than a
   * million small objects); entries whose record was deleted or re-created are skipped.
   */
  private orderedIds: Array<string> = []
  private orderedSeqs: Array<number> = []
  private stale = 0
  private readonly keyIndexes = new Map<string, Map<string, string>>()

  constructor(
    readonly definition: TableDefinition,
    private readonly store: {
      readonly nextSeq: () => number
      readonly log: (undo: () => void) => void
      readonly inTransaction: () => boolean
      readonly now: () => number
      readonly changed: (change: Change) => void
    }
  ) {
    for (const key of definition.keys) this.keyIndexes.set(key.logicalName, new Map())
  }

  /** How many live records the table holds (expired ones included until they are next read). */
  get size(): number {
    return this.byId.size
  }

  /** The live record with this id, if any; an expired record is dropped on the way. */
  get(id: string): StoredRecord | undefined {
    const record = this.byId.get(id.toLowerCase())
    if (record?.expiresAt !== undefined && record.expiresAt <= this.store.now()) {
      if (!this.store.inTransaction()) this.drop(record)
      return undefined
    }
    return record
  }

  /** Every live record id, in insertion order. */
  ids(): Array<string> {
    return this.scan().map((record) => record.id)
  }

  /** Finds a record by the values of an alternate key. */
  getByKey(keyName: string, values: ReadonlyArray<unknown>): StoredRecord | undefined {
    const id = this.keyIndexes.get(keyName)?.get(keyString(values))
    return id === undefined ? undefined : this.get(id)
  }

  /** The alternate key that `values` would take from another record, if any. */
  keyConflict(values: Readonly<Record<string, unknown>>, ownId: string): string | undefined {
    for (const key of this.definition.keys) {
      const keyValues = key.keyAttributes.map((column) => values[column])
      if (keyValues.some((v) => v === undefined || v === null)) continue
      const holder = this.keyIndexes.get(key.logicalName)!.get(keyString(keyValues))
      if (holder !== undefined && holder !== ownId && this.get(holder) !== undefined) return key.logicalName
    }
    return undefined
  }

  /** Inserts a record; fails with 412 when its id or an alternate key is taken. */
  insert(record: PreparedRecord): StoredRecord | Fault {
    if (this.get(record.id) !== undefined) {
      return new Fault(
        412,
        "0x80040237",
        `A record with matching key values already exists. (${this.definition.primaryIdAttribute} = ${record.id})`
      )
    }
    const conflict = this.keyConflict(record.values, record.id)
    if (conflict !== undefined) return this.keyFault(conflict)
    const now = this.store.now()
    const stored: StoredRecord = {
      id: record.id,
      seq: this.store.nextSeq(),
      version: this.store.nextSeq(),
      values: record.values,
      expiresAt: ttlOf(record.values, now)
    }
    this.byId.set(stored.id, stored)
    this.orderedIds.push(stored.id)
    this.orderedSeqs.push(stored.seq)
    this.index(stored)
    this.store.log(() => this.drop(stored))
    this.store.changed({ op: "put", table: this.definition.logicalName, record: stored })
    return stored
  }

  /**
   * Writes new values for an existing record, keeping its position: merged into the old values,
   * or replacing them (`replace`, as an elastic-table upsert does).
   */
  update(id: string, values: Readonly<Record<string, unknown>>, replace = false): StoredRecord | Fault {
    const old = this.get(id)
    if (old === undefined) {
      return new Fault(404, "0x80040217", `${this.definition.logicalName} With Id = ${id} Does Not Exist`)
    }
    const merged = replace ? values : { ...old.values, ...values }
    const conflict = this.keyConflict(merged, id)
    if (conflict !== undefined) return this.keyFault(conflict)
    const stored: StoredRecord = {
      id: old.id,
      seq: old.seq,
      version: this.store.nextSeq(),
      values: merged,
      expiresAt: "ttlinseconds" in values ? ttlOf(merged, this.store.now()) : old.expiresAt
    }
    this.unindex(old)
    this.byId.set(id, stored)
    this.index(stored)
    this.store.log(() => {
      this.unindex(stored)
      this.byId.set(id, old)
      this.index(old)
    })
    this.store.changed({ op: "put", table: this.definition.logicalName, record: stored })
    return stored
  }

  /** Deletes a record; false when there was none. */
  remove(id: string): boolean {
    const old = this.get(id)
    if (old === undefined) return false
    this.drop(old)
    this.store.log(() => {
      this.byId.set(old.id, old)
      this.index(old)
      this.stale--
    })
    this.store.changed({ op: "delete", table: this.definition.logicalName, id: old.id })
    return true
  }

  /**
   * Puts back a record read from persistence, with its own position and version, without
   * logging it as a change. Records must be restored in `seq` order.
   */
  restore(record: StoredRecord): void {
    const old = this.byId.get(record.id)
    if (old !== undefined) {
      this.unindex(old)
      if (old.seq !== record.seq) this.stale++
    }
    this.byId.set(record.id, record)
    if (old?.seq !== record.seq) {
      this.orderedIds.push(record.id)
      this.orderedSeqs.push(record.seq)
    }
    this.index(record)
  }

  /** Forgets a record read as deleted from persistence, without logging it as a change. */
  forget(id: string): void {
    const old = this.byId.get(id)
    if (old !== undefined) this.drop(old)
  }

  /**
   * Up to `limit` live records with `seq` greater than `afterSeq` that satisfy `where`, in
   * insertion order, and whether more follow.
   */
  page(
    afterSeq: number,
    limit: number,
    where: (record: StoredRecord) => boolean = () => true
  ): { readonly records: Array<StoredRecord>; readonly more: boolean } {
    this.compact()
    const seqs = this.orderedSeqs
    let lo = 0
    let hi = seqs.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (seqs[mid]! <= afterSeq) lo = mid + 1
      else hi = mid
    }
    const records: Array<StoredRecord> = []
    for (let i = lo; i < seqs.length; i++) {
      const record = this.live(this.orderedIds[i]!, seqs[i]!)
      if (record === undefined || !where(record)) continue
      if (records.length === limit) return { records, more: true }
      records.push(record)
    }
    return { records, more: false }
  }

  /**
   * `page` over the records of these ids only: looked up by id, so that a query that names its
   * records' keys does not read the whole table.
   */
  pageAmong(
    ids: ReadonlySet<string>,
    afterSeq: number,
    limit: number,
    where: (record: StoredRecord) => boolean = () => true
  ): { readonly records: Array<StoredRecord>; readonly more: boolean } {
    const found: Array<StoredRecord> = []
    for (const id of ids) {
      const record = this.get(id)
      if (record !== undefined && record.seq > afterSeq && where(record)) found.push(record)
    }
    found.sort((a, b) => a.seq - b.seq)
    return { records: found.slice(0, limit), more: found.length > limit }
  }

  /** Every live record, in insertion order. */
  scan(where: (record: StoredRecord) => boolean = () => true): Array<StoredRecord> {
    return this.page(0, Number.MAX_SAFE_INTEGER, where).records
  }

  /** Removes every record. */
  clear(): void {
    this.byId.clear()
    this.orderedIds = []
    this.orderedSeqs = []
    this.stale = 0
    for (const index of this.keyIndexes.values()) index.clear()
  }

  private live(id: string, seq: number): StoredRecord | undefined {
    const record = this.get(id)
    return record !== undefined && record.seq === seq ? record : undefined
  }

  private drop(record: StoredRecord): void {
    this.unindex(record)
    this.byId.delete(record.id)
    this.stale++
  }

  private compact(): void {
    // Never inside a transaction: its undo log may still restore records to their entries.
    if (this.stale < 1024 || this.stale < this.orderedIds.length / 2 || this.store.inTransaction()) return
    const ids: Array<string> = []
    const seqs: Array<number> = []
    for (let i = 0; i < this.orderedIds.length; i++) {
      if (this.byId.get(this.orderedIds[i]!)?.seq === this.orderedSeqs[i]) {
        ids.push(this.orderedIds[i]!)
        seqs.push(this.orderedSeqs[i]!)
      }
    }
    this.orderedIds = ids
    this.orderedSeqs = seqs
    this.stale = 0
  }

  private index(record: StoredRecord): void {
    for (const key of this.definition.keys) {
      const values = key.keyAttributes.map((column) => record.values[column])
      if (values.some((v) => v === undefined || v === null)) continue
      this.keyIndexes.get(key.logicalName)!.set(keyString(values), record.id)
    }
  }

  private unindex(record: StoredRecord): void {
    for (const key of this.definition.keys) {
      const values = key.keyAttributes.map((column) => record.values[column])
      if (values.some((v) => v === undefined || v === null)) continue
      const index = this.keyIndexes.get(key.logicalName)!
      const text = keyString(values)
      if (index.get(text) === record.id) index.delete(text)
    }
  }

  private keyFault(keyName: string): Fault {
    const attributes = this.definition.keys.find((k) => k.logicalName === keyName)!.keyAttributes.join(",")
    return new Fault(
      412,
      "0x80040237",
      `A record that has the attribute values ${attributes} already exists. The entity key ${keyName} requires that this set of attributes contains unique values. Select unique values and try again.`
    )
  }
}

/**
 * All tables of one emulator.
 *
 * @since 0.1.0
 * @category models
 */
export class Store {
  private seq = 0
  /** Records written (inserted, updated, deleted) and not rolled back. */
  writes = 0
  private undoLog: Array<() => void> | undefined
  /** Changes of the open transactions, innermost last; committed ones go to `onCommit`. */
  private readonly pendingChanges: Array<Array<Change>> = []
  /** Receives committed changes, in order (the persistence journal). */
  onCommit: ((change: Change) => void) | undefined
  private readonly byLogicalName = new Map<string, TableStore>()
  private readonly byEntitySet = new Map<string, TableStore>()

  constructor(tables: ReadonlyArray<TableDefinition>, readonly now: () => number = Date.now) {
    const context = {
      nextSeq: () => ++this.seq,
      log: (undo: () => void) => {
        this.writes++
        this.undoLog?.push(() => {
          this.writes--
          undo()
        })
      },
      inTransaction: () => this.undoLog !== undefined,
      now: () => this.now(),
      changed: (change: Change) => {
        const open = this.pendingChanges.at(-1)
        if (open !== undefined) open.push(change)
        else this.onCommit?.(change)
      }
    }
    for (const definition of tables) {
      const table = new TableStore(definition, context)
      this.byLogicalName.set(definition.logicalName, table)
      this.byEntitySet.set(definition.entitySetName, table)
    }
  }

  /** Every table, in schema order. */
  get tables(): ReadonlyArray<TableStore> {
    return [...this.byLogicalName.values()]
  }

  /** A table by logical name (`contact`). */
  table(logicalName: string): TableStore | undefined {
    return this.byLogicalName.get(logicalName)
  }

  /** A table by entity set name (`contacts`). */
  entitySet(name: string): TableStore | undefined {
    return this.byEntitySet.get(name)
  }

  /**
   * Runs `body` as one transaction: if it returns a `Fault` (or throws), every write it made is
   * undone, in reverse order. Transactions nest: an inner failure rolls back only its own writes.
   */
  transaction<A>(body: () => A | Fault): A | Fault {
    const outer = this.undoLog
    const log: Array<() => void> = []
    const changes: Array<Change> = []
    this.undoLog = log
    this.pendingChanges.push(changes)
    let result: A | Fault
    try {
      result = body()
    } catch (error) {
      this.undoLog = outer
      this.pendingChanges.pop()
      for (let i = log.length - 1; i >= 0; i--) log[i]!()
      throw error
    }
    this.undoLog = outer
    this.pendingChanges.pop()
    if (result instanceof Fault) {
      for (let i = log.length - 1; i >= 0; i--) log[i]!()
      return result
    }
    if (outer !== undefined) { for (const undo of log) outer.push(undo) }
    const parent = this.pendingChanges.at(-1)
    for (const change of changes) {
      if (parent !== undefined) parent.push(change)
      else this.onCommit?.(change)
    }
    return result
  }

  /** Removes every record of every table; journalled, so that a restart does not bring them back. */
  clear(): void {
    for (const table of this.byLogicalName.values()) table.clear()
    this.onCommit?.({ op: "clear" })
  }

  /** The last position and version handed out; restored stores continue after it. */
  get lastSeq(): number {
    return this.seq
  }

  /** Continues numbering after `seq` (after restoring records from persistence). */
  advanceSeq(seq: number): void {
    if (seq > this.seq) this.seq = seq
  }
}

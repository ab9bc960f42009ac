/**
 * The emulator's in-memory store: one table store per table definition, records in insertion
 * order (the order queries page in), a primary-key index and one index per alternate key.
 *
 * Writes are synchronous, so a request's writes are applied all at once between two turns of
 * the event loop: no other request ever sees part of them.
 *
 * @since 0.1.0
 */
import type { TableDefinition } from "./TableSchema.js"

/**
 * A lookup value as stored: the target table and the record id.
 *
 * @since 0.1.0
 */
export interface LookupValue {
  readonly table: string
  readonly id: string
}

/**
 * A stored record. `values` maps column logical names to JSON values or lookups.
 *
 * @since 0.1.0
 */
export interface StoredRecord {
  readonly id: string
  /** Position in insertion order; paging continues after the last `seq` served. */
  readonly seq: number
  readonly version: number
  readonly values: Readonly<Record<string, unknown>>
}

/**
 * A record ready to be written: validated, with its id decided.
 *
 * @since 0.1.0
 */
export interface PreparedRecord {
  readonly id: string
  readonly values: Readonly<Record<string, unknown>>
}

/**
 * The records of one table.
 *
 * @since 0.1.0
 */
export class TableStore {
  readonly byId = new Map<string, StoredRecord>()
  /** Insertion order; holds deleted records until the next compaction. */
  private ordered: Array<StoredRecord> = []
  private readonly keyIndexes = new Map<string, Map<string, string>>()

  constructor(readonly definition: TableDefinition, private readonly nextSeq: () => number) {
    for (const key of definition.keys) this.keyIndexes.set(key.logicalName, new Map())
  }

  /** How many live records the table holds. */
  get size(): number {
    return this.byId.size
  }

  get(id: string): StoredRecord | undefined {
    return this.byId.get(id.toLowerCase())
  }

  /** Finds a record by the values of an alternate key. */
  getByKey(keyName: string, values: ReadonlyArray<unknown>): StoredRecord | undefined {
    const id = this.keyIndexes.get(keyName)?.get(keyString(values))
    return id === undefined ? undefined : this.byId.get(id)
  }

  /**
   * The alternate key (if any) that one of `records` would violate, either against stored
   * records or against another record of the same batch.
   */
  findKeyConflict(records: ReadonlyArray<PreparedRecord>): string | undefined {
    for (const key of this.definition.keys) {
      const index = this.keyIndexes.get(key.logicalName)!
      const seen = new Set<string>()
      for (const record of records) {
        const values = key.keyAttributes.map((column) => record.values[column])
        if (values.some((v) => v === undefined || v === null)) continue
        const text = keyString(values)
        if (index.has(text) || seen.has(text)) return key.logicalName
        seen.add(text)
      }
    }
    return undefined
  }

  /** Inserts records that were validated, whose ids and keys are known to be free. */
  insertAll(records: ReadonlyArray<PreparedRecord>): void {
    for (const record of records) {
      const stored: StoredRecord = {
        id: record.id,
        seq: this.nextSeq(),
        version: this.nextSeq(),
        values: record.values
      }
      this.byId.set(record.id, stored)
      this.ordered.push(stored)
      for (const key of this.definition.keys) {
        const values = key.keyAttributes.map((column) => record.values[column])
        if (values.some((v) => v === undefined || v === null)) continue
        this.keyIndexes.get(key.logicalName)!.set(keyString(values), record.id)
      }
    }
  }

  /**
   * Up to `limit` live records with `seq` greater than `afterSeq`, in insertion order, and
   * whether more follow.
   */
  page(afterSeq: number, limit: number): { readonly records: Array<StoredRecord>; readonly more: boolean } {
    let lo = 0
    let hi = this.ordered.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.ordered[mid]!.seq <= afterSeq) lo = mid + 1
      else hi = mid
    }
    const records: Array<StoredRecord> = []
    let i = lo
    for (; i < this.ordered.length && records.length < limit; i++) {
      const record = this.ordered[i]!
      if (this.byId.get(record.id) === record) records.push(record)
    }
    for (; i < this.ordered.length; i++) {
      const record = this.ordered[i]!
      if (this.byId.get(record.id) === record) return { records, more: true }
    }
    return { records, more: false }
  }

  /** Removes every record. */
  clear(): void {
    this.byId.clear()
    this.ordered = []
    for (const index of this.keyIndexes.values()) index.clear()
  }
}

const keyString = (values: ReadonlyArray<unknown>): string =>
  JSON.stringify(values.map((v) => (typeof v === "string" ? v.toLowerCase() : v)))

/**
 * All tables of one emulator.
 *
 * @since 0.1.0
 */
export class Store {
  private seq = 0
  private readonly byLogicalName = new Map<string, TableStore>()
  private readonly byEntitySet = new Map<string, TableStore>()

  constructor(tables: ReadonlyArray<TableDefinition>) {
    for (const definition of tables) {
      const table = new TableStore(definition, () => ++this.seq)
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

  /** Removes every record of every table. */
  clear(): void {
    for (const table of this.byLogicalName.values()) table.clear()
  }
}

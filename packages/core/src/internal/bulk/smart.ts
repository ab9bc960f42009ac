import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { DataverseClient } from "../../DataverseClient.js"
import type { DataverseError } from "../../DataverseError.js"
import * as Query from "../../Query.js"
import type { Row } from "../../Records.js"
import { kindOfAttributeType } from "../keys.js"
import type { ColumnMetadata, TableMetadata } from "../metadata.js"
import { normaliseGuid } from "../odata.js"

/** A row smart mode decides about. */
export interface SmartItem {
  readonly index: number
  readonly row: Row
  /** The primary key the row names, lower case. */
  readonly id: string | undefined
}

/** What to do with each row. */
export interface SmartPlan {
  /** Rows whose record exists: the id found, and the row reduced to what changes (or all of it). */
  readonly update: Array<{ readonly item: SmartItem; readonly id: string; readonly row: Row }>
  readonly create: Array<SmartItem>
  readonly unchanged: Array<{ readonly item: SmartItem; readonly id: string }>
  readonly skipped: Array<{ readonly item: SmartItem; readonly id: string | undefined }>
}

/** Records to look up per query: `In` lists for one column, `or`-ed `and`s for composite keys. */
const groupOf = (composite: boolean) => (composite ? 25 : 100)

const keyIdentity = (values: ReadonlyArray<unknown>): string =>
  JSON.stringify(values.map((value) => (typeof value === "string" ? value.toLowerCase() : String(value))))

/**
 * Looks the rows' records up (by primary key, or by the `key` columns) and sorts the rows into
 * create, update (only the changed columns unless `allColumns`), unchanged and skipped.
 */
export const planSmart = (options: {
  readonly metadata: TableMetadata
  readonly items: ReadonlyArray<SmartItem>
  readonly key: ReadonlyArray<string> | undefined
  readonly create: boolean
  readonly update: boolean
  readonly allColumns: boolean
}): Effect.Effect<SmartPlan, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const { metadata } = options
    const pk = metadata.primaryIdAttribute
    const byKey = options.key !== undefined && options.key.length > 0
    const keyColumns = byKey ? options.key! : [pk]
    const identityOf = (item: SmartItem): string | undefined => {
      if (!byKey) return item.id
      const values = keyColumns.map((column) => item.row[column])
      return values.some((value) => value === undefined || value === null) ? undefined : keyIdentity(values)
    }
    const columns = new Set<string>([pk, ...keyColumns])
    for (const item of options.items) {
      for (const name of Object.keys(item.row)) {
        const column = storedColumn(metadata, name)
        if (column !== undefined) columns.add(column)
      }
    }
    const lookups = options.items.filter((item) => identityOf(item) !== undefined)
    const found = new Map<string, Row>()
    const composite = keyColumns.length > 1
    for (let i = 0; i < lookups.length; i += groupOf(composite)) {
      const group = lookups.slice(i, i + groupOf(composite))
      const filter = composite
        ? Query.or(
          ...group.map((item) =>
            Query.and(
              ...(keyColumns.map((column) => Query.eq(column, item.row[column] as Query.FilterValue)) as [
                string,
                ...Array<string>
              ])
            )
          ) as [string, ...Array<string>]
        )
        : Query.isIn(
          keyColumns[0]!,
          group.map((item) => (byKey ? String(item.row[keyColumns[0]!]) : item.id!))
        )
      const records = yield* Stream.runCollect(
        Query.stream(metadata.logicalName, { select: [...columns].map(selectName(metadata)), filter })
      )
      for (const record of records) {
        const identity = byKey
          ? keyIdentity(keyColumns.map((column) => record[column]))
          : String(record[pk]).toLowerCase()
        found.set(identity, record)
      }
    }
    const plan: SmartPlan = { update: [], create: [], unchanged: [], skipped: [] }
    for (const item of options.items) {
      const identity = identityOf(item)
      const record = identity === undefined ? undefined : found.get(identity)
      if (record === undefined) {
        if (options.create) plan.create.push(item)
        else plan.skipped.push({ item, id: item.id })
        continue
      }
      const id = String(record[pk]).toLowerCase()
      const changed: Record<string, unknown> = {}
      let differs = false
      for (const [name, value] of Object.entries(item.row)) {
        if (name === pk || (byKey && keyColumns.includes(name))) continue
        if (name.startsWith("@odata.")) continue
        if (!sameValue(metadata, name, value, record)) {
          changed[name] = value
          differs = true
        }
      }
      if (!differs) plan.unchanged.push({ item, id })
      else if (!options.update) plan.skipped.push({ item, id })
      else {
        const row: Record<string, unknown> = options.allColumns ? { ...item.row } : changed
        if (byKey) { for (const column of keyColumns) delete row[column] }
        plan.update.push({ item, id, row: { ...row, [pk]: id } })
      }
    }
    return plan
  })

/** The stored column a written property reads back as: lookups by `nav@odata.bind`. */
const storedColumn = (metadata: TableMetadata, name: string): string | undefined => {
  if (name.endsWith("@odata.bind")) {
    const navigation = name.slice(0, -"@odata.bind".length)
    return metadata.lookups.find((lookup) => lookup.navigationProperty === navigation)?.column
  }
  if (name.startsWith("@") || name.includes("@")) return undefined
  return metadata.columns.some((column) => column.logicalName === name) ? name : undefined
}

/** Lookups read back as `_<column>_value`. */
const selectName = (metadata: TableMetadata) => (column: string): string => {
  const meta = metadata.columns.find((c) => c.logicalName === column)
  return meta !== undefined && isLookup(meta) ? `_${column}_value` : column
}

const isLookup = (column: ColumnMetadata) =>
  column.type === "Lookup" || column.type === "Customer" || column.type === "Owner"

/** Whether writing `value` to `name` would leave the record as it is. */
const sameValue = (metadata: TableMetadata, name: string, value: unknown, record: Row): boolean => {
  if (name.endsWith("@odata.bind")) {
    const column = storedColumn(metadata, name)
    if (column === undefined) return false
    const stored = record[`_${column}_value`]
    if (value === null) return stored === null || stored === undefined
    // Only `/<set>(<guid>)` can be compared without asking; a bind by alternate key counts as a change.
    const match = typeof value === "string" ? /\(([0-9a-fA-F-]{36})\)$/.exec(value) : null
    return match !== null && typeof stored === "string" && stored.toLowerCase() === match[1]!.toLowerCase()
  }
  const meta = metadata.columns.find((column) => column.logicalName === name)
  const stored = record[meta !== undefined && isLookup(meta) ? `_${name}_value` : name]
  if (value === null || value === undefined) return stored === null || stored === undefined
  if (stored === null || stored === undefined) return false
  switch (kindOfAttributeType(meta?.type)) {
    case "number":
      return Number(value) === Number(stored)
    case "boolean":
      return Boolean(value) === Boolean(stored)
    case "datetime": {
      const a = Date.parse(value instanceof Date ? value.toISOString() : String(value))
      return !Number.isNaN(a) && a === Date.parse(String(stored))
    }
    case "guid":
      return normaliseGuid(String(value)) === normaliseGuid(String(stored))
    default:
      if (meta?.typeName === "MultiSelectPicklistType") {
        const set = (v: unknown) => String(v).split(",").map((s) => s.trim()).filter((s) => s !== "").sort().join(",")
        return set(value) === set(stored)
      }
      return typeof value === "object" ? JSON.stringify(value) === JSON.stringify(stored) : value === stored
  }
}

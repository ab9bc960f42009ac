import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import { DataverseClient } from "../../DataverseClient.js"
import { type DataverseError, isRunFailure } from "../../DataverseError.js"
import type { TableMetadata } from "../../Metadata.js"
import type * as Query from "../../Query.js"
import type { KeyValue, Row } from "../../Records.js"
import { formatKeyValue, type KeyKind, kindOfAttributeType, kindsOf } from "../keys.js"
import { instantOf, type KeyLiteral, normaliseGuid, parseBind, type ParsedBind, quote } from "../odata.js"
import * as internalQuery from "../query.js"
import * as internalFilter from "../queryFilter.js"
import { isLookup } from "../validate.js"
import { lookUpInGroups } from "./lookupGroups.js"
import { partitionOf } from "./prepare.js"

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
  /** Rows left as they are: no record (`found` false) and `create` false, or a record that differs and `update` false. */
  readonly skipped: Array<{ readonly item: SmartItem; readonly id: string | undefined; readonly found: boolean }>
  /** Rows whose key values name several records (a `key` that is not unique): which to change is unknown. */
  readonly ambiguous: Array<{ readonly item: SmartItem; readonly records: number }>
}

/**
 * Lookups bound by alternate key (`/accounts(accountnumber='A-1')`) resolved during a run: per
 * target table and key columns, the key values to the record's id (null: no such record).
 */
export type BindCache = Map<string, Map<string, string | null>>

/** A cache for one run. */
export const makeBindCache = (): BindCache => new Map()

/**
 * Records to look up per query by a composite key (`or`-ed `and`s); an `In` list for one column
 * takes `maxInValues`. Both kinds of group also stay within the URL's budget (`groupsForFilter`).
 */
const maxCompositeKeys = 25

/**
 * The identity of a record's key values, as each column compares them (`keyText`): a row's
 * `2024-05-01 10:00` and the record's `2024-05-01T10:00:00Z` are one key, as are `7` and `"7"`, or a
 * GUID in braces and in lower case. Compared as text, such a row found its record and still went
 * to create: a duplicate on every run, or a 412 by an alternate key.
 */
const keyIdentity = (
  kindOf: (column: string) => KeyKind | undefined,
  columns: ReadonlyArray<string>,
  values: ReadonlyArray<unknown>
): string => JSON.stringify(values.map((value, i) => keyText(kindOf(columns[i]!), value)))

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
  /** Alternate-key binds resolved so far in the run (a new cache per call when omitted). */
  readonly bindCache?: BindCache
  /** A filter every lookup also meets (an elastic table's partition). */
  readonly within?: string
  /** Headers of every lookup (an elastic table's `MSCRM.SessionToken`). */
  readonly headers?: Readonly<Record<string, string>>
}): Effect.Effect<SmartPlan, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const { metadata } = options
    const pk = metadata.primaryIdAttribute
    const elastic = metadata.tableType === "Elastic"
    const byKey = options.key !== undefined && options.key.length > 0
    const keyColumns = byKey ? options.key! : [pk]
    const kindOf = kindsOf(metadata)
    const identityOf = (item: SmartItem): string | undefined => {
      if (!byKey) return item.id
      const values = keyColumns.map((column) => item.row[column])
      // An empty text names no record, as in `prepare`.
      return values.some((value) => value === undefined || value === null || value === "")
        ? undefined
        : keyIdentity(kindOf, keyColumns, values)
    }
    // An elastic record's partition, for a row that names its record by id or key alone (§8b).
    const columns = new Set<string>([pk, ...keyColumns, ...(elastic ? ["partitionid"] : [])])
    for (const item of options.items) {
      for (const name of Object.keys(item.row)) {
        const column = storedColumn(metadata, name)
        if (column !== undefined) columns.add(column)
      }
    }
    const lookups = options.items.filter((item) => identityOf(item) !== undefined)
    // The table a polymorphic lookup points at comes back as an annotation, when asked for.
    const polymorphic = options.items.some((item) =>
      Object.keys(item.row).some((name) => {
        const column = storedColumn(metadata, name)
        return column !== undefined && metadata.lookups.filter((lookup) => lookup.column === column).length > 1
      })
    )
    const headers = polymorphic
      ? { ...options.headers, Prefer: `odata.include-annotations="${lookupTableAnnotation}"` }
      : options.headers
    const found = new Map<string, Row>()
    // Key values more than one record holds: `key` may name columns that are not an alternate key.
    const matches = new Map<string, number>()
    const composite = keyColumns.length > 1
    // Each key value as the column's literal (a date-only column's day bare, not a quoted string,
    // which the service compares as Edm.String and refuses), as in the record's URL.
    const keyLiteral = (column: string, value: unknown): Query.FilterValue =>
      Either.match(formatKeyValue(column, value as KeyValue, kindOf(column)), {
        onLeft: () => value as Query.FilterValue,
        onRight: internalFilter.raw
      })
    const keyMatch = (item: SmartItem) =>
      internalFilter.and(
        ...(keyColumns.map((column) => internalFilter.eq(column, keyLiteral(column, item.row[column]))) as [
          string,
          ...Array<string>
        ])
      )
    const within = (filter: string) =>
      options.within === undefined ? filter : internalFilter.and(options.within, filter)
    const inValue = (item: SmartItem) => (byKey ? String(item.row[keyColumns[0]!]) : item.id!)
    const select = [...columns].map(selectName(metadata))
    // A wide table's `$select` (and the filter around the lookups) takes its share of the URL.
    const budget = internalFilter.filterBudgetBeside(select.join(",") + (options.within ?? ""))
    const groups = composite
      ? internalFilter.groupsForFilter(lookups, keyMatch, maxCompositeKeys, budget)
      : internalFilter.groupsForFilter(lookups, (item) => quote(inValue(item)), internalFilter.maxInValues, budget)
    yield* lookUpInGroups(groups, (group) =>
      Effect.map(
        Stream.runCollect(
          internalQuery.stream(metadata.logicalName, {
            select,
            filter: within(
              composite
                ? internalFilter.or(...(group.map(keyMatch) as [string, ...Array<string>]))
                : internalFilter.isIn(keyColumns[0]!, group.map(inValue))
            ),
            ...(headers === undefined ? {} : { headers })
          })
        ),
        (records) => {
          for (const record of records) {
            const identity = byKey
              ? keyIdentity(kindOf, keyColumns, keyColumns.map((column) => record[column]))
              : String(record[pk]).toLowerCase()
            found.set(identity, record)
            matches.set(identity, (matches.get(identity) ?? 0) + 1)
          }
        }
      ))
    const binds = yield* resolveBinds(
      metadata,
      options.items.filter((item) => {
        const identity = identityOf(item)
        return identity !== undefined && found.has(identity)
      }),
      options.bindCache ?? makeBindCache()
    )
    const plan: SmartPlan = { update: [], create: [], unchanged: [], skipped: [], ambiguous: [] }
    for (const item of options.items) {
      const identity = identityOf(item)
      const records = identity === undefined ? 0 : matches.get(identity) ?? 0
      if (records > 1) {
        plan.ambiguous.push({ item, records })
        continue
      }
      const record = identity === undefined ? undefined : found.get(identity)
      if (record === undefined) {
        if (options.create) plan.create.push(item)
        else plan.skipped.push({ item, id: item.id, found: false })
        continue
      }
      const id = String(record[pk]).toLowerCase()
      const changed: Record<string, unknown> = {}
      let differs = false
      for (const [name, value] of Object.entries(item.row)) {
        if (name === pk || (byKey && keyColumns.includes(name))) continue
        if (name.startsWith("@odata.")) continue
        if (!sameValue(metadata, name, value, record, binds)) {
          changed[name] = value
          differs = true
        }
      }
      if (!differs) plan.unchanged.push({ item, id })
      else if (!options.update) plan.skipped.push({ item, id, found: true })
      else {
        const row: Record<string, unknown> = options.allColumns ? { ...item.row } : changed
        if (byKey) { for (const column of keyColumns) delete row[column] }
        // An elastic record is named by its id and its partition together (wire reference §8b):
        // the row's, else the one the record was found in.
        const partition = elastic ? partitionOf(item.row) ?? partitionOf(record) : undefined
        if (partition !== undefined) row["partitionid"] = partition
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

/** Whether writing `value` to `name` would leave the record as it is. */
const sameValue = (
  metadata: TableMetadata,
  name: string,
  value: unknown,
  record: Row,
  binds: ResolvedBinds
): boolean => {
  if (name.endsWith("@odata.bind")) {
    const navigation = name.slice(0, -"@odata.bind".length)
    const lookup = metadata.lookups.find((l) => l.navigationProperty === navigation)
    if (lookup === undefined) return false
    const stored = record[`_${lookup.column}_value`]
    if (value === null) return stored === null || stored === undefined
    if (typeof value !== "string" || typeof stored !== "string") return false
    // The record pointed at: by id in the bind, or found by its alternate key (none: a change).
    const parsed = parseBind(value)
    const id = parsed?.id ?? binds.get(bindKey(navigation, value))
    if (id === undefined || id === null || id !== stored.toLowerCase()) return false
    // A lookup to several tables: the same table too, when the service said which.
    const table = record[`_${lookup.column}_value@${lookupTableAnnotation}`]
    return typeof table !== "string" || table.toLowerCase() === lookup.target.toLowerCase()
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
      const a = instantOf(value)
      return !Number.isNaN(a) && a === instantOf(stored)
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

const lookupTableAnnotation = "Microsoft.Dynamics.CRM.lookuplogicalname"

/** Binds resolved for one chunk: `bindKey(navigation, value)` to the id (null: no such record). */
type ResolvedBinds = ReadonlyMap<string, string | null>

const bindKey = (navigation: string, value: string) => `${navigation}\u0000${value}`

/** A key value as compared: strings and GUIDs in lower case, numbers and dates by value. */
const keyText = (kind: KeyKind | undefined, value: unknown): string => {
  if (value === null || value === undefined) return "\u0000"
  switch (kind) {
    case "number": {
      const n = Number(value)
      return Number.isNaN(n) ? String(value) : String(n)
    }
    case "datetime":
    case "date": {
      const t = instantOf(value)
      return Number.isNaN(t) ? String(value) : String(t)
    }
    case "guid":
      return normaliseGuid(String(value)) ?? String(value).toLowerCase()
    default:
      return String(value).toLowerCase()
  }
}

/**
 * Finds the records that the rows' binds by alternate key point at: one query per target table,
 * key columns and group of keys, through the run's client (and so its throttle), remembering
 * each answer in `cache` for the rest of the run. A bind that cannot be resolved (no such record,
 * a key the target refuses, a target that cannot be read) is left out: its row counts as changed
 * and is sent, to succeed or fail on its own.
 */
const resolveBinds = (
  metadata: TableMetadata,
  items: ReadonlyArray<SmartItem>,
  cache: BindCache
): Effect.Effect<ResolvedBinds, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const resolved = new Map<string, string | null>()
    // Per target table: the binds to resolve.
    const wanted = new Map<string, Array<{ readonly navigation: string; readonly value: string; key: ParsedBind }>>()
    for (const item of items) {
      for (const [name, value] of Object.entries(item.row)) {
        if (!name.endsWith("@odata.bind") || typeof value !== "string") continue
        const navigation = name.slice(0, -"@odata.bind".length)
        const lookup = metadata.lookups.find((l) => l.navigationProperty === navigation)
        const parsed = parseBind(value)
        if (lookup === undefined || parsed?.key === undefined || resolved.has(bindKey(navigation, value))) continue
        resolved.set(bindKey(navigation, value), null)
        const list = wanted.get(lookup.target) ?? []
        list.push({ navigation, value, key: parsed })
        wanted.set(lookup.target, list)
      }
    }
    if (wanted.size === 0) return resolved
    const client = yield* DataverseClient
    // A failure of the row's own kind (a refused key, a table that cannot be read) leaves it unresolved.
    const orUnresolved = <A>(effect: Effect.Effect<A, DataverseError, DataverseClient>, fallback: A) =>
      Effect.catchAll(effect, (error) =>
        isRunFailure(error) && error.reason !== "Forbidden" ? Effect.fail(error) : Effect.succeed(fallback))
    for (const [targetName, binds] of wanted) {
      const target = yield* orUnresolved(
        Effect.map(client.table(targetName), (t): TableMetadata | undefined =>
          t),
        undefined
      )
      if (target === undefined) {
        continue
      }
      const kindOf = kindsOf(target)
      // Per set of key columns: the identities still to look up.
      const pending = new Map<string, Map<string, ReadonlyArray<readonly [string, KeyLiteral]>>>()
      const identities: Array<
        { readonly bind: (typeof binds)[number]; readonly group: string; readonly identity: string }
      > = []
      for (const bind of binds) {
        if (bind.key.entitySet.toLowerCase() !== target.entitySetName.toLowerCase()) continue
        const key = [...bind.key.key!].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        if (key.length === 1 && key[0]![0] === target.primaryIdAttribute) {
          resolved.set(bindKey(bind.navigation, bind.value), normaliseGuid(key[0]![1].text) ?? null)
          continue
        }
        const group = `${target.logicalName}(${key.map(([column]) => column).join(",")})`
        const identity = JSON.stringify(key.map(([column, literal]) => keyText(kindOf(column), literal.text)))
        identities.push({ bind, group, identity })
        if (cache.get(group)?.has(identity) === true) continue
        const keys = pending.get(group) ?? new Map()
        keys.set(identity, key)
        pending.set(group, keys)
      }
      for (const [group, keys] of pending) {
        const known = cache.get(group) ?? new Map<string, string | null>()
        cache.set(group, known)
        const all = [...keys.entries()]
        const columns = all[0]![1].map(([column]) => column)
        const filterName = selectName(target)
        const value = (
          literal: KeyLiteral
        ): Query.FilterValue => (literal.quoted ? literal.text : internalFilter.raw(literal.text))
        const keyMatch = ([, key]: (typeof all)[number]) =>
          internalFilter.and(
            ...(key.map(([column, literal]) => internalFilter.eq(filterName(column), value(literal))) as [
              string,
              ...Array<string>
            ])
          )
        const asIn = columns.length === 1 && all.every(([, key]) => key[0]![1].quoted)
        const groups = asIn
          ? internalFilter.groupsForFilter(all, ([, key]) => quote(key[0]![1].text), internalFilter.maxInValues)
          : internalFilter.groupsForFilter(
            all,
            keyMatch,
            columns.length > 1 ? maxCompositeKeys : internalFilter.maxInValues
          )
        const lookUp = (part: ReadonlyArray<(typeof all)[number]>) =>
          Effect.map(
            Stream.runCollect(
              internalQuery.stream(target.logicalName, {
                select: [target.primaryIdAttribute, ...columns.map(filterName)],
                filter: asIn
                  ? internalFilter.isIn(filterName(columns[0]!), part.map(([, key]) => key[0]![1].text))
                  : internalFilter.or(...(part.map(keyMatch) as [string, ...Array<string>]))
              })
            ),
            (records) => {
              for (const record of records) {
                const identity = JSON.stringify(
                  columns.map((column) => keyText(kindOf(column), record[filterName(column)]))
                )
                const id = normaliseGuid(String(record[target.primaryIdAttribute]))
                if (id !== undefined) known.set(identity, id)
              }
            }
          )
        for (const slice of groups) {
          yield* orUnresolved(lookUpInGroups([slice], lookUp), undefined)
          for (const [identity] of slice) if (!known.has(identity)) known.set(identity, null)
        }
      }
      for (const { bind, group, identity } of identities) {
        resolved.set(bindKey(bind.navigation, bind.value), cache.get(group)?.get(identity) ?? null)
      }
    }
    return resolved
  })

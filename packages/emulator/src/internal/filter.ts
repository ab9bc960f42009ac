/**
 * OData `$filter` and `$orderby` as Dataverse evaluates them, compiled once into closures that
 * run over stored records. Also the condition machinery FetchXML shares (`fetchxml.ts`): typed
 * fields, SQL-like comparisons, T-SQL `LIKE` patterns and the date operators.
 *
 * Semantics follow Dataverse, whose queries end up as SQL Server queries:
 * - strings compare case-insensitively (the default `*_CI_AS` collation) and ignore trailing
 *   spaces in `=` and ordering, as SQL Server pads for comparison;
 * - a comparison with an unset column is unknown, so neither `x eq 'a'` nor `not (x eq 'a')`
 *   matches a record whose `x` is null; only `x eq null` / `x ne null` test for null;
 * - `contains`, `startswith` and `endswith` are `LIKE` patterns: `%`, `_`, `[a-c]` and `[^a]` in
 *   the value are wildcards (learn.microsoft.com, "Use wildcard characters in conditions for
 *   string values");
 * - operator precedence is Microsoft.OData.Core's: `not` binds tighter than the comparisons,
 *   so `not name eq 'a'` is a type error and `not contains(name,'a')` is fine.
 *
 * Errors are `Fault`s with the texts the OData library and the query builder use.
 */
import type { LookupValue, StoredRecord } from "../Store.js"
import type { ColumnDefinition, TableDefinition } from "../TableSchema.js"
import { codes, Fault } from "./fault.js"
import { columnsOf, edmTypeOf, parseGuid } from "./records.js"

// ---------------------------------------------------------------------------------------------
// Fields and values (shared with fetchxml.ts)
// ---------------------------------------------------------------------------------------------

/** How a column's values compare. */
export type ValueKind = "string" | "number" | "boolean" | "datetime" | "guid"

/** A compiled predicate over stored records. */
export type Predicate = (record: StoredRecord) => boolean

/** A compiled ordering of stored records. */
export type Comparator = (a: StoredRecord, b: StoredRecord) => number

/**
 * A column a query refers to: how to read it from a stored record and how it compares.
 * `get` returns null when the column is unset, the lookup's id for lookups, `record.id` for the
 * primary key.
 */
export interface Field {
  /** The name as the query wrote it (`_parentcustomerid_value` in OData, the logical name in FetchXML). */
  readonly name: string
  /** The attribute's logical name. */
  readonly attribute: string
  readonly kind: ValueKind
  readonly edmType: string
  /** Undefined for the primary key. */
  readonly column: ColumnDefinition | undefined
  readonly get: (record: StoredRecord) => unknown
}

/** A literal converted for comparison with a field: datetimes as ms since the epoch, guids lower-case. */
export type Scalar = string | number | boolean

/** Options shared by the compilers. */
export interface QueryOptions {
  /** "Now" for the date operators (`Today`, `LastXDays`, ...), in ms since the epoch. Default: `Date.now()`. */
  readonly now?: number | undefined
  /** OData parameter aliases (`@p1` → `'lastname'`), as they appear in the query string. */
  readonly parameters?: Readonly<Record<string, string>> | undefined
  /**
   * The primary name of a lookup's target, for ordering by a lookup column (Dataverse sorts
   * lookups by the related record's primary name). Without it, lookups sort by id.
   */
  readonly lookupName?: ((lookup: LookupValue) => string | undefined) | undefined
}

const kindOf = (column: ColumnDefinition): ValueKind => {
  switch (column.type) {
    case "String":
    case "Memo":
      return "string"
    case "Integer":
    case "BigInt":
    case "Decimal":
    case "Double":
    case "Money":
    case "Picklist":
    case "State":
    case "Status":
      return "number"
    case "Boolean":
      return "boolean"
    case "DateTime":
      return "datetime"
    default:
      return "guid"
  }
}

const isLookup = (column: ColumnDefinition): boolean =>
  column.type === "Lookup" || column.type === "Customer" || column.type === "Owner"

const columnField = (name: string, column: ColumnDefinition): Field => {
  const attribute = column.logicalName
  const get = isLookup(column)
    ? (record: StoredRecord) => {
      const lookup = record.values[attribute] as LookupValue | null | undefined
      return lookup == null ? null : lookup.id
    }
    : (record: StoredRecord) => record.values[attribute] ?? null
  return { name, attribute, kind: kindOf(column), edmType: edmTypeOf(column), column, get }
}

/**
 * Resolves a name a query uses. `"odata"`: Web API property names (lookups only as
 * `_<column>_value`); `"attribute"`: logical names, as FetchXML and the `PropertyName` of the
 * Dataverse query functions use them (a lookup's logical name compares its id).
 */
export const resolveField = (
  table: TableDefinition,
  name: string,
  naming: "odata" | "attribute"
): Field | undefined => {
  if (name === table.primaryIdAttribute) {
    return {
      name,
      attribute: name,
      kind: "guid",
      edmType: "Edm.Guid",
      column: undefined,
      get: (record) => record.id
    }
  }
  const columns = columnsOf(table)
  if (naming === "odata" && name.startsWith("_") && name.endsWith("_value")) {
    const column = columns.get(name.slice(1, -"_value".length))
    return column !== undefined && isLookup(column) ? columnField(name, column) : undefined
  }
  const column = columns.get(name)
  if (column === undefined || (naming === "odata" && isLookup(column))) return undefined
  return columnField(name, column)
}

// Trailing spaces are insignificant in SQL Server's `=` and ordering of strings.
const trailingSpaces = / +$/
const trimEnd = (text: string): string => text.endsWith(" ") ? text.replace(trailingSpaces, "") : text
const fold = (text: string): string => trimEnd(text).toLowerCase()
// Case-insensitive, accent-sensitive: the behaviour of Dataverse's default SQL collation.
const collator = new Intl.Collator("en-US", { sensitivity: "accent" })

/** Letters, digits and the space: where folded code-point order is the collation's order. */
const isPlain = (code: number): boolean =>
  (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || (code >= 48 && code <= 57) || code === 32

const onlySpacesFrom = (text: string, from: number): boolean => {
  for (let i = from; i < text.length; i++) if (text.charCodeAt(i) !== 32) return false
  return true
}

/**
 * Case-insensitive, accent-sensitive string order, trailing spaces ignored. Sorting a million
 * names through `Intl.Collator` alone takes seconds, so strings are walked by hand while both
 * hold letters, digits and spaces (for which folded code-point order is the collator's order,
 * there being no contractions in the root collation); the collator decides the rest.
 */
export const compareStrings = (a: string, b: string): number => {
  if (a === b) return 0
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (!isPlain(x) || !isPlain(y)) return collator.compare(trimEnd(a), trimEnd(b))
    if (x >= 65 && x <= 90) x += 32
    if (y >= 65 && y <= 90) y += 32
    if (x !== y) return x - y
  }
  if (a.length === b.length) return 0
  return a.length < b.length
    ? (onlySpacesFrom(b, length) ? 0 : -1)
    : (onlySpacesFrom(a, length) ? 0 : 1)
}

const dateMs = (value: unknown): number => typeof value === "number" ? value : Date.parse(value as string)

/** `YYYY-MM-DDTHH:MM:SS[.fff...]Z`: the UTC form stored datetimes have. */
const isIsoUtc = (text: string): boolean =>
  text.length >= 20 && text.charCodeAt(text.length - 1) === 90 && text.charCodeAt(4) === 45 &&
  text.charCodeAt(10) === 84 && (text.charCodeAt(19) === 46 || text.charCodeAt(19) === 90)

/**
 * Compares two UTC ISO strings without parsing them (the hot loop of a date sort): the first 19
 * characters are fixed-width, then the fractions of a second, missing digits counting as zeros.
 */
const compareIsoUtc = (a: string, b: string): number => {
  for (let i = 0; i < 19; i++) {
    const difference = a.charCodeAt(i) - b.charCodeAt(i)
    if (difference !== 0) return difference
  }
  const end = Math.max(a.length, b.length) - 1
  for (let i = 20; i < end; i++) {
    const x = i < a.length - 1 ? a.charCodeAt(i) : 48
    const y = i < b.length - 1 ? b.charCodeAt(i) : 48
    if (x !== y) return x - y
  }
  return 0
}

const compareDates = (a: unknown, b: unknown): number =>
  typeof a === "string" && typeof b === "string" && isIsoUtc(a) && isIsoUtc(b)
    ? compareIsoUtc(a, b)
    : dateMs(a) - dateMs(b)

/** Compares two stored values of the same kind (neither null). */
const compareValues = (kind: ValueKind): (a: unknown, b: unknown) => number => {
  switch (kind) {
    case "string":
      return (a, b) => compareStrings(a as string, b as string)
    case "number":
      return (a, b) => (a as number) - (b as number)
    case "boolean":
      return (a, b) => Number(a) - Number(b)
    case "datetime":
      return compareDates
    case "guid":
      return (a, b) => {
        const x = (a as string).toLowerCase()
        const y = (b as string).toLowerCase()
        return x < y ? -1 : x > y ? 1 : 0
      }
  }
}

/** Tests a stored value against one literal: equality and ordering, with the literal prepared once. */
interface Probe {
  readonly equals: (value: unknown) => boolean
  readonly compare: (value: unknown) => number
}

const probeFor = (kind: ValueKind, literal: Scalar): Probe => {
  switch (kind) {
    case "string": {
      const text = literal as string
      const folded = fold(text)
      return {
        equals: (value) => value === text || fold(value as string) === folded,
        compare: (value) => compareStrings(value as string, text)
      }
    }
    case "datetime": {
      const ms = literal as number
      const iso = new Date(ms).toISOString()
      const fast = isIsoUtc(iso)
      const compare = (value: unknown): number =>
        fast && typeof value === "string" && isIsoUtc(value) ? compareIsoUtc(value, iso) : dateMs(value) - ms
      return { equals: (value) => compare(value) === 0, compare }
    }
    case "guid": {
      const id = literal as string
      return {
        // Stored ids are lower-case already; the length check spares a lower-casing per miss.
        equals: (value) =>
          value === id || ((value as string).length === id.length && (value as string).toLowerCase() === id),
        compare: (value) => {
          const x = (value as string).toLowerCase()
          return x < id ? -1 : x > id ? 1 : 0
        }
      }
    }
    default: {
      const compare = compareValues(kind)
      return { equals: (value) => value === literal, compare: (value) => compare(value, literal) }
    }
  }
}

/** Wraps a test of a non-null value: null never matches, negated or not (SQL's unknown). */
const guarded = (field: Field, test: (value: unknown) => boolean, negate: boolean): Predicate => {
  const get = field.get
  return negate
    ? (record) => {
      const value = get(record)
      return value !== null && !test(value)
    }
    : (record) => {
      const value = get(record)
      return value !== null && test(value)
    }
}

const never: Predicate = () => false

/** The comparison operators, as OData and FetchXML spell them. */
export type ComparisonOperator = "eq" | "ne" | "gt" | "ge" | "lt" | "le"

/** `field <op> literal`; a null literal makes `eq`/`ne` null tests and every other operator false. */
export const comparison = (
  field: Field,
  operator: ComparisonOperator,
  literal: Scalar | null,
  negate: boolean
): Predicate => {
  if (literal === null) {
    if (operator !== "eq" && operator !== "ne") return never
    return nullTest(field, (operator === "eq") !== negate)
  }
  const probe = probeFor(field.kind, literal)
  const { compare, equals } = probe
  switch (operator) {
    case "eq":
      return guarded(field, equals, negate)
    case "ne":
      return guarded(field, (value) => !equals(value), negate)
    case "gt":
      return guarded(field, (value) => compare(value) > 0, negate)
    case "ge":
      return guarded(field, (value) => compare(value) >= 0, negate)
    case "lt":
      return guarded(field, (value) => compare(value) < 0, negate)
    case "le":
      return guarded(field, (value) => compare(value) <= 0, negate)
  }
}

/** `field is null` (or `is not null`); never unknown. */
export const nullTest = (field: Field, isNull: boolean): Predicate => {
  const get = field.get
  return isNull ? (record) => get(record) === null : (record) => get(record) !== null
}

/** Two columns of the same row compared (`firstname eq lastname`, FetchXML `valueof`). */
export const columnComparison = (
  left: Field,
  operator: ComparisonOperator,
  right: Field,
  negate: boolean
): Predicate => {
  const compare = compareValues(left.kind)
  const equals = left.kind === "string"
    ? (a: unknown, b: unknown) => a === b || fold(a as string) === fold(b as string)
    : (a: unknown, b: unknown) => compare(a, b) === 0
  const test: (a: unknown, b: unknown) => boolean = operator === "eq"
    ? equals
    : operator === "ne"
    ? (a, b) => !equals(a, b)
    : operator === "gt"
    ? (a, b) => compare(a, b) > 0
    : operator === "ge"
    ? (a, b) => compare(a, b) >= 0
    : operator === "lt"
    ? (a, b) => compare(a, b) < 0
    : (a, b) => compare(a, b) <= 0
  const getLeft = left.get
  const getRight = right.get
  return (record) => {
    const a = getLeft(record)
    const b = getRight(record)
    return a !== null && b !== null && test(a, b) !== negate
  }
}

/** `field in (values)` (`not in` when negated); a set lookup per record, so long lists stay cheap. */
export const membership = (field: Field, values: ReadonlyArray<Scalar>, negate: boolean): Predicate => {
  switch (field.kind) {
    case "string": {
      const set = new Set(values.map((value) => fold(value as string)))
      return guarded(field, (value) => set.has(fold(value as string)), negate)
    }
    case "datetime": {
      const set = new Set(values)
      return guarded(field, (value) => set.has(dateMs(value)), negate)
    }
    case "guid": {
      const set = new Set(values)
      return guarded(field, (value) => set.has((value as string).toLowerCase()), negate)
    }
    default: {
      const set = new Set(values)
      return guarded(field, (value) => set.has(value as Scalar), negate)
    }
  }
}

/** `low <= field <= high` (`not between` when negated). */
export const between = (field: Field, low: Scalar, high: Scalar, negate: boolean): Predicate => {
  const from = probeFor(field.kind, low).compare
  const to = probeFor(field.kind, high).compare
  return guarded(field, (value) => from(value) >= 0 && to(value) <= 0, negate)
}

// Unicode-mode regular expressions refuse needless escapes: `-` is escaped only inside a set.
const regexSpecials = /[\\^$.*+?()[\]{}|/]/g
const escapeRegex = (text: string): string => text.replace(regexSpecials, "\\$&")
const escapeInSet = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&")

/**
 * Compiles a T-SQL `LIKE` pattern (`%`, `_`, `[abc]`, `[a-c]`, `[^a]`; `[%]` for a literal `%`)
 * into a case-insensitive regular expression, once per query.
 */
export const likePattern = (pattern: string): RegExp => {
  let source = "^"
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!
    if (char === "%") source += "[\\s\\S]*"
    else if (char === "_") source += "[\\s\\S]"
    else if (char === "[") {
      const close = pattern.indexOf("]", i + 2)
      if (close < 0) {
        // An unclosed bracket is a literal, as nothing could close the set.
        source += "\\["
        continue
      }
      let body = pattern.slice(i + 1, close)
      let negated = false
      if (body.startsWith("^") && body.length > 1) {
        negated = true
        body = body.slice(1)
      }
      let set = ""
      for (let j = 0; j < body.length; j++) {
        const c = body[j]!
        if (c === "-" && j > 0 && j < body.length - 1) set += "-"
        else set += escapeInSet(c)
      }
      source += `[${negated ? "^" : ""}${set}]`
      i = close
    } else source += escapeRegex(char)
  }
  return new RegExp(source + "$", "iu")
}

/** `field like pattern` (`not like` when negated); the pattern is compiled once. */
export const like = (field: Field, pattern: string, negate: boolean): Predicate => {
  const regex = likePattern(pattern)
  return field.kind === "string"
    ? guarded(field, (value) => regex.test(value as string), negate)
    : guarded(field, (value) => regex.test(String(value)), negate)
}

// ---------------------------------------------------------------------------------------------
// Date operators (shared with fetchxml.ts); computed in UTC, weeks start on Sunday
// ---------------------------------------------------------------------------------------------

const minute = 60_000
const hour = 3_600_000
const day = 86_400_000

const startOfDay = (ms: number): number => Math.floor(ms / day) * day

/** Adds months as .NET's `AddMonths` does: the day is clamped to the target month's length. */
const addMonths = (ms: number, months: number): number => {
  const date = new Date(ms)
  const target = date.getUTCFullYear() * 12 + date.getUTCMonth() + months
  const year = Math.floor(target / 12)
  const month = target - year * 12
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate()
  return Date.UTC(
    year,
    month,
    Math.min(date.getUTCDate(), lastDay),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    date.getUTCMilliseconds()
  )
}

const startOfMonth = (ms: number): number => {
  const date = new Date(ms)
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1)
}

const startOfYear = (ms: number): number => Date.UTC(new Date(ms).getUTCFullYear(), 0, 1)

/** The date operators, in FetchXML's spelling; the OData functions map onto them. */
export const dateOperators = {
  today: "none",
  yesterday: "none",
  tomorrow: "none",
  "last-seven-days": "none",
  "next-seven-days": "none",
  "last-week": "none",
  "this-week": "none",
  "next-week": "none",
  "last-month": "none",
  "this-month": "none",
  "next-month": "none",
  "last-year": "none",
  "this-year": "none",
  "next-year": "none",
  "last-x-hours": "count",
  "next-x-hours": "count",
  "last-x-days": "count",
  "next-x-days": "count",
  "last-x-weeks": "count",
  "next-x-weeks": "count",
  "last-x-months": "count",
  "next-x-months": "count",
  "last-x-years": "count",
  "next-x-years": "count",
  "olderthan-x-minutes": "count",
  "olderthan-x-hours": "count",
  "olderthan-x-days": "count",
  "olderthan-x-weeks": "count",
  "olderthan-x-months": "count",
  "olderthan-x-years": "count",
  on: "date",
  "on-or-after": "date",
  "on-or-before": "date"
} as const

/** A date operator's name. */
export type DateOperator = keyof typeof dateOperators

/**
 * The half-open range `[from, to)` of instants a date operator accepts. `argument` is X for the
 * `*-x-*` operators and the date (ms) for `on*`. "Last" ranges end now, "next" ranges start now;
 * both run to the start or end of the day X units away, as the service's descriptions say
 * ("within the last X days").
 */
export const dateRange = (operator: DateOperator, now: number, argument: number): readonly [number, number] => {
  const today = startOfDay(now)
  const week = today - new Date(today).getUTCDay() * day
  const month = startOfMonth(now)
  const year = startOfYear(now)
  const untilNow = now + 1
  switch (operator) {
    case "today":
      return [today, today + day]
    case "yesterday":
      return [today - day, today]
    case "tomorrow":
      return [today + day, today + 2 * day]
    case "last-seven-days":
      return [today - 7 * day, untilNow]
    case "next-seven-days":
      return [now, today + 8 * day]
    case "last-week":
      return [week - 7 * day, week]
    case "this-week":
      return [week, week + 7 * day]
    case "next-week":
      return [week + 7 * day, week + 14 * day]
    case "last-month":
      return [addMonths(month, -1), month]
    case "this-month":
      return [month, addMonths(month, 1)]
    case "next-month":
      return [addMonths(month, 1), addMonths(month, 2)]
    case "last-year":
      return [addMonths(year, -12), year]
    case "this-year":
      return [year, addMonths(year, 12)]
    case "next-year":
      return [addMonths(year, 12), addMonths(year, 24)]
    case "last-x-hours":
      return [now - argument * hour, untilNow]
    case "next-x-hours":
      return [now, now + argument * hour + 1]
    case "last-x-days":
      return [today - argument * day, untilNow]
    case "next-x-days":
      return [now, today + (argument + 1) * day]
    case "last-x-weeks":
      return [today - 7 * argument * day, untilNow]
    case "next-x-weeks":
      return [now, today + (7 * argument + 1) * day]
    case "last-x-months":
      return [addMonths(today, -argument), untilNow]
    case "next-x-months":
      return [now, addMonths(today, argument) + day]
    case "last-x-years":
      return [addMonths(today, -12 * argument), untilNow]
    case "next-x-years":
      return [now, addMonths(today, 12 * argument) + day]
    case "olderthan-x-minutes":
      return [-Infinity, now - argument * minute]
    case "olderthan-x-hours":
      return [-Infinity, now - argument * hour]
    case "olderthan-x-days":
      return [-Infinity, now - argument * day]
    case "olderthan-x-weeks":
      return [-Infinity, now - 7 * argument * day]
    case "olderthan-x-months":
      return [-Infinity, addMonths(now, -argument)]
    case "olderthan-x-years":
      return [-Infinity, addMonths(now, -12 * argument)]
    case "on":
      return [startOfDay(argument), startOfDay(argument) + day]
    case "on-or-after":
      return [startOfDay(argument), Infinity]
    case "on-or-before":
      return [-Infinity, startOfDay(argument) + day]
  }
}

/** A datetime field within `[from, to)` (outside it, but not null, when negated). */
export const inRange = (field: Field, from: number, to: number, negate: boolean): Predicate =>
  guarded(field, (value) => {
    const ms = dateMs(value)
    return ms >= from && ms < to
  }, negate)

// ---------------------------------------------------------------------------------------------
// Text conversion of query-builder values (FetchXML values, PropertyValues of query functions)
// ---------------------------------------------------------------------------------------------

/** The query builder's error codes (Microsoft.Crm `ErrorCodes`), hex as the Web API reports them. */
export const queryBuilderCodes = {
  /** InvalidXml */
  invalidXml: "0x80040201",
  /** InvalidArgument */
  invalidArgument: "0x80040203",
  /** QueryBuilderNoEntity */
  noEntity: "0x80041102",
  /** QueryBuilderNoAttribute */
  noAttribute: "0x80041103",
  /** QueryBuilderBad_Condition */
  badCondition: "0x80041106",
  /** QueryBuilderDeserializeInvalidDistinct */
  invalidDistinct: "0x80041115",
  /** QueryBuilderDeserializeInvalidDescending */
  invalidDescending: "0x80041119",
  /** QueryBuilderDeserializeInvalidNode */
  invalidNode: "0x8004111C",
  /** QueryBuilderInvalidConditionOperator */
  invalidConditionOperator: "0x80041120",
  /** QueryBuilderInvalidFilterType */
  invalidFilterType: "0x80041122",
  /** QueryBuilderTopCountGreaterThanZero */
  topCountGreaterThanZero: "0x80041127"
} as const

/** The query builder's answer to an attribute the table does not have. */
export const noAttribute = (table: TableDefinition, name: string): Fault =>
  new Fault(
    400,
    queryBuilderCodes.noAttribute,
    `'${table.schemaName}' entity doesn't contain attribute with Name = '${name}' and NameMapping = 'Logical'.`
  )

const clrTypeOf = (field: Field): string => {
  switch (field.column?.type) {
    case undefined:
      return "System.Guid"
    case "String":
    case "Memo":
      return "System.String"
    case "Integer":
    case "Picklist":
    case "State":
    case "Status":
      return "System.Int32"
    case "BigInt":
      return "System.Int64"
    case "Decimal":
    case "Money":
      return "System.Decimal"
    case "Double":
      return "System.Double"
    case "Boolean":
      return "System.Boolean"
    case "DateTime":
      return "System.DateTime"
    default:
      return "System.Guid"
  }
}

const integerText = /^\s*[+-]?\d+\s*$/
const decimalText = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/
const isoDateText = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/
const usDateText = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/

/** Parses an ISO date or datetime (no offset means UTC), or M/D/YYYY as Advanced Find writes it; NaN otherwise. */
export const parseDateText = (text: string): number => {
  const trimmed = text.trim()
  const us = usDateText.exec(trimmed)
  if (us !== null) {
    const [month, dayOfMonth, year] = [Number(us[1]), Number(us[2]), Number(us[3])]
    const ms = Date.UTC(year, month - 1, dayOfMonth)
    const date = new Date(ms)
    return date.getUTCMonth() === month - 1 && date.getUTCDate() === dayOfMonth ? ms : NaN
  }
  if (!isoDateText.test(trimmed)) return NaN
  let iso = trimmed.replace(" ", "T")
  // Without an offset the value is taken as UTC; the service would use the user's time zone.
  if (iso.length === 10) iso += "T00:00:00Z"
  else if (!/(?:Z|[+-]\d{2}:?\d{2})$/.test(iso)) iso += "Z"
  const ms = Date.parse(iso)
  // Date.parse rolls 2026-02-30 over to March: check the calendar date survived.
  if (Number.isNaN(ms) || (iso.endsWith("Z") && new Date(ms).toISOString().slice(0, 10) !== iso.slice(0, 10))) {
    return NaN
  }
  return ms
}

/**
 * Converts a value written as text (a FetchXML value, an item of `PropertyValues`) to the
 * field's type, failing as the service does when the text does not parse.
 */
export const convertText = (table: TableDefinition, field: Field, text: string): Scalar | Fault => {
  const fail = (detail: string) =>
    new Fault(
      400,
      queryBuilderCodes.invalidArgument,
      `An exception System.FormatException was thrown while trying to convert input value '${text}' to attribute '${table.logicalName}.${field.attribute}'. Expected type of attribute value: ${
        clrTypeOf(field)
      }. Exception raised: ${detail}`
    )
  switch (field.kind) {
    case "string":
      return text
    case "number": {
      const type = field.column?.type
      const integral = type === "Integer" || type === "BigInt" || type === "Picklist" || type === "State" ||
        type === "Status"
      if (!(integral ? integerText : decimalText).test(text)) return fail("Input string was not in a correct format.")
      return Number(text)
    }
    case "boolean": {
      const value = text.trim().toLowerCase()
      if (value === "true" || value === "1") return true
      if (value === "false" || value === "0") return false
      return fail("String was not recognized as a valid Boolean.")
    }
    case "datetime": {
      const ms = parseDateText(text)
      return Number.isNaN(ms) ? fail("String was not recognized as a valid DateTime.") : ms
    }
    case "guid":
      return parseGuid(text.trim()) ??
        fail("Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).")
  }
}

// ---------------------------------------------------------------------------------------------
// Ordering (shared with fetchxml.ts)
// ---------------------------------------------------------------------------------------------

/**
 * One key of an ordering. `map`, when given, replaces a non-null value by the string it sorts as
 * (a choice's label, a lookup target's name); undefined sorts as null.
 */
export interface SortKey {
  readonly field: Field
  readonly descending: boolean
  readonly map?: ((value: unknown, record: StoredRecord) => string | undefined) | undefined
}

/**
 * Compiles sort keys into a comparator: nulls first ascending and last descending (SQL Server),
 * strings case-insensitive, then insertion order (`seq`) so equal keys keep a stable, repeatable
 * order across pages.
 */
export const compileSortKeys = (keys: ReadonlyArray<SortKey>): Comparator => {
  const compiled = keys.map(({ descending, field, map }) => {
    const get = field.get
    const read = map === undefined ? get : (record: StoredRecord) => {
      const value = get(record)
      return value === null ? null : map(value, record) ?? null
    }
    return { read, compare: compareValues(map === undefined ? field.kind : "string"), sign: descending ? -1 : 1 }
  })
  const count = compiled.length
  return (a, b) => {
    // An indexed loop: this runs some twenty million times to sort a million records.
    for (let i = 0; i < count; i++) {
      const { compare, read, sign } = compiled[i]!
      const x = read(a)
      const y = read(b)
      if (x === null) {
        if (y !== null) return -sign
        continue
      }
      if (y === null) return sign
      const order = compare(x, y)
      if (order !== 0) return order < 0 ? -sign : sign
    }
    return a.seq - b.seq
  }
}

// ---------------------------------------------------------------------------------------------
// OData lexer
// ---------------------------------------------------------------------------------------------

type TokenKind =
  | "identifier"
  | "string"
  | "jsonString"
  | "number"
  | "guid"
  | "date"
  | "datetime"
  | "alias"
  | "("
  | ")"
  | ","
  | "/"
  | "="
  | "["
  | "]"
  | "-"
  | "end"

interface Token {
  readonly kind: TokenKind
  /** The source text; for strings, the unescaped value. */
  readonly text: string
  readonly pos: number
}

const odataFault = (message: string): Fault => new Fault(400, codes.segmentNotFound, message)

const syntaxError = (pos: number, text: string): Fault => odataFault(`Syntax error at position ${pos} in '${text}'.`)

const datetimeToken = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})(?![\w.:])/y
const guidToken = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-])/y
const dateToken = /\d{4}-\d{2}-\d{2}(?![\w:.-])/y
const numberToken = /-?(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)[mMlLdDfF]?(?![\w.])/y
const identifierToken = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/y
const aliasToken = /@[A-Za-z_][A-Za-z0-9_]*/y
const punctuation = new Set(["(", ")", ",", "/", "=", "[", "]", "-"])

const matchAt = (regex: RegExp, text: string, pos: number): string | undefined => {
  regex.lastIndex = pos
  const match = regex.exec(text)
  return match === null ? undefined : match[0]
}

/** Splits a `$filter`/`$orderby` expression into tokens, as Microsoft.OData.Core's lexer does. */
const tokenize = (text: string): Array<Token> | Fault => {
  const tokens: Array<Token> = []
  let pos = 0
  while (pos < text.length) {
    const char = text[pos]!
    if (char === " " || char === "\t" || char === "\n" || char === "\r") {
      pos++
      continue
    }
    if (char === "'" || char === "\"") {
      // OData strings double the quote; the JSON strings of query-function arrays escape with `\`.
      const start = pos
      let value = ""
      pos++
      for (;;) {
        if (pos >= text.length) {
          return odataFault(`There is an unterminated literal at position ${pos} in '${text}'.`)
        }
        const c = text[pos]!
        if (char === "\"" && c === "\\" && pos + 1 < text.length) {
          const next = text[pos + 1]!
          value += next === "n" ? "\n" : next === "t" ? "\t" : next
          pos += 2
          continue
        }
        if (c === char) {
          if (char === "'" && text[pos + 1] === "'") {
            value += "'"
            pos += 2
            continue
          }
          pos++
          break
        }
        value += c
        pos++
      }
      tokens.push({ kind: char === "'" ? "string" : "jsonString", text: value, pos: start })
      continue
    }
    const lexeme = matchAt(datetimeToken, text, pos)
    if (lexeme !== undefined) {
      tokens.push({ kind: "datetime", text: lexeme, pos })
      pos += lexeme.length
      continue
    }
    const guid = matchAt(guidToken, text, pos)
    if (guid !== undefined) {
      tokens.push({ kind: "guid", text: guid, pos })
      pos += guid.length
      continue
    }
    const date = matchAt(dateToken, text, pos)
    if (date !== undefined) {
      tokens.push({ kind: "date", text: date, pos })
      pos += date.length
      continue
    }
    const number = matchAt(numberToken, text, pos)
    if (number !== undefined) {
      tokens.push({ kind: "number", text: number, pos })
      pos += number.length
      continue
    }
    const identifier = matchAt(identifierToken, text, pos)
    if (identifier !== undefined) {
      tokens.push({ kind: "identifier", text: identifier, pos })
      pos += identifier.length
      continue
    }
    const alias = matchAt(aliasToken, text, pos)
    if (alias !== undefined) {
      tokens.push({ kind: "alias", text: alias, pos })
      pos += alias.length
      continue
    }
    if (punctuation.has(char)) {
      tokens.push({ kind: char as TokenKind, text: char, pos })
      pos++
      continue
    }
    return odataFault(`Syntax error: character '${char}' is not valid at position ${pos} in '${text}'.`)
  }
  tokens.push({ kind: "end", text: "", pos: text.length })
  return tokens
}

// ---------------------------------------------------------------------------------------------
// OData parser
// ---------------------------------------------------------------------------------------------

type Literal =
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "number"; readonly value: number; readonly edmType: string }
  | { readonly type: "boolean"; readonly value: boolean }
  | { readonly type: "null" }
  | { readonly type: "guid"; readonly value: string }
  | { readonly type: "date"; readonly value: number }
  | { readonly type: "datetime"; readonly value: number }

type ParameterValue = Literal | { readonly type: "array"; readonly items: ReadonlyArray<Literal> }

type Node =
  | { readonly _tag: "Or" | "And"; readonly left: Node; readonly right: Node }
  | { readonly _tag: "Not"; readonly operand: Node; readonly pos: number }
  | {
    readonly _tag: "Compare"
    readonly operator: ComparisonOperator
    readonly left: Node
    readonly right: Node
    readonly pos: number
  }
  | { readonly _tag: "Property"; readonly name: string; readonly pos: number }
  | { readonly _tag: "Literal"; readonly literal: Literal; readonly pos: number }
  | { readonly _tag: "Call"; readonly name: string; readonly args: ReadonlyArray<Node>; readonly pos: number }
  | {
    readonly _tag: "QueryFunction"
    readonly name: string
    readonly parameters: ReadonlyMap<string, ParameterValue>
    readonly pos: number
  }

const comparisonOperators = new Set<string>(["eq", "ne", "gt", "ge", "lt", "le"])
const arithmeticOperators = new Set<string>(["add", "sub", "mul", "div", "divby", "mod", "has", "in"])
const operatorKinds: Record<ComparisonOperator, string> = {
  eq: "Equal",
  ne: "NotEqual",
  gt: "GreaterThan",
  ge: "GreaterThanOrEqual",
  lt: "LessThan",
  le: "LessThanOrEqual"
}

const int32Max = 2147483647

const literalOf = (token: Token, text: string): Literal | Fault => {
  switch (token.kind) {
    case "string":
    case "jsonString":
      return { type: "string", value: token.text }
    case "guid":
      return { type: "guid", value: token.text.toLowerCase() }
    case "number": {
      const suffix = token.text.at(-1)!
      const body = /[mMlLdDfF]/.test(suffix) ? token.text.slice(0, -1) : token.text
      const value = Number(body)
      const integral = /^-?\d+$/.test(body)
      const edmType = suffix === "m" || suffix === "M"
        ? "Edm.Decimal"
        : suffix === "d" || suffix === "D" || suffix === "f" || suffix === "F"
        ? "Edm.Double"
        : integral
        ? (Math.abs(value) <= int32Max && suffix !== "l" && suffix !== "L" ? "Edm.Int32" : "Edm.Int64")
        : "Edm.Decimal"
      return { type: "number", value, edmType }
    }
    case "date":
    case "datetime": {
      const ms = parseDateText(token.text)
      if (Number.isNaN(ms)) {
        const edm = token.kind === "date" ? "Edm.Date" : "Edm.DateTimeOffset"
        return odataFault(`Unrecognized '${edm}' literal '${token.text}' at '${token.pos}' in '${text}'.`)
      }
      return { type: token.kind, value: ms }
    }
    case "identifier":
      if (token.text === "true" || token.text === "false") return { type: "boolean", value: token.text === "true" }
      if (token.text === "null") return { type: "null" }
  }
  return syntaxError(token.pos, text)
}

const literalEdmType = (literal: Literal): string => {
  switch (literal.type) {
    case "string":
      return "Edm.String"
    case "number":
      return literal.edmType
    case "boolean":
      return "Edm.Boolean"
    case "null":
      return "null"
    case "guid":
      return "Edm.Guid"
    case "date":
      return "Edm.Date"
    case "datetime":
      return "Edm.DateTimeOffset"
  }
}

const isLiteralToken = (token: Token): boolean =>
  token.kind === "string" || token.kind === "number" || token.kind === "guid" || token.kind === "date" ||
  token.kind === "datetime" ||
  (token.kind === "identifier" && (token.text === "true" || token.text === "false" || token.text === "null"))

/**
 * A recursive-descent parser with Microsoft.OData.Core's precedence: or < and < comparison <
 * unary (`not`) < primary. It throws `Fault`s, which the exported functions return.
 */
const makeParser = (text: string, tokens: ReadonlyArray<Token>, parameters: Readonly<Record<string, string>>) => {
  let index = 0
  const peek = (): Token => tokens[index]!
  const next = (): Token => tokens[index++]!
  const isKeyword = (token: Token, keyword: string) => token.kind === "identifier" && token.text === keyword

  const parseOr = (): Node => {
    let left = parseAnd()
    while (isKeyword(peek(), "or")) {
      next()
      left = { _tag: "Or", left, right: parseAnd() }
    }
    return left
  }

  const parseAnd = (): Node => {
    let left = parseComparison()
    while (isKeyword(peek(), "and")) {
      next()
      left = { _tag: "And", left, right: parseComparison() }
    }
    return left
  }

  const parseComparison = (): Node => {
    let left = parseArithmetic()
    for (;;) {
      const token = peek()
      if (token.kind !== "identifier" || !comparisonOperators.has(token.text)) return left
      next()
      left = {
        _tag: "Compare",
        operator: token.text as ComparisonOperator,
        left,
        right: parseArithmetic(),
        pos: token.pos
      }
    }
  }

  const parseArithmetic = (): Node => {
    const operand = parseUnary()
    const token = peek()
    if (token.kind === "identifier" && arithmeticOperators.has(token.text)) {
      throw odataFault(
        `The operator '${token.text}' at position ${token.pos} in '${text}' is not supported in a Dataverse $filter.`
      )
    }
    return operand
  }

  const parseUnary = (): Node => {
    const token = peek()
    if (isKeyword(token, "not")) {
      next()
      return { _tag: "Not", operand: parseUnary(), pos: token.pos }
    }
    if (token.kind === "-") {
      throw odataFault(
        `The operator '-' at position ${token.pos} in '${text}' is not supported in a Dataverse $filter.`
      )
    }
    return parsePrimary()
  }

  const parsePrimary = (): Node => {
    const token = peek()
    if (token.kind === "(") {
      next()
      const inner = parseOr()
      const close = next()
      if (close.kind !== ")") throw odataFault(`')' or operator expected at position ${close.pos} in '${text}'.`)
      return inner
    }
    if (token.kind === "alias") {
      next()
      const value = aliasValue(token)
      if (value.type === "array") throw syntaxError(token.pos, text)
      return { _tag: "Literal", literal: value, pos: token.pos }
    }
    if (isLiteralToken(token)) {
      next()
      const literal = literalOf(token, text)
      if (literal instanceof Fault) throw literal
      return { _tag: "Literal", literal, pos: token.pos }
    }
    if (token.kind === "identifier") {
      next()
      const after = peek()
      if (after.kind === "(") {
        return token.text.startsWith("Microsoft.Dynamics.CRM.") ? parseQueryFunction(token) : parseCall(token)
      }
      if (after.kind === "/") {
        throw odataFault(
          `The path '${token.text}/...' at position ${token.pos} in '${text}' navigates to related records, which the emulator does not support in $filter.`
        )
      }
      return { _tag: "Property", name: token.text, pos: token.pos }
    }
    if (token.kind === "end") throw odataFault(`Expression expected at position ${token.pos} in '${text}'.`)
    throw syntaxError(token.pos, text)
  }

  const parseCall = (name: Token): Node => {
    next() // (
    const args: Array<Node> = []
    if (peek().kind === ")") next()
    else {
      for (;;) {
        args.push(parseOr())
        const separator = next()
        if (separator.kind === ")") break
        if (separator.kind !== ",") throw odataFault(`')' or ',' expected at position ${separator.pos} in '${text}'.`)
      }
    }
    return { _tag: "Call", name: name.text, args, pos: name.pos }
  }

  const parseQueryFunction = (name: Token): Node => {
    next() // (
    const parameters = new Map<string, ParameterValue>()
    if (peek().kind === ")") next()
    else {
      for (;;) {
        const parameter = next()
        if (parameter.kind !== "identifier") throw syntaxError(parameter.pos, text)
        const equals = next()
        if (equals.kind !== "=") throw syntaxError(equals.pos, text)
        parameters.set(parameter.text, parseParameterValue())
        const separator = next()
        if (separator.kind === ")") break
        if (separator.kind !== ",") throw odataFault(`')' or ',' expected at position ${separator.pos} in '${text}'.`)
      }
    }
    return { _tag: "QueryFunction", name: name.text, parameters, pos: name.pos }
  }

  const parseParameterValue = (): ParameterValue => {
    const token = next()
    if (token.kind === "alias") return aliasValue(token)
    if (token.kind === "[") {
      const items: Array<Literal> = []
      if (peek().kind === "]") {
        next()
        return { type: "array", items }
      }
      for (;;) {
        const item = next()
        if (!isLiteralToken(item) && item.kind !== "jsonString") throw syntaxError(item.pos, text)
        const literal = literalOf(item, text)
        if (literal instanceof Fault) throw literal
        items.push(literal)
        const separator = next()
        if (separator.kind === "]") return { type: "array", items }
        if (separator.kind !== ",") throw syntaxError(separator.pos, text)
      }
    }
    if (isLiteralToken(token) || token.kind === "jsonString") {
      const literal = literalOf(token, text)
      if (literal instanceof Fault) throw literal
      return literal
    }
    if (token.kind === "end") throw odataFault(`Expression expected at position ${token.pos} in '${text}'.`)
    throw syntaxError(token.pos, text)
  }

  /** A parameter alias's value, parsed from its own text; an alias without a value is null (OData). */
  const aliasValue = (token: Token): ParameterValue => {
    const source = parameters[token.text]
    if (source === undefined) return { type: "null" }
    const aliasTokens = tokenize(source)
    if (aliasTokens instanceof Fault) throw aliasTokens
    const parser = makeParser(source, aliasTokens, {})
    const value = parser.parameterValue()
    parser.expectEnd()
    return value
  }

  const expectEnd = () => {
    const token = peek()
    if (token.kind !== "end") throw syntaxError(token.pos, text)
  }

  return { parseOr, parameterValue: parseParameterValue, expectEnd }
}

// ---------------------------------------------------------------------------------------------
// OData compiler
// ---------------------------------------------------------------------------------------------

/** The documented Dataverse query functions the emulator evaluates, by OData name. */
const queryFunctionOperators: Record<string, DateOperator | "in" | "not-in" | "between" | "not-between"> = {
  In: "in",
  NotIn: "not-in",
  Between: "between",
  NotBetween: "not-between",
  Today: "today",
  Yesterday: "yesterday",
  Tomorrow: "tomorrow",
  Last7Days: "last-seven-days",
  Next7Days: "next-seven-days",
  LastWeek: "last-week",
  ThisWeek: "this-week",
  NextWeek: "next-week",
  LastMonth: "last-month",
  ThisMonth: "this-month",
  NextMonth: "next-month",
  LastYear: "last-year",
  ThisYear: "this-year",
  NextYear: "next-year",
  LastXHours: "last-x-hours",
  NextXHours: "next-x-hours",
  LastXDays: "last-x-days",
  NextXDays: "next-x-days",
  LastXWeeks: "last-x-weeks",
  NextXWeeks: "next-x-weeks",
  LastXMonths: "last-x-months",
  NextXMonths: "next-x-months",
  LastXYears: "last-x-years",
  NextXYears: "next-x-years",
  OlderThanXMinutes: "olderthan-x-minutes",
  OlderThanXHours: "olderthan-x-hours",
  OlderThanXDays: "olderthan-x-days",
  OlderThanXWeeks: "olderthan-x-weeks",
  OlderThanXMonths: "olderthan-x-months",
  OlderThanXYears: "olderthan-x-years",
  On: "on",
  OnOrAfter: "on-or-after",
  OnOrBefore: "on-or-before"
}

/** Documented query functions that need data the emulator does not model (fiscal settings, users, hierarchies). */
const unsupportedQueryFunctions = new Set([
  "InFiscalPeriod",
  "InFiscalPeriodAndYear",
  "InFiscalYear",
  "InOrAfterFiscalPeriodAndYear",
  "InOrBeforeFiscalPeriodAndYear",
  "LastFiscalPeriod",
  "LastFiscalYear",
  "LastXFiscalPeriods",
  "LastXFiscalYears",
  "NextFiscalPeriod",
  "NextFiscalYear",
  "NextXFiscalPeriods",
  "NextXFiscalYears",
  "ThisFiscalPeriod",
  "ThisFiscalYear",
  "EqualBusinessId",
  "EqualUserId",
  "NotEqualBusinessId",
  "NotEqualUserId",
  "Above",
  "AboveOrEqual",
  "EqualUserOrUserHierarchy",
  "EqualUserOrUserHierarchyAndTeams",
  "EqualUserOrUserTeams",
  "EqualUserTeams",
  "NotUnder",
  "Under",
  "UnderOrEqual",
  "ContainValues",
  "DoesNotContainValues",
  "EqualUserLanguage",
  "Contains",
  "DoesNotContain"
])

const stringFunctions = new Set(["contains", "startswith", "endswith"])
const otherODataFunctions = new Set([
  "tolower",
  "toupper",
  "trim",
  "length",
  "indexof",
  "substring",
  "concat",
  "year",
  "month",
  "day",
  "hour",
  "minute",
  "second",
  "date",
  "time",
  "now",
  "round",
  "floor",
  "ceiling",
  "matchesPattern",
  "cast",
  "isof"
])

const isBooleanNode = (node: Node): boolean =>
  node._tag === "And" || node._tag === "Or" || node._tag === "Not" || node._tag === "Compare" ||
  node._tag === "QueryFunction" || (node._tag === "Call" && stringFunctions.has(node.name))

const and = (a: Predicate, b: Predicate): Predicate => (record) => a(record) && b(record)
const or = (a: Predicate, b: Predicate): Predicate => (record) => a(record) || b(record)

const flip: Record<ComparisonOperator, ComparisonOperator> = {
  eq: "eq",
  ne: "ne",
  gt: "lt",
  ge: "le",
  lt: "gt",
  le: "ge"
}

/** Converts a literal to a field's type, or undefined when the types are incompatible (OData rules). */
const coerceLiteral = (field: Field, literal: Literal): Scalar | null | undefined => {
  if (literal.type === "null") return null
  switch (field.kind) {
    case "string":
      return literal.type === "string" ? literal.value : undefined
    case "number":
      return literal.type === "number" ? literal.value : undefined
    case "boolean":
      return literal.type === "boolean" ? literal.value : undefined
    case "datetime":
      return literal.type === "date" || literal.type === "datetime" ? literal.value : undefined
    case "guid":
      // Quoted GUIDs are accepted too: the service's own examples write `_owninguser_value eq '<id>'`.
      return literal.type === "guid" ? literal.value : literal.type === "string" ? parseGuid(literal.value) : undefined
  }
}

const makeCompiler = (text: string, table: TableDefinition, options: QueryOptions) => {
  const now = options.now ?? Date.now()
  const typeName = `Microsoft.Dynamics.CRM.${table.logicalName}`

  const property = (node: Node & { _tag: "Property" }): Field => {
    const field = resolveField(table, node.name, "odata")
    if (field === undefined) throw odataFault(`Could not find a property named '${node.name}' on type '${typeName}'.`)
    return field
  }

  const edmTypeOfNode = (node: Node): string =>
    node._tag === "Property"
      ? property(node).edmType
      : node._tag === "Literal"
      ? literalEdmType(node.literal)
      : "Edm.Boolean"

  const incompatible = (operator: ComparisonOperator, left: Node, right: Node): Fault =>
    odataFault(
      `A binary operator with incompatible types was detected. Found operand types '${edmTypeOfNode(left)}' and '${
        edmTypeOfNode(right)
      }' for operator kind '${operatorKinds[operator]}'.`
    )

  const compile = (node: Node, negate: boolean): Predicate => {
    switch (node._tag) {
      case "Or":
        return negate
          ? and(compile(node.left, true), compile(node.right, true))
          : or(compile(node.left, false), compile(node.right, false))
      case "And":
        return negate
          ? or(compile(node.left, true), compile(node.right, true))
          : and(compile(node.left, false), compile(node.right, false))
      case "Not":
        if (!isBooleanNode(node.operand)) {
          throw odataFault(
            `A unary operator with an incompatible type was detected. Found operand type '${
              edmTypeOfNode(node.operand)
            }' for operator kind 'Not'.`
          )
        }
        // Pushing `not` down to the leaves keeps SQL's three-valued logic: a leaf on a null
        // column is false both ways, which is what "unknown" filters to.
        return compile(node.operand, !negate)
      case "Compare":
        return compileComparison(node, negate)
      case "Call":
        return compileCall(node, negate)
      case "QueryFunction":
        return compileQueryFunction(node, negate)
      case "Property":
      case "Literal":
        throw odataFault(
          `The $filter expression at position ${node.pos} in '${text}' is not a condition: compare a property with a value or call a query function.`
        )
    }
  }

  const compileComparison = (node: Node & { _tag: "Compare" }, negate: boolean): Predicate => {
    const { left, operator, right } = node
    // Report what the OData binder meets first: an invalid operand (`not name`, `tolower(name)`).
    for (const side of [left, right]) {
      if (side._tag === "Not" && !isBooleanNode(side.operand)) compile(side, false)
      if (side._tag === "Call" && !isBooleanNode(side)) compileCall(side, false)
    }
    // `contains(name,'a') eq true`: a condition compared with a Boolean literal.
    if (isBooleanNode(left) || isBooleanNode(right)) {
      const [condition, other] = isBooleanNode(left) ? [left, right] : [right, left]
      if (
        other._tag === "Literal" && other.literal.type === "boolean" && (operator === "eq" || operator === "ne") &&
        !isBooleanNode(other)
      ) {
        const wanted = other.literal.value === (operator === "eq")
        return compile(condition, wanted === negate)
      }
      throw odataFault(
        `The comparison at position ${node.pos} in '${text}' is not supported: compare a property with a value or another property.`
      )
    }
    if (left._tag === "Property" && right._tag === "Property") {
      const a = property(left)
      const b = property(right)
      if (a.kind !== b.kind) throw incompatible(operator, left, right)
      return columnComparison(a, operator, b, negate)
    }
    if (left._tag === "Literal" && right._tag === "Literal") {
      throw odataFault(
        `The comparison at position ${node.pos} in '${text}' compares two values: one side must be a property.`
      )
    }
    const [propertyNode, literalNode, effective] = left._tag === "Property"
      ? [left, right as Node & { _tag: "Literal" }, operator]
      : [right as Node & { _tag: "Property" }, left as Node & { _tag: "Literal" }, flip[operator]]
    const field = property(propertyNode)
    const value = coerceLiteral(field, literalNode.literal)
    if (value === undefined) throw incompatible(operator, left, right)
    return comparison(field, effective, value, negate)
  }

  const compileCall = (node: Node & { _tag: "Call" }, negate: boolean): Predicate => {
    if (!stringFunctions.has(node.name)) {
      if (otherODataFunctions.has(node.name)) {
        throw odataFault(
          `The function '${node.name}' is not supported in a Dataverse $filter; use contains, startswith or endswith.`
        )
      }
      throw odataFault(
        `An unknown function with name '${node.name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.`
      )
    }
    const [target, search] = node.args
    const signatureError = () =>
      odataFault(
        `No function signature for the function with name '${node.name}' matches the specified arguments. The function signatures considered are: ${node.name}(Edm.String Nullable=true, Edm.String Nullable=true).`
      )
    if (node.args.length !== 2 || target?._tag !== "Property" || search?._tag !== "Literal") throw signatureError()
    const field = property(target)
    if (field.kind !== "string" || search.literal.type !== "string") throw signatureError()
    const value = search.literal.value
    const pattern = node.name === "contains"
      ? `%${value}%`
      : node.name === "startswith"
      ? `${value}%`
      : `%${value}`
    return like(field, pattern, negate)
  }

  const compileQueryFunction = (node: Node & { _tag: "QueryFunction" }, negate: boolean): Predicate => {
    const shortName = node.name.slice("Microsoft.Dynamics.CRM.".length)
    const operator = queryFunctionOperators[shortName]
    if (operator === undefined) {
      if (unsupportedQueryFunctions.has(shortName)) {
        throw odataFault(`The query function '${node.name}' is not supported by the emulator.`)
      }
      throw odataFault(
        `An unknown function with name '${node.name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.`
      )
    }
    const parameter = (name: string) => {
      const found = node.parameters.get(name)
      if (found === undefined) {
        throw odataFault(
          `The function '${node.name}' requires the parameter '${name}' (position ${node.pos} in '${text}').`
        )
      }
      return found
    }
    const propertyName = parameter("PropertyName")
    if (propertyName.type !== "string") {
      throw odataFault(`The parameter 'PropertyName' of '${node.name}' must be a string naming a column.`)
    }
    const field = resolveField(table, propertyName.value, "attribute")
    if (field === undefined) throw noAttribute(table, propertyName.value)
    // Values are converted as the query builder converts them: strings parse to the column's
    // type (`PropertyValues=["5","2000"]` for a number), typed literals must already match.
    const convert = (literal: Literal): Scalar => {
      const converted = literal.type === "string"
        ? convertText(table, field, literal.value)
        : literal.type === "null"
        ? odataFault(`The function '${node.name}' does not accept null values.`)
        : literal.type === "number" && field.kind === "number"
        ? literal.value
        : literal.type === "boolean" && field.kind === "boolean"
        ? literal.value
        : literal.type === "guid" && field.kind === "guid"
        ? literal.value
        : (literal.type === "date" || literal.type === "datetime") && field.kind === "datetime"
        ? literal.value
        : literal.type === "number" && field.kind === "string"
        ? String(literal.value)
        : convertText(
          table,
          field,
          literal.type === "date" || literal.type === "datetime"
            ? new Date(literal.value).toISOString()
            : String(literal.value)
        )
      if (converted instanceof Fault) throw converted
      return converted
    }
    const list = (): ReadonlyArray<Scalar> => {
      const value = parameter("PropertyValues")
      if (value.type !== "array") {
        throw odataFault(`The parameter 'PropertyValues' of '${node.name}' must be an array, e.g. ["a","b"].`)
      }
      return value.items.map(convert)
    }
    switch (operator) {
      case "in":
      case "not-in": {
        const values = list()
        if (values.length === 0) {
          throw odataFault(`The parameter 'PropertyValues' of '${node.name}' needs at least one value.`)
        }
        return membership(field, values, (operator === "not-in") !== negate)
      }
      case "between":
      case "not-between": {
        const values = list()
        if (values.length !== 2) {
          throw odataFault(`The parameter 'PropertyValues' of '${node.name}' needs exactly two values.`)
        }
        return between(field, values[0]!, values[1]!, (operator === "not-between") !== negate)
      }
      default: {
        if (field.kind !== "datetime") {
          throw odataFault(
            `The function '${node.name}' applies to date and time columns; '${field.attribute}' is ${field.edmType}.`
          )
        }
        let argument = 0
        const shape = dateOperators[operator]
        if (shape !== "none") {
          const value = parameter("PropertyValue")
          argument = shape === "date"
            ? (value.type === "date" || value.type === "datetime"
              ? value.value
              : value.type === "string"
              ? parseDateText(value.value)
              : NaN)
            : (value.type === "number" ? value.value : value.type === "string" ? Number(value.value) : NaN)
          if (shape === "date" ? Number.isNaN(argument) : !Number.isInteger(argument) || argument < 0) {
            throw odataFault(`The value of parameter 'PropertyValue' of '${node.name}' is not valid for this function.`)
          }
        }
        const [from, to] = dateRange(operator, now, argument)
        return inRange(field, from, to, negate)
      }
    }
  }

  return { compile, property }
}

const run = <A>(body: () => A): A | Fault => {
  try {
    return body()
  } catch (error) {
    if (error instanceof Fault) return error
    throw error
  }
}

/**
 * Compiles an OData `$filter` expression for `table` into a predicate over stored records, or
 * the `Fault` the service answers (400, `0x80060888` for the OData layer's errors: syntax, unknown
 * property, incompatible types; the query builder's codes for query-function arguments).
 *
 * Supported: `eq ne gt ge lt le`, `and or not`, parentheses, `contains`/`startswith`/`endswith`,
 * column comparison (`firstname eq lastname`), the primary key, lookups as `_<column>_value`,
 * literals (strings, numbers, `true`/`false`, `null`, bare GUIDs, dates, datetimes), parameter
 * aliases (`@p1`), and the query functions `Microsoft.Dynamics.CRM.In`/`NotIn`/`Between`/
 * `NotBetween` and the date functions (`Today`, `LastXDays`, `On`, ...).
 */
export const compileFilter = (
  text: string,
  table: TableDefinition,
  options: QueryOptions = {}
): Predicate | Fault =>
  run(() => {
    const tokens = tokenize(text)
    if (tokens instanceof Fault) throw tokens
    const parser = makeParser(text, tokens, options.parameters ?? {})
    const tree = parser.parseOr()
    parser.expectEnd()
    return makeCompiler(text, table, options).compile(tree, false)
  })

/**
 * Compiles an OData `$orderby` (`a asc, b desc`) for `table` into a comparator: nulls first
 * ascending (SQL Server), strings case-insensitive, choices by value, lookups by the target's
 * primary name when `options.lookupName` resolves it (else by id), ties by insertion order.
 */
export const compileOrderBy = (
  text: string,
  table: TableDefinition,
  options: QueryOptions = {}
): Comparator | Fault =>
  run(() => {
    const tokens = tokenize(text)
    if (tokens instanceof Fault) throw tokens
    const typeName = `Microsoft.Dynamics.CRM.${table.logicalName}`
    const keys: Array<SortKey> = []
    let index = 0
    for (;;) {
      const token = tokens[index++]!
      if (token.kind === "end") throw odataFault(`Expression expected at position ${token.pos} in '${text}'.`)
      if (token.kind !== "identifier" || isLiteralToken(token)) throw syntaxError(token.pos, text)
      if (tokens[index]!.kind === "(" || tokens[index]!.kind === "/") {
        throw odataFault(
          `The $orderby expression at position ${token.pos} in '${text}' is not supported: order by properties of the table.`
        )
      }
      const field = resolveField(table, token.text, "odata")
      if (field === undefined) {
        throw odataFault(`Could not find a property named '${token.text}' on type '${typeName}'.`)
      }
      let descending = false
      const direction = tokens[index]!
      if (direction.kind === "identifier" && (direction.text === "asc" || direction.text === "desc")) {
        descending = direction.text === "desc"
        index++
      }
      keys.push({ field, descending, map: lookupSortName(field, options.lookupName) })
      const separator = tokens[index++]!
      if (separator.kind === "end") break
      if (separator.kind !== ",") throw syntaxError(separator.pos, text)
    }
    return compileSortKeys(keys)
  })

/**
 * For ordering a lookup by the target's primary name, as the service does: maps each record's
 * lookup to the name through the caller's resolver. Undefined (sort by id) without a resolver.
 */
export const lookupSortName = (
  field: Field,
  lookupName: ((lookup: LookupValue) => string | undefined) | undefined
): ((value: unknown, record: StoredRecord) => string | undefined) | undefined => {
  const column = field.column
  if (lookupName === undefined || column === undefined || !isLookup(column)) return undefined
  const attribute = column.logicalName
  return (_id, record) => lookupName(record.values[attribute] as LookupValue)
}

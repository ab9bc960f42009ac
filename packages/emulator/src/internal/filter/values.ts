/**
 * Fields and values (shared with `fetchxml.ts`): typed fields read from stored records, SQL-like
 * comparisons (case-insensitive strings, trailing spaces ignored, null never matching) and T-SQL
 * `LIKE` patterns, each compiled once per query into a predicate.
 */
import type { LookupValue, StoredRecord } from "../../Store.js"
import type { ColumnDefinition, TableDefinition } from "../../TableSchema.js"
import { columnsOf, edmTypeOf } from "../records.js"
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

export const isLookup = (column: ColumnDefinition): boolean =>
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

export const dateMs = (value: unknown): number => typeof value === "number" ? value : Date.parse(value as string)

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

/** `YYYY-MM-DD`: the form a date-only column's values are stored in (midnight UTC when compared). */
const isIsoDate = (text: string): boolean =>
  text.length === 10 && text.charCodeAt(4) === 45 && text.charCodeAt(7) === 45

const compareDates = (a: unknown, b: unknown): number =>
  typeof a === "string" && typeof b === "string"
    ? isIsoUtc(a) && isIsoUtc(b)
      ? compareIsoUtc(a, b)
      : isIsoDate(a) && isIsoDate(b)
      ? (a < b ? -1 : a > b ? 1 : 0)
      : dateMs(a) - dateMs(b)
    : dateMs(a) - dateMs(b)

/** Compares two stored values of the same kind (neither null). */
export const compareValues = (kind: ValueKind): (a: unknown, b: unknown) => number => {
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
      // A date-only value is that day's midnight UTC: before a literal later that day.
      const day = iso.slice(0, 10)
      const afterMidnight = !iso.endsWith("T00:00:00.000Z")
      const compare = (value: unknown): number =>
        fast && typeof value === "string"
          ? isIsoUtc(value)
            ? compareIsoUtc(value, iso)
            : isIsoDate(value)
            ? (value < day ? -1 : value > day ? 1 : afterMidnight ? -1 : 0)
            : dateMs(value) - ms
          : dateMs(value) - ms
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
export const guarded = (field: Field, test: (value: unknown) => boolean, negate: boolean): Predicate => {
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

/**
 * Checks a row against a table's column metadata before it is sent, so that a bad row fails
 * alone with a clear reason instead of failing a whole transactional chunk.
 */
import type { ColumnMetadata, TableMetadata } from "../Metadata.js"
import type { Row } from "../Records.js"
import { dateTimeMs, instantOf, isGuid, normaliseDateTime } from "./odata.js"
import { didYouMeanOf, suggest, withSuggestion } from "./suggest.js"

/** 1753-01-01T00:00:00Z: the earliest date and time a Dataverse column stores. */
const earliestDateTime = Date.UTC(1753, 0, 1)

/** A value as a message shows it: JSON, but `NaN`, `Infinity` and bigints as themselves (JSON says null, or throws). */
const shown = (value: unknown): string => {
  if ((typeof value === "number" && !Number.isFinite(value)) || typeof value === "bigint") return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * Types whose required columns the service fills in itself on create: a choice or a yes/no column
 * takes its default (as typegen's schemas say), an `EntityName` follows its lookup's binding.
 */
const serviceFilled = new Set([
  "State",
  "Status",
  "Owner",
  "Lookup",
  "Customer",
  "Uniqueidentifier",
  "Boolean",
  "Picklist",
  "EntityName"
])

/** Lookup columns: read back as `_<column>_value`, written through `<navigation>@odata.bind`. */
export const isLookup = (column: ColumnMetadata): boolean =>
  column.type === "Lookup" || column.type === "Customer" || column.type === "Owner"

/**
 * The first name of a query's `$select` or `$orderby` (as the URL has them) that is no column of
 * the table, as a one-line sentence with the closest names it has: the service would refuse the
 * query with its own message and no suggestion. A lookup counts by its name; a path, a function
 * or `*` is left to the service, and so is every `_<name>_value` (a lookup's read form is not a
 * name the metadata lists, and the emulator answers it for `createdby` and `modifiedby`, which
 * its metadata leaves out).
 */
export const queryColumnsProblem = (
  table: TableMetadata,
  params: ReadonlyArray<readonly [string, string]>
): string | undefined => {
  const names = indexOf(table).columns
  for (const [option, value] of params) {
    if (option !== "$select" && option !== "$orderby") continue
    for (const item of value.split(",")) {
      // `$orderby=lastname desc`: the name is the first word.
      const name = item.trim().split(/\s+/)[0] ?? ""
      if (name === "" || /[/()*$@.]/.test(name) || /^_.+_value$/.test(name) || names.has(name)) continue
      return withSuggestion(
        `${option}: column '${name}' does not exist in ${table.logicalName}`,
        name,
        names.keys(),
        "."
      )
    }
  }
  return undefined
}

/** What validation looks up in a table's metadata, built once per table (a real table has hundreds of columns). */
interface TableIndex {
  readonly columns: Map<string, ColumnMetadata>
  readonly navigation: Set<string>
  /** The columns a create must give a value: system-required, and not filled in by the service. */
  readonly requiredOnCreate: ReadonlyArray<string>
}

const indexes = new WeakMap<TableMetadata, TableIndex>()

const indexOf = (table: TableMetadata): TableIndex => {
  let index = indexes.get(table)
  if (index === undefined) {
    index = {
      columns: new Map(table.columns.map((column) => [column.logicalName, column])),
      navigation: new Set(table.lookups.map((lookup) => lookup.navigationProperty)),
      // State, status, owner and other lookups, and keys get their values from the service.
      requiredOnCreate: table.columns.filter((column) =>
        column.requiredLevel === "SystemRequired" && !column.isPrimaryId && column.isValidForCreate &&
        !serviceFilled.has(column.type)
      ).map((column) => column.logicalName)
    }
    indexes.set(table, index)
  }
  return index
}

/**
 * A date-only column is an `Edm.Date`: the service refuses a date and time for it ("Cannot convert
 * the literal '1965-05-07T00:00:00Z' to the expected type 'Edm.Date'", PowerPlatform-
 * DataverseServiceClient issue 80), and a `Date` goes as one (JSON). Which day a `Date` means
 * depends on a time zone the engine cannot know, so it is refused rather than guessed.
 */
const checkDateOnly = (value: unknown): string | undefined => {
  const date = typeof value === "string" ? normaliseDateTime(value) : undefined
  if (date !== undefined && dateTimeMs(date.slice(0, 10)) < earliestDateTime) {
    return `is ${date}; the earliest Dataverse stores is 1753-01-01`
  }
  if (date !== undefined && !date.includes("T")) return undefined
  if (value instanceof Date) {
    return `holds a date only: give it as text such as "2024-01-31", not a Date (which goes as a date and time, refused for this column)`
  }
  return date === undefined
    ? `must be an ISO date (2024-01-31), got ${shown(value)}`
    : `holds a date only: give it as "${date.slice(0, 10)}", got ${shown(value)}`
}

const checkValue = (column: ColumnMetadata, value: unknown): string | undefined => {
  if (value === null) return column.requiredLevel === "SystemRequired" ? "is required and cannot be null" : undefined
  switch (column.type) {
    case "String":
    case "Memo":
      if (typeof value !== "string") return `must be text, got ${typeof value}`
      if (column.maxLength !== undefined && value.length > column.maxLength) {
        return `is ${value.length} characters long; the most is ${column.maxLength}`
      }
      return undefined
    case "Integer":
    case "BigInt":
    case "Decimal":
    case "Double":
    case "Money": {
      const integral = column.type === "Integer" || column.type === "BigInt"
      if (typeof value !== "number" || !Number.isFinite(value) || (integral && !Number.isInteger(value))) {
        return `must be ${integral ? "a whole number" : "a number"}, got ${shown(value)}`
      }
      if (column.minValue !== undefined && value < column.minValue) {
        return `is ${value}; the least is ${column.minValue}`
      }
      if (column.maxValue !== undefined && value > column.maxValue) return `is ${value}; the most is ${column.maxValue}`
      return undefined
    }
    case "Boolean":
      return typeof value === "boolean" ? undefined : `must be true or false, got ${shown(value)}`
    case "DateTime": {
      if (column.dateTimeBehavior === "DateOnly") return checkDateOnly(value)
      // A `Date` goes as its ISO text (JSON); a string as written, so it must be the Web API's form.
      const time = instantOf(value)
      if (Number.isNaN(time)) {
        return `must be an ISO date (2024-01-31) or date-time (2024-01-31T10:00:00Z), got ${
          value instanceof Date ? "an invalid Date" : shown(value)
        }`
      }
      // "All date and time columns in Dataverse support values as early as 1/1/1753 12:00 AM"
      // (learn.microsoft.com, behavior-format-date-time-attribute).
      return time < earliestDateTime
        ? `is ${
          value instanceof Date ? value.toISOString() : String(value)
        }; the earliest Dataverse stores is 1753-01-01 00:00 UTC`
        : undefined
    }
    case "Picklist":
    case "State":
    case "Status": {
      if (typeof value !== "number" || !Number.isInteger(value)) {
        return `must be an option value (a whole number), got ${shown(value)}`
      }
      if (column.options !== undefined && column.options.length > 0 && !column.options.some((o) => o.value === value)) {
        return `is ${value}, not one of the options ${column.options.map((o) => `${o.value} (${o.label})`).join(", ")}`
      }
      return undefined
    }
    case "Uniqueidentifier":
      return typeof value === "string" && isGuid(value) ? undefined : `must be a GUID, got ${shown(value)}`
    case "Lookup":
    case "Customer":
    case "Owner":
      return `is a lookup: set it as '<navigation property>@odata.bind'`
    default:
      return undefined
  }
}

/**
 * Why `name` (`<navigation property>@odata.bind`) binds no lookup of `table`, or undefined when it
 * binds one: with the names that bind a lookup named by its column (`parentcustomerid`), else the
 * closest navigation properties.
 */
export const bindingProblem = (
  table: TableMetadata,
  name: string,
  navigation: ReadonlySet<string> = indexOf(table).navigation
): string | undefined => {
  const property = name.slice(0, -bindSuffix.length)
  if (navigation.has(property)) return undefined
  // A lookup column's name where its navigation property belongs (`parentcustomerid`).
  const viaColumn = table.lookups.filter((lookup) => lookup.column === property)
  const hint = viaColumn.length > 0
    ? `the lookup '${property}' is bound through ${
      viaColumn.map((lookup) => `${lookup.navigationProperty}${bindSuffix}`).join(" or ")
    }`
    : didYouMeanOf(suggest(property, navigation).map((n) => `${n}${bindSuffix}`))
  const message = `'${name}' names no navigation property of ${table.logicalName}`
  return hint === undefined ? message : `${message}; ${hint}`
}

const bindSuffix = "@odata.bind"

/**
 * What is wrong with a row, as `column 'x' ...`, or undefined when the row is fine: a name that is
 * not the table's alone, else every value that does not fit, joined by `; `.
 * `isCreate` adds the check of system-required columns.
 */
export const validateRow = (table: TableMetadata, row: Row, isCreate: boolean): string | undefined => {
  const { columns, navigation, requiredOnCreate } = indexOf(table)
  let valueProblems: Array<string> | undefined
  for (const name in row) {
    const value = row[name]
    // JSON leaves an undefined value out of the body: the service never sees it.
    if (value === undefined) continue
    if (name.endsWith("@odata.bind")) {
      const unbound = bindingProblem(table, name, navigation)
      if (unbound !== undefined) return unbound
      if (value !== null && typeof value !== "string") return `'${name}' must be a record URL such as "/accounts(<id>)"`
      continue
    }
    // Other annotations (`@odata.type`, `@odata.id`, `@odata.etag`) are the engine's or ignored.
    if (name.includes("@")) continue
    const column = columns.get(name)
    if (column === undefined) {
      // `_x_value` is how a lookup reads back; it is written through its navigation property.
      const read = /^_(.+)_value$/.exec(name)?.[1]
      const lookups = read === undefined ? [] : table.lookups.filter((lookup) => lookup.column === read)
      if (lookups.length > 0) {
        return `column '${name}' is how the lookup '${read}' reads back; write it as ${
          lookups.map((lookup) => `${lookup.navigationProperty}@odata.bind`).join(" or ")
        } with "/<entity set>(<id>)"`
      }
      return withSuggestion(`column '${name}' does not exist in ${table.logicalName}`, name, columns.keys())
    }
    const problem = checkValue(column, value)
    // Every value that does not fit is said at once, so that a row is fixed in one go; a name
    // that is wrong (above) is said alone.
    if (problem !== undefined) (valueProblems ??= []).push(`column '${name}' ${problem}`)
  }
  if (isCreate) {
    for (const name of requiredOnCreate) {
      if ((row[name] ?? null) === null) (valueProblems ??= []).push(`column '${name}' is required`)
    }
  }
  return valueProblems?.join("; ")
}

/**
 * Turning rows as people write them (CSV text, loosely typed JSON) into Web API bodies, by the
 * table's column metadata: numbers, booleans, dates, GUIDs, choices by value or label,
 * multi-select choices, and lookups by GUID or alternate key with a column syntax of their own:
 *
 * | column | value | sent as |
 * |---|---|---|
 * | `dve_supplierid` (one target) | `<guid>` | `dve_supplierid@odata.bind: "/accounts(<guid>)"` |
 * | `parentcustomerid` (several) | `account:<guid>` | `parentcustomerid_account@odata.bind: "/accounts(<guid>)"` |
 * | `parentcustomerid@account` | `<guid>` | the same |
 * | `parentcustomerid@account.accountnumber` | `A-1` | `parentcustomerid_account@odata.bind: "/accounts(accountnumber='A-1')"` |
 * | `_parentcustomerid_value` (as `query` writes it: `account:<guid>`) | like `parentcustomerid` | |
 * | `x@odata.bind`, `@odata.type` | anything | as given |
 *
 * Columns that cannot be written (read-only columns a query returns, such as `fullname` or
 * `createdon`) are left out of the body, and `make` says so once.
 *
 * @since 0.1.0
 */
import { InvalidRow, type RowInput } from "@dv-effect/core/Bulk"
import { DataverseClient } from "@dv-effect/core/DataverseClient"
import type { DataverseError } from "@dv-effect/core/DataverseError"
import * as Metadata from "@dv-effect/core/Metadata"
import * as Records from "@dv-effect/core/Records"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { CliError } from "./CliError.js"
import * as Input from "./Input.js"
import * as Output from "./Output.js"

type TableMetadata = Metadata.TableMetadata
type ColumnMetadata = Metadata.ColumnMetadata

/**
 * Why a row could not be coerced, naming the column. `kind` is `column` when the column itself is
 * wrong (it does not exist, a lookup syntax names a table or key it cannot use), which is wrong
 * for every row of a CSV file alike; `value` when this row's value is.
 *
 * @since 0.1.0
 */
export class CoerceError extends Data.TaggedError("CoerceError")<{
  readonly column: string
  readonly kind: "column" | "value"
  readonly message: string
}> {}

/**
 * What coercing a row needs: the table's metadata, and the metadata of the lookup target tables
 * the row names (see `targetsOf`).
 *
 * @since 0.1.0
 */
export interface CoerceContext {
  readonly table: TableMetadata
  /** The metadata of a lookup target table by logical name; undefined when it is not known. */
  readonly target: (logicalName: string) => TableMetadata | undefined
}

/**
 * What `coerceValue` gives for a value that is not sent (a blank value of a column that is not
 * text): the column is left out of the body.
 *
 * @since 0.1.0
 */
export const omitted: unique symbol = Symbol.for("dv-effect/cli/Coerce/omitted")
const omit: typeof omitted = omitted
type Coerced = unknown

const maxShown = 40

/**
 * A value as it appears in messages: quoted, long ones cut to 40 characters.
 *
 * @since 0.1.0
 */
export const show = (value: unknown): string => {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value)
  const short = text.length > maxShown ? `${text.slice(0, maxShown - 1)}…` : text
  return typeof value === "string" ? `'${short}'` : short
}

const columnProblem = (column: string, message: string) => new CoerceError({ column, kind: "column", message })
const valueProblem = (column: string, message: string) =>
  new CoerceError({ column, kind: "value", message: `column '${column}': ${message}` })

/** `message; did you mean 'a' or 'b'?` with the candidates closest to `name` (`Metadata.didYouMean`), else `message`. */
const withSuggestion = (message: string, name: string, candidates: Iterable<string>): string => {
  const hint = Metadata.didYouMean(name, candidates)
  return hint === undefined ? message : `${message}; ${hint}`
}
const columnNames = (table: TableMetadata, filter: (column: ColumnMetadata) => boolean = () => true) =>
  table.columns.filter(filter).map((column) => column.logicalName)

// ---------------------------------------------------------------------------------------------
// Plain values

const wholePattern = /^[+-]?\d+$/
const decimalPattern = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/

const trueWords = new Set(["true", "1", "yes"])
const falseWords = new Set(["false", "0", "no"])

/**
 * An ISO 8601 date (`2024-01-31`) or date-time (`2024-01-31T10:00`, seconds, fractions and an
 * offset optional, a space allowed for the `T`, `+0100` for `+01:00`) in the form the Web API takes
 * (`2024-01-31T10:00:00Z`, `...+01:00`); undefined when it is not a real date. What a file may
 * hold beyond the Web API's form is rewritten to it, then read by core's one rule
 * (`Records.parseDateTime`).
 *
 * @since 0.1.0
 */
export const parseDateTime = (text: string): string | undefined =>
  Records.parseDateTime(
    text.trim()
      .replace(/^(\d{4}-\d{2}-\d{2}) (?=\d)/, "$1T")
      .replace(/\s*([zZ]|[+-]\d{2}:?\d{2})$/, (_, offset: string) =>
        offset.toUpperCase() === "Z" ? "Z" : offset.includes(":") ? offset : `${offset.slice(0, 3)}:${offset.slice(3)}`)
      .replace(/^(\d{4}-\d{2}-\d{2})t/, "$1T")
  )

/**
 * A date-only column takes a date (`Edm.Date`; the service refuses a date and time). A file's
 * midnight (`1990-05-01 00:00:00`, as databases export dates) is that day as written, offset or not;
 * any other time is refused, not cut off.
 */
const dateOnly = (name: string, value: unknown, parsed: string): Either.Either<Coerced, CoerceError> => {
  const [day, time] = parsed.split("T")
  return time === undefined || /^00:00:00(\.0*)?(Z|[+-]\d{2}:\d{2})?$/.test(time)
    ? Either.right(day)
    : Either.left(valueProblem(name, `${show(value)} has a time of day, but '${name}' holds a date only (${day!})`))
}

/**
 * Whether a column is a multi-select choice (`MultiSelectPicklistType`; the Web API takes its
 * value as the option values joined by commas, `"1,3"`).
 *
 * @since 0.1.0
 */
export const isMultiSelect = (column: ColumnMetadata): boolean => column.typeName === "MultiSelectPicklistType"

const optionList = (column: ColumnMetadata) => {
  const options = column.options ?? []
  const shown = options.slice(0, 8).map((o) => `${o.label ?? "(no label)"} = ${o.value}`).join(", ")
  return options.length > 8 ? `${shown}, ... (${options.length} in all)` : shown
}

/** One option by value (a whole number) or by label (any case). */
const option = (column: ColumnMetadata, text: string): Either.Either<number, CoerceError> => {
  const name = column.logicalName
  const trimmed = text.trim()
  if (wholePattern.test(trimmed)) return Either.right(Number(trimmed))
  const options = column.options ?? []
  if (options.length === 0) {
    return Either.left(valueProblem(name, `${show(text)} is not an option value, and no option labels are known`))
  }
  const wanted = trimmed.toLowerCase()
  const values = [...new Set(options.filter((o) => o.label?.trim().toLowerCase() === wanted).map((o) => o.value))]
  if (values.length === 1) return Either.right(values[0]!)
  return Either.left(
    valueProblem(
      name,
      values.length === 0
        ? withSuggestion(
          `${show(text)} is not an option (${optionList(column)})`,
          trimmed,
          options.flatMap((o) => o.label?.trim() ?? [])
        )
        : `${show(text)} is the label of several options (${values.join(", ")}): write the value`
    )
  )
}

const multiSelect = (column: ColumnMetadata, value: unknown): Either.Either<Coerced, CoerceError> => {
  const parts: Array<unknown> = Array.isArray(value)
    ? value
    : typeof value === "string"
    ? (/^\s*\d+(\s*,\s*\d+)*\s*$/.test(value) ? value.split(",") : value.split(";"))
    : [value]
  const values: Array<number> = []
  for (const part of parts) {
    if (typeof part === "number" && Number.isInteger(part)) values.push(part)
    else if (typeof part === "string") {
      if (part.trim() === "") continue
      const one = option(column, part)
      if (Either.isLeft(one)) return one
      values.push(one.right)
    } else {
      return Either.left(valueProblem(column.logicalName, `${show(part)} is not an option value or label`))
    }
  }
  return Either.right(values.length === 0 ? omit : [...new Set(values)].join(","))
}

/**
 * Coerces one value of a column that is not a lookup: strings are read by the column's type
 * (numbers, `true/false/1/0/yes/no`, ISO dates, GUIDs, option values or labels, `a;b` for
 * multi-select choices); values already of the right JSON type pass, as does `null`. A blank
 * string for a column that is not text gives `omitted` (the column is left out). Left: what is wrong, naming the
 * column and the value.
 *
 * @example
 * ```ts
 * import * as Coerce from "./Coerce.js"
 * // Either.right(42) for an Integer column, Either.right(2) for the label "Female" of gendercode
 * ```
 *
 * @since 0.1.0
 */
export const coerceValue = (column: ColumnMetadata, value: unknown): Either.Either<Coerced, CoerceError> => {
  if (value === null || value === undefined) return Either.right(value === null ? null : omit)
  const name = column.logicalName
  const text = typeof value === "string" ? value.trim() : undefined
  const isText = column.type === "String" || column.type === "Memo"
  if (text === "" && !isText) return Either.right(omit)
  if (isMultiSelect(column)) return multiSelect(column, value)
  switch (column.type) {
    case "String":
    case "Memo":
      return Either.right(typeof value === "number" || typeof value === "boolean" ? String(value) : value)
    case "Integer":
    case "BigInt": {
      if (text === undefined) return Either.right(value)
      if (!wholePattern.test(text)) return Either.left(valueProblem(name, `${show(value)} is not a whole number`))
      const n = Number(text)
      return Number.isSafeInteger(n)
        ? Either.right(n)
        : Either.left(valueProblem(name, `${show(value)} is too large to send exactly`))
    }
    case "Decimal":
    case "Double":
    case "Money": {
      if (text === undefined) return Either.right(value)
      const n = Number(text)
      return decimalPattern.test(text) && Number.isFinite(n)
        ? Either.right(n)
        : Either.left(valueProblem(name, `${show(value)} is not a number`))
    }
    case "Boolean": {
      if (typeof value === "number" && (value === 0 || value === 1)) return Either.right(value === 1)
      if (text === undefined) return Either.right(value)
      const word = text.toLowerCase()
      return trueWords.has(word)
        ? Either.right(true)
        : falseWords.has(word)
        ? Either.right(false)
        : Either.left(valueProblem(name, `${show(value)} is not true or false (or 1/0, yes/no)`))
    }
    case "DateTime": {
      if (text === undefined) return Either.right(value)
      const date = parseDateTime(text)
      if (date !== undefined && column.dateTimeBehavior === "DateOnly") return dateOnly(name, value, date)
      return date !== undefined
        ? Either.right(date)
        : Either.left(
          valueProblem(
            name,
            `${show(value)} is not an ISO date (2024-01-31)${
              column.dateTimeBehavior === "DateOnly" ? "" : " or date-time (2024-01-31T10:00:00Z)"
            }`
          )
        )
    }
    case "Uniqueidentifier": {
      if (text === undefined) return Either.right(value)
      const guid = Records.parseGuid(text)
      return guid !== undefined ? Either.right(guid) : Either.left(valueProblem(name, `${show(value)} is not a GUID`))
    }
    case "Picklist":
    case "State":
    case "Status":
      return text === undefined ? Either.right(value) : option(column, text)
    default:
      return Either.right(value)
  }
}

// ---------------------------------------------------------------------------------------------
// Lookups

const lookupTypes = new Set(["Lookup", "Customer", "Owner"])

/** The tables a lookup column may point at, from its metadata and its relationships. */
const targetsOfColumn = (table: TableMetadata, column: ColumnMetadata): ReadonlyArray<string> => [
  ...new Set([
    ...(column.targets ?? []),
    ...table.lookups.filter((l) => l.column === column.logicalName).map((l) => l.target)
  ])
]

/**
 * The lookup columns of a table that may point at several tables (customer, owner, regarding
 * lookups), by logical name. `query` writes their values as `<table>:<GUID>` (which this module
 * reads back), since a GUID alone does not say which table it is in.
 *
 * @since 0.1.0
 */
export const polymorphicLookups = (table: TableMetadata): ReadonlyArray<string> =>
  table.columns.filter((column) => lookupTypes.has(column.type) && targetsOfColumn(table, column).length > 1)
    .map((column) => column.logicalName)

/**
 * Whether a column is a lookup (Lookup, Customer or Owner); the Web API returns its values as
 * `_<column>_value`.
 *
 * @since 0.1.0
 */
export const isLookup = (column: ColumnMetadata): boolean => lookupTypes.has(column.type)

/** What a row's key says: a column, an annotation, or a lookup with its target and key. */
type ParsedName =
  | { readonly _tag: "Passthrough" }
  | { readonly _tag: "Column"; readonly column: string }
  | { readonly _tag: "Lookup"; readonly column: string; readonly target: string; readonly key: string | undefined }

const parseName = (name: string): ParsedName => {
  const at = name.indexOf("@")
  if (at === -1) {
    const value = /^_(.+)_value$/.exec(name)
    return { _tag: "Column", column: value === null ? name : value[1]! }
  }
  const suffix = name.slice(at + 1)
  // Annotations: `x@odata.bind`, `@odata.type`, `x@OData.Community.Display.V1.FormattedValue`, ...
  if (at === 0 || /^(odata|microsoft)\./i.test(suffix)) return { _tag: "Passthrough" }
  const dot = suffix.indexOf(".")
  return {
    _tag: "Lookup",
    column: name.slice(0, at),
    target: (dot === -1 ? suffix : suffix.slice(0, dot)).toLowerCase(),
    key: dot === -1 ? undefined : suffix.slice(dot + 1)
  }
}

const columnsByName = new WeakMap<TableMetadata, ReadonlyMap<string, ColumnMetadata>>()

const columnOf = (table: TableMetadata, name: string): ColumnMetadata | undefined => {
  let columns = columnsByName.get(table)
  if (columns === undefined) {
    columns = new Map(table.columns.map((column) => [column.logicalName, column]))
    columnsByName.set(table, columns)
  }
  return columns.get(name)
}

/** The lookup column `name` of the table, or why it is not one. */
const lookupColumn = (table: TableMetadata, key: string, name: string): Either.Either<ColumnMetadata, CoerceError> => {
  const column = columnOf(table, name)
  if (column === undefined) {
    return Either.left(
      columnProblem(
        key,
        withSuggestion(
          `column '${name}' does not exist in ${table.logicalName}`,
          name,
          columnNames(table, (c) => lookupTypes.has(c.type))
        )
      )
    )
  }
  if (!lookupTypes.has(column.type)) {
    return Either.left(
      columnProblem(key, `column '${key}': '${name}' is a ${column.type} column, not a lookup, so it takes no @table`)
    )
  }
  return Either.right(column)
}

/** `account:<guid>` → ["account", "<guid>"]; a bare value has no target. */
const splitTarget = (text: string): readonly [string | undefined, string] => {
  const colon = text.indexOf(":")
  if (colon <= 0) return [undefined, text]
  const prefix = text.slice(0, colon).trim()
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(prefix) ? [prefix.toLowerCase(), text.slice(colon + 1)] : [undefined, text]
}

/** The target table a lookup value names, or why it names none. */
const chooseTarget = (
  table: TableMetadata,
  key: string,
  column: ColumnMetadata,
  named: string | undefined
): Either.Either<string, CoerceError> => {
  const targets = targetsOfColumn(table, column)
  if (named !== undefined) {
    return targets.includes(named)
      ? Either.right(named)
      : Either.left(
        valueProblem(
          key,
          withSuggestion(
            `the lookup '${column.logicalName}' cannot point at '${named}' (targets: ${targets.join(", ")})`,
            named,
            targets
          )
        )
      )
  }
  if (targets.length === 1) return Either.right(targets[0]!)
  if (targets.length === 0) {
    return Either.left(columnProblem(key, `column '${key}': the tables the lookup can point at are not known`))
  }
  return Either.left(
    valueProblem(
      key,
      `the lookup points at several tables (${targets.join(", ")}): write values as ${
        targets[0]
      }:<GUID>, or name the column ${column.logicalName}@${targets[0]}`
    )
  )
}

/** The `nav@odata.bind` property and value for a lookup to `target`. */
const bindLookup = (
  context: CoerceContext,
  key: string,
  column: ColumnMetadata,
  target: string,
  ref: Records.RecordRef | null
): Either.Either<readonly [string, string | null], CoerceError> => {
  const property = Metadata.bindName(context.table, column.logicalName, target)
  if (Either.isLeft(property)) return Either.left(columnProblem(key, `column '${key}': ${property.left.message}`))
  if (ref === null) return Either.right([property.right, null])
  const metadata = context.target(target)
  if (metadata === undefined) {
    return Either.left(columnProblem(key, `column '${key}': the table '${target}' is not known to this connection`))
  }
  return Either.right([property.right, Records.bind(metadata, ref)])
}

/** The text `null` (any case, spaces around), which no lookup by GUID can mean but null. */
const isNullText = (value: unknown): boolean => typeof value === "string" && value.trim().toLowerCase() === "null"

/** A lookup written `column` with a GUID or `table:<GUID>`. */
const plainLookup = (
  context: CoerceContext,
  key: string,
  column: ColumnMetadata,
  value: unknown
): Either.Either<readonly [string, string | null] | typeof omit, CoerceError> => {
  if (value === null || isNullText(value)) {
    // Clearing a lookup to several tables through any of its navigation properties clears it
    // (`parentcustomerid_account@odata.bind: null`), whichever table it points at.
    const targets = targetsOfColumn(context.table, column)
    const target = targets.length > 0 ? Either.right(targets[0]!) : chooseTarget(context.table, key, column, undefined)
    return Either.flatMap(target, (t) => bindLookup(context, key, column, t, null))
  }
  if (typeof value !== "string") {
    return Either.left(valueProblem(key, `${show(value)} is not a GUID`))
  }
  if (value.trim() === "") return Either.right(omit)
  const [named, rest] = splitTarget(value.trim())
  const target = chooseTarget(context.table, key, column, named)
  if (Either.isLeft(target)) return Either.left(target.left)
  const id = Records.parseGuid(rest)
  if (id === undefined) {
    return Either.left(
      valueProblem(
        key,
        `${
          show(value)
        } is not a GUID; to find the ${target.right} by an alternate key, name the column ${column.logicalName}@${target.right}.<key column>`
      )
    )
  }
  return bindLookup(context, key, column, target.right, id)
}

/** A lookup written `column@table` (a GUID) or `column@table.keycolumn` (a key value). */
const namedLookup = (
  context: CoerceContext,
  key: string,
  parsed: { readonly column: string; readonly target: string; readonly key: string | undefined },
  value: unknown
): Either.Either<readonly [string, string | null] | typeof omit, CoerceError> => {
  const column = lookupColumn(context.table, key, parsed.column)
  if (Either.isLeft(column)) return Either.left(column.left)
  const targets = targetsOfColumn(context.table, column.right)
  if (!targets.includes(parsed.target)) {
    return Either.left(
      columnProblem(
        key,
        withSuggestion(
          `column '${key}': the lookup '${parsed.column}' cannot point at '${parsed.target}' (targets: ${
            targets.join(", ")
          })`,
          parsed.target,
          targets
        )
      )
    )
  }
  // The text `null` is no GUID: it clears the lookup too (for an alternate key it is a key value).
  if (value === null || (parsed.key === undefined && isNullText(value))) {
    return bindLookup(context, key, column.right, parsed.target, null)
  }
  if (typeof value === "string" && value.trim() === "") return Either.right(omit)
  if (parsed.key === undefined) {
    const text = typeof value === "string" ? value.trim() : undefined
    const [named, rest] = text === undefined ? [undefined, ""] : splitTarget(text)
    const id = text === undefined || (named !== undefined && named !== parsed.target)
      ? undefined
      : Records.parseGuid(rest)
    if (id === undefined) return Either.left(valueProblem(key, `${show(value)} is not a GUID`))
    return bindLookup(context, key, column.right, parsed.target, id)
  }
  const target = context.target(parsed.target)
  if (target === undefined) {
    return Either.left(
      columnProblem(key, `column '${key}': the table '${parsed.target}' is not known to this connection`)
    )
  }
  const keyColumn = columnOf(target, parsed.key)
  if (keyColumn === undefined) {
    return Either.left(
      columnProblem(
        key,
        // The columns that can name a record: its single-column alternate keys and primary key.
        withSuggestion(
          `column '${key}': the table '${parsed.target}' has no column '${parsed.key}'`,
          parsed.key,
          [
            ...target.keys.filter((k) => k.keyAttributes.length === 1).map((k) => k.keyAttributes[0]!),
            target.primaryIdAttribute
          ]
        )
      )
    )
  }
  const alternateKey = target.keys.find((k) => k.keyAttributes.length === 1 && k.keyAttributes[0] === parsed.key)
  if (alternateKey === undefined && !keyColumn.isPrimaryId) {
    const keys = target.keys.map((k) => k.keyAttributes.join("+"))
    return Either.left(
      columnProblem(
        key,
        `column '${key}': '${parsed.key}' is not an alternate key of ${parsed.target} (${
          keys.length === 0 ? "it has none" : `keys: ${keys.join(", ")}`
        })`
      )
    )
  }
  if (alternateKey !== undefined && alternateKey.status !== "Active") {
    return Either.left(
      columnProblem(
        key,
        `column '${key}': the key '${alternateKey.logicalName}' of ${parsed.target} is ${alternateKey.status}, not Active`
      )
    )
  }
  const typed = coerceValue(keyColumn, value)
  if (Either.isLeft(typed)) {
    return Either.left(valueProblem(key, typed.left.message.replace(/^column '[^']*': /, "")))
  }
  const keyValue = typed.right
  if (
    keyValue === omit ||
    !(typeof keyValue === "string" || typeof keyValue === "number" || typeof keyValue === "boolean")
  ) {
    return Either.left(valueProblem(key, `${show(value)} is not a key value`))
  }
  return bindLookup(
    context,
    key,
    column.right,
    parsed.target,
    keyColumn.isPrimaryId && typeof keyValue === "string" ? keyValue : { [parsed.key]: keyValue }
  )
}

// ---------------------------------------------------------------------------------------------
// Rows

/**
 * The lookup target tables whose metadata coercing `row` needs (their entity sets go into
 * `@odata.bind` values): only targets the lookup columns can point at. Pure; `make` fetches them.
 *
 * @since 0.1.0
 */
export const targetsOf = (table: TableMetadata, row: Readonly<Record<string, unknown>>): ReadonlyArray<string> => {
  const needed: Array<string> = []
  for (const key in row) {
    const parsed = parseName(key)
    if (parsed._tag === "Passthrough") continue
    const column = columnOf(table, parsed.column)
    if (column === undefined || !lookupTypes.has(column.type)) continue
    const targets = targetsOfColumn(table, column)
    let target: string | undefined
    if (parsed._tag === "Lookup") target = parsed.target
    else {
      const value = row[key]
      const named = typeof value === "string" ? splitTarget(value.trim())[0] : undefined
      target = named ?? (targets.length === 1 ? targets[0] : undefined)
    }
    if (target !== undefined && targets.includes(target) && !needed.includes(target)) needed.push(target)
  }
  return needed
}

/**
 * The keys of `row` that set a lookup, by this module's syntax (`column`, `_column_value`,
 * `column@table[.key]`) and the table's lookup columns, or by `x@odata.bind`.
 *
 * @since 0.2.0
 */
export const lookupKeys = (table: TableMetadata, row: Readonly<Record<string, unknown>>): Array<string> =>
  Object.keys(row).filter((key) => {
    if (key.endsWith("@odata.bind")) return true
    const parsed = parseName(key)
    if (parsed._tag === "Passthrough") return false
    const column = columnOf(table, parsed.column)
    return column !== undefined && lookupTypes.has(column.type)
  })

/**
 * What a row is coerced for: `create` and `update` leave out the columns the table does not let
 * them write (`IsValidForCreate`, `IsValidForUpdate` false in metadata); `upsert`, `delete` or
 * none, those that neither can write (columns the service sets: `fullname`, `createdon`,
 * `modifiedby`, ...). The primary key is always kept: it names the record (or sets its id on create).
 *
 * @since 0.1.0
 */
export type Operation = "create" | "update" | "upsert" | "delete"

/**
 * Whether a row may carry `column` for `operation` (see `Operation`).
 *
 * @since 0.1.0
 */
export const isWritable = (column: ColumnMetadata, operation?: Operation | undefined): boolean =>
  column.isPrimaryId ||
  (operation === "create"
    ? column.isValidForCreate
    : operation === "update"
    ? column.isValidForUpdate
    : column.isValidForCreate || column.isValidForUpdate)

/**
 * Options of `coerceRow`.
 *
 * @since 0.1.0
 */
export interface RowOptions {
  /** What the row is for; decides which read-only columns are left out (see `Operation`). */
  readonly operation?: Operation | undefined
  /**
   * Called with each key of the row left out: because its column cannot be written (`readOnly`),
   * or because it holds records a query expanded (`expanded`).
   */
  readonly leftOut?: ((key: string, why: LeftOut) => void) | undefined
}

/**
 * Why a key of a row is left out: its column cannot be written, or it holds records a query's
 * `--expand` brought along (a navigation property's record or collection, or a CSV column
 * `<navprop>.<column>`), which are no column of the table.
 *
 * @since 0.2.0
 */
export type LeftOut = "readOnly" | "expanded"

const isRecord = (value: unknown): boolean => typeof value === "object" && value !== null && !Array.isArray(value)

const parsedJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * Whether a key holds records a query expanded (see `LeftOut`): a CSV column `<navprop>.<column>`;
 * in JSON, a navigation property's record (an object, also where the property has its lookup
 * column's name, as `primarycontactid` has) or null, or a collection (an array of records; in CSV
 * its JSON text) under a name that is no column (collection-valued properties are not in the
 * metadata).
 */
const isExpanded = (
  table: TableMetadata,
  key: string,
  value: unknown,
  column: ColumnMetadata | undefined
): boolean => {
  const dot = key.indexOf(".")
  const property = dot < 0 ? key : key.slice(0, dot)
  const navigation = table.lookups.some((lookup) => lookup.navigationProperty === property)
  if (dot >= 0) return column === undefined && navigation
  // Records, not values: a multi-select choice's array (numbers or labels) under a misspelt name
  // stays an unknown column. In CSV a collection is its JSON text.
  const collection = typeof value === "string" && value.startsWith("[") ? parsedJson(value) : value
  if (Array.isArray(collection)) return column === undefined && collection.every(isRecord)
  if (!navigation) return false
  // A lookup column written null clears the lookup: only its record is the expansion's.
  return column === undefined || (typeof value === "object" && value !== null && !(value instanceof Date))
}

/**
 * Coerces a row as read into a Web API body: every column by its metadata (`coerceValue`),
 * lookups by the column syntax of this module into `<navigation property>@odata.bind`, Web API
 * annotations as given, blank values of non-text columns left out, and so are columns that
 * cannot be written (read-only columns a query returns: see `Operation`; `options.leftOut` hears
 * of each). Left: a column the table lacks, or every value that does not convert, each naming its
 * column (and the value, cut to 40 characters), joined by `; `.
 *
 * @example
 * ```ts
 * import * as Coerce from "./Coerce.js"
 * // { lastname: "Doe", "parentcustomerid@account.accountnumber": "A-1", creditlimit: "1500.50" }
 * // → { lastname: "Doe", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')", creditlimit: 1500.5 }
 * ```
 *
 * @since 0.1.0
 */
export const coerceRow = (
  context: CoerceContext,
  row: Readonly<Record<string, unknown>>,
  options: RowOptions = {}
): Either.Either<Record<string, unknown>, CoerceError> => {
  const out: Record<string, unknown> = {}
  const table = context.table
  // Every value that does not convert is said at once (a row is fixed in one go); a column the
  // table lacks stops at once (for a CSV, it is the header's problem).
  const values: Array<CoerceError> = []
  const readOnly = (name: string) => {
    const column = columnOf(table, name)
    return column !== undefined && !isWritable(column, options.operation)
  }
  for (const key in row) {
    const value = row[key]
    if (Input.isReservedKey(key)) return Either.left(reservedKeyProblem(key, value))
    const parsed = parseName(key)
    if (parsed._tag === "Passthrough") {
      // A binding that names no navigation property is the column's fault, said once for a header.
      if (key.endsWith("@odata.bind")) {
        const bound = Metadata.checkBindName(table, key)
        if (Either.isLeft(bound)) return Either.left(columnProblem(key, bound.left.message))
      }
      out[key] = value
      continue
    }
    let bound: Either.Either<readonly [string, string | null] | typeof omit, CoerceError>
    if (parsed._tag === "Lookup") {
      if (readOnly(parsed.column)) {
        options.leftOut?.(key, "readOnly")
        continue
      }
      bound = namedLookup(context, key, parsed, value)
    } else {
      const column = columnOf(table, parsed.column)
      if (isExpanded(table, key, value, column)) {
        options.leftOut?.(key, "expanded")
        continue
      }
      if (column === undefined || (parsed.column !== key && !lookupTypes.has(column.type))) {
        const unknown = withSuggestion(
          `column '${key}' does not exist in ${table.logicalName}`,
          key,
          columnNames(table)
        )
        // No logical name holds a `.`: a query's link-entity column (`<alias>.<column>`) most
        // likely. It is refused, not left out: a misnamed column left out would write rows
        // without it, or empty records.
        const linked = key.includes(".") && !key.includes("@") && !unknown.includes("did you mean")
        return Either.left(
          columnProblem(
            key,
            linked
              ? `${unknown} (a related table's column, as a FetchXML link-entity's: take it out of the input)`
              : unknown
          )
        )
      }
      if (!isWritable(column, options.operation)) {
        options.leftOut?.(key, "readOnly")
        continue
      }
      if (!lookupTypes.has(column.type)) {
        const coerced = coerceValue(column, value)
        if (Either.isLeft(coerced)) {
          values.push(coerced.left)
          continue
        }
        if (coerced.right !== omit) out[key] = coerced.right
        continue
      }
      bound = plainLookup(context, key, column, value)
    }
    if (Either.isLeft(bound)) {
      if (bound.left.kind === "column") return Either.left(bound.left)
      values.push(bound.left)
      continue
    }
    if (bound.right === omit) continue
    const [property, url] = bound.right
    // A new record has no lookup to clear: a null lookup is left out of a create.
    if (url === null && options.operation === "create") continue
    if (property in out && out[property] !== url) {
      return Either.left(columnProblem(key, `column '${key}' sets the same lookup as another column of the row`))
    }
    out[property] = url
  }
  if (values.length === 0) return Either.right(out)
  return Either.left(
    values.length === 1
      ? values[0]!
      : new CoerceError({
        column: values[0]!.column,
        kind: "value",
        message: values.map((problem) => problem.message).join("; ")
      })
  )
}

/**
 * Why a row with a key reserved by dv-effect (`@dv-effect.extra`, `@dv-effect.text`: what a
 * rejects file keeps of a record that was not a row) is refused: it is never sent, nor ignored.
 * A problem of the column (see `CoerceError`).
 *
 * @since 0.2.0
 */
export const reservedKeyProblem = (key: string, value: unknown): CoerceError =>
  columnProblem(
    key,
    key === Input.extraFieldsKey
      ? `'${key}' holds fields past the end of the CSV header (${
        show(value)
      }): move them to their columns, or remove the key`
      : key === Input.unreadTextKey
      ? `'${key}' holds a record that could not be read (${
        show(value)
      }): write it as the row's columns, or remove the key`
      : `'${key}' is a key reserved by dv-effect, not a column: remove it`
  )

/**
 * A `CoerceError` as the invalid row the bulk engine reports failed (reason `InvalidInput`).
 *
 * @since 0.1.0
 */
export const toRowError = (error: CoerceError): InvalidRow => new InvalidRow({ message: error.message })

// ---------------------------------------------------------------------------------------------
// With a connection

/**
 * Coerces the rows of one table, fetching the metadata of lookup target tables on first use.
 *
 * @since 0.1.0
 */
export interface Coercer {
  readonly table: TableMetadata
  /**
   * The row as a Web API body, or why it is invalid (an `InvalidRow` naming the column). An
   * `InvalidRow` passes through. Fails only when metadata cannot be fetched (`DataverseError`),
   * or, with `columnProblems: "fail"`, on the first problem of a column itself (`CliError`).
   */
  readonly coerce: (input: RowInput) => Effect.Effect<RowInput, DataverseError | CliError>
}

/**
 * Options of `make`.
 *
 * @since 0.1.0
 */
export interface CoercerOptions {
  /**
   * What a problem of a column itself does (it does not exist; its lookup syntax names a table or
   * key it cannot use): `row` fails the row (the default; right for JSON, where rows differ),
   * `fail` fails the run at once (right for CSV, where every row has the header's columns).
   */
  readonly columnProblems?: "row" | "fail"
  /** With `columnProblems: "fail"`, the input a column's problem is said of (`<name>: column ...`). */
  readonly source?: string | undefined
  /** What the rows are for: decides which read-only columns are left out (see `Operation`). */
  readonly operation?: Operation | undefined
  /**
   * Told, once for each set of columns first left out, which read-only columns were left out of
   * the rows (a sentence). Default: a `dv-effect: ...` line on stderr.
   */
  readonly note?: ((message: string) => Effect.Effect<void>) | undefined
}

/**
 * The sentence `make` gives when read-only columns are left out of the rows.
 *
 * @since 0.1.0
 */
export const leftOutMessage = (
  table: string,
  columns: ReadonlyArray<string>,
  operation?: Operation | undefined,
  why: LeftOut = "readOnly"
): string =>
  `Left out of the rows (${
    why === "expanded"
      ? `expanded records, not columns of`
      : operation === "create" || operation === "update"
      ? `not valid for ${operation} in`
      : "read-only in"
  } ${table}): ${columns.join(", ")}.`

/**
 * A coercer for `table`: fetches its metadata (fails with reason `NotFound` when the table does
 * not exist), and that of lookup targets as rows name them, through the connection's cache.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as Coerce from "./Coerce.js"
 * import * as Input from "./Input.js"
 * const rows = Effect.gen(function*() {
 *   const source = yield* Input.open({ file: "contacts.csv" })
 *   const coercer = yield* Coerce.make("contact", { columnProblems: "fail" })
 *   return Stream.mapEffect(source.records, (record) =>
 *     Effect.map(coercer.coerce(record.row), (row) => ({ ...record, row })))
 * })
 * ```
 *
 * @since 0.1.0
 */
export const make = (
  table: string,
  options: CoercerOptions = {}
): Effect.Effect<Coercer, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const targets = new Map<string, TableMetadata>()
    const missing = new Set<string>()
    const context: CoerceContext = { table: metadata, target: (name) => targets.get(name) }
    const load = (name: string) =>
      client.table(name).pipe(
        Effect.tap((found) => Effect.sync(() => targets.set(name, found))),
        Effect.catchIf((error) => error.reason === "NotFound", () => Effect.sync(() => missing.add(name))),
        Effect.asVoid
      )
    // Read-only columns left out: said once per run (again only for columns not said before).
    const noted = new Set<string>()
    const note = options.note ?? ((message: string) => Output.stderr(`dv-effect: ${message}\n`))
    const finish = (row: Readonly<Record<string, unknown>>): Effect.Effect<RowInput, CliError> => {
      const fresh: Record<LeftOut, Array<string>> = { readOnly: [], expanded: [] }
      const result = coerceRow(context, row, {
        operation: options.operation,
        leftOut: (key, why) => {
          if (noted.has(key)) return
          noted.add(key)
          fresh[why].push(key)
        }
      })
      const said = Effect.forEach(
        (["readOnly", "expanded"] as const).filter((why) => fresh[why].length > 0),
        (why) => note(leftOutMessage(metadata.logicalName, fresh[why], options.operation, why)),
        { discard: true }
      )
      if (Either.isRight(result)) return Effect.as(said, result.right)
      return options.columnProblems === "fail" && result.left.kind === "column"
        ? Effect.zipRight(
          said,
          Effect.fail(
            new CliError({
              message: options.source === undefined ? result.left.message : `${options.source}: ${result.left.message}`
            })
          )
        )
        : Effect.as(said, toRowError(result.left))
    }
    const coerce = (input: RowInput): Effect.Effect<RowInput, DataverseError | CliError> => {
      if (input instanceof InvalidRow) return Effect.succeed(input)
      const unknown = targetsOf(metadata, input).filter((name) => !targets.has(name) && !missing.has(name))
      return unknown.length === 0
        ? finish(input)
        : Effect.zipRight(Effect.forEach(unknown, load, { discard: true }), Effect.suspend(() => finish(input)))
    }
    return { table: metadata, coerce }
  })

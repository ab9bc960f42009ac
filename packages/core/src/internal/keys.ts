/**
 * Record addresses: the key in parentheses after an entity set name, by primary key
 * (`contacts(<guid>)`), by alternate key (`accounts(accountnumber='A-1')`, multi-part keys) and
 * on elastic tables with the partition (`readings(readingid=<guid>,partitionid='p')`).
 */
import * as Either from "effect/Either"
import type { ColumnMetadata, TableMetadata } from "../Metadata.js"
import type { KeyValue, RecordRef } from "../Records.js"
import { instantOf, isIdentifier, normaliseDateTime, normaliseGuid, quote } from "./odata.js"

/**
 * How a key value is written: strings quoted, the rest bare. `date` is a date-only column (an
 * `Edm.Date`): its literal is the day, never a date and time.
 */
export type KeyKind = "string" | "guid" | "number" | "boolean" | "datetime" | "date"

/** How a column of the given `AttributeType` is written in a key; undefined when unknown. */
export const kindOfAttributeType = (type: string | undefined): KeyKind | undefined => {
  switch (type) {
    case "String":
    case "Memo":
    case "EntityName":
      return "string"
    case "Uniqueidentifier":
    case "Lookup":
    case "Customer":
    case "Owner":
      return "guid"
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
      return undefined
  }
}

/** How a column is written in a key: by its type, and a date-only column as a day. */
export const kindOfColumn = (column: ColumnMetadata): KeyKind | undefined =>
  column.type === "DateTime" && column.dateTimeBehavior === "DateOnly" ? "date" : kindOfAttributeType(column.type)

const kinds = new WeakMap<TableMetadata, (attribute: string) => KeyKind | undefined>()

/** The key kind of each column of a table, built once per table definition (bulk runs ask per row). */
export const kindsOf = (metadata: TableMetadata): (attribute: string) => KeyKind | undefined => {
  let kindOf = kinds.get(metadata)
  if (kindOf === undefined) {
    const kindByColumn = new Map(metadata.columns.map((column) => [column.logicalName, kindOfColumn(column)]))
    kindOf = (attribute: string) => kindByColumn.get(attribute)
    kinds.set(metadata, kindOf)
  }
  return kindOf
}

const describe = (value: KeyValue) => (value instanceof Date ? value.toISOString() : String(value))

/**
 * One key value as an OData literal (not yet percent-encoded). With a known `kind` the column's
 * type decides (a number for a string column is quoted, a GUID column refuses what is not a GUID);
 * without one, strings are quoted and numbers, booleans and dates are bare.
 */
export const formatKeyValue = (
  attribute: string,
  value: KeyValue,
  kind: KeyKind | undefined
): Either.Either<string, string> => {
  const bad = (what: string) =>
    Either.left(`The key value ${JSON.stringify(describe(value))} of '${attribute}' is not ${what}.`)
  const effective: KeyKind = kind ?? (
    typeof value === "string" ?
      "string"
      : typeof value === "boolean" ?
      "boolean"
      : value instanceof Date ?
      "datetime"
      : "number"
  )
  switch (effective) {
    case "string":
      return Either.right(quote(describe(value)))
    case "guid": {
      const guid = typeof value === "string" ? normaliseGuid(value) : undefined
      return guid === undefined ? bad("a GUID") : Either.right(guid)
    }
    case "number": {
      if (typeof value === "bigint") return Either.right(value.toString())
      if (typeof value === "number") return Number.isFinite(value) ? Either.right(String(value)) : bad("a number")
      if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return Either.right(value.trim())
      return bad("a number")
    }
    case "boolean":
      if (typeof value === "boolean") return Either.right(String(value))
      return value === "true" || value === "false" ? Either.right(value) : bad("true or false")
    case "datetime": {
      // The Web API's form only (`Date` would read `06/01/2024`), without an offset as UTC.
      const time = instantOf(typeof value === "string" ? value.trim() : value)
      return Number.isNaN(time) ? bad("a date") : Either.right(new Date(time).toISOString())
    }
    case "date": {
      const text = typeof value === "string" ? normaliseDateTime(value.trim()) : undefined
      return text === undefined || text.includes("T")
        ? bad("a date such as 2024-01-31 (the column holds a date only)")
        : Either.right(text)
    }
  }
}

/**
 * What `keySegment` needs to know about the table.
 */
export interface KeySegmentOptions {
  /** The table's primary key column; needed to combine a GUID with a partition. */
  readonly primaryIdAttribute?: string | undefined
  /** Elastic tables: the record's `partitionid`. */
  readonly partitionId?: string | undefined
  /** How each column is written (from metadata); strings quoted, the rest bare when unknown. */
  readonly kindOf?: ((attribute: string) => KeyKind | undefined) | undefined
}

/**
 * The key predicate with its parentheses, percent-encoded for a URL path:
 * `(00000000-0000-0000-0000-000000000001)`, `(accountnumber='A-1')`,
 * `(firstname='Jo',emailaddress1='j%40x.org')`, `(readingid=<guid>,partitionid='p')`.
 * Left: why the reference cannot be written.
 */
export const keySegment = (ref: RecordRef, options: KeySegmentOptions = {}): Either.Either<string, string> => {
  const parts: Array<readonly [string, KeyValue, KeyKind | undefined]> = []
  if (typeof ref === "string") {
    const id = normaliseGuid(ref)
    if (id === undefined) {
      return Either.left(
        `'${ref}' is not a GUID; address a record by its primary key or by alternate-key values ({ column: value }).`
      )
    }
    if (options.partitionId === undefined) return Either.right(`(${id})`)
    if (options.primaryIdAttribute === undefined) {
      return Either.left("The primary key column is needed to address a record with its partition.")
    }
    parts.push([options.primaryIdAttribute, id, "guid"])
  } else {
    for (const [attribute, value] of Object.entries(ref)) {
      parts.push([attribute, value, options.kindOf?.(attribute)])
    }
    if (parts.length === 0) return Either.left("An alternate key needs at least one column value.")
  }
  if (options.partitionId !== undefined && !parts.some(([attribute]) => attribute === "partitionid")) {
    parts.push(["partitionid", options.partitionId, "string"])
  }
  const written: Array<string> = []
  for (const [attribute, value, kind] of parts) {
    if (!isIdentifier(attribute)) return Either.left(`'${attribute}' is not a column name.`)
    // Values may come from untyped JSON.
    if (value === null || value === undefined) return Either.left(`The key value of '${attribute}' is missing.`)
    const literal = formatKeyValue(attribute, value, kind)
    if (Either.isLeft(literal)) return literal
    written.push(`${attribute}=${encodeURIComponent(literal.right)}`)
  }
  return Either.right(`(${written.join(",")})`)
}

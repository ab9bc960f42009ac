import * as Predicate from "effect/Predicate"
import type { InvalidRow, Operation, RowInput } from "../../Bulk.js"
import { DataverseError } from "../../DataverseError.js"
import type { TableMetadata } from "../../Metadata.js"
import type * as Records from "../../Records.js"
import { withoutReadAnnotations } from "../annotations.js"
import { normaliseGuid } from "../odata.js"
import { bind } from "../records.js"
import { validateRow } from "../validate.js"

/** A row the caller already found invalid (`Bulk.InvalidRow`, told by its tag). */
export const isInvalidRow = (input: RowInput): input is InvalidRow => Predicate.isTagged(input, "InvalidRow")

/** Why an input row cannot be sent, as its failed outcome says it. */
export const invalidRowError = (input: InvalidRow): DataverseError =>
  new DataverseError({ reason: "InvalidInput", message: input.message })

/** The columns of a row that name its record, those it has a value for. */
const namingColumnsOf = (row: Records.Row, columns: ReadonlyArray<string>): Records.Row => {
  const out: Record<string, unknown> = {}
  for (const column of columns) if (row[column] !== undefined && row[column] !== null) out[column] = row[column]
  return out
}

/** A row ready to send: where it goes and what it says. */
export interface Prepared {
  readonly index: number
  readonly row: Records.Row
  /** The record of an update, upsert or delete: its primary key or key columns (see `pathOf`). */
  readonly ref: Records.RecordRef | undefined
  /** The record's primary key, lower case: for creates always (the row's own, or the engine's). */
  readonly id: string | undefined
  /** The engine chose the id (a create without its own): only the engine can have created it. */
  readonly ownId: boolean
}

/**
 * Validates a row against the table's metadata and works out its record: the id of a create
 * (its own, else `idFor(index)`), the URL of an update, upsert or delete (by primary key or the
 * `key` columns). A problem is a `Validation` or `InvalidInput` error naming the column.
 */
export const makePrepare = (options: {
  readonly operation: Operation
  readonly metadata: TableMetadata
  readonly key: ReadonlyArray<string> | undefined
  /** Smart mode: an update or upsert row without key or id may become a create. */
  readonly smart: boolean
  readonly idFor: (index: number) => string
}) =>
(input: Records.Row, index: number): Prepared | DataverseError => {
  const { key, metadata, operation } = options
  // What a record carried when read (an etag, formatted values) is never part of a write.
  const row = withoutReadAnnotations(input)
  // A delete sends nothing but what names the record: its key columns, else its primary key (a GUID).
  const problem = validateRow(
    metadata,
    operation === "delete" ? namingColumnsOf(row, key ?? [metadata.primaryIdAttribute]) : row,
    operation === "create"
  )
  if (problem !== undefined) return new DataverseError({ reason: "Validation", message: problem })
  const primary = row[metadata.primaryIdAttribute]
  // One spelling of each id (braces and case dropped): the same record twice must look the same.
  const id = typeof primary === "string" ? normaliseGuid(primary) ?? primary.toLowerCase() : undefined
  if (operation === "create") {
    if (id !== undefined) return { index, row, ref: undefined, id, ownId: false }
    // The id goes into the body when it is built: no copy of the row here.
    return { index, row, ref: undefined, id: options.idFor(index), ownId: true }
  }
  let ref: Records.RecordRef
  if (key !== undefined) {
    const values: Record<string, Records.KeyValue> = {}
    for (const column of key) {
      const value = row[column]
      // An empty text names no record, as an empty CSV field does not.
      if (value === undefined || value === null || value === "") {
        return new DataverseError({ reason: "InvalidInput", message: `the key column '${column}' has no value` })
      }
      values[column] = value as Records.KeyValue
    }
    ref = values
  } else if (id !== undefined) {
    ref = id
  } else if (options.smart) {
    return { index, row, ref: undefined, id: undefined, ownId: false }
  } else {
    return new DataverseError({
      reason: "InvalidInput",
      message:
        `the row has no '${metadata.primaryIdAttribute}' to name its record by (or name records by alternate-key columns: the key option, --key in the CLI)`
    })
  }
  return { index, row, ref, id, ownId: false }
}

/**
 * `<entityset>(<key>)`: the URL of a row's record, for `$batch`, single requests and an upsert by
 * alternate key; built when a request needs it (UpdateMultiple names records by their key).
 */
export const pathOf = (metadata: TableMetadata, item: Prepared): string =>
  bind(metadata, item.ref!, metadata.tableType === "Elastic" ? partitionOf(item.row) : undefined).slice(1)

/**
 * The identity of a prepared row's record, for spotting the same record twice in a run: its key
 * values (`k:[...]`, strings lower-cased) when it names its record by alternate key, else its
 * lower-cased primary key; none for a create with an id the engine chose (a new record).
 */
export const recordIdentity = (
  operation: Operation,
  item: Prepared,
  key: ReadonlyArray<string> | undefined
): string | undefined => {
  if (item.ownId) return undefined
  if (key !== undefined && key.length > 0 && operation !== "create") {
    const row = item.row
    return `k:${
      JSON.stringify(
        key.map((column) => (typeof row[column] === "string" ? (row[column] as string).toLowerCase() : row[column]))
      )
    }`
  }
  // A GUID alone, as `prepare` lower-cased it: no key identity (`k:[...]`) looks like one.
  return item.id
}

/** What a row writes: without `@odata.*` annotations, with the id the engine chose. */
export const bodyOf = (item: Prepared, primaryIdAttribute: string): Record<string, unknown> => {
  const row = item.row
  let plain = !item.ownId
  if (plain) { for (const name in row) if (name.startsWith("@odata.")) plain = false }
  if (plain) return row as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const name in row) if (!name.startsWith("@odata.")) out[name] = row[name]
  if (item.ownId) out[primaryIdAttribute] = item.id
  return out
}

/** An elastic row's partition, as its own property. */
export const partitionOf = (row: Records.Row): string | undefined =>
  typeof row["partitionid"] === "string" ? row["partitionid"] : undefined

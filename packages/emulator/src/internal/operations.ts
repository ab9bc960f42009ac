/**
 * The write operations every entry point shares (single requests, the bulk messages, `$batch`):
 * create, update, upsert and delete with the service's rules and error codes.
 */
import { randomUUID } from "node:crypto"
import type { LookupValue, Store, StoredRecord, TableStore } from "../Store.js"
import { badRequest, Fault, recordNotFound } from "./fault.js"
import { completeValues, type ResolvedKey, validateBody } from "./records.js"

/** When the service's clock reads. */
export type Now = () => string

/** The record's ETag as the Web API writes it. */
export const etagOf = (record: StoredRecord): string => `W/"${record.version}"`

/** Creates a record from a request body; `by` is the caller's systemuser (`createdby`, `modifiedby`). */
export const createRecord = (
  store: Store,
  table: TableStore,
  body: unknown,
  now: Now,
  by?: LookupValue
): StoredRecord | Fault => {
  const validated = validateBody(store, table.definition, body)
  if (validated instanceof Fault) return validated
  const values = completeValues(table.definition, validated.values, now(), true, true, by)
  if (values instanceof Fault) return values
  return table.insert({ id: validated.id ?? randomUUID(), values })
}

/**
 * `upsert` creates or updates (plain `PATCH`); `createOnly` refuses an existing record
 * (`If-None-Match: *`); `updateOnly` refuses a missing one (`If-Match`).
 */
export type WriteMode = "upsert" | "createOnly" | "updateOnly"

export interface WriteOptions {
  readonly mode: WriteMode
  /** Replace every column instead of merging (an upsert on an elastic table). */
  readonly replace?: boolean
  /** An `If-Match` ETag other than `*`: the write applies only to that version. */
  readonly ifMatch?: string | undefined
}

/**
 * Writes a body at a resolved key: an update, or a create where nothing exists yet. `by` is the
 * caller's systemuser (`modifiedby`, and `createdby` on a create).
 */
export const writeRecord = (
  store: Store,
  table: TableStore,
  target: ResolvedKey,
  body: unknown,
  options: WriteOptions,
  now: Now,
  by?: LookupValue
): { readonly record: StoredRecord; readonly created: boolean } | Fault => {
  const definition = table.definition
  const validated = validateBody(store, definition, body)
  if (validated instanceof Fault) return validated
  if (validated.id !== undefined && target.id !== undefined && validated.id !== target.id) {
    return badRequest(
      `The ${definition.primaryIdAttribute} in the body (${validated.id}) differs from the one in the URL (${target.id}).`
    )
  }
  const existing = target.existing
  if (existing !== undefined) {
    if (options.mode === "createOnly") {
      return new Fault(412, "0x80040237", "A record with matching key values already exists.")
    }
    if (options.ifMatch !== undefined && options.ifMatch !== "*" && options.ifMatch !== etagOf(existing)) {
      return new Fault(
        412,
        "0x80060882",
        "The version of the existing record doesn't match the RowVersion property provided."
      )
    }
    const partition = validated.values["partitionid"]
    if (
      partition !== undefined && existing.values["partitionid"] !== undefined &&
      partition !== existing.values["partitionid"]
    ) {
      return badRequest("The partitionid of a record cannot be changed.")
    }
    const base = options.replace === true
      ? {
        ...target.keyValues,
        partitionid: existing.values["partitionid"],
        createdon: existing.values["createdon"],
        createdby: existing.values["createdby"]
      }
      : existing.values
    const values = completeValues(definition, { ...base, ...validated.values }, now(), false, false, by)
    if (values instanceof Fault) return values
    const record = table.update(existing.id, values, true)
    return record instanceof Fault ? record : { record, created: false }
  }
  if (options.mode === "updateOnly" || (options.ifMatch !== undefined && options.ifMatch !== "*")) {
    return target.id !== undefined
      ? recordNotFound(definition.logicalName, target.id)
      : new Fault(
        404,
        "0x80040217",
        `A record with the specified key values does not exist in ${definition.logicalName} entity`
      )
  }
  const values = completeValues(definition, { ...target.keyValues, ...validated.values }, now(), true, false, by)
  if (values instanceof Fault) return values
  const record = table.insert({ id: target.id ?? validated.id ?? randomUUID(), values })
  return record instanceof Fault ? record : { record, created: true }
}

/** Deletes the record at a resolved key; 404 when there is none. */
export const deleteRecord = (table: TableStore, target: ResolvedKey): true | Fault => {
  if (target.existing === undefined) {
    return target.id !== undefined
      ? recordNotFound(table.definition.logicalName, target.id)
      : new Fault(
        404,
        "0x80040217",
        `A record with the specified key values does not exist in ${table.definition.logicalName} entity`
      )
  }
  table.remove(target.existing.id)
  return true
}

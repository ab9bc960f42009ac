/**
 * The bulk messages `CreateMultiple`, `UpdateMultiple`, `UpsertMultiple` and `DeleteMultiple`
 * (wire reference, section 3).
 *
 * Standard tables run a request as one transaction: the first bad target fails it and nothing
 * is written. Elastic tables apply every target on its own and report the failed ones in
 * `@Microsoft.PowerApps.CDS.ErrorDetails.BulkApiErrorDetails` (a JSON string of
 * `{RequestIndex, Id, StatusCode}`), when the request asks for annotations. That wire shape is
 * unconfirmed on the real service; it is the likely form the reference names.
 */
import type { LookupValue, Store, TableStore } from "../Store.js"
import { badRequest, Fault } from "./fault.js"
import { parsePath } from "./odataPath.js"
import { createRecord, deleteRecord, type Now, writeRecord } from "./operations.js"
import { parseGuid, type ResolvedKey, resolveKey } from "./records.js"
import { faultReply, type Reply } from "./reply.js"

export type BulkMessage = "CreateMultiple" | "UpdateMultiple" | "UpsertMultiple" | "DeleteMultiple"

export const bulkMessages: ReadonlyArray<BulkMessage> = [
  "CreateMultiple",
  "UpdateMultiple",
  "UpsertMultiple",
  "DeleteMultiple"
]

/** The generic invalid-argument code; the service's code for these two cases is unconfirmed. */
const invalidArgument = "0x80040203"

interface TargetFailure {
  readonly index: number
  readonly id: string | undefined
  readonly fault: Fault
}

/** Reads `{"Targets":[...]}`: every target an object carrying the table's `@odata.type`. */
const readTargets = (
  table: TableStore,
  message: BulkMessage,
  body: unknown
): Array<Record<string, unknown>> | Fault => {
  const targets = typeof body === "object" && body !== null && !Array.isArray(body)
    ? (body as { Targets?: unknown }).Targets
    : undefined
  if (!Array.isArray(targets)) {
    return badRequest(`The parameter 'Targets' of '${message}' is missing or is not a collection.`)
  }
  const odataType = `Microsoft.Dynamics.CRM.${table.definition.logicalName}`
  for (let i = 0; i < targets.length; i++) {
    const target: unknown = targets[i]
    if (typeof target !== "object" || target === null || Array.isArray(target)) {
      return badRequest(`Targets[${i}] of '${message}' is not an entity.`)
    }
    const type = (target as Record<string, unknown>)["@odata.type"]
    if (type === undefined) return badRequest(`Targets[${i}]: every target of ${message} must carry '@odata.type'.`)
    if (type !== odataType) {
      return badRequest(`Targets[${i}]: '@odata.type' is '${String(type)}' but the request is bound to '${odataType}'.`)
    }
  }
  return targets as Array<Record<string, unknown>>
}

/** The key a target of Update/Upsert/DeleteMultiple addresses: its primary key, or `@odata.id`. */
const targetKey = (
  store: Store,
  table: TableStore,
  target: Record<string, unknown>,
  allowODataId: boolean
): ResolvedKey | Fault => {
  const definition = table.definition
  const partition = typeof target["partitionid"] === "string" ? target["partitionid"] : undefined
  const odataId = target["@odata.id"]
  if (allowODataId && typeof odataId === "string") {
    const segments = parsePath(odataId.replace(/^.*\/api\/data\/v\d+(\.\d+)?\//, "").replace(/^\//, ""))
    if (segments instanceof Fault) return segments
    const segment = segments[0]
    if (segments.length !== 1 || segment?.key === undefined || store.entitySet(segment.name) !== table) {
      return badRequest(`The @odata.id '${odataId}' does not address a ${definition.logicalName} record.`)
    }
    return resolveKey(table, segment.key, partition)
  }
  const raw = target[definition.primaryIdAttribute]
  const id = typeof raw === "string" ? parseGuid(raw) : undefined
  if (id === undefined) {
    return badRequest(
      `The target has no valid '${definition.primaryIdAttribute}'${
        allowODataId ? " or '@odata.id'" : ""
      }: it does not identify a record.`
    )
  }
  return resolveKey(table, { _tag: "Single", value: { _tag: "Bare", value: id } }, partition)
}

/**
 * The identity used to spot duplicates within one payload: the alternate-key values when the
 * target is addressed by alternate key (compared as the key index compares them), else its id.
 * It must not depend on what earlier targets of the same payload wrote.
 */
const identityOf = (key: ResolvedKey): string => {
  const alternate = Object.entries(key.keyValues).filter(([name]) => name !== "partitionid")
  return alternate.length > 0
    ? `key:${JSON.stringify(alternate.map(([k, v]) => [k, typeof v === "string" ? v.toLowerCase() : v]))}`
    : `id:${key.id}`
}

/**
 * Runs a bulk message bound to `table`.
 */
export const runBulkMessage = (
  store: Store,
  table: TableStore,
  message: BulkMessage,
  body: unknown,
  options: {
    readonly annotations: boolean
    readonly now: Now
    readonly webApiUrl: string
    /** The caller's systemuser, for `createdby` and `modifiedby`. */
    readonly by?: LookupValue | undefined
  }
): Reply => {
  const definition = table.definition
  const elastic = definition.tableType === "Elastic"
  if (message === "DeleteMultiple" && !elastic) {
    return faultReply(new Fault(400, invalidArgument, "DeleteMultiple has not yet been implemented."))
  }
  const targets = readTargets(table, message, body)
  if (targets instanceof Fault) return faultReply(targets)

  // One operation per target; undefined means "skipped" (UpdateMultiple's later duplicates).
  const seen = new Map<string, number>()
  const ids: Array<string> = []
  const apply = (target: Record<string, unknown>, index: number): Fault | undefined => {
    if (message === "CreateMultiple") {
      const record = createRecord(store, table, target, options.now, options.by)
      if (record instanceof Fault) return record
      ids[index] = record.id
      return undefined
    }
    const key = targetKey(store, table, target, message === "UpsertMultiple")
    if (key instanceof Fault) return key
    const identity = identityOf(key)
    const first = seen.get(identity)
    if (first !== undefined) {
      // UpdateMultiple applies the first target with a key and silently ignores the rest.
      if (message === "UpdateMultiple") return undefined
      if (message === "UpsertMultiple") {
        return new Fault(
          400,
          invalidArgument,
          `UpsertMultiple: Targets[${first}] and Targets[${index}] address the same record; a request may hold each record once.`
        )
      }
    }
    seen.set(identity, index)
    if (message === "DeleteMultiple") {
      const deleted = deleteRecord(table, key)
      return deleted instanceof Fault ? deleted : undefined
    }
    const written = writeRecord(
      store,
      table,
      key,
      target,
      {
        mode: message === "UpdateMultiple" ? "updateOnly" : "upsert",
        replace: elastic && message === "UpsertMultiple"
      },
      options.now,
      options.by
    )
    return written instanceof Fault ? written : undefined
  }

  if (!elastic) {
    const result = store.transaction(() => {
      for (let i = 0; i < targets.length; i++) {
        const fault = apply(targets[i]!, i)
        if (fault !== undefined) return fault
      }
      return true
    })
    if (result instanceof Fault) return { ...faultReply(result), work: { records: targets.length, operations: 0 } }
  } else {
    const failures: Array<TargetFailure> = []
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i]!
      const fault = store.transaction(() => apply(target, i) ?? true)
      if (fault instanceof Fault) {
        const raw = target[definition.primaryIdAttribute]
        failures.push({ index: i, id: typeof raw === "string" ? raw.toLowerCase() : undefined, fault })
      }
    }
    if (failures.length > 0) {
      const first = failures[0]!.fault
      const details = failures.map((failure) => ({
        RequestIndex: failure.index,
        Id: failure.id ?? "00000000-0000-0000-0000-000000000000",
        StatusCode: failure.fault.status,
        ErrorCode: failure.fault.code,
        Message: failure.fault.message
      }))
      return faultReply(
        new Fault(first.status, first.code, first.message),
        options.annotations
          ? { "@Microsoft.PowerApps.CDS.ErrorDetails.BulkApiErrorDetails": JSON.stringify(details) }
          : {}
      )
    }
  }
  const work = { records: targets.length, operations: 0 }
  if (message === "CreateMultiple") {
    return {
      work,
      status: 200,
      body: {
        "@odata.context": `${options.webApiUrl}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse`,
        Ids: ids
      }
    }
  }
  return { status: 204, work }
}

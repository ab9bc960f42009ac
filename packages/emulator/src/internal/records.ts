/**
 * Turns request bodies into validated records and stored records into response objects,
 * with the service's validation rules and error codes.
 */
import type { LookupValue, Store, StoredRecord, TableStore } from "../Store.js"
import type { ColumnDefinition, TableDefinition } from "../TableSchema.js"
import { badRequest, codes, Fault, invalidProperty, recordNotFound } from "./fault.js"
import { type KeyPredicate, parsePath } from "./odataPath.js"

const guidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Accepts `xxxxxxxx-...` with or without braces; returns the lower-case canonical form. */
export const parseGuid = (text: string): string | undefined => {
  const bare = text.startsWith("{") && text.endsWith("}") ? text.slice(1, -1) : text
  return guidPattern.test(bare) ? bare.toLowerCase() : undefined
}

const systemColumns = new Set(["createdon", "modifiedon"])

/**
 * `createdby` and `modifiedby`: the systemuser who created and last modified a record, set from
 * the caller's token on every table. A schema may declare them (Lookup columns targeting
 * `systemuser`, with a `systemuser` table), and then they are in the metadata and in every
 * answer like any column; otherwise they are implied: readable with `$select=_createdby_value`,
 * filterable and sortable, but not listed in the metadata nor returned without `$select`.
 */
export const auditColumns: ReadonlyArray<ColumnDefinition> = [
  { logicalName: "createdby", type: "Lookup", targets: [{ table: "systemuser", navigationProperty: "createdby" }] },
  { logicalName: "modifiedby", type: "Lookup", targets: [{ table: "systemuser", navigationProperty: "modifiedby" }] }
]

const auditNames = new Set(auditColumns.map((column) => column.logicalName))

const columnIndex = new WeakMap<TableDefinition, Map<string, ColumnDefinition>>()
const navigationIndex = new WeakMap<TableDefinition, Map<string, { column: ColumnDefinition; table: string }>>()

/** Columns by logical name (the implied `auditColumns` included), built once per definition. */
export const columnsOf = (table: TableDefinition): Map<string, ColumnDefinition> => {
  let index = columnIndex.get(table)
  if (index === undefined) {
    index = new Map(auditColumns.map((column) => [column.logicalName, column]))
    for (const column of table.columns) index.set(column.logicalName, column)
    columnIndex.set(table, index)
  }
  return index
}

/** The single-valued navigation properties of a table's lookup columns (one per target), built once per definition. */
export const navigationOf = (table: TableDefinition): Map<string, { column: ColumnDefinition; table: string }> => {
  let index = navigationIndex.get(table)
  if (index === undefined) {
    index = new Map()
    for (const column of table.columns) {
      for (const target of column.targets ?? []) {
        index.set(target.navigationProperty, { column, table: target.table })
      }
    }
    navigationIndex.set(table, index)
  }
  return index
}

/** The OData type of a column, as the service names it in errors. */
export const edmTypeOf = (column: ColumnDefinition): string => {
  switch (column.type) {
    case "String":
    case "Memo":
      return "Edm.String"
    case "Integer":
    case "Picklist":
    case "State":
    case "Status":
      return "Edm.Int32"
    case "BigInt":
      return "Edm.Int64"
    case "Decimal":
    case "Money":
      return "Edm.Decimal"
    case "Double":
      return "Edm.Double"
    case "Boolean":
      return "Edm.Boolean"
    case "DateTime":
      // Documented: a Date Only column is an `Edm.Date` in the Web API (the service's refusal of a
      // date-time names it: "Cannot convert the literal '1965-05-07T00:00:00Z' to the expected
      // type 'Edm.Date'", PowerPlatform-DataverseServiceClient issue 80, carfup/PCFControls#191).
      return column.dateTimeBehavior === "DateOnly" ? "Edm.Date" : "Edm.DateTimeOffset"
    default:
      return "Edm.Guid"
  }
}

/**
 * The service's refusal of a value its column's type cannot take. A string is quoted as the
 * service quotes it, bare ("Cannot convert the literal '2023-04-19T08:40:36.076Z' to the expected
 * type 'Edm.Date'", carfup/PCFControls#191); other values as their JSON. "of property '<name>'"
 * is a modelling choice: it names the column for the caller.
 */
const wrongType = (column: ColumnDefinition, value: unknown): Fault =>
  badRequest(
    `Cannot convert the literal '${
      (typeof value === "string" ? value : String(JSON.stringify(value))).slice(0, 100)
    }' to the expected type '${edmTypeOf(column)}' of property '${column.logicalName}'.`
  )

/** 1753-01-01T00:00:00Z: the earliest date and time a Dataverse column stores. */
const earliestDateTime = Date.UTC(1753, 0, 1)

/**
 * Documented (OData ABNF, `dateValue` and `dateTimeOffsetValue`): `2024-01-31`, or
 * `2024-01-31T10:00`, seconds and up to 12 fraction digits optional, `Z` or `+01:00`, of a real
 * day. A missing offset is accepted and read as UTC, as documented: "4/4/2021T12:00:00 or
 * 4/4/2021T12:00:00Z - no offset or UTC indicator provided ... is stored as 4/4/2021T12:00:00Z"
 * (learn.microsoft.com, behavior-format-date-time-attribute, "Using OData APIs to submit user
 * local date and time values").
 * `Date.parse` alone would read `06/01/2024` and roll `2024-02-30` over to March.
 */
const isDateTimeLiteral = (text: string): boolean => {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,12})?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(
    text
  )
  if (match === null) return false
  const [, y, mo, d, h, mi, s, , offset] = match
  const month = Number(mo)
  const lastDay = new Date(Date.UTC(Number(y), month, 0)).getUTCDate()
  if (month < 1 || month > 12 || Number(d) < 1 || Number(d) > lastDay) return false
  if (offset !== undefined && offset !== "Z" && (Number(offset.slice(1, 3)) > 14 || Number(offset.slice(4)) > 59)) {
    return false
  }
  return h === undefined || (Number(h) <= 23 && Number(mi) <= 59 && (s === undefined || Number(s) <= 59))
}

/** `YYYY-MM-DD`: the OData `dateValue` an `Edm.Date` property takes (a real day: see `isDateTimeLiteral`). */
const isDateLiteral = (text: string): boolean => text.length === 10 && isDateTimeLiteral(text)

/** The refusal of a date or date-time before 1753-01-01 (see `validateValue`). */
const tooEarly = (table: TableDefinition, column: ColumnDefinition, value: unknown): Fault =>
  badRequest(
    `A validation error occurred. The value ${value} of '${column.logicalName}' on record of type '${table.logicalName}' is outside the valid range. Accepted Values: 1/1/1753 12:00:00 AM to 12/31/9999 11:59:59 PM.`,
    codes.outOfRange
  )

/** Checks one column value; returns the value to store or a fault. */
const validateValue = (table: TableDefinition, column: ColumnDefinition, value: unknown): unknown => {
  if (value === null) {
    return column.requiredLevel === "SystemRequired"
      ? badRequest(`Attribute '${column.logicalName}' cannot be NULL.`, codes.maxLength)
      : null
  }
  switch (column.type) {
    case "String":
    case "Memo": {
      if (typeof value !== "string") return wrongType(column, value)
      if (column.maxLength !== undefined && value.length > column.maxLength) {
        return badRequest(
          `A validation error occurred. The length of the '${column.logicalName}' attribute of the '${table.logicalName}' entity exceeded the maximum allowed length of '${column.maxLength}'.`,
          codes.maxLength
        )
      }
      return value
    }
    case "Integer":
    case "BigInt":
    case "Decimal":
    case "Double":
    case "Money": {
      const integral = column.type === "Integer" || column.type === "BigInt"
      if (typeof value !== "number" || !Number.isFinite(value) || (integral && !Number.isInteger(value))) {
        return wrongType(column, value)
      }
      const min = column.minValue ?? (column.type === "Integer" ? -2147483648 : -Number.MAX_VALUE)
      const max = column.maxValue ?? (column.type === "Integer" ? 2147483647 : Number.MAX_VALUE)
      if (value < min || value > max) {
        return badRequest(
          `A validation error occurred. The value ${value} of '${column.logicalName}' on record of type '${table.logicalName}' is outside the valid range. Accepted Values: ${min} to ${max}.`,
          codes.outOfRange
        )
      }
      return value
    }
    case "Boolean":
      return typeof value === "boolean" ? value : wrongType(column, value)
    case "DateTime": {
      if (column.dateTimeBehavior === "DateOnly") {
        // Documented: a Date Only column stores no time ("Dataverse stores 2023-10-15T07:30:00Z
        // (or, for the date only behavior, 2023-10-15)", learn.microsoft.com, behavior-format-
        // date-time-field), and "for the Web API, the column is exposed as Date" (behavior-format-
        // date-time-attribute), an `Edm.Date`: a date-time is refused with
        // "Cannot convert the literal '1965-05-07T00:00:00Z' to the expected type 'Edm.Date'"
        // (PowerPlatform-DataverseServiceClient issue 80). Only `1965-05-07` is taken; it is stored
        // and returned as that text.
        if (typeof value !== "string" || !isDateLiteral(value)) return wrongType(column, value)
        // Documented: "All date and time columns in Dataverse support values as early as 1/1/1753
        // 12:00 AM"; the refusal's wording and code are a modelling choice, as below.
        return Date.parse(`${value}T00:00:00Z`) < earliestDateTime ? tooEarly(table, column, value) : value
      }
      // UserLocal and TimeZoneIndependent alike: a date or a date-time, stored as UTC ISO text.
      // A date-time without an offset is UTC, whatever the machine's time zone (documented: see
      // `isDateTimeLiteral`).
      const time = typeof value === "string" && isDateTimeLiteral(value)
        ? Date.parse(/T[^Zz+-]*$/.test(value) && !/[+-]\d\d:?\d\d$/.test(value) ? `${value}Z` : value)
        : NaN
      if (Number.isNaN(time)) return wrongType(column, value)
      // Documented: "All date and time columns in Dataverse support values as early as 1/1/1753
      // 12:00 AM" (learn.microsoft.com, behavior-format-date-time-attribute). The refusal's
      // wording and code are a modelling choice: the out-of-range validation error.
      if (time < earliestDateTime) return tooEarly(table, column, value)
      return new Date(time).toISOString().replace(".000Z", "Z")
    }
    case "Picklist":
    case "State":
    case "Status": {
      if (typeof value !== "number" || !Number.isInteger(value)) return wrongType(column, value)
      if (column.options !== undefined && !column.options.some((option) => option.value === value)) {
        return badRequest(
          `A validation error occurred. The value ${value} of '${column.logicalName}' on record of type '${table.logicalName}' is outside the valid range. Accepted Values: ${
            column.options.map((option) => option.value).join(",")
          }`,
          codes.optionValue
        )
      }
      return value
    }
    case "Uniqueidentifier": {
      const guid = typeof value === "string" ? parseGuid(value) : undefined
      return guid ?? wrongType(column, value)
    }
    case "Lookup":
    case "Customer":
    case "Owner":
      return invalidProperty(
        table.logicalName,
        column.logicalName,
        ` Set lookups with '<navigation property>@odata.bind', e.g. '${
          column.targets?.[0]?.navigationProperty ?? column.logicalName
        }@odata.bind'.`
      )
  }
}

/** Resolves an `@odata.bind` reference (`/accounts(<id>)`, an absolute URL, or an alternate key). */
const resolveBind = (store: Store, expectedTable: string, reference: unknown): LookupValue | Fault => {
  if (typeof reference !== "string") return badRequest(`An @odata.bind value must be a string URL.`)
  let path = reference
  const api = path.indexOf("/api/data/")
  if (api >= 0) path = path.slice(api).replace(/^\/api\/data\/v\d+(\.\d+)?\//, "")
  path = path.replace(/^\/+/, "")
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    return badRequest(`The @odata.bind URL '${reference}' is not valid.`)
  }
  const segments = parsePath(decoded)
  if (segments instanceof Fault) return segments
  const segment = segments[0]
  if (segments.length !== 1 || segment === undefined || segment.key === undefined) {
    return badRequest(`The @odata.bind URL '${reference}' does not identify a single record.`)
  }
  const target = store.entitySet(segment.name)
  if (target === undefined) return badRequest(`The entity set '${segment.name}' in '${reference}' does not exist.`)
  if (target.definition.logicalName !== expectedTable) {
    return badRequest(
      `The @odata.bind URL '${reference}' points at '${target.definition.logicalName}', expected '${expectedTable}'.`
    )
  }
  const found = findByKey(target, segment.key)
  if (found instanceof Fault) return found
  return { table: expectedTable, id: found.id }
}

/**
 * Where a key in a URL (or an `@odata.id`) points: an existing record, or the id and key values a
 * new record would get there (for upserts).
 */
export interface ResolvedKey {
  readonly existing: StoredRecord | undefined
  /** The primary key: the existing record's, or the one given in the key, or undefined (alternate key, no record yet). */
  readonly id: string | undefined
  /** Alternate-key (and partition) values from the key, to set on a record created there. */
  readonly keyValues: Readonly<Record<string, unknown>>
}

const keyValue = (
  table: TableDefinition,
  attribute: string,
  raw: { _tag: "String" | "Bare"; value: string }
): unknown => {
  const column = columnsOf(table).get(attribute)
  if (raw._tag === "String" || column === undefined) return raw.value
  if (column.type === "Uniqueidentifier" || column.targets !== undefined) return parseGuid(raw.value) ?? raw.value
  if (column.type === "Boolean") return raw.value === "true"
  // In the form a body's value of the column is stored in (`1990-05-01` on a date-only column),
  // and refused as a body's would be (a date and time for an Edm.Date).
  if (column.type === "DateTime") return validateValue(table, column, raw.value)
  return Number(raw.value)
}

/**
 * Resolves a key predicate: a GUID, `primaryid=<guid>` (with `partitionid='p'` on elastic
 * tables), or the columns of an alternate key. `partitionId` comes from `?partitionId=`.
 *
 * An elastic record created with a `partitionid` is found only by a request that names that
 * partition. Documented: "When you specify a non-null value for partitionid column when creating
 * a row, you must specify it when performing any other data operation on the row", and a lookup
 * that names no partition "can't find the record" (Microsoft Learn, "Use elastic tables using
 * code"; wire reference §8b). Modelling choice: a request that names none, or another, is
 * answered as for a record that does not exist (404 `0x80040217`). A PATCH without `If-Match`
 * then creates, which here meets the id already taken (ids are unique across partitions in this
 * model, not as documented: see the README) and is refused as a duplicate.
 */
export const resolveKey = (table: TableStore, key: KeyPredicate, partitionId?: string): ResolvedKey | Fault => {
  const definition = table.definition
  const elastic = definition.tableType === "Elastic"
  const inPartition = (record: StoredRecord | undefined, partition: string | undefined) => {
    if (record === undefined) return undefined
    const stored = record.values["partitionid"]
    if (elastic) return (typeof stored === "string" ? stored : undefined) === partition ? record : undefined
    return partition === undefined || stored === partition ? record : undefined
  }
  if (key._tag === "Single") {
    const id = parseGuid(key.value.value)
    if (id === undefined) return badRequest(`'${key.value.value}' is not a valid key for '${definition.logicalName}'.`)
    return {
      existing: inPartition(table.get(id), partitionId),
      id,
      keyValues: partitionId === undefined ? {} : { partitionid: partitionId }
    }
  }
  const parts = new Map(key.parts.map(([name, value]) => [name, value]))
  const primary = parts.get(definition.primaryIdAttribute)
  if (primary !== undefined) {
    const id = parseGuid(primary.value)
    if (id === undefined) return badRequest(`'${primary.value}' is not a valid Guid.`)
    const partition = parts.get("partitionid")?.value ?? partitionId
    const extra = [...parts.keys()].filter((name) => name !== definition.primaryIdAttribute && name !== "partitionid")
    if (extra.length > 0) {
      return badRequest(`The key of '${definition.logicalName}' cannot include '${extra.join(",")}'.`)
    }
    return {
      existing: inPartition(table.get(id), partition),
      id,
      keyValues: partition === undefined ? {} : { partitionid: partition }
    }
  }
  const names = [...parts.keys()]
  const alternate = definition.keys.find((candidate) =>
    candidate.keyAttributes.length === names.length && candidate.keyAttributes.every((a) => parts.has(a))
  )
  if (alternate === undefined) {
    return badRequest(`The key '${names.join(",")}' is not an alternate key of '${definition.logicalName}'.`)
  }
  const keyValues: Record<string, unknown> = {}
  for (const attribute of alternate.keyAttributes) {
    const value = keyValue(definition, attribute, parts.get(attribute)!)
    if (value instanceof Fault) return value
    keyValues[attribute] = value
  }
  const existing = table.getByKey(alternate.logicalName, alternate.keyAttributes.map((a) => keyValues[a]))
  return { existing, id: existing?.id, keyValues }
}

/** Finds an existing record by a key predicate, or answers 404 as the service does. */
export const findByKey = (table: TableStore, key: KeyPredicate, partitionId?: string): StoredRecord | Fault => {
  const resolved = resolveKey(table, key, partitionId)
  if (resolved instanceof Fault) return resolved
  if (resolved.existing !== undefined) return resolved.existing
  if (resolved.id !== undefined) return recordNotFound(table.definition.logicalName, resolved.id)
  return new Fault(
    404,
    codes.notFound,
    `A record with the specified key values does not exist in ${table.definition.logicalName} entity`
  )
}

/**
 * A validated request body: the column values it sets and the primary key it carries, if any.
 */
export interface ValidatedBody {
  readonly id: string | undefined
  readonly values: Readonly<Record<string, unknown>>
}

/**
 * Validates a write body for `table`: known columns with values of the right type, in range and
 * length, lookups bound with `@odata.bind` to records that exist. `@odata.type`, when present,
 * must name the table. Columns the service sets itself (`createdon`, `modifiedon`) are ignored.
 */
export const validateBody = (store: Store, definition: TableDefinition, body: unknown): ValidatedBody | Fault => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return badRequest(`The request body for '${definition.entitySetName}' must be a JSON object.`)
  }
  const columns = columnsOf(definition)
  const values: Record<string, unknown> = {}
  let id: string | undefined
  for (const property in body) {
    const value: unknown = (body as Record<string, unknown>)[property]
    if (property === "@odata.type") {
      if (value !== `Microsoft.Dynamics.CRM.${definition.logicalName}`) {
        return badRequest(
          `The @odata.type '${
            String(value)
          }' does not match the entity set '${definition.entitySetName}' (expected 'Microsoft.Dynamics.CRM.${definition.logicalName}').`
        )
      }
      continue
    }
    if (property.endsWith("@odata.bind")) {
      const navigation = property.slice(0, -"@odata.bind".length)
      const target = navigationOf(definition).get(navigation)
      if (target === undefined) {
        return badRequest(
          `An undeclared property '${navigation}' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.`
        )
      }
      // `createdby` and `modifiedby` (when the schema declares them) are the service's to set.
      if (auditNames.has(target.column.logicalName)) continue
      if (value === null) {
        values[target.column.logicalName] = null
        continue
      }
      const lookup = resolveBind(store, target.table, value)
      if (lookup instanceof Fault) return lookup
      values[target.column.logicalName] = lookup
      continue
    }
    // Other annotations (`@odata.id` on UpsertMultiple targets, `@odata.etag`) are read by the caller.
    if (property.startsWith("@") || property.includes("@")) continue
    if (property === definition.primaryIdAttribute) {
      const guid = typeof value === "string" ? parseGuid(value) : undefined
      if (guid === undefined) {
        return badRequest(
          `Cannot convert the literal '${String(value)}' to the expected type 'Edm.Guid' of property '${property}'.`
        )
      }
      id = guid
      continue
    }
    const column = columns.get(property)
    if (column === undefined) return invalidProperty(definition.logicalName, property)
    if (systemColumns.has(property)) continue
    const checked = validateValue(definition, column, value)
    if (checked instanceof Fault) return checked
    values[property] = checked
  }
  return { id, values }
}

/**
 * Completes the values of a record about to be written: the columns the service computes
 * (`fullname`, `createdon`, `modifiedon`, `createdby`, `modifiedby`) and the required-column check.
 */
export const completeValues = (
  definition: TableDefinition,
  values: Readonly<Record<string, unknown>>,
  now: string,
  isCreate: boolean,
  /** `values` is a fresh object the caller owns: complete it instead of copying it (the create path). */
  owned = false,
  /** The caller, as a lookup to its systemuser: `createdby` on create, `modifiedby` always. */
  by?: LookupValue
): Record<string, unknown> | Fault => {
  const columns = columnsOf(definition)
  const out: Record<string, unknown> = owned ? values as Record<string, unknown> : { ...values }
  for (const column of definition.columns) {
    if (column.requiredLevel === "SystemRequired" && (out[column.logicalName] ?? null) === null) {
      return badRequest(`Attribute '${column.logicalName}' cannot be NULL.`, codes.maxLength)
    }
  }
  // `fullname` is computed by the service from the name parts, as on contact and systemuser.
  if (definition.primaryNameAttribute === "fullname" && columns.has("fullname")) {
    const full = [out["firstname"], out["lastname"]].filter((part) => typeof part === "string" && part !== "")
    out["fullname"] = full.length > 0 ? full.join(" ") : null
  }
  if (isCreate && columns.has("createdon")) out["createdon"] = now
  if (columns.has("modifiedon")) out["modifiedon"] = now
  if (by !== undefined) {
    if (isCreate) out["createdby"] = by
    out["modifiedby"] = by
  }
  return out
}

/**
 * The columns named in `$select` (undefined when absent: all columns). Lookups may be named as
 * `_<column>_value`; the primary key is always returned and need not be listed.
 */
export const resolveSelect = (
  definition: TableDefinition,
  search: URLSearchParams
): ReadonlyArray<ColumnDefinition> | Fault | undefined => {
  const raw = search.get("$select")
  if (raw === null || raw.trim() === "") return undefined
  const columns = columnsOf(definition)
  const selected: Array<ColumnDefinition> = []
  for (const name of raw.split(",").map((s) => s.trim())) {
    if (name === definition.primaryIdAttribute) continue
    const lookup = /^_(.+)_value$/.exec(name)
    const column = columns.get(lookup !== null ? lookup[1]! : name)
    if (column === undefined || (lookup !== null && column.targets === undefined)) {
      return new Fault(
        400,
        codes.segmentNotFound,
        `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.${definition.logicalName}'.`
      )
    }
    selected.push(column)
  }
  return selected
}

/**
 * The `@odata.context` of a query or record answer, as the service writes it:
 * `$metadata#contacts`, `$metadata#contacts(firstname,lastname)` (the selected columns, lookups
 * as `_x_value`; the key is returned but not listed), then the `expanded` navigation properties
 * (`parentcustomerid_account(name)`), and `/$entity` for one record.
 */
export const contextUrl = (
  webApiUrl: string,
  definition: TableDefinition,
  select: ReadonlyArray<ColumnDefinition> | undefined,
  single: boolean,
  expanded: ReadonlyArray<string> = []
): string => {
  const names = [
    ...(select ?? []).map((c) => (c.targets !== undefined ? `_${c.logicalName}_value` : c.logicalName)),
    ...expanded
  ]
  const columns = names.length === 0 ? "" : `(${names.join(",")})`
  return `${webApiUrl}$metadata#${definition.entitySetName}${columns}${single ? "/$entity" : ""}`
}

/**
 * A stored record as the Web API returns it: `@odata.etag`, the selected columns (all when
 * `select` is undefined; null when unset), lookups as `_<column>_value`, the primary key always.
 */
export const present = (
  definition: TableDefinition,
  record: StoredRecord,
  select: ReadonlyArray<ColumnDefinition> | undefined,
  annotations: boolean
): Record<string, unknown> => {
  const out: Record<string, unknown> = { "@odata.etag": `W/"${record.version}"` }
  for (const column of select ?? definition.columns) {
    const value = record.values[column.logicalName] ?? null
    if (column.targets !== undefined) {
      const lookup = value as LookupValue | null
      const name = `_${column.logicalName}_value`
      if (annotations && lookup !== null) {
        out[`${name}@Microsoft.Dynamics.CRM.lookuplogicalname`] = lookup.table
      }
      out[name] = lookup === null ? null : lookup.id
    } else {
      out[column.logicalName] = value
    }
  }
  out[definition.primaryIdAttribute] = record.id
  return out
}

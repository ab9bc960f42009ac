/**
 * The metadata endpoints: `EntityDefinitions` (with `Attributes`, `Keys`, option sets and
 * `ManyToOneRelationships`) and `sdkmessagefilters`, answered from the schema.
 */
import { createHash } from "node:crypto"
import type { Store, TableStore } from "../Store.js"
import { type ColumnDefinition, relationshipName, type TableDefinition } from "../TableSchema.js"
import { badRequest, codes, Fault } from "./fault.js"
import type { PathSegment } from "./odataPath.js"
import { faultReply, type Reply } from "./reply.js"

/** Stable ids derived from names, so metadata ids survive restarts. */
const stableId = (text: string): string => {
  const hex = createHash("sha1").update(text).digest("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

const label = (text: string) => ({
  LocalizedLabels: [{ Label: text, LanguageCode: 1033 }],
  UserLocalizedLabel: { Label: text, LanguageCode: 1033 }
})

const attributeTypeName = (type: ColumnDefinition["type"] | "Uniqueidentifier"): string =>
  type === "Uniqueidentifier" ? "UniqueidentifierType" : `${type}Type`

const metadataType = (type: ColumnDefinition["type"]): string => {
  switch (type) {
    case "String":
      return "StringAttributeMetadata"
    case "Memo":
      return "MemoAttributeMetadata"
    case "Integer":
      return "IntegerAttributeMetadata"
    case "BigInt":
      return "BigIntAttributeMetadata"
    case "Decimal":
      return "DecimalAttributeMetadata"
    case "Double":
      return "DoubleAttributeMetadata"
    case "Money":
      return "MoneyAttributeMetadata"
    case "Boolean":
      return "BooleanAttributeMetadata"
    case "DateTime":
      return "DateTimeAttributeMetadata"
    case "Picklist":
      return "PicklistAttributeMetadata"
    case "State":
      return "StateAttributeMetadata"
    case "Status":
      return "StatusAttributeMetadata"
    case "Lookup":
    case "Customer":
    case "Owner":
      return "LookupAttributeMetadata"
    case "Uniqueidentifier":
      return "UniqueIdentifierAttributeMetadata"
  }
}

/** The entity metadata object of a table (without navigation collections). */
export const entityMetadata = (definition: TableDefinition): Record<string, unknown> => ({
  MetadataId: stableId(`entity:${definition.logicalName}`),
  LogicalName: definition.logicalName,
  SchemaName: definition.schemaName,
  EntitySetName: definition.entitySetName,
  LogicalCollectionName: definition.entitySetName,
  PrimaryIdAttribute: definition.primaryIdAttribute,
  PrimaryNameAttribute: definition.primaryNameAttribute,
  ObjectTypeCode: definition.objectTypeCode,
  TableType: definition.tableType,
  IsCustomEntity: definition.logicalName.includes("_"),
  DisplayName: label(definition.schemaName)
})

const systemColumns = new Set(["createdon", "modifiedon", "fullname", "createdby", "modifiedby"])

/** The attribute metadata objects of a table, the primary key first. */
export const attributeMetadata = (definition: TableDefinition): Array<Record<string, unknown>> => {
  const primary: Record<string, unknown> = {
    "@odata.type": "#Microsoft.Dynamics.CRM.UniqueIdentifierAttributeMetadata",
    MetadataId: stableId(`attribute:${definition.logicalName}.${definition.primaryIdAttribute}`),
    LogicalName: definition.primaryIdAttribute,
    SchemaName: definition.primaryIdAttribute,
    AttributeType: "Uniqueidentifier",
    AttributeTypeName: { Value: attributeTypeName("Uniqueidentifier") },
    RequiredLevel: { Value: "SystemRequired", CanBeChanged: false },
    IsPrimaryId: true,
    IsPrimaryName: false,
    IsValidForCreate: true,
    IsValidForUpdate: false,
    IsValidForRead: true
  }
  return [
    primary,
    ...definition.columns.map((column) => {
      const out: Record<string, unknown> = {
        "@odata.type": `#Microsoft.Dynamics.CRM.${metadataType(column.type)}`,
        MetadataId: stableId(`attribute:${definition.logicalName}.${column.logicalName}`),
        LogicalName: column.logicalName,
        SchemaName: column.logicalName,
        AttributeType: column.type,
        AttributeTypeName: { Value: attributeTypeName(column.type) },
        RequiredLevel: { Value: column.requiredLevel ?? "None", CanBeChanged: true },
        IsPrimaryId: false,
        IsPrimaryName: column.logicalName === definition.primaryNameAttribute,
        IsValidForCreate: !systemColumns.has(column.logicalName),
        IsValidForUpdate: !systemColumns.has(column.logicalName),
        IsValidForRead: true
      }
      if (column.maxLength !== undefined) out.MaxLength = column.maxLength
      if (column.minValue !== undefined) out.MinValue = column.minValue
      if (column.maxValue !== undefined) out.MaxValue = column.maxValue
      if (column.targets !== undefined) out.Targets = column.targets.map((target) => target.table)
      if (column.type === "DateTime") {
        // Documented (DateTimeAttributeMetadata): `DateTimeBehavior` is a complex value
        // `{ "Value": "UserLocal" | "DateOnly" | "TimeZoneIndependent" }`, UserLocal by default
        // (learn.microsoft.com, behavior-format-date-time-field). `Format` is display only
        // (`DateOnly` or `DateAndTime`); the schema does not record it, so a date-only column
        // shows `DateOnly` and the others `DateAndTime`: a modelling choice.
        const behavior = column.dateTimeBehavior ?? "UserLocal"
        out.DateTimeBehavior = { Value: behavior }
        out.Format = behavior === "DateOnly" ? "DateOnly" : "DateAndTime"
      }
      return out
    })
  ]
}

const optionSetOf = (definition: TableDefinition, column: ColumnDefinition) => ({
  MetadataId: stableId(`optionset:${definition.logicalName}.${column.logicalName}`),
  Name: `${definition.logicalName}_${column.logicalName}`,
  IsGlobal: false,
  OptionSetType: column.type,
  Options: (column.options ?? []).map((option) => ({ Value: option.value, Label: label(option.label) }))
})

/** Many-to-one relationships: one per lookup target, with the navigation property to bind. */
export const manyToOneRelationships = (definition: TableDefinition, store: Store): Array<Record<string, unknown>> =>
  definition.columns.flatMap((column) =>
    (column.targets ?? []).map((target) => {
      const referenced = store.table(target.table)?.definition
      return {
        MetadataId: stableId(`relationship:${definition.logicalName}.${target.navigationProperty}`),
        SchemaName: relationshipName(definition.logicalName, target),
        ReferencingEntity: definition.logicalName,
        ReferencingAttribute: column.logicalName,
        ReferencedEntity: target.table,
        ReferencedAttribute: referenced?.primaryIdAttribute ?? `${target.table}id`,
        ReferencingEntityNavigationPropertyName: target.navigationProperty,
        ReferencedEntityNavigationPropertyName: relationshipName(definition.logicalName, target),
        RelationshipType: "OneToManyRelationship"
      }
    })
  )

/** Keys metadata. */
export const keyMetadata = (definition: TableDefinition): Array<Record<string, unknown>> =>
  definition.keys.map((key) => ({
    MetadataId: stableId(`key:${definition.logicalName}.${key.logicalName}`),
    LogicalName: key.logicalName,
    SchemaName: key.logicalName,
    KeyAttributes: key.keyAttributes,
    EntityKeyIndexStatus: "Active",
    EntityLogicalName: definition.logicalName
  }))

const selectList = (search: URLSearchParams): Array<string> | undefined => {
  const raw = search.get("$select")
  return raw === null ? undefined : raw.split(",").map((s) => s.trim()).filter((s) => s !== "")
}

/** Applies `$select` to a metadata object; `MetadataId` and `@odata.type` always stay. */
const project = (
  object: Record<string, unknown>,
  select: ReadonlyArray<string> | undefined
): Record<string, unknown> => {
  if (select === undefined) return object
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(object)) {
    if (select.includes(name) || name === "MetadataId" || name === "@odata.type") out[name] = value
  }
  return out
}

const unknownProperty = (
  select: ReadonlyArray<string> | undefined,
  known: Iterable<string>,
  type: string
): Fault | undefined => {
  const names = new Set(known)
  const bad = select?.find((name) => !names.has(name))
  return bad === undefined
    ? undefined
    : new Fault(
      400,
      codes.segmentNotFound,
      `Could not find a property named '${bad}' on type 'Microsoft.Dynamics.CRM.${type}'.`
    )
}

/** Properties every AttributeMetadata has; `$select` on the plain collection may name only these. */
const baseAttributeProperties = [
  "@odata.type",
  "MetadataId",
  "LogicalName",
  "SchemaName",
  "AttributeType",
  "AttributeTypeName",
  "RequiredLevel",
  "IsPrimaryId",
  "IsPrimaryName",
  "IsValidForCreate",
  "IsValidForUpdate",
  "IsValidForRead"
]

/** Properties of the derived types, selectable only through a type cast (`/Microsoft.Dynamics.CRM.StringAttributeMetadata`). */
const derivedAttributeProperties = [
  "MaxLength",
  "MinValue",
  "MaxValue",
  "Targets",
  "OptionSet",
  "DateTimeBehavior",
  "Format"
]

/** Parses `$expand=OptionSet($select=Options),Attributes($select=LogicalName)` into names and nested selects. */
const parseExpand = (search: URLSearchParams): Map<string, Array<string> | undefined> => {
  const expand = new Map<string, Array<string> | undefined>()
  const raw = search.get("$expand")
  if (raw === null) return expand
  let depth = 0
  let current = ""
  const items: Array<string> = []
  for (const c of raw) {
    if (c === "(") depth++
    if (c === ")") depth--
    if (c === "," && depth === 0) {
      items.push(current)
      current = ""
    } else current += c
  }
  items.push(current)
  for (const item of items) {
    const match = /^\s*([A-Za-z]+)\s*(?:\((.*)\))?\s*$/.exec(item)
    if (match === null) continue
    const nested = match[2] === undefined
      ? undefined
      : /\$select=([^;)]*)/.exec(match[2])?.[1]?.split(",").map((s) => s.trim())
    expand.set(match[1]!, nested)
  }
  return expand
}

/**
 * Answers `EntityDefinitions...` paths.
 */
export const entityDefinitions = (
  store: Store,
  segments: ReadonlyArray<PathSegment>,
  search: URLSearchParams,
  webApiUrl: string
): Reply => {
  const [entity, collection, cast] = segments
  const select = selectList(search)
  if (entity!.key === undefined) {
    if (segments.length > 1) {
      return faultReply(badRequest("Address one table as EntityDefinitions(LogicalName='<name>')."))
    }
    const all = store.tables.map((table) => entityMetadata(table.definition))
    const fault = unknownProperty(select, Object.keys(all[0] ?? {}), "EntityMetadata")
    if (fault !== undefined) return faultReply(fault)
    return {
      status: 200,
      body: {
        "@odata.context": `${webApiUrl}$metadata#EntityDefinitions`,
        value: all.map((object) => project(object, select))
      }
    }
  }
  const key = entity!.key
  const logicalName = key._tag === "Named" && key.parts.length === 1 && key.parts[0]![0] === "LogicalName"
    ? key.parts[0]![1].value
    : undefined
  if (logicalName === undefined) {
    return faultReply(badRequest("Address table definitions as EntityDefinitions(LogicalName='<name>')."))
  }
  const table: TableStore | undefined = store.table(logicalName)
  if (table === undefined) {
    return faultReply(new Fault(404, codes.notFound, `Could not find entity with name '${logicalName}'.`))
  }
  const definition = table.definition
  const expand = parseExpand(search)
  if (collection === undefined) {
    const base = entityMetadata(definition)
    const fault = unknownProperty(select, Object.keys(base), "EntityMetadata")
    if (fault !== undefined) return faultReply(fault)
    const body: Record<string, unknown> = {
      "@odata.context": `${webApiUrl}$metadata#EntityDefinitions/$entity`,
      ...project(base, select)
    }
    if (expand.has("Attributes")) {
      body.Attributes = attributeMetadata(definition).map((a) => project(a, expand.get("Attributes")))
    }
    if (expand.has("Keys")) body.Keys = keyMetadata(definition).map((k) => project(k, expand.get("Keys")))
    if (expand.has("ManyToOneRelationships")) {
      body.ManyToOneRelationships = manyToOneRelationships(definition, store).map((r) =>
        project(r, expand.get("ManyToOneRelationships"))
      )
    }
    return { status: 200, body }
  }
  const context = `${webApiUrl}$metadata#EntityDefinitions('${definition.logicalName}')/${collection.name}`
  if (collection.name === "Attributes") {
    let attributes = attributeMetadata(definition)
    if (cast !== undefined) {
      const type = cast.name.replace(/^Microsoft\.Dynamics\.CRM\./, "")
      attributes = attributes.filter((a) => a["@odata.type"] === `#Microsoft.Dynamics.CRM.${type}`)
    }
    if (collection.key !== undefined) {
      const name = collection.key._tag === "Named"
        ? collection.key.parts.find(([n]) => n === "LogicalName")?.[1].value
        : undefined
      const attribute = attributes.find((a) => a.LogicalName === name)
      if (attribute === undefined) {
        return faultReply(
          new Fault(
            404,
            codes.notFound,
            `Could not find attribute '${String(name)}' on entity '${definition.logicalName}'.`
          )
        )
      }
      attributes = [attribute]
    }
    // As on the service: a derived type's properties need the cast; an empty cast is an empty list.
    const fault = unknownProperty(
      select,
      cast === undefined ? baseAttributeProperties : [...baseAttributeProperties, ...derivedAttributeProperties],
      cast === undefined ? "AttributeMetadata" : cast.name.replace(/^Microsoft\.Dynamics\.CRM\./, "")
    )
    if (fault !== undefined) return faultReply(fault)
    const value = attributes.map((attribute) => {
      const out = project(attribute, select)
      if (expand.has("OptionSet")) {
        const column = definition.columns.find((c) => c.logicalName === attribute.LogicalName)
        if (column?.options !== undefined) {
          out.OptionSet = project(optionSetOf(definition, column), expand.get("OptionSet"))
        }
      }
      return out
    })
    if (collection.key !== undefined) {
      return { status: 200, body: { "@odata.context": `${context}/$entity`, ...value[0] } }
    }
    return { status: 200, body: { "@odata.context": context, value } }
  }
  if (collection.name === "Keys") {
    return {
      status: 200,
      body: { "@odata.context": context, value: keyMetadata(definition).map((k) => project(k, select)) }
    }
  }
  if (collection.name === "ManyToOneRelationships") {
    return {
      status: 200,
      body: {
        "@odata.context": context,
        value: manyToOneRelationships(definition, store).map((r) => project(r, select))
      }
    }
  }
  return faultReply(new Fault(404, codes.segmentNotFound, `Resource not found for the segment '${collection.name}'.`))
}

/**
 * Answers `sdkmessagefilters` for the query the wire reference documents:
 * `$filter=sdkmessageid/name eq '<Message>' and primaryobjecttypecode eq '<table>'` (either
 * condition alone works too). One row per table that supports the message.
 */
export const sdkMessageFilters = (store: Store, search: URLSearchParams, webApiUrl: string): Reply => {
  const filter = search.get("$filter") ?? ""
  const message = /sdkmessageid\/name\s+eq\s+'([^']*)'/i.exec(filter)?.[1]
  const table = /primaryobjecttypecode\s+eq\s+'([^']*)'/i.exec(filter)?.[1]
  const rest = filter
    .replace(/sdkmessageid\/name\s+eq\s+'[^']*'/i, "")
    .replace(/primaryobjecttypecode\s+eq\s+'[^']*'/i, "")
    .replace(/\band\b/gi, "")
    .trim()
  if (rest !== "") {
    return faultReply(
      badRequest(
        "The emulator answers sdkmessagefilters only for \"sdkmessageid/name eq '<message>' and primaryobjecttypecode eq '<table>'\"."
      )
    )
  }
  const supports = (definition: TableDefinition, name: string) =>
    (name === "CreateMultiple" && definition.messages.createMultiple) ||
    (name === "UpdateMultiple" && definition.messages.updateMultiple) ||
    (name === "DeleteMultiple" && definition.messages.deleteMultiple) ||
    ["Create", "Update", "Delete", "Retrieve", "RetrieveMultiple"].includes(name)
  const messages = message === undefined ? ["CreateMultiple", "UpdateMultiple", "DeleteMultiple"] : [message]
  const value = store.tables
    .filter((t) => table === undefined || t.definition.logicalName === table)
    .flatMap((t) =>
      messages.filter((m) => supports(t.definition, m)).map((m) => ({
        "@odata.etag": "W/\"1\"",
        sdkmessagefilterid: stableId(`filter:${m}:${t.definition.logicalName}`),
        primaryobjecttypecode: t.definition.logicalName
      }))
    )
  const select = selectList(search)
  return {
    status: 200,
    body: {
      "@odata.context": `${webApiUrl}$metadata#sdkmessagefilters(${select?.join(",") ?? ""})`,
      value: value.map((row) =>
        select === undefined
          ? row
          : Object.fromEntries(
            Object.entries(row).filter(([k]) => k === "@odata.etag" || k === "sdkmessagefilterid" || select.includes(k))
          )
      )
    }
  }
}

/**
 * The CSDL `$metadata` document, both ways: `readCsdl` turns the document an org serves into
 * tables of the schema file format (then `TableSchema.decode` applies its defaults and checks),
 * `writeCsdl` turns a schema into the document the emulator serves at `$metadata`.
 *
 * The document's shape is the one Microsoft documents (Web API Service Documents, EntityTypes,
 * Properties, Navigation Properties: learn.microsoft.com/power-apps/developer/data-platform/webapi/
 * web-api-service-documents and the pages it links): `edmx:Edmx` / `edmx:DataServices` /
 * `Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm"`, one `EntityType` per table with a
 * `Key`, `Property` elements with `Edm` types, lookups as an `Edm.Guid` lookup property
 * `_<column>_value` plus one single-valued `NavigationProperty` per target whose
 * `ReferentialConstraint` names it, alternate keys as an `OData.Community.Keys.V1.AlternateKeys`
 * annotation, and an `EntityContainer` of `EntitySet`s.
 *
 * `Edm.Date` is a DateTime column of the `DateOnly` behavior: the Web API types a Date Only
 * column `Edm.Date` (see `edmTypeOf`), and `writeCsdl` writes one so.
 *
 * What a CSDL document does not carry is defaulted (modelling choices, listed in the README):
 * - column types it cannot tell apart: `Edm.String` is a String (never a Memo), `Edm.Int32` an
 *   Integer (option sets are `Edm.Int32` too, so their values are not checked), `Edm.Decimal` a
 *   Decimal (money is `Edm.Decimal` too), `Edm.DateTimeOffset` a DateTime of the default
 *   behavior (UserLocal and TimeZoneIndependent columns look the same), a lookup a Lookup (a
 *   Customer column looks the same), but `ownerid` an Owner;
 * - lengths: only a `MaxLength` facet, which the service does not write, sets one; else no limit;
 * - ranges: those of the Edm type (Int32, Int16); required levels: `None`; option-set values: none;
 * - alternate key names: the key's columns joined by `_`, then `_key` (`accountnumber_key`);
 * - table type: Elastic when the table has both `partitionid` and `ttlinseconds` (the columns every
 *   elastic table has and standard tables lack), else Standard;
 * - bulk messages, object type codes, schema names and the primary name: the schema file's
 *   defaults (`TableSchema.decode`).
 */
import { XMLParser, XMLValidator } from "fast-xml-parser"
import {
  type ColumnDefinition,
  type ColumnType,
  type KeyDefinition,
  type LookupTarget,
  relationshipName,
  type TableDefinition
} from "../TableSchema.js"
import { edmTypeOf } from "./records.js"

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/**
 * Whether a schema file's text is a CSDL document: XML whose root element is `edmx:Edmx` (after
 * an optional byte order mark, XML declaration, comments and white space).
 */
export const isCsdl = (text: string): boolean =>
  /^\uFEFF?\s*(<\?xml[^>]*\?>\s*)?(<!--[\s\S]*?-->\s*)*<edmx:Edmx[\s>]/.test(text)

/** A table as the schema file writes it, before `TableSchema.decode` fills in its defaults. */
export interface CsdlTable {
  readonly logicalName: string
  readonly entitySetName: string
  readonly primaryIdAttribute: string
  readonly tableType: "Standard" | "Elastic"
  readonly columns: ReadonlyArray<ColumnDefinition>
  readonly keys: ReadonlyArray<KeyDefinition>
}

/** An element as the parser gives it: attributes under `$`, each child element name to a list. */
interface Node {
  readonly $?: Readonly<Record<string, string>>
  readonly [child: string]: unknown
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "",
  attributesGroupName: "$",
  // `edmx:Edmx` and `Edmx` alike: the prefix is the document's choice.
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  // Every element as a list, so that one child and several read alike.
  isArray: (_name, _path, _leaf, isAttribute) => !isAttribute
})

const isNode = (value: unknown): value is Node => typeof value === "object" && value !== null && !Array.isArray(value)

const children = (node: Node | undefined, name: string): Array<Node> => {
  const list = node?.[name]
  return Array.isArray(list) ? list.filter(isNode) : []
}

const attribute = (node: Node | undefined, name: string): string | undefined => node?.$?.[name]

interface EntityType {
  readonly name: string
  readonly node: Node
  readonly baseType: string | undefined
}

/** The chain of a type and its base types, the type first (a cycle ends the chain). */
const chainOf = (type: EntityType, types: ReadonlyMap<string, EntityType>): Array<EntityType> => {
  const chain: Array<EntityType> = []
  for (let at: EntityType | undefined = type; at !== undefined && !chain.includes(at);) {
    chain.push(at)
    at = at.baseType === undefined ? undefined : types.get(at.baseType)
  }
  return chain
}

const primitiveColumn = (name: string, property: Node): ColumnDefinition | undefined => {
  const column = (type: ColumnType, extra: Partial<ColumnDefinition> = {}): ColumnDefinition => ({
    logicalName: name,
    type,
    ...extra
  })
  switch (attribute(property, "Type")) {
    case "Edm.String": {
      // The service writes no MaxLength; another producer may.
      const maxLength = Number(attribute(property, "MaxLength"))
      return Number.isInteger(maxLength) && maxLength > 0 ? column("String", { maxLength }) : column("String")
    }
    case "Edm.Int16":
      return column("Integer", { minValue: -32768, maxValue: 32767 })
    case "Edm.Int32":
      return column("Integer")
    case "Edm.Int64":
      return column("BigInt")
    case "Edm.Decimal":
      return column("Decimal")
    case "Edm.Double":
    case "Edm.Single":
      return column("Double")
    case "Edm.Boolean":
      return column("Boolean")
    case "Edm.Date":
      // The Web API types a Date Only column `Edm.Date` (see `edmTypeOf`).
      return column("DateTime", { dateTimeBehavior: "DateOnly" })
    case "Edm.DateTimeOffset":
      return column("DateTime")
    case "Edm.Guid":
      return column("Uniqueidentifier")
    default:
      // Edm.Binary (files and images), streams, complex and enumeration types: not emulated.
      return undefined
  }
}

const lookupName = /^_(.+)_value$/

/**
 * The alternate keys of the `OData.Community.Keys.V1.AlternateKeys` annotation (Web API
 * EntityTypes, "Alternate Keys"): each `Record` lists its columns as `PropertyValue
 * Property="Name" PropertyPath="..."`. A lookup column in a key is named by its lookup property.
 */
const alternateKeys = (type: Node): Array<ReadonlyArray<string>> =>
  children(type, "Annotation")
    .filter((annotation) => /(^|\.)AlternateKeys$/.test(attribute(annotation, "Term") ?? ""))
    .flatMap((annotation) => children(annotation, "Collection"))
    .flatMap((collection) => children(collection, "Record"))
    .flatMap((record) => {
      const parts = children(record, "PropertyValue")
        .filter((value) => attribute(value, "Property") === "Key")
        .flatMap((value) => children(value, "Collection"))
        .flatMap((collection) => children(collection, "Record"))
        .flatMap((ref) =>
          children(ref, "PropertyValue")
            .filter((value) => attribute(value, "Property") === "Name")
            .flatMap((value) => attribute(value, "PropertyPath") ?? [])
        )
        .map((path) => lookupName.exec(path)?.[1] ?? path)
      return parts.length === 0 ? [] : [parts]
    })

/**
 * Reads the tables of a CSDL `$metadata` document: every entity type that has an entity set,
 * except the types of the metadata API (those derived from `crmmodelbaseentity`). Returns the
 * tables in the schema file format, or a message naming what is wrong.
 */
export const readCsdl = (xml: string): { readonly tables: Array<CsdlTable> } | string => {
  const valid = XMLValidator.validate(xml)
  if (valid !== true) return `the CSDL document is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`
  const root = children(parser.parse(xml) as Node, "Edmx")[0]
  const schemas = children(children(root, "DataServices")[0], "Schema")
  if (schemas.length === 0) return "the CSDL document has no edmx:Edmx/edmx:DataServices/Schema element"

  // Entity types by every name they may be referred to: `Microsoft.Dynamics.CRM.account`, `mscrm.account`.
  const types = new Map<string, EntityType>()
  const sets = new Map<EntityType, string>()
  const declared: Array<EntityType> = []
  for (const schema of schemas) {
    const prefixes = [attribute(schema, "Namespace"), attribute(schema, "Alias")].filter((p) => p !== undefined)
    for (const node of children(schema, "EntityType")) {
      const name = attribute(node, "Name")
      if (name === undefined) continue
      const type = { name, node, baseType: attribute(node, "BaseType") }
      declared.push(type)
      for (const prefix of prefixes) types.set(`${prefix}.${name}`, type)
    }
  }
  for (const schema of schemas) {
    for (const container of children(schema, "EntityContainer")) {
      for (const set of children(container, "EntitySet")) {
        const type = types.get(attribute(set, "EntityType") ?? "")
        const name = attribute(set, "Name")
        if (type !== undefined && name !== undefined && !sets.has(type)) sets.set(type, name)
      }
    }
  }

  interface Candidate {
    readonly type: EntityType
    readonly chain: ReadonlyArray<EntityType>
    readonly key: string
  }
  const candidates = new Map<EntityType, Candidate>()
  const candidateNames = new Set<string>()
  for (const type of declared) {
    // One table per logical name: the first type of that name with an entity set.
    if (!sets.has(type) || candidateNames.has(type.name)) continue
    const chain = chainOf(type, types)
    if (chain.some((t) => t.name === "crmmodelbaseentity")) continue
    const refs = children(chain.map((t) => children(t.node, "Key")[0]).find((k) => k !== undefined), "PropertyRef")
    // A table has one primary key column; a composite key is no Dataverse table.
    const key = refs.length === 1 ? attribute(refs[0], "Name") : undefined
    if (key === undefined) continue
    candidates.set(type, { type, chain, key })
    candidateNames.add(type.name)
  }

  /** The tables a navigation property's type stands for: itself, or the tables derived from it (`principal`). */
  const derived = new Map<string, Array<EntityType>>()
  const tablesOf = (typeName: string): Array<EntityType> => {
    const target = types.get(typeName)
    if (target === undefined) return []
    if (candidates.has(target)) return [target]
    let found = derived.get(typeName)
    if (found === undefined) {
      found = [...candidates.values()].filter((c) => c.chain.includes(target)).map((c) => c.type)
      derived.set(typeName, found)
    }
    return found
  }

  const build = (candidate: Candidate, kept: ReadonlySet<string>): CsdlTable | undefined => {
    const { chain, key, type } = candidate
    // Base types first, so that a derived type's property of the same name wins.
    const properties = new Map<string, Node>()
    // Single-valued navigation properties by the lookup property their constraint names.
    const navigations = new Map<string, Array<Node>>()
    for (const t of [...chain].reverse()) {
      for (const property of children(t.node, "Property")) {
        const name = attribute(property, "Name")
        if (name !== undefined) properties.set(name, property)
      }
      for (const navigation of children(t.node, "NavigationProperty")) {
        for (const constraint of children(navigation, "ReferentialConstraint")) {
          const lookupProperty = attribute(constraint, "Property")
          if (lookupProperty === undefined) continue
          navigations.set(lookupProperty, [...(navigations.get(lookupProperty) ?? []), navigation])
        }
      }
    }
    // A key inherited from a base type (`ownerid` of `principal`) stands for the table's own id
    // column when it has one (`systemuserid`), as EntityDefinitions' PrimaryIdAttribute says.
    const ownKey = `${type.name}id`
    const inheritedKey = children(type.node, "Key").length === 0
    const primaryId = inheritedKey && attribute(properties.get(ownKey), "Type") === "Edm.Guid" ? ownKey : key

    const columns: Array<ColumnDefinition> = []
    const names = new Set<string>([primaryId, key])
    for (const [name, property] of properties) {
      const lookup = lookupName.exec(name)?.[1]
      let column: ColumnDefinition | undefined
      if (lookup !== undefined) {
        const targets: Array<LookupTarget> = []
        for (const navigation of navigations.get(name) ?? []) {
          const navigationProperty = attribute(navigation, "Name")
          if (navigationProperty === undefined) continue
          // The partner is the relationship's collection on the target (`contact_customer_accounts`);
          // kept only when it is not the name the emulator would give.
          const partner = attribute(navigation, "Partner")
          const relationship = partner === relationshipName(type.name, { table: "", navigationProperty })
            ? undefined
            : partner
          for (const target of tablesOf(attribute(navigation, "Type") ?? "")) {
            if (kept.has(target.name) && !targets.some((t) => t.table === target.name)) {
              targets.push({
                table: target.name,
                navigationProperty,
                ...(relationship === undefined ? {} : { relationship })
              })
            }
          }
        }
        // Without a target the emulator serves, a lookup cannot be set: left out.
        // CSDL cannot tell a Customer column from a Lookup to the same tables; `ownerid` is the owner.
        if (targets.length > 0) {
          column = { logicalName: lookup, type: lookup === "ownerid" ? "Owner" : "Lookup", targets }
        }
      } else {
        column = primitiveColumn(name, property)
      }
      if (column === undefined || names.has(column.logicalName)) continue
      names.add(column.logicalName)
      columns.push(column)
    }
    // A table needs a column to be its primary name.
    if (columns.length === 0) return undefined

    const byName = new Map(columns.map((c) => [c.logicalName, c]))
    const keys: Array<KeyDefinition> = []
    for (const keyAttributes of alternateKeys(type.node)) {
      if (!keyAttributes.every((a) => byName.has(a))) continue
      const base = `${keyAttributes.join("_")}_key`
      let logicalName = base
      for (let n = 2; keys.some((k) => k.logicalName === logicalName); n++) logicalName = `${base}${n}`
      keys.push({ logicalName, keyAttributes })
    }
    const elastic = byName.get("partitionid")?.type === "String" && byName.get("ttlinseconds")?.type === "Integer"
    return {
      logicalName: type.name,
      entitySetName: sets.get(type)!,
      primaryIdAttribute: primaryId,
      tableType: elastic ? "Elastic" : "Standard",
      columns,
      keys
    }
  }

  // A table left out (no column) takes the lookups to it along: build again until none is.
  let kept = new Set([...candidates.values()].map((c) => c.type.name))
  for (;;) {
    const tables = [...candidates.values()].flatMap((c) => (kept.has(c.type.name) ? build(c, kept) ?? [] : []))
    if (tables.length === kept.size) {
      return tables.length === 0
        ? "the CSDL document has no entity type with an entity set, a key and a column"
        : { tables }
    }
    kept = new Set(tables.map((t) => t.logicalName))
  }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

const escape = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

type Attributes = ReadonlyArray<readonly [string, string]>

/** Writes an XML document line by line, indented two spaces a level. */
const xmlWriter = () => {
  const lines = ["<?xml version=\"1.0\" encoding=\"utf-8\"?>"]
  let indent = ""
  const tag = (name: string, attributes: Attributes) =>
    `${indent}<${name}${attributes.map(([k, v]) => ` ${k}="${escape(v)}"`).join("")}`
  return {
    leaf: (name: string, attributes: Attributes) => {
      lines.push(`${tag(name, attributes)} />`)
    },
    element: (name: string, attributes: Attributes, body: () => void) => {
      lines.push(`${tag(name, attributes)}>`)
      indent += "  "
      body()
      indent = indent.slice(2)
      lines.push(`${indent}</${name}>`)
    },
    text: () => `${lines.join("\n")}\n`
  }
}

const isLookup = (column: ColumnDefinition) =>
  column.type === "Lookup" || column.type === "Customer" || column.type === "Owner"

/**
 * The CSDL `$metadata` document of a schema, minimal and in the service's shape: per table an
 * `EntityType` (base `mscrm.crmbaseentity`) with its key, a `Property` per column with its Edm
 * type (a lookup as its `_<column>_value` lookup property and one single-valued navigation
 * property per target, with the partner collection on the target), the alternate keys
 * annotation, and an `EntitySet` in the `System` container. Like the service, it writes no
 * `MaxLength`, option sets or required levels: `EntityDefinitions` has those.
 */
export const writeCsdl = (tables: ReadonlyArray<TableDefinition>): string => {
  const byName = new Map(tables.map((table) => [table.logicalName, table]))
  // The collection-valued partners of the lookups, by the table they are on.
  const partners = new Map<string, Array<Attributes>>()
  for (const table of tables) {
    for (const column of table.columns) {
      for (const target of column.targets ?? []) {
        if (!byName.has(target.table)) continue
        let list = partners.get(target.table)
        if (list === undefined) partners.set(target.table, list = [])
        list.push([
          ["Name", relationshipName(table.logicalName, target)],
          ["Type", `Collection(mscrm.${table.logicalName})`],
          ["Partner", target.navigationProperty]
        ])
      }
    }
  }
  const xml = xmlWriter()
  const alternateKeys = (keys: ReadonlyArray<KeyDefinition>) =>
    xml.element(
      "Annotation",
      [["Term", "OData.Community.Keys.V1.AlternateKeys"]],
      () =>
        xml.element("Collection", [], () => {
          for (const key of keys) {
            xml.element("Record", [["Type", "OData.Community.Keys.V1.AlternateKey"]], () =>
              xml.element("PropertyValue", [["Property", "Key"]], () =>
                xml.element("Collection", [], () => {
                  for (const name of key.keyAttributes) {
                    xml.element("Record", [["Type", "OData.Community.Keys.V1.PropertyRef"]], () => {
                      xml.leaf("PropertyValue", [["Property", "Alias"], ["String", name]])
                      xml.leaf("PropertyValue", [["Property", "Name"], ["PropertyPath", name]])
                    })
                  }
                })))
          }
        })
    )
  const entityType = (table: TableDefinition) => {
    xml.element("Key", [], () => xml.leaf("PropertyRef", [["Name", table.primaryIdAttribute]]))
    xml.leaf("Property", [["Name", table.primaryIdAttribute], ["Type", "Edm.Guid"]])
    for (const column of table.columns) {
      if (isLookup(column)) {
        xml.leaf("Property", [["Name", `_${column.logicalName}_value`], ["Type", "Edm.Guid"]])
        continue
      }
      const type = edmTypeOf(column)
      // As the service writes decimals and money (Web API Properties, `openrevenue`).
      xml.leaf(
        "Property",
        type === "Edm.Decimal"
          ? [["Name", column.logicalName], ["Type", type], ["Scale", "Variable"]]
          : [["Name", column.logicalName], ["Type", type]]
      )
    }
    for (const column of table.columns) {
      for (const target of column.targets ?? []) {
        const referenced = byName.get(target.table)
        if (referenced === undefined) continue
        // `Nullable="false"` as in the service's own examples (Web API Navigation Properties).
        xml.element("NavigationProperty", [
          ["Name", target.navigationProperty],
          ["Type", `mscrm.${target.table}`],
          ["Nullable", "false"],
          ["Partner", relationshipName(table.logicalName, target)]
        ], () =>
          xml.leaf("ReferentialConstraint", [
            ["Property", `_${column.logicalName}_value`],
            ["ReferencedProperty", referenced.primaryIdAttribute]
          ]))
      }
    }
    for (const partner of partners.get(table.logicalName) ?? []) xml.leaf("NavigationProperty", partner)
    if (table.keys.length > 0) alternateKeys(table.keys)
  }
  xml.element("edmx:Edmx", [["Version", "4.0"], ["xmlns:edmx", "http://docs.oasis-open.org/odata/ns/edmx"]], () => {
    xml.element("edmx:Reference", [["Uri", "http://vocabularies.odata.org/OData.Community.Keys.V1.xml"]], () => {
      xml.leaf("edmx:Include", [["Namespace", "OData.Community.Keys.V1"], ["Alias", "Keys"]])
      xml.leaf("edmx:IncludeAnnotations", [["TermNamespace", "OData.Community.Keys.V1"]])
    })
    xml.element("edmx:DataServices", [], () =>
      xml.element("Schema", [
        ["Namespace", "Microsoft.Dynamics.CRM"],
        ["Alias", "mscrm"],
        ["xmlns", "http://docs.oasis-open.org/odata/ns/edm"]
      ], () => {
        xml.leaf("EntityType", [["Name", "crmbaseentity"], ["Abstract", "true"]])
        for (const table of tables) {
          xml.element(
            "EntityType",
            [["Name", table.logicalName], ["BaseType", "mscrm.crmbaseentity"]],
            () => entityType(table)
          )
        }
        xml.element("EntityContainer", [["Name", "System"]], () => {
          for (const table of tables) {
            xml.leaf("EntitySet", [
              ["Name", table.entitySetName],
              ["EntityType", `Microsoft.Dynamics.CRM.${table.logicalName}`]
            ])
          }
        })
      }))
  })
  return xml.text()
}

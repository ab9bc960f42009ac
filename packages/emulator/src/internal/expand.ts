/**
 * `$expand`: related records in a query or retrieve answer (learn.microsoft.com, "Join tables
 * using OData", power-apps/developer/data-platform/webapi/query/join-tables).
 *
 * Navigation properties come from the schema: a lookup column's targets are single-valued
 * navigation properties (`parentcustomerid_account`); each of those, seen from the target table,
 * is a collection-valued one named as the metadata's `ReferencedEntityNavigationPropertyName`
 * (`contact_customer_accounts` on account; `<table>_<navigation property>` unless the schema names
 * the relationship).
 *
 * As the service answers:
 * - a single-valued property is the related record (its selected columns and primary key, no
 *   `@odata.etag`), or null;
 * - a collection-valued property is an array of records (with `@odata.etag`, the selected
 *   columns, the lookup that points back at the parent, the primary key), not paged, at most
 *   5,000, followed by `<property>@odata.nextLink`: the URL of the filtered collection
 *   (`accounts(<id>)/<property>?$select=...`) without paging information;
 * - `@odata.context` lists them: `contacts(lastname,parentcustomerid_account(name))`.
 */
import type { LookupValue, Store, StoredRecord, TableStore } from "../Store.js"
import type { ColumnDefinition, TableDefinition } from "../TableSchema.js"
import { codes, Fault } from "./fault.js"
import { compileFilter, compileOrderBy } from "./filter.js"
import { manyToOneRelationships } from "./metadata.js"
import { auditColumns, contextUrl, navigationOf, present, resolveSelect } from "./records.js"

/** A navigation property of a table: to one record through a lookup, or to the records whose lookup points here. */
export type Navigation =
  | {
    readonly _tag: "Single"
    readonly name: string
    /** The lookup column of the expanded table. */
    readonly column: ColumnDefinition
    readonly target: TableStore
  }
  | {
    readonly _tag: "Collection"
    readonly name: string
    /** The table whose records point here, and its lookup column that does. */
    readonly referencing: TableStore
    readonly column: ColumnDefinition
  }

/** Every navigation property of `definition` by name; only those whose other table the store serves. */
export const navigationProperties = (store: Store, definition: TableDefinition): Map<string, Navigation> => {
  const out = new Map<string, Navigation>()
  for (const [name, { column, table }] of navigationOf(definition)) {
    const target = store.table(table)
    if (target !== undefined) out.set(name, { _tag: "Single", name, column, target })
  }
  // `createdby` and `modifiedby` are on every table, implied or declared.
  for (const column of auditColumns) {
    const target = store.table(column.targets![0]!.table)
    if (target !== undefined && !out.has(column.logicalName)) {
      out.set(column.logicalName, { _tag: "Single", name: column.logicalName, column, target })
    }
  }
  for (const referencing of store.tables) {
    for (const relationship of manyToOneRelationships(referencing.definition, store)) {
      if (relationship.ReferencedEntity !== definition.logicalName) continue
      const name = relationship.ReferencedEntityNavigationPropertyName as string
      const column = referencing.definition.columns.find((c) => c.logicalName === relationship.ReferencingAttribute)
      if (column !== undefined) out.set(name, { _tag: "Collection", name, referencing, column })
    }
  }
  return out
}

/** One `$expand` item, checked against the schema and compiled. */
interface ExpandNode {
  readonly navigation: Navigation
  readonly select: ReadonlyArray<ColumnDefinition> | undefined
  /** The nested options as written, for the collection's `@odata.nextLink`. */
  readonly options: ReadonlyArray<readonly [string, string]>
  readonly filter: ((record: StoredRecord) => boolean) | undefined
  readonly order: ((a: StoredRecord, b: StoredRecord) => number) | undefined
  readonly top: number | undefined
  readonly nested: ReadonlyArray<ExpandNode>
}

/** At most this many related records per collection, as on the service. */
const maxRelated = 5000

/** The OData layer's faults carry this code on the service (as `$select` ones do). */
const odataFault = (message: string): Fault => new Fault(400, codes.segmentNotFound, message)

const notEmulated = (what: string): Fault =>
  new Fault(400, codes.payload, `${what} is not available in this version of the emulator.`)

/**
 * Splits at `separator` outside parentheses and quoted strings (`''` inside a string is a quote).
 */
const splitTop = (text: string, separator: string): Array<string> => {
  const parts: Array<string> = []
  let depth = 0
  let inString = false
  let current = ""
  for (const c of text) {
    if (c === "'") inString = !inString
    else if (!inString && c === "(") depth++
    else if (!inString && c === ")") depth--
    if (!inString && depth === 0 && c === separator) {
      parts.push(current)
      current = ""
    } else current += c
  }
  parts.push(current)
  return parts
}

const syntaxError = (text: string): Fault => odataFault(`Syntax error in the $expand value '${text}'.`)

/** Does any node (at any depth) have a nested `$expand`, or expand a collection? */
const some = (nodes: ReadonlyArray<ExpandNode>, test: (node: ExpandNode) => boolean): boolean =>
  nodes.some((node) => test(node) || some(node.nested, test))

/**
 * Parses and checks an `$expand` value for `definition`: `a($select=x,y),B($filter=...;$top=5)`.
 * Unknown names answer the OData layer's error, as on the service.
 */
const parseExpand = (
  store: Store,
  definition: TableDefinition,
  text: string
): ReadonlyArray<ExpandNode> | Fault => {
  const navigation = navigationProperties(store, definition)
  const nodes: Array<ExpandNode> = []
  const typeName = `Microsoft.Dynamics.CRM.${definition.logicalName}`
  for (const raw of splitTop(text, ",")) {
    const item = raw.trim()
    const match = /^([A-Za-z_][A-Za-z0-9_]*)(\/\$ref)?\s*(?:\(([\s\S]*)\))?$/.exec(item)
    if (match === null) return syntaxError(text)
    const [, name, ref, inner] = match as unknown as [string, string, string | undefined, string | undefined]
    const found = navigation.get(name)
    if (found === undefined) {
      return odataFault(
        definition.columns.some((column) => column.logicalName === name) || name === definition.primaryIdAttribute
          ? `Property '${name}' on type '${typeName}' is not a navigation property or complex property. Only navigation properties can be expanded.`
          : `Could not find a property named '${name}' on type '${typeName}'.`
      )
    }
    if (ref !== undefined) return notEmulated("$expand with /$ref")
    const related = found._tag === "Single" ? found.target.definition : found.referencing.definition
    const options: Array<readonly [string, string]> = []
    for (const part of inner === undefined ? [] : splitTop(inner, ";")) {
      if (part.trim() === "") continue
      const at = part.indexOf("=")
      if (at < 0) return syntaxError(text)
      options.push([part.slice(0, at).trim(), part.slice(at + 1).trim()])
    }
    const option = (name: string) => options.find(([n]) => n === name)?.[1]
    const unknownOption = options.find(([n]) => !["$select", "$filter", "$orderby", "$top", "$expand"].includes(n))
    if (unknownOption !== undefined) {
      // Documented: $skip, $count, $search and $levels aren't supported in $expand.
      return odataFault(`The query option '${unknownOption[0]}' is not supported in $expand.`)
    }
    const select = option("$select") === undefined
      ? undefined
      : resolveSelect(related, new URLSearchParams([["$select", option("$select")!]]))
    if (select instanceof Fault) return select
    const filterText = option("$filter")
    const filter = filterText === undefined ? undefined : compileFilter(filterText, related)
    if (filter instanceof Fault) return filter
    const orderText = option("$orderby")
    const order = orderText === undefined ? undefined : compileOrderBy(orderText, related)
    if (order instanceof Fault) return order
    const topText = option("$top")
    const top = topText === undefined ? undefined : Number(topText)
    if (top !== undefined && (!Number.isInteger(top) || top < 0)) {
      return odataFault(
        `Invalid value '${topText}' for $top query option found. The $top query option requires a non-negative integer value.`
      )
    }
    const expandText = option("$expand")
    const nested = expandText === undefined ? [] : parseExpand(store, related, expandText)
    if (nested instanceof Fault) return nested
    nodes.push({
      navigation: found,
      select,
      options,
      filter,
      order,
      top,
      nested
    })
  }
  return nodes
}

/** The rules the service applies to the whole `$expand` tree (join-tables page, as cited above). */
const checkTree = (nodes: ReadonlyArray<ExpandNode>): Fault | undefined => {
  const nestedAnywhere = some(nodes, (node) => node.nested.length > 0)
  const orderedOrLimited = (node: ExpandNode) => node.order !== undefined || node.top !== undefined
  // "Only $select and $filter clause can be provided while doing $expand on many-to-one
  // relationship or nested one-to-many relationship."
  if (
    some(nodes, (node) => orderedOrLimited(node) && (node.navigation._tag === "Single" || nestedAnywhere))
  ) {
    return odataFault(
      "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship or nested one-to-many relationship."
    )
  }
  // With a nested $expand anywhere, the service pages every expanded collection by
  // odata.maxpagesize; the emulator does not model that paging and refuses rather than ignore it.
  if (nestedAnywhere && some(nodes, (node) => node.navigation._tag === "Collection")) {
    return notEmulated("A nested $expand in a query that expands a collection-valued navigation property")
  }
  return undefined
}

/** `name(col,col,nested(...))` for `@odata.context`; `name()` when every column is returned. */
const contextItem = (node: ExpandNode): string => {
  const columns = (node.select ?? []).map((c) => (c.targets !== undefined ? `_${c.logicalName}_value` : c.logicalName))
  return `${node.navigation.name}(${[...columns, ...node.nested.map(contextItem)].join(",")})`
}

/** Query strings with OData's `$` left readable, as the service writes them. */
const encodeOptions = (options: ReadonlyArray<readonly [string, string]>): string =>
  options.map(([name, value]) => `${name}=${encodeURIComponent(value).replace(/%2C/g, ",")}`).join("&")

/**
 * What a query or retrieve returns of each record: the `$select`ed columns and the `$expand`ed
 * related records, with the matching `@odata.context`.
 */
export interface Projection {
  readonly select: ReadonlyArray<ColumnDefinition> | undefined
  /** `@odata.context`, of a collection or (`single`) of one record. */
  readonly contextUrl: (single: boolean) => string
  /** A record as the Web API returns it, related records included. */
  readonly present: (record: StoredRecord) => Record<string, unknown>
}

/**
 * The projection that `$select` and `$expand` in `search` ask for on `definition`, or the fault
 * the service answers for them.
 */
export const projection = (
  store: Store,
  definition: TableDefinition,
  search: URLSearchParams,
  annotations: boolean,
  webApiUrl: string
): Projection | Fault => {
  const select = resolveSelect(definition, search)
  if (select instanceof Fault) return select
  const expandText = search.get("$expand")
  const nodes = expandText === null || expandText.trim() === ""
    ? []
    : parseExpand(store, definition, expandText)
  if (nodes instanceof Fault) return nodes
  const fault = checkTree(nodes)
  if (fault !== undefined) return fault

  /** The related records of a collection node, grouped by parent id once per request. */
  const groups = new Map<ExpandNode, Map<string, Array<StoredRecord>>>()
  const relatedOf = (
    node: ExpandNode,
    navigation: Extract<Navigation, { _tag: "Collection" }>,
    parent: TableDefinition,
    id: string
  ) => {
    let byParent = groups.get(node)
    if (byParent === undefined) {
      byParent = new Map()
      const attribute = navigation.column.logicalName
      const matching = navigation.referencing.scan((record) => {
        const lookup = record.values[attribute] as LookupValue | null | undefined
        return lookup != null && lookup.table === parent.logicalName &&
          (node.filter === undefined || node.filter(record))
      })
      if (node.order !== undefined) matching.sort(node.order)
      for (const record of matching) {
        const lookup = record.values[attribute] as LookupValue
        const list = byParent.get(lookup.id)
        if (list === undefined) byParent.set(lookup.id, [record])
        else list.push(record)
      }
      groups.set(node, byParent)
    }
    return (byParent.get(id) ?? []).slice(0, Math.min(node.top ?? maxRelated, maxRelated))
  }

  const expandInto = (
    out: Record<string, unknown>,
    owner: TableDefinition,
    record: StoredRecord,
    expansions: ReadonlyArray<ExpandNode>
  ): Record<string, unknown> => {
    for (const node of expansions) {
      const navigation = node.navigation
      if (navigation._tag === "Single") {
        const lookup = record.values[navigation.column.logicalName] as LookupValue | null | undefined
        const related = lookup != null && lookup.table === navigation.target.definition.logicalName
          ? navigation.target.get(lookup.id)
          : undefined
        if (related === undefined || (node.filter !== undefined && !node.filter(related))) {
          out[navigation.name] = null
          continue
        }
        const target = navigation.target.definition
        // An expanded single-valued record carries no @odata.etag (join-tables page examples).
        const { "@odata.etag": _etag, ...row } = present(target, related, node.select, annotations)
        out[navigation.name] = expandInto(row, target, related, node.nested)
      } else {
        const referencing = navigation.referencing.definition
        // The lookup that points back at the parent comes along, as the service returns it.
        const select = node.select === undefined || node.select.includes(navigation.column)
          ? node.select
          : [...node.select, navigation.column]
        out[navigation.name] = relatedOf(node, navigation, owner, record.id).map((related) =>
          expandInto(present(referencing, related, select, annotations), referencing, related, node.nested)
        )
        const query = encodeOptions(node.options)
        out[`${navigation.name}@odata.nextLink`] =
          `${webApiUrl}${owner.entitySetName}(${record.id})/${navigation.name}${query === "" ? "" : `?${query}`}`
      }
    }
    return out
  }

  const expandedContext = nodes.map(contextItem)
  return {
    select,
    contextUrl: (single) => contextUrl(webApiUrl, definition, select, single, expandedContext),
    present: (record) => expandInto(present(definition, record, select, annotations), definition, record, nodes)
  }
}

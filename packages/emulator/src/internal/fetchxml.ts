/**
 * FetchXML as the emulator runs it: `parseFetchXml` checks a query against the schema and
 * compiles it into a `FetchPlan` (predicate, comparator, paging attributes), once per request.
 * The conditions share their semantics with `$filter` (`filter.ts`): case-insensitive strings,
 * SQL's null handling, T-SQL `LIKE` patterns, UTC date operators.
 *
 * Also the paging cookies: `writeFetchPagingCookie` builds the
 * `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` annotation in the service's format, around an
 * inner cookie written by `writeFetchInnerCookie`; `readFetchPagingCookie` reads the inner
 * cookie back from the `paging-cookie` a client sends with the next page.
 *
 * `link-entity` joins (inner and outer, nested) when the caller gives the records to join
 * (`FetchOptions.records`): the linked attributes come back as `<alias>.<column>`.
 *
 * Not supported (refused with a 400, never ignored): link types other than inner and outer,
 * `link-entity` inside a `<filter>`, ordering by or conditions on linked columns from outside
 * the link, aggregates, column aliases, and the operators that need users, teams, hierarchies or
 * fiscal settings.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser"
import type { LookupValue, StoredRecord } from "../Store.js"
import type { TableDefinition } from "../TableSchema.js"
import { Fault } from "./fault.js"
import type { ComparisonOperator, DateOperator, Field, Predicate, QueryOptions, Scalar, SortKey } from "./filter.js"
import {
  between,
  columnComparison,
  comparison,
  compileSortKeys,
  convertText,
  dateOperators,
  dateRange,
  inRange,
  like,
  lookupSortName,
  membership,
  noAttribute,
  nullTest,
  queryBuilderCodes,
  resolveField
} from "./filter.js"
import { parseGuid } from "./records.js"

/**
 * A FetchXML query compiled for one table.
 *
 * Paging: without `<order>`, records page in insertion (`seq`) order and the inner paging cookie
 * carries the last `seq` served, so the next page continues right after it even when records were
 * added or deleted meanwhile. With `<order>`, pages are cut by page number from the sorted
 * result (`(page - 1) * count`), the service's "simple paging"; the cookie is still written so
 * clients exercise their cookie handling.
 */
export interface FetchPlan {
  /** Logical name of `<entity name>`. */
  readonly entity: string
  /** `<attribute name>` in document order, or `"all"` for `<all-attributes/>` or no attribute element. */
  readonly attributes: ReadonlyArray<string> | "all"
  readonly predicate: (record: StoredRecord) => boolean
  /** From the `<order>` elements; undefined without any (page in `seq` order). */
  readonly compare: ((a: StoredRecord, b: StoredRecord) => number) | undefined
  /** `fetch top=` (at most 5,000). */
  readonly top: number | undefined
  /** `fetch count=`: the page size, as given (the caller caps it at 5,000). */
  readonly count: number | undefined
  /** `fetch page=` */
  readonly page: number | undefined
  /** `fetch paging-cookie=`, XML-unescaped; read it with `readFetchPagingCookie`. */
  readonly pagingCookie: string | undefined
  readonly distinct: boolean
  /** `fetch returntotalrecordcount=` */
  readonly returnTotalRecordCount: boolean
  /**
   * The columns the `<link-entity>`s add to a record: one row per combination of linked records
   * (a one-to-many link repeats the record). Empty objects without links. `predicate` already
   * drops the records an inner link finds nothing for.
   */
  readonly join: (record: StoredRecord, annotations: boolean) => ReadonlyArray<Record<string, unknown>>
}

/** Options of `parseFetchXml`. */
export interface FetchOptions extends Pick<QueryOptions, "now" | "lookupName"> {
  /** The records of a table by logical name, for `link-entity`; without it a link-entity is refused. */
  readonly records?: ((logicalName: string) => ReadonlyArray<StoredRecord>) | undefined
}

const fault = (code: string, message: string): Fault => new Fault(400, code, message)

const notSupported = (what: string): Fault =>
  fault(queryBuilderCodes.invalidNode, `${what} is not supported by the emulator.`)

// ---------------------------------------------------------------------------------------------
// XML
// ---------------------------------------------------------------------------------------------

/** A node of fast-xml-parser's `preserveOrder` output: `{ [name]: children, ":@": attributes }`. */
type XmlNode = Record<string, unknown>

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: "",
  parseTagValue: false,
  parseAttributeValue: false,
  // Whitespace inside <value> is data; whitespace between elements is dropped below.
  trimValues: false,
  // Numeric character references (`&#60;`) as well as the five XML entities.
  htmlEntities: true
})

interface Element {
  readonly name: string
  readonly attributes: Readonly<Record<string, string>>
  readonly children: ReadonlyArray<Element>
  readonly text: string
}

const toElement = (node: XmlNode): Element | string | undefined => {
  if ("#text" in node) return String(node["#text"])
  const name = Object.keys(node).find((key) => key !== ":@")
  // Processing instructions (`<?xml ...?>`) carry no query.
  if (name === undefined || name.startsWith("?")) return undefined
  const attributes = (node[":@"] ?? {}) as Record<string, string>
  const children: Array<Element> = []
  let text = ""
  for (const child of node[name] as Array<XmlNode>) {
    const converted = toElement(child)
    if (typeof converted === "string") text += converted
    else if (converted !== undefined) children.push(converted)
  }
  return { name, attributes, children, text }
}

const parseXml = (xml: string): Element | Fault => {
  if (xml.trim() === "") return fault(queryBuilderCodes.invalidArgument, "Expected non-empty string.")
  // Like the service's XML reader, no DTDs: they are the door to entity expansion attacks.
  if (/<!DOCTYPE/i.test(xml)) {
    return fault(queryBuilderCodes.invalidXml, "Invalid XML: DTDs are prohibited in FetchXML.")
  }
  const valid = XMLValidator.validate(xml)
  if (valid !== true) {
    return fault(
      queryBuilderCodes.invalidXml,
      `Invalid XML: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col}).`
    )
  }
  const roots: Array<Element> = []
  for (const node of parser.parse(xml) as Array<XmlNode>) {
    const element = toElement(node)
    if (typeof element === "string") {
      if (element.trim() !== "") {
        return fault(queryBuilderCodes.invalidXml, "Invalid XML: text outside the root element.")
      }
    } else if (element !== undefined) roots.push(element)
  }
  if (roots.length !== 1) {
    return fault(queryBuilderCodes.invalidXml, "Invalid XML: a document has exactly one root element.")
  }
  return roots[0]!
}

const describe = (element: Element): string =>
  `<${element.name}${
    Object.entries(element.attributes).map(([name, value]) => ` ${name}="${xmlEscape(value)}"`).join("")
  }${element.children.length === 0 ? " />" : ">...</" + element.name + ">"}`

const invalidChild = (element: Element, valid: string): Fault =>
  fault(
    queryBuilderCodes.invalidNode,
    `Invalid Child Node, valid nodes are ${valid}. NodeName = ${element.name} NodeXml = ${describe(element)}`
  )

// ---------------------------------------------------------------------------------------------
// Attribute values
// ---------------------------------------------------------------------------------------------

const positiveInteger = (element: Element, name: string, max?: number): number | undefined | Fault => {
  const text = element.attributes[name]
  if (text === undefined) return undefined
  if (!/^\s*[+-]?\d+\s*$/.test(text)) {
    return fault(queryBuilderCodes.invalidArgument, `The '${name}' attribute value '${text}' is not a valid integer.`)
  }
  const value = Number(text)
  if (value <= 0) {
    return fault(queryBuilderCodes.topCountGreaterThanZero, `The '${name}' attribute must be greater than zero.`)
  }
  if (max !== undefined && value > max) {
    return fault(queryBuilderCodes.invalidArgument, `The '${name}' attribute value can't exceed ${max}.`)
  }
  return value
}

const booleanAttribute = (element: Element, name: string, code: string): boolean | Fault => {
  const text = element.attributes[name]
  if (text === undefined) return false
  const value = text.trim().toLowerCase()
  if (value === "true" || value === "1") return true
  if (value === "false" || value === "0") return false
  return fault(code, `The '${name}' attribute value '${text}' is not a valid Boolean.`)
}

// ---------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------

const comparisonOperators: Readonly<Record<string, ComparisonOperator>> = {
  eq: "eq",
  ne: "ne",
  neq: "ne",
  gt: "gt",
  ge: "ge",
  lt: "lt",
  le: "le"
}

const likeOperators: Readonly<Record<string, { readonly prefix: string; readonly suffix: string; negate: boolean }>> = {
  like: { prefix: "", suffix: "", negate: false },
  "not-like": { prefix: "", suffix: "", negate: true },
  "begins-with": { prefix: "", suffix: "%", negate: false },
  "not-begin-with": { prefix: "", suffix: "%", negate: true },
  "ends-with": { prefix: "%", suffix: "", negate: false },
  "not-end-with": { prefix: "%", suffix: "", negate: true }
}

/** Documented operators that need users, teams, hierarchies or fiscal settings. */
const unsupportedOperators = new Set([
  "eq-userid",
  "ne-userid",
  "eq-userteams",
  "eq-useroruserteams",
  "eq-useroruserhierarchy",
  "eq-useroruserhierarchyandteams",
  "eq-businessid",
  "ne-businessid",
  "eq-userlanguage",
  "above",
  "eq-or-above",
  "under",
  "eq-or-under",
  "not-under",
  "contain-values",
  "not-contain-values",
  "in-fiscal-period",
  "in-fiscal-period-and-year",
  "in-fiscal-year",
  "in-or-after-fiscal-period-and-year",
  "in-or-before-fiscal-period-and-year",
  "last-fiscal-period",
  "last-fiscal-year",
  "last-x-fiscal-periods",
  "last-x-fiscal-years",
  "next-fiscal-period",
  "next-fiscal-year",
  "next-x-fiscal-periods",
  "next-x-fiscal-years",
  "this-fiscal-period",
  "this-fiscal-year"
])

const isDateOperator = (operator: string): operator is DateOperator => Object.hasOwn(dateOperators, operator)

const makeConditionCompiler = (table: TableDefinition, now: number) => {
  const field = (name: string | undefined, element: Element): Field | Fault => {
    if (name === undefined) {
      return fault(queryBuilderCodes.badCondition, `A condition needs an 'attribute'. NodeXml = ${describe(element)}`)
    }
    return resolveField(table, name, "attribute") ?? noAttribute(table, name)
  }

  /** The condition's values: `<value>` children, else the `value` attribute. */
  const valuesOf = (element: Element): ReadonlyArray<string> | Fault => {
    const values: Array<string> = []
    for (const child of element.children) {
      if (child.name !== "value") return invalidChild(child, "value")
      values.push(child.text)
    }
    if (values.length > 0) return values
    const value = element.attributes["value"]
    return value === undefined ? [] : [value]
  }

  const valueCount = (operator: string, attribute: string, expected: string, found: number): Fault =>
    fault(
      queryBuilderCodes.badCondition,
      `The condition on '${table.logicalName}.${attribute}' with operator '${operator}' expects ${expected} value(s) but has ${found}.`
    )

  const condition = (element: Element): Predicate | Fault => {
    const { attribute, entityname, operator, valueof } = element.attributes
    if (entityname !== undefined) return notSupported(`A condition on another entity (entityname='${entityname}')`)
    if (operator === undefined) {
      return fault(queryBuilderCodes.badCondition, `A condition needs an 'operator'. NodeXml = ${describe(element)}`)
    }
    const target = field(attribute, element)
    if (target instanceof Fault) return target
    const texts = valuesOf(element)
    if (texts instanceof Fault) return texts
    const convert = (text: string): Scalar | Fault => convertText(table, target, text)

    const comparisonOperator = comparisonOperators[operator]
    if (comparisonOperator !== undefined) {
      if (valueof !== undefined) {
        const other = field(valueof, element)
        if (other instanceof Fault) return other
        if (other.kind !== target.kind) {
          return fault(
            queryBuilderCodes.badCondition,
            `The columns '${target.attribute}' and '${other.attribute}' have incompatible types and can't be compared.`
          )
        }
        return columnComparison(target, comparisonOperator, other, false)
      }
      if (texts.length !== 1) return valueCount(operator, target.attribute, "1", texts.length)
      const value = convert(texts[0]!)
      return value instanceof Fault ? value : comparison(target, comparisonOperator, value, false)
    }
    if (valueof !== undefined) {
      return fault(
        queryBuilderCodes.badCondition,
        `'valueof' compares columns with eq, ne, gt, ge, lt or le only, not '${operator}'.`
      )
    }
    const likeOperator = likeOperators[operator]
    if (likeOperator !== undefined) {
      if (texts.length !== 1) return valueCount(operator, target.attribute, "1", texts.length)
      // Non-string columns must still hold a value of their type (a lookup wants a GUID).
      if (target.kind !== "string") {
        const value = convert(texts[0]!)
        if (value instanceof Fault) return value
      }
      return like(target, likeOperator.prefix + texts[0]! + likeOperator.suffix, likeOperator.negate)
    }
    switch (operator) {
      case "null":
      case "not-null":
        return nullTest(target, operator === "null")
      case "in":
      case "not-in": {
        if (texts.length === 0) return valueCount(operator, target.attribute, "at least 1", 0)
        const values: Array<Scalar> = []
        for (const text of texts) {
          const value = convert(text)
          if (value instanceof Fault) return value
          values.push(value)
        }
        return membership(target, values, operator === "not-in")
      }
      case "between":
      case "not-between": {
        if (texts.length !== 2) return valueCount(operator, target.attribute, "2", texts.length)
        const low = convert(texts[0]!)
        if (low instanceof Fault) return low
        const high = convert(texts[1]!)
        if (high instanceof Fault) return high
        return between(target, low, high, operator === "not-between")
      }
    }
    if (isDateOperator(operator)) {
      if (target.kind !== "datetime") {
        return fault(
          queryBuilderCodes.badCondition,
          `The operator '${operator}' applies to date and time columns; '${table.logicalName}.${target.attribute}' is not one.`
        )
      }
      const shape = dateOperators[operator]
      let argument = 0
      if (shape !== "none") {
        if (texts.length !== 1) return valueCount(operator, target.attribute, "1", texts.length)
        const text = texts[0]!
        if (shape === "date") {
          const value = convert(text)
          if (value instanceof Fault) return value
          argument = value as number
        } else {
          if (!/^\s*\d+\s*$/.test(text)) {
            return fault(
              queryBuilderCodes.invalidArgument,
              `The operator '${operator}' expects a whole number of units, not '${text}'.`
            )
          }
          argument = Number(text)
        }
      }
      const [from, to] = dateRange(operator, now, argument)
      return inRange(target, from, to, false)
    }
    if (unsupportedOperators.has(operator)) return notSupported(`The condition operator '${operator}'`)
    return fault(
      queryBuilderCodes.invalidConditionOperator,
      `The condition operator '${operator}' is not valid (attribute '${table.logicalName}.${target.attribute}').`
    )
  }

  const filter = (element: Element): Predicate | Fault => {
    const type = element.attributes["type"] ?? "and"
    if (type !== "and" && type !== "or") {
      return fault(
        queryBuilderCodes.invalidFilterType,
        `The filter type '${type}' is not valid: use 'and' or 'or'.`
      )
    }
    const parts: Array<Predicate> = []
    for (const child of element.children) {
      let part: Predicate | Fault
      if (child.name === "condition") part = condition(child)
      else if (child.name === "filter") part = filter(child)
      else if (child.name === "link-entity") part = notSupported("link-entity (a filter on related records)")
      else part = invalidChild(child, "condition, filter, link-entity")
      if (part instanceof Fault) return part
      parts.push(part)
    }
    return combine(parts, type)
  }

  return { filter }
}

const always: Predicate = () => true

/** Combines predicates with and/or, unrolled for the common small counts (the hot loop). */
const combine = (parts: ReadonlyArray<Predicate>, type: "and" | "or"): Predicate => {
  // An empty filter adds no criteria, whichever its type.
  if (parts.length === 0) return always
  if (parts.length === 1) return parts[0]!
  if (parts.length === 2) {
    const [a, b] = parts as [Predicate, Predicate]
    return type === "and" ? (record) => a(record) && b(record) : (record) => a(record) || b(record)
  }
  return type === "and"
    ? (record) => {
      for (const part of parts) if (!part(record)) return false
      return true
    }
    : (record) => {
      for (const part of parts) if (part(record)) return true
      return false
    }
}

// ---------------------------------------------------------------------------------------------
// The query
// ---------------------------------------------------------------------------------------------

const fetchChildren = "entity"
const entityChildren = "filter, order, link-entity, attribute, all-attributes, no-attrs"

/**
 * Parses and compiles a FetchXML query. `resolveTable` finds a table by logical name. Returns
 * the plan, or the `Fault` the service answers: invalid XML (`0x80040201`), unknown entity
 * (`0x80041102`), unknown attribute (`0x80041103`), invalid operator (`0x80041120`), a value
 * that does not convert to the column's type (`0x80040203`), and `0x8004111C` for elements the
 * service does not know or the emulator does not support (`link-entity`, aggregates).
 */
export const parseFetchXml = (
  xml: string,
  resolveTable: (logicalName: string) => TableDefinition | undefined,
  options: FetchOptions = {}
): FetchPlan | Fault => {
  const root = parseXml(xml)
  if (root instanceof Fault) return root
  if (root.name !== "fetch") {
    return fault(
      queryBuilderCodes.invalidNode,
      `The root element of a FetchXML query must be 'fetch', not '${root.name}'.`
    )
  }

  const top = positiveInteger(root, "top", 5000)
  if (top instanceof Fault) return top
  const count = positiveInteger(root, "count")
  if (count instanceof Fault) return count
  const page = positiveInteger(root, "page")
  if (page instanceof Fault) return page
  if (top !== undefined && (count !== undefined || page !== undefined)) {
    return fault(
      queryBuilderCodes.invalidArgument,
      `The top attribute can't be specified with paging attribute ${page !== undefined ? "page" : "count"}.`
    )
  }
  const distinct = booleanAttribute(root, "distinct", queryBuilderCodes.invalidDistinct)
  if (distinct instanceof Fault) return distinct
  const returnTotalRecordCount = booleanAttribute(root, "returntotalrecordcount", queryBuilderCodes.invalidArgument)
  if (returnTotalRecordCount instanceof Fault) return returnTotalRecordCount
  const rawOrder = booleanAttribute(root, "useraworderby", queryBuilderCodes.invalidArgument)
  if (rawOrder instanceof Fault) return rawOrder
  const aggregate = booleanAttribute(root, "aggregate", queryBuilderCodes.invalidArgument)
  if (aggregate instanceof Fault) return aggregate
  if (aggregate) return notSupported("An aggregate query (aggregate='true')")

  const entities: Array<Element> = []
  for (const child of root.children) {
    if (child.name !== "entity") return invalidChild(child, fetchChildren)
    entities.push(child)
  }
  const entity = entities[0]
  const entityName = entity?.attributes["name"]
  if (entities.length !== 1 || entityName === undefined || entityName === "") {
    return fault(queryBuilderCodes.noEntity, "Entity Name was not specified in FetchXml String.")
  }
  const table = resolveTable(entityName)
  if (table === undefined) {
    return fault(
      queryBuilderCodes.noEntity,
      `The entity with a name = '${entityName}' with namemapping = 'Logical' was not found in the MetadataCache.`
    )
  }

  const conditions = makeConditionCompiler(table, options.now ?? Date.now())
  let attributes: Array<string> | "all" | undefined
  const filters: Array<Predicate> = []
  const sortKeys: Array<SortKey> = []
  const links: Array<LinkPlan> = []
  const linkContext: LinkContext = { resolveTable, options, aliases: new Set(), count: 0 }
  for (const child of entity!.children) {
    switch (child.name) {
      case "attribute": {
        const name = child.attributes["name"]
        if (name === undefined) return fault(queryBuilderCodes.noAttribute, "An attribute element needs a 'name'.")
        if (resolveField(table, name, "attribute") === undefined) return noAttribute(table, name)
        for (const unsupported of ["alias", "aggregate", "groupby", "dategrouping"]) {
          if (child.attributes[unsupported] !== undefined) {
            return notSupported(`The attribute setting '${unsupported}' (on '${name}')`)
          }
        }
        if (attributes !== "all") {
          attributes ??= []
          if (!attributes.includes(name)) attributes.push(name)
        }
        break
      }
      case "all-attributes":
        attributes = "all"
        break
      case "no-attrs":
        attributes ??= []
        break
      case "filter": {
        const predicate = conditions.filter(child)
        if (predicate instanceof Fault) return predicate
        filters.push(predicate)
        break
      }
      case "order": {
        const key = orderKey(child, table, rawOrder, options.lookupName)
        if (key instanceof Fault) return key
        sortKeys.push(key)
        break
      }
      case "link-entity": {
        const link = parseLink(child, table, linkContext)
        if (link instanceof Fault) return link
        links.push(link)
        break
      }
      default:
        return invalidChild(child, entityChildren)
    }
  }
  const joins = makeJoin(links, options.records)

  return {
    entity: table.logicalName,
    // Without attribute elements the service returns every column, as with <all-attributes/>.
    attributes: attributes ?? "all",
    predicate: links.some((link) => !link.outer)
      ? combine([...filters, (record) => joins.rows(record, false) !== undefined], "and")
      : combine(filters, "and"),
    compare: sortKeys.length === 0 ? undefined : compileSortKeys(sortKeys),
    top,
    count,
    page,
    pagingCookie: root.attributes["paging-cookie"],
    distinct,
    returnTotalRecordCount,
    join: (record, annotations) => joins.rows(record, annotations) ?? [{}]
  }
}

// ---------------------------------------------------------------------------------------------
// link-entity (learn.microsoft.com, power-apps/developer/data-platform/fetchxml/join-tables)
// ---------------------------------------------------------------------------------------------

/** A `<link-entity>` compiled: which records it joins and what it returns of them. */
interface LinkPlan {
  readonly alias: string
  readonly table: TableDefinition
  /** `link-type="outer"`: the parent stays without a match; `inner` (the default) drops it. */
  readonly outer: boolean
  /** `from`: the linked table's attribute; `to`: the parent's. Joined where their values are equal. */
  readonly from: Field
  readonly to: Field
  /** Fields returned as `<alias>.<attribute>`; none without attribute elements. */
  readonly attributes: ReadonlyArray<Field>
  readonly predicate: Predicate
  readonly links: ReadonlyArray<LinkPlan>
}

interface LinkContext {
  readonly resolveTable: (logicalName: string) => TableDefinition | undefined
  readonly options: FetchOptions
  readonly aliases: Set<string>
  /** link-entity elements so far: at most 15 (documented limit), and the default aliases. */
  count: number
}

const linkTypes = new Set(["inner", "outer"])

const parseLink = (element: Element, parent: TableDefinition, context: LinkContext): LinkPlan | Fault => {
  if (context.options.records === undefined) return notSupported("link-entity (joining tables)")
  context.count++
  if (context.count > 15) {
    // Documented in "Join tables using FetchXml", Limitations.
    return fault("0x8004430D", "Number of link entities in query exceeded maximum limit.")
  }
  const { alias: givenAlias, from, name, to } = element.attributes
  const linkType = element.attributes["link-type"] ?? "inner"
  if (name === undefined || name === "") {
    return fault(queryBuilderCodes.noEntity, "A link-entity needs the 'name' of the table to join.")
  }
  const table = context.resolveTable(name)
  if (table === undefined) {
    return fault(
      queryBuilderCodes.noEntity,
      `The entity with a name = '${name}' with namemapping = 'Logical' was not found in the MetadataCache.`
    )
  }
  if (!linkTypes.has(linkType)) return notSupported(`The link-type '${linkType}'`)
  // Modelling choice: the emulator needs both ends named (the service can infer them from a relationship).
  if (from === undefined || to === undefined) {
    return fault(queryBuilderCodes.invalidArgument, `The link-entity '${name}' needs 'from' and 'to' attributes.`)
  }
  const fromField = resolveField(table, from, "attribute")
  if (fromField === undefined) return noAttribute(table, from)
  const toField = resolveField(parent, to, "attribute")
  if (toField === undefined) return noAttribute(parent, to)
  // Modelling choice: without an alias, `<name><n>` (the n-th link-entity of the query).
  const alias = givenAlias ?? `${name}${context.count}`
  if (context.aliases.has(alias)) {
    return fault(queryBuilderCodes.invalidArgument, `The link-entity alias '${alias}' is used twice.`)
  }
  context.aliases.add(alias)
  const conditions = makeConditionCompiler(table, context.options.now ?? Date.now())
  let attributes: Array<Field> = []
  let all = false
  const filters: Array<Predicate> = []
  const links: Array<LinkPlan> = []
  for (const child of element.children) {
    switch (child.name) {
      case "attribute": {
        const attribute = child.attributes["name"]
        if (attribute === undefined) {
          return fault(queryBuilderCodes.noAttribute, "An attribute element needs a 'name'.")
        }
        const field = resolveField(table, attribute, "attribute")
        if (field === undefined) return noAttribute(table, attribute)
        for (const unsupported of ["alias", "aggregate", "groupby", "dategrouping"]) {
          if (child.attributes[unsupported] !== undefined) {
            return notSupported(`The attribute setting '${unsupported}' (on '${alias}.${attribute}')`)
          }
        }
        if (!attributes.some((known) => known.attribute === field.attribute)) attributes.push(field)
        break
      }
      case "all-attributes":
        all = true
        break
      case "filter": {
        const predicate = conditions.filter(child)
        if (predicate instanceof Fault) return predicate
        filters.push(predicate)
        break
      }
      case "link-entity": {
        const link = parseLink(child, table, context)
        if (link instanceof Fault) return link
        links.push(link)
        break
      }
      case "order":
        return notSupported(`Ordering inside a link-entity ('${alias}')`)
      default:
        return invalidChild(child, "filter, order, link-entity, attribute, all-attributes")
    }
  }
  if (all) {
    attributes = [
      resolveField(table, table.primaryIdAttribute, "attribute")!,
      ...table.columns.map((column) => resolveField(table, column.logicalName, "attribute")!)
    ]
  }
  return {
    alias,
    table,
    outer: linkType === "outer",
    from: fromField,
    to: toField,
    attributes,
    predicate: combine(filters, "and"),
    links
  }
}

/** Join keys compare like SQL Server's `=`: strings case-insensitively. */
const joinKey = (value: unknown): unknown => (typeof value === "string" ? value.toLowerCase() : value)

/**
 * The rows the links add to a record, or undefined when an inner link (at any depth) finds
 * nothing. Linked records are indexed by their `from` value once per query.
 */
const makeJoin = (
  links: ReadonlyArray<LinkPlan>,
  records: ((logicalName: string) => ReadonlyArray<StoredRecord>) | undefined
) => {
  const indexes = new Map<LinkPlan, Map<unknown, Array<StoredRecord>>>()
  const matches = (link: LinkPlan, parent: StoredRecord): ReadonlyArray<StoredRecord> => {
    let index = indexes.get(link)
    if (index === undefined) {
      index = new Map()
      for (const record of records?.(link.table.logicalName) ?? []) {
        const key = link.from.get(record)
        if (key === null || key === undefined || !link.predicate(record)) continue
        const list = index.get(joinKey(key))
        if (list === undefined) index.set(joinKey(key), [record])
        else list.push(record)
      }
      indexes.set(link, index)
    }
    const value = link.to.get(parent)
    return value === null || value === undefined ? [] : index.get(joinKey(value)) ?? []
  }
  const columnsOf = (link: LinkPlan, record: StoredRecord, annotations: boolean): Record<string, unknown> => {
    const out: Record<string, unknown> = {}
    for (const field of link.attributes) {
      const value = field.get(record)
      // FetchXML results omit null columns.
      if (value === null || value === undefined) continue
      const key = `${link.alias}.${field.attribute}`
      if (annotations) {
        // Modelling choice (as seen on the service): an aliased value names its attribute.
        out[`${key}@OData.Community.Display.V1.AttributeName`] = field.attribute
        const lookup = record.values[field.attribute] as LookupValue | undefined
        if (field.column?.targets !== undefined && lookup !== undefined) {
          out[`${key}@Microsoft.Dynamics.CRM.lookuplogicalname`] = lookup.table
        }
      }
      out[key] = value
    }
    return out
  }
  const rows = (
    record: StoredRecord,
    annotations: boolean,
    of: ReadonlyArray<LinkPlan> = links
  ): Array<Record<string, unknown>> | undefined => {
    let result: Array<Record<string, unknown>> = [{}]
    for (const link of of) {
      const linked: Array<Record<string, unknown>> = []
      for (const match of matches(link, record)) {
        const nested = rows(match, annotations, link.links)
        if (nested === undefined) continue
        const own = columnsOf(link, match, annotations)
        for (const row of nested) linked.push({ ...own, ...row })
      }
      if (linked.length === 0) {
        if (!link.outer) return undefined
        linked.push({})
      }
      result = result.flatMap((row) => linked.map((more) => ({ ...row, ...more })))
    }
    return result
  }
  return { rows }
}

/**
 * One `<order>`: choices sort by their label (the service sorts by the localized label unless
 * `useraworderby`), lookups by the target's primary name when the caller can resolve it.
 */
const orderKey = (
  element: Element,
  table: TableDefinition,
  rawOrder: boolean,
  lookupName: ((lookup: LookupValue) => string | undefined) | undefined
): SortKey | Fault => {
  const { alias, attribute, entityname } = element.attributes
  if (entityname !== undefined) return notSupported(`Ordering by a link-entity column (entityname='${entityname}')`)
  if (alias !== undefined) return notSupported(`Ordering by an aggregate alias ('${alias}')`)
  if (attribute === undefined) return fault(queryBuilderCodes.noAttribute, "An order element needs an 'attribute'.")
  const field = resolveField(table, attribute, "attribute")
  if (field === undefined) return noAttribute(table, attribute)
  const descending = booleanAttribute(element, "descending", queryBuilderCodes.invalidDescending)
  if (descending instanceof Fault) return descending
  const options = field.column?.options
  if (!rawOrder && options !== undefined && field.kind === "number") {
    const labels = new Map(options.map((option) => [option.value, option.label]))
    return { field, descending, map: (value) => labels.get(value as number) ?? String(value) }
  }
  return { field, descending, map: lookupSortName(field, lookupName) }
}

// ---------------------------------------------------------------------------------------------
// Paging cookies
// ---------------------------------------------------------------------------------------------

const xmlEscape = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const unreserved = /[A-Za-z0-9\-_.]/

/**
 * URL-encodes as the service does in `pagingcookie`: every byte but letters, digits and `-_.`
 * as `%xx` with lower-case hex (`%3ccookie%20page%3d%221%22%3e`).
 */
const urlEncode = (text: string): string => {
  let out = ""
  for (const char of text) {
    if (unreserved.test(char)) out += char
    else for (const byte of Buffer.from(char, "utf8")) out += "%" + byte.toString(16).padStart(2, "0")
  }
  return out
}

/**
 * The inner paging cookie for a page just served, in the service's shape
 * (`<cookie page="1"><contactid last="{GUID}" first="{GUID}" /></cookie>`) plus `lastseq`, the
 * insertion position of the last record served, from which the emulator continues.
 */
export const writeFetchInnerCookie = (
  page: number,
  primaryIdAttribute: string,
  first: StoredRecord,
  last: StoredRecord
): string =>
  `<cookie page="${page}" lastseq="${last.seq}"><${primaryIdAttribute} last="{${last.id.toUpperCase()}}" first="{${first.id.toUpperCase()}}" /></cookie>`

/**
 * Builds the value of `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` for the next page, in the
 * service's format: `<cookie pagenumber="2" pagingcookie="%253ccookie%2520page..." istracking="False" />`,
 * the inner cookie URL-encoded twice.
 */
export const writeFetchPagingCookie = (pageNumber: number, inner: string): string =>
  `<cookie pagenumber="${pageNumber}" pagingcookie="${urlEncode(urlEncode(inner))}" istracking="False" />`

/** What the emulator's inner paging cookie says about the page it was written for. */
export interface FetchPagingCookie {
  /** The page the cookie was written for (the next request asks for `page + 1`). */
  readonly page: number
  /** The insertion position (`seq`) of the last record served; undefined in a cookie the emulator did not write. */
  readonly lastSeq: number | undefined
  /** Lower-case ids of the first and last records served, when present. */
  readonly firstId: string | undefined
  readonly lastId: string | undefined
}

const cookieParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "",
  parseTagValue: false,
  parseAttributeValue: false,
  htmlEntities: true
})

const xmlUnescape = (text: string): string =>
  text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, "\"").replace(/&apos;/g, "'").replace(
    /&amp;/g,
    "&"
  )

/**
 * Reads the inner paging cookie back from what a client put in `paging-cookie` (normally the
 * inner cookie, once XML-unescaped by the FetchXML parser). Lenient with what clients get wrong:
 * the cookie still XML-escaped, still URL-encoded once or twice, or the whole annotation element
 * (older services URL-encoded it whole). Undefined when it is not a cookie.
 */
export const readFetchPagingCookie = (value: string): FetchPagingCookie | undefined => {
  let text = value.trim()
  for (let round = 0; round < 3 && text.startsWith("%"); round++) {
    try {
      text = decodeURIComponent(text)
    } catch {
      return undefined
    }
  }
  if (text.startsWith("&lt;")) text = xmlUnescape(text)
  if (!text.startsWith("<") || XMLValidator.validate(text) !== true) return undefined
  const cookie = (cookieParser.parse(text) as Record<string, unknown>)["cookie"]
  if (typeof cookie !== "object" || cookie === null || Array.isArray(cookie)) return undefined
  const attributes = cookie as Record<string, unknown>
  const outer = attributes["pagingcookie"]
  if (typeof outer === "string") return readFetchPagingCookie(outer)
  const page = Number(attributes["page"])
  if (!Number.isInteger(page) || page < 1) return undefined
  const lastSeq = attributes["lastseq"] === undefined ? undefined : Number(attributes["lastseq"])
  let firstId: string | undefined
  let lastId: string | undefined
  for (const [name, child] of Object.entries(attributes)) {
    if (name === "page" || name === "lastseq" || typeof child !== "object" || child === null) continue
    // The service also records the order columns' values (`<fullname last="..." />`): keep GUIDs only.
    const ids = child as Record<string, unknown>
    const last = typeof ids["last"] === "string" ? parseGuid(ids["last"]) : undefined
    const first = typeof ids["first"] === "string" ? parseGuid(ids["first"]) : undefined
    if (last !== undefined) lastId = last
    if (first !== undefined) firstId = first
  }
  return {
    page,
    lastSeq: lastSeq !== undefined && Number.isInteger(lastSeq) ? lastSeq : undefined,
    firstId,
    lastId
  }
}

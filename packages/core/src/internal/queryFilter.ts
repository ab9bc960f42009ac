/**
 * Filter expressions: OData literals, comparisons, `and`/`or`/`not`, string functions and `In`.
 */
import type { FilterValue, RawLiteral } from "../Query.js"
import { encodeQueryValue, normaliseGuid, quote } from "./odata.js"

/** `Query.guid`. */
export const guid = (id: string): RawLiteral => {
  const normal = normaliseGuid(id)
  return { _tag: "RawLiteral", text: normal ?? quote(id) }
}

/** `Query.raw`. */
export const raw = (text: string): RawLiteral => ({ _tag: "RawLiteral", text })

/** `Query.literal`. */
export const literal = (value: FilterValue): string => {
  if (value === null) return "null"
  if (typeof value === "string") return quote(value)
  // OData's own literals for what is not a finite number: never `null`, which would match the
  // rows without a value (a NaN from a bad parse must not select them); the service refuses them
  // for a decimal column.
  if (typeof value === "number") {
    return Number.isFinite(value) ? String(value) : Number.isNaN(value) ? "NaN" : value > 0 ? "INF" : "-INF"
  }
  if (typeof value === "bigint" || typeof value === "boolean") return String(value)
  if (value instanceof Date) return value.toISOString()
  return value.text
}

const comparison = (operator: string) => (column: string, value: FilterValue): string =>
  `${column} ${operator} ${literal(value)}`

/** `Query.eq`. */
export const eq = comparison("eq")

/** `Query.ne`. */
export const ne = comparison("ne")

/** `Query.gt`. */
export const gt = comparison("gt")

/** `Query.ge`. */
export const ge = comparison("ge")

/** `Query.lt`. */
export const lt = comparison("lt")

/** `Query.le`. */
export const le = comparison("le")

const join = (operator: string, filters: ReadonlyArray<string>) =>
  filters.length === 1 ? filters[0]! : filters.map((filter) => `(${filter})`).join(` ${operator} `)

/** `Query.and`. */
export const and = (first: string, ...rest: ReadonlyArray<string>): string => join("and", [first, ...rest])

/** `Query.or`. */
export const or = (first: string, ...rest: ReadonlyArray<string>): string => join("or", [first, ...rest])

/** `Query.not`. */
export const not = (filter: string): string => `not (${filter})`

/** `Query.contains`. */
export const contains = (column: string, text: string): string => `contains(${column},${quote(text)})`

/** `Query.startsWith`. */
export const startsWith = (column: string, text: string): string => `startswith(${column},${quote(text)})`

/** `Query.endsWith`. */
export const endsWith = (column: string, text: string): string => `endswith(${column},${quote(text)})`

/** `Query.isIn`. */
export const isIn = (column: string, values: ReadonlyArray<string | number>): string =>
  `Microsoft.Dynamics.CRM.In(PropertyName=${quote(column)},PropertyValues=[${
    values.map((value) => quote(String(value))).join(",")
  }])`

/** The documented limit of a GET URL, 32 KB (wire reference §8). */
const urlLimit = 32_768

/**
 * The encoded length a `$filter` of many values may take: half the URL's limit, the rest left to
 * the service URL and the other query options.
 */
export const filterBudget = urlLimit / 2

/**
 * `filterBudget`, or less when the other query options take more than the rest of the URL (a
 * `$select` of many columns), with room for the service URL; never below 2 KB.
 */
export const filterBudgetBeside = (otherOptions: string): number =>
  Math.max(2048, Math.min(filterBudget, urlLimit - 4096 - encodeQueryValue(otherOptions).length))

/**
 * Values per `In` (or per `or` of `eq`s on one column, the same query): well within SQL Server's
 * 2,100 parameters of one query, whatever their length.
 */
export const maxInValues = 500

/** The longest text between two items of a filter, encoded: `) or (`. */
const separatorLength = encodeQueryValue(") or (").length

/**
 * `items` in consecutive groups of one `$filter` each, so that lookups take as few GETs as the URL
 * allows: a group closes at `maxItems`, or before the encoded text its items add (`fragment` of
 * each, and a separator) would pass `budget`. An item whose text alone passes goes alone.
 */
export const groupsForFilter = <A>(
  items: ReadonlyArray<A>,
  fragment: (item: A) => string,
  maxItems: number,
  budget: number = filterBudget
): Array<Array<A>> => {
  const groups: Array<Array<A>> = []
  let group: Array<A> = []
  let length = 0
  for (const item of items) {
    const added = encodeQueryValue(fragment(item)).length + separatorLength
    if (group.length > 0 && (group.length >= maxItems || length + added > budget)) {
      groups.push(group)
      group = []
      length = 0
    }
    group.push(item)
    length += added
  }
  if (group.length > 0) groups.push(group)
  return groups
}

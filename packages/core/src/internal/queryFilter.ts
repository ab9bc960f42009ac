/**
 * Filter expressions: OData literals, comparisons, `and`/`or`/`not`, string functions and `In`.
 */
import type { FilterValue, RawLiteral } from "../Query.js"
import { normaliseGuid, quote } from "./odata.js"

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
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "null"
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

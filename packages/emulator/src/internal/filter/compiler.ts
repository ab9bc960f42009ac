/**
 * The OData compiler: `$filter` trees into predicates over stored records, `$orderby` into a
 * comparator.
 */
import type { TableDefinition } from "../../TableSchema.js"
import { Fault } from "../fault.js"
import { parseGuid } from "../records.js"
import { convertText, noAttribute, parseDateText } from "./conversion.js"
import { type DateOperator, dateOperators, dateRange, inRange } from "./dates.js"
import { odataFault, syntaxError, tokenize } from "./lexer.js"
import { compileSortKeys, lookupSortName, type SortKey } from "./ordering.js"
import { isLiteralToken, type Literal, literalEdmType, makeParser, type Node, operatorKinds } from "./parser.js"
import {
  between,
  columnComparison,
  type Comparator,
  comparison,
  type ComparisonOperator,
  type Field,
  like,
  membership,
  type Predicate,
  type QueryOptions,
  resolveField,
  type Scalar
} from "./values.js"
/** The documented Dataverse query functions the emulator evaluates, by OData name. */
const queryFunctionOperators: Record<string, DateOperator | "in" | "not-in" | "between" | "not-between"> = {
  In: "in",
  NotIn: "not-in",
  Between: "between",
  NotBetween: "not-between",
  Today: "today",
  Yesterday: "yesterday",
  Tomorrow: "tomorrow",
  Last7Days: "last-seven-days",
  Next7Days: "next-seven-days",
  LastWeek: "last-week",
  ThisWeek: "this-week",
  NextWeek: "next-week",
  LastMonth: "last-month",
  ThisMonth: "this-month",
  NextMonth: "next-month",
  LastYear: "last-year",
  ThisYear: "this-year",
  NextYear: "next-year",
  LastXHours: "last-x-hours",
  NextXHours: "next-x-hours",
  LastXDays: "last-x-days",
  NextXDays: "next-x-days",
  LastXWeeks: "last-x-weeks",
  NextXWeeks: "next-x-weeks",
  LastXMonths: "last-x-months",
  NextXMonths: "next-x-months",
  LastXYears: "last-x-years",
  NextXYears: "next-x-years",
  OlderThanXMinutes: "olderthan-x-minutes",
  OlderThanXHours: "olderthan-x-hours",
  OlderThanXDays: "olderthan-x-days",
  OlderThanXWeeks: "olderthan-x-weeks",
  OlderThanXMonths: "olderthan-x-months",
  OlderThanXYears: "olderthan-x-years",
  On: "on",
  OnOrAfter: "on-or-after",
  OnOrBefore: "on-or-before"
}

/** Documented query functions that need data the emulator does not model (fiscal settings, users, hierarchies). */
const unsupportedQueryFunctions = new Set([
  "InFiscalPeriod",
  "InFiscalPeriodAndYear",
  "InFiscalYear",
  "InOrAfterFiscalPeriodAndYear",
  "InOrBeforeFiscalPeriodAndYear",
  "LastFiscalPeriod",
  "LastFiscalYear",
  "LastXFiscalPeriods",
  "LastXFiscalYears",
  "NextFiscalPeriod",
  "NextFiscalYear",
  "NextXFiscalPeriods",
  "NextXFiscalYears",
  "ThisFiscalPeriod",
  "ThisFiscalYear",
  "EqualBusinessId",
  "EqualUserId",
  "NotEqualBusinessId",
  "NotEqualUserId",
  "Above",
  "AboveOrEqual",
  "EqualUserOrUserHierarchy",
  "EqualUserOrUserHierarchyAndTeams",
  "EqualUserOrUserTeams",
  "EqualUserTeams",
  "NotUnder",
  "Under",
  "UnderOrEqual",
  "ContainValues",
  "DoesNotContainValues",
  "EqualUserLanguage",
  "Contains",
  "DoesNotContain"
])

const stringFunctions = new Set(["contains", "startswith", "endswith"])
const otherODataFunctions = new Set([
  "tolower",
  "toupper",
  "trim",
  "length",
  "indexof",
  "substring",
  "concat",
  "year",
  "month",
  "day",
  "hour",
  "minute",
  "second",
  "date",
  "time",
  "now",
  "round",
  "floor",
  "ceiling",
  "matchesPattern",
  "cast",
  "isof"
])

const isBooleanNode = (node: Node): boolean =>
  node._tag === "And" || node._tag === "Or" || node._tag === "Not" || node._tag === "Compare" ||
  node._tag === "QueryFunction" || (node._tag === "Call" && stringFunctions.has(node.name))

const and = (a: Predicate, b: Predicate): Predicate => (record) => a(record) && b(record)
const or = (a: Predicate, b: Predicate): Predicate => (record) => a(record) || b(record)

const flip: Record<ComparisonOperator, ComparisonOperator> = {
  eq: "eq",
  ne: "ne",
  gt: "lt",
  ge: "le",
  lt: "gt",
  le: "ge"
}

/** Converts a literal to a field's type, or undefined when the types are incompatible (OData rules). */
const coerceLiteral = (field: Field, literal: Literal): Scalar | null | undefined => {
  if (literal.type === "null") return null
  switch (field.kind) {
    case "string":
      return literal.type === "string" ? literal.value : undefined
    case "number":
      return literal.type === "number" ? literal.value : undefined
    case "boolean":
      return literal.type === "boolean" ? literal.value : undefined
    case "datetime":
      // A date-only column (`Edm.Date`, stored as `1990-05-01`) compares as that day's midnight
      // UTC, so `birthdate eq 1990-05-01` finds the day. A date-time literal against it is taken
      // too, compared as an instant: a modelling choice (OData promotes Edm.Date to
      // Edm.DateTimeOffset in a comparison; the service's conversion is not documented).
      return literal.type === "date" || literal.type === "datetime" ? literal.value : undefined
    case "guid":
      // Quoted GUIDs are accepted too: the service's own examples write `_owninguser_value eq '<id>'`.
      return literal.type === "guid" ? literal.value : literal.type === "string" ? parseGuid(literal.value) : undefined
  }
}

const makeCompiler = (text: string, table: TableDefinition, options: QueryOptions) => {
  const now = options.now ?? Date.now()
  const typeName = `Microsoft.Dynamics.CRM.${table.logicalName}`

  const property = (node: Node & { _tag: "Property" }): Field => {
    const field = resolveField(table, node.name, "odata")
    if (field === undefined) throw odataFault(`Could not find a property named '${node.name}' on type '${typeName}'.`)
    return field
  }

  const edmTypeOfNode = (node: Node): string =>
    node._tag === "Property"
      ? property(node).edmType
      : node._tag === "Literal"
      ? literalEdmType(node.literal)
      : "Edm.Boolean"

  const incompatible = (operator: ComparisonOperator, left: Node, right: Node): Fault =>
    odataFault(
      `A binary operator with incompatible types was detected. Found operand types '${edmTypeOfNode(left)}' and '${
        edmTypeOfNode(right)
      }' for operator kind '${operatorKinds[operator]}'.`
    )

  const compile = (node: Node, negate: boolean): Predicate => {
    switch (node._tag) {
      case "Or":
        return negate
          ? and(compile(node.left, true), compile(node.right, true))
          : or(compile(node.left, false), compile(node.right, false))
      case "And":
        return negate
          ? or(compile(node.left, true), compile(node.right, true))
          : and(compile(node.left, false), compile(node.right, false))
      case "Not":
        if (!isBooleanNode(node.operand)) {
          throw odataFault(
            `A unary operator with an incompatible type was detected. Found operand type '${
              edmTypeOfNode(node.operand)
            }' for operator kind 'Not'.`
          )
        }
        // Pushing `not` down to the leaves keeps SQL's three-valued logic: a leaf on a null
        // column is false both ways, which is what "unknown" filters to.
        return compile(node.operand, !negate)
      case "Compare":
        return compileComparison(node, negate)
      case "Call":
        return compileCall(node, negate)
      case "QueryFunction":
        return compileQueryFunction(node, negate)
      case "Property":
      case "Literal":
        throw odataFault(
          `The $filter expression at position ${node.pos} in '${text}' is not a condition: compare a property with a value or call a query function.`
        )
    }
  }

  const compileComparison = (node: Node & { _tag: "Compare" }, negate: boolean): Predicate => {
    const { left, operator, right } = node
    // Report what the OData binder meets first: an invalid operand (`not name`, `tolower(name)`).
    for (const side of [left, right]) {
      if (side._tag === "Not" && !isBooleanNode(side.operand)) compile(side, false)
      if (side._tag === "Call" && !isBooleanNode(side)) compileCall(side, false)
    }
    // `contains(name,'a') eq true`: a condition compared with a Boolean literal.
    if (isBooleanNode(left) || isBooleanNode(right)) {
      const [condition, other] = isBooleanNode(left) ? [left, right] : [right, left]
      if (
        other._tag === "Literal" && other.literal.type === "boolean" && (operator === "eq" || operator === "ne") &&
        !isBooleanNode(other)
      ) {
        const wanted = other.literal.value === (operator === "eq")
        return compile(condition, wanted === negate)
      }
      throw odataFault(
        `The comparison at position ${node.pos} in '${text}' is not supported: compare a property with a value or another property.`
      )
    }
    if (left._tag === "Property" && right._tag === "Property") {
      const a = property(left)
      const b = property(right)
      if (a.kind !== b.kind) throw incompatible(operator, left, right)
      return columnComparison(a, operator, b, negate)
    }
    if (left._tag === "Literal" && right._tag === "Literal") {
      throw odataFault(
        `The comparison at position ${node.pos} in '${text}' compares two values: one side must be a property.`
      )
    }
    const [propertyNode, literalNode, effective] = left._tag === "Property"
      ? [left, right as Node & { _tag: "Literal" }, operator]
      : [right as Node & { _tag: "Property" }, left as Node & { _tag: "Literal" }, flip[operator]]
    const field = property(propertyNode)
    const value = coerceLiteral(field, literalNode.literal)
    if (value === undefined) throw incompatible(operator, left, right)
    return comparison(field, effective, value, negate)
  }

  const compileCall = (node: Node & { _tag: "Call" }, negate: boolean): Predicate => {
    if (!stringFunctions.has(node.name)) {
      if (otherODataFunctions.has(node.name)) {
        throw odataFault(
          `The function '${node.name}' is not supported in a Dataverse $filter; use contains, startswith or endswith.`
        )
      }
      throw odataFault(
        `An unknown function with name '${node.name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.`
      )
    }
    const [target, search] = node.args
    const signatureError = () =>
      odataFault(
        `No function signature for the function with name '${node.name}' matches the specified arguments. The function signatures considered are: ${node.name}(Edm.String Nullable=true, Edm.String Nullable=true).`
      )
    if (node.args.length !== 2 || target?._tag !== "Property" || search?._tag !== "Literal") throw signatureError()
    const field = property(target)
    if (field.kind !== "string" || search.literal.type !== "string") throw signatureError()
    const value = search.literal.value
    const pattern = node.name === "contains"
      ? `%${value}%`
      : node.name === "startswith"
      ? `${value}%`
      : `%${value}`
    return like(field, pattern, negate)
  }

  const compileQueryFunction = (node: Node & { _tag: "QueryFunction" }, negate: boolean): Predicate => {
    const shortName = node.name.slice("Microsoft.Dynamics.CRM.".length)
    const operator = queryFunctionOperators[shortName]
    if (operator === undefined) {
      if (unsupportedQueryFunctions.has(shortName)) {
        throw odataFault(`The query function '${node.name}' is not supported by the emulator.`)
      }
      throw odataFault(
        `An unknown function with name '${node.name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.`
      )
    }
    const parameter = (name: string) => {
      const found = node.parameters.get(name)
      if (found === undefined) {
        throw odataFault(
          `The function '${node.name}' requires the parameter '${name}' (position ${node.pos} in '${text}').`
        )
      }
      return found
    }
    const propertyName = parameter("PropertyName")
    if (propertyName.type !== "string") {
      throw odataFault(`The parameter 'PropertyName' of '${node.name}' must be a string naming a column.`)
    }
    const field = resolveField(table, propertyName.value, "attribute")
    if (field === undefined) throw noAttribute(table, propertyName.value)
    // Values are converted as the query builder converts them: strings parse to the column's
    // type (`PropertyValues=["5","2000"]` for a number), typed literals must already match.
    const convert = (literal: Literal): Scalar => {
      const converted = literal.type === "string"
        ? convertText(table, field, literal.value)
        : literal.type === "null"
        ? odataFault(`The function '${node.name}' does not accept null values.`)
        : literal.type === "number" && field.kind === "number"
        ? literal.value
        : literal.type === "boolean" && field.kind === "boolean"
        ? literal.value
        : literal.type === "guid" && field.kind === "guid"
        ? literal.value
        : (literal.type === "date" || literal.type === "datetime") && field.kind === "datetime"
        ? literal.value
        : literal.type === "number" && field.kind === "string"
        ? String(literal.value)
        : convertText(
          table,
          field,
          literal.type === "date" || literal.type === "datetime"
            ? new Date(literal.value).toISOString()
            : String(literal.value)
        )
      if (converted instanceof Fault) throw converted
      return converted
    }
    const list = (): ReadonlyArray<Scalar> => {
      const value = parameter("PropertyValues")
      if (value.type !== "array") {
        throw odataFault(`The parameter 'PropertyValues' of '${node.name}' must be an array, e.g. ["a","b"].`)
      }
      return value.items.map(convert)
    }
    switch (operator) {
      case "in":
      case "not-in": {
        const values = list()
        if (values.length === 0) {
          throw odataFault(`The parameter 'PropertyValues' of '${node.name}' needs at least one value.`)
        }
        return membership(field, values, (operator === "not-in") !== negate)
      }
      case "between":
      case "not-between": {
        const values = list()
        if (values.length !== 2) {
          throw odataFault(`The parameter 'PropertyValues' of '${node.name}' needs exactly two values.`)
        }
        return between(field, values[0]!, values[1]!, (operator === "not-between") !== negate)
      }
      default: {
        if (field.kind !== "datetime") {
          throw odataFault(
            `The function '${node.name}' applies to date and time columns; '${field.attribute}' is ${field.edmType}.`
          )
        }
        let argument = 0
        const shape = dateOperators[operator]
        if (shape !== "none") {
          const value = parameter("PropertyValue")
          argument = shape === "date"
            ? (value.type === "date" || value.type === "datetime"
              ? value.value
              : value.type === "string"
              ? parseDateText(value.value)
              : NaN)
            : (value.type === "number" ? value.value : value.type === "string" ? Number(value.value) : NaN)
          if (shape === "date" ? Number.isNaN(argument) : !Number.isInteger(argument) || argument < 0) {
            throw odataFault(`The value of parameter 'PropertyValue' of '${node.name}' is not valid for this function.`)
          }
        }
        const [from, to] = dateRange(operator, now, argument)
        return inRange(field, from, to, negate)
      }
    }
  }

  return { compile, property }
}

const run = <A>(body: () => A): A | Fault => {
  try {
    return body()
  } catch (error) {
    if (error instanceof Fault) return error
    throw error
  }
}

/**
 * Compiles an OData `$filter` expression for `table` into a predicate over stored records, or
 * the `Fault` the service answers (400, `0x80060888` for the OData layer's errors: syntax, unknown
 * property, incompatible types; the query builder's codes for query-function arguments).
 *
 * Supported: `eq ne gt ge lt le`, `and or not`, parentheses, `contains`/`startswith`/`endswith`,
 * column comparison (`firstname eq lastname`), the primary key, lookups as `_<column>_value`,
 * literals (strings, numbers, `true`/`false`, `null`, bare GUIDs, dates, datetimes), parameter
 * aliases (`@p1`), and the query functions `Microsoft.Dynamics.CRM.In`/`NotIn`/`Between`/
 * `NotBetween` and the date functions (`Today`, `LastXDays`, `On`, ...).
 */
export const compileFilter = (
  text: string,
  table: TableDefinition,
  options: QueryOptions = {}
): Predicate | Fault =>
  run(() => {
    const tokens = tokenize(text)
    if (tokens instanceof Fault) throw tokens
    const parser = makeParser(text, tokens, options.parameters ?? {})
    const tree = parser.parseOr()
    parser.expectEnd()
    return makeCompiler(text, table, options).compile(tree, false)
  })

/**
 * The primary keys a `$filter` restricts its records to, when it does: `Microsoft.Dynamics.CRM.In`
 * or `eq` on the primary key, alone or in an `and` (`partitionid eq 'p' and In(...)`). A query can
 * then look those records up by id instead of reading the whole table (the bulk engine's existence
 * checks ask for up to 500 ids at a time); the filter itself is still applied to them. Undefined
 * when the filter restricts no key, or does not parse (`compileFilter` says why).
 */
export const primaryKeyCandidates = (text: string, table: TableDefinition): ReadonlySet<string> | undefined => {
  const tokens = tokenize(text)
  if (tokens instanceof Fault) return undefined
  let tree: Node
  try {
    const parser = makeParser(text, tokens, {})
    tree = parser.parseOr()
    parser.expectEnd()
  } catch {
    return undefined
  }
  const key = table.primaryIdAttribute.toLowerCase()
  const idOf = (literal: Literal | undefined): string | undefined =>
    literal?.type === "guid" || literal?.type === "string" ? literal.value.toLowerCase() : undefined
  const candidates = (node: Node): Set<string> | undefined => {
    switch (node._tag) {
      case "And": {
        const left = candidates(node.left)
        const right = candidates(node.right)
        if (left === undefined) return right
        if (right === undefined) return left
        return new Set([...left].filter((id) => right.has(id)))
      }
      case "Compare": {
        if (node.operator !== "eq") return undefined
        const [property, literal] = node.left._tag === "Property"
          ? [node.left, node.right]
          : [node.right, node.left]
        if (property._tag !== "Property" || property.name.toLowerCase() !== key) return undefined
        const id = literal._tag === "Literal" ? idOf(literal.literal) : undefined
        return id === undefined ? undefined : new Set([id])
      }
      case "QueryFunction": {
        if (node.name !== "Microsoft.Dynamics.CRM.In") return undefined
        const name = node.parameters.get("PropertyName")
        const values = node.parameters.get("PropertyValues")
        if (name?.type !== "string" || name.value.toLowerCase() !== key || values?.type !== "array") return undefined
        const ids = values.items.map(idOf)
        return ids.every((id) => id !== undefined) ? new Set(ids as Array<string>) : undefined
      }
      default:
        return undefined
    }
  }
  return candidates(tree)
}

/**
 * Compiles an OData `$orderby` (`a asc, b desc`) for `table` into a comparator: nulls first
 * ascending (SQL Server), strings case-insensitive, choices by value, lookups by the target's
 * primary name when `options.lookupName` resolves it (else by id), ties by insertion order.
 */
export const compileOrderBy = (
  text: string,
  table: TableDefinition,
  options: QueryOptions = {}
): Comparator | Fault =>
  run(() => {
    const tokens = tokenize(text)
    if (tokens instanceof Fault) throw tokens
    const typeName = `Microsoft.Dynamics.CRM.${table.logicalName}`
    const keys: Array<SortKey> = []
    let index = 0
    for (;;) {
      const token = tokens[index++]!
      if (token.kind === "end") throw odataFault(`Expression expected at position ${token.pos} in '${text}'.`)
      if (token.kind !== "identifier" || isLiteralToken(token)) throw syntaxError(token.pos, text)
      if (tokens[index]!.kind === "(" || tokens[index]!.kind === "/") {
        throw odataFault(
          `The $orderby expression at position ${token.pos} in '${text}' is not supported: order by properties of the table.`
        )
      }
      const field = resolveField(table, token.text, "odata")
      if (field === undefined) {
        throw odataFault(`Could not find a property named '${token.text}' on type '${typeName}'.`)
      }
      let descending = false
      const direction = tokens[index]!
      if (direction.kind === "identifier" && (direction.text === "asc" || direction.text === "desc")) {
        descending = direction.text === "desc"
        index++
      }
      keys.push({ field, descending, map: lookupSortName(field, options.lookupName) })
      const separator = tokens[index++]!
      if (separator.kind === "end") break
      if (separator.kind !== ",") throw syntaxError(separator.pos, text)
    }
    return compileSortKeys(keys)
  })

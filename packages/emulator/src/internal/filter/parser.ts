/**
 * The OData parser: tokens into an expression tree, with Microsoft.OData.Core's precedence.
 */
import { Fault } from "../fault.js"
import { parseDateText } from "./conversion.js"
import { odataFault, syntaxError, type Token, tokenize } from "./lexer.js"
import type { ComparisonOperator } from "./values.js"
export type Literal =
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "number"; readonly value: number; readonly edmType: string }
  | { readonly type: "boolean"; readonly value: boolean }
  | { readonly type: "null" }
  | { readonly type: "guid"; readonly value: string }
  | { readonly type: "date"; readonly value: number }
  | { readonly type: "datetime"; readonly value: number }

type ParameterValue = Literal | { readonly type: "array"; readonly items: ReadonlyArray<Literal> }

export type Node =
  | { readonly _tag: "Or" | "And"; readonly left: Node; readonly right: Node }
  | { readonly _tag: "Not"; readonly operand: Node; readonly pos: number }
  | {
    readonly _tag: "Compare"
    readonly operator: ComparisonOperator
    readonly left: Node
    readonly right: Node
    readonly pos: number
  }
  | { readonly _tag: "Property"; readonly name: string; readonly pos: number }
  | { readonly _tag: "Literal"; readonly literal: Literal; readonly pos: number }
  | { readonly _tag: "Call"; readonly name: string; readonly args: ReadonlyArray<Node>; readonly pos: number }
  | {
    readonly _tag: "QueryFunction"
    readonly name: string
    readonly parameters: ReadonlyMap<string, ParameterValue>
    readonly pos: number
  }

const comparisonOperators = new Set<string>(["eq", "ne", "gt", "ge", "lt", "le"])
const arithmeticOperators = new Set<string>(["add", "sub", "mul", "div", "divby", "mod", "has", "in"])
export const operatorKinds: Record<ComparisonOperator, string> = {
  eq: "Equal",
  ne: "NotEqual",
  gt: "GreaterThan",
  ge: "GreaterThanOrEqual",
  lt: "LessThan",
  le: "LessThanOrEqual"
}

const int32Max = 2147483647

const literalOf = (token: Token, text: string): Literal | Fault => {
  switch (token.kind) {
    case "string":
    case "jsonString":
      return { type: "string", value: token.text }
    case "guid":
      return { type: "guid", value: token.text.toLowerCase() }
    case "number": {
      const suffix = token.text.at(-1)!
      const body = /[mMlLdDfF]/.test(suffix) ? token.text.slice(0, -1) : token.text
      const value = Number(body)
      const integral = /^-?\d+$/.test(body)
      const edmType = suffix === "m" || suffix === "M"
        ? "Edm.Decimal"
        : suffix === "d" || suffix === "D" || suffix === "f" || suffix === "F"
        ? "Edm.Double"
        : integral
        ? (Math.abs(value) <= int32Max && suffix !== "l" && suffix !== "L" ? "Edm.Int32" : "Edm.Int64")
        : "Edm.Decimal"
      return { type: "number", value, edmType }
    }
    case "date":
    case "datetime": {
      const ms = parseDateText(token.text)
      if (Number.isNaN(ms)) {
        const edm = token.kind === "date" ? "Edm.Date" : "Edm.DateTimeOffset"
        return odataFault(`Unrecognized '${edm}' literal '${token.text}' at '${token.pos}' in '${text}'.`)
      }
      return { type: token.kind, value: ms }
    }
    case "identifier":
      if (token.text === "true" || token.text === "false") return { type: "boolean", value: token.text === "true" }
      if (token.text === "null") return { type: "null" }
  }
  return syntaxError(token.pos, text)
}

export const literalEdmType = (literal: Literal): string => {
  switch (literal.type) {
    case "string":
      return "Edm.String"
    case "number":
      return literal.edmType
    case "boolean":
      return "Edm.Boolean"
    case "null":
      return "null"
    case "guid":
      return "Edm.Guid"
    case "date":
      return "Edm.Date"
    case "datetime":
      return "Edm.DateTimeOffset"
  }
}

export const isLiteralToken = (token: Token): boolean =>
  token.kind === "string" || token.kind === "number" || token.kind === "guid" || token.kind === "date" ||
  token.kind === "datetime" ||
  (token.kind === "identifier" && (token.text === "true" || token.text === "false" || token.text === "null"))

/**
 * A recursive-descent parser with Microsoft.OData.Core's precedence: or < and < comparison <
 * unary (`not`) < primary. It throws `Fault`s, which the exported functions return.
 */
export const makeParser = (
  text: string,
  tokens: ReadonlyArray<Token>,
  parameters: Readonly<Record<string, string>>
) => {
  let index = 0
  const peek = (): Token => tokens[index]!
  const next = (): Token => tokens[index++]!
  const isKeyword = (token: Token, keyword: string) => token.kind === "identifier" && token.text === keyword

  const parseOr = (): Node => {
    let left = parseAnd()
    while (isKeyword(peek(), "or")) {
      next()
      left = { _tag: "Or", left, right: parseAnd() }
    }
    return left
  }

  const parseAnd = (): Node => {
    let left = parseComparison()
    while (isKeyword(peek(), "and")) {
      next()
      left = { _tag: "And", left, right: parseComparison() }
    }
    return left
  }

  const parseComparison = (): Node => {
    let left = parseArithmetic()
    for (;;) {
      const token = peek()
      if (token.kind !== "identifier" || !comparisonOperators.has(token.text)) return left
      next()
      left = {
        _tag: "Compare",
        operator: token.text as ComparisonOperator,
        left,
        right: parseArithmetic(),
        pos: token.pos
      }
    }
  }

  const parseArithmetic = (): Node => {
    const operand = parseUnary()
    const token = peek()
    if (token.kind === "identifier" && arithmeticOperators.has(token.text)) {
      throw odataFault(
        `The operator '${token.text}' at position ${token.pos} in '${text}' is not supported in a Dataverse $filter.`
      )
    }
    return operand
  }

  const parseUnary = (): Node => {
    const token = peek()
    if (isKeyword(token, "not")) {
      next()
      return { _tag: "Not", operand: parseUnary(), pos: token.pos }
    }
    if (token.kind === "-") {
      throw odataFault(
        `The operator '-' at position ${token.pos} in '${text}' is not supported in a Dataverse $filter.`
      )
    }
    return parsePrimary()
  }

  const parsePrimary = (): Node => {
    const token = peek()
    if (token.kind === "(") {
      next()
      const inner = parseOr()
      const close = next()
      if (close.kind !== ")") throw odataFault(`')' or operator expected at position ${close.pos} in '${text}'.`)
      return inner
    }
    if (token.kind === "alias") {
      next()
      const value = aliasValue(token)
      if (value.type === "array") throw syntaxError(token.pos, text)
      return { _tag: "Literal", literal: value, pos: token.pos }
    }
    if (isLiteralToken(token)) {
      next()
      const literal = literalOf(token, text)
      if (literal instanceof Fault) throw literal
      return { _tag: "Literal", literal, pos: token.pos }
    }
    if (token.kind === "identifier") {
      next()
      const after = peek()
      if (after.kind === "(") {
        return token.text.startsWith("Microsoft.Dynamics.CRM.") ? parseQueryFunction(token) : parseCall(token)
      }
      if (after.kind === "/") {
        throw odataFault(
          `The path '${token.text}/...' at position ${token.pos} in '${text}' navigates to related records, which the emulator does not support in $filter.`
        )
      }
      return { _tag: "Property", name: token.text, pos: token.pos }
    }
    if (token.kind === "end") throw odataFault(`Expression expected at position ${token.pos} in '${text}'.`)
    throw syntaxError(token.pos, text)
  }

  const parseCall = (name: Token): Node => {
    next() // (
    const args: Array<Node> = []
    if (peek().kind === ")") next()
    else {
      for (;;) {
        args.push(parseOr())
        const separator = next()
        if (separator.kind === ")") break
        if (separator.kind !== ",") throw odataFault(`')' or ',' expected at position ${separator.pos} in '${text}'.`)
      }
    }
    return { _tag: "Call", name: name.text, args, pos: name.pos }
  }

  const parseQueryFunction = (name: Token): Node => {
    next() // (
    const parameters = new Map<string, ParameterValue>()
    if (peek().kind === ")") next()
    else {
      for (;;) {
        const parameter = next()
        if (parameter.kind !== "identifier") throw syntaxError(parameter.pos, text)
        const equals = next()
        if (equals.kind !== "=") throw syntaxError(equals.pos, text)
        parameters.set(parameter.text, parseParameterValue())
        const separator = next()
        if (separator.kind === ")") break
        if (separator.kind !== ",") throw odataFault(`')' or ',' expected at position ${separator.pos} in '${text}'.`)
      }
    }
    return { _tag: "QueryFunction", name: name.text, parameters, pos: name.pos }
  }

  const parseParameterValue = (): ParameterValue => {
    const token = next()
    if (token.kind === "alias") return aliasValue(token)
    if (token.kind === "[") {
      const items: Array<Literal> = []
      if (peek().kind === "]") {
        next()
        return { type: "array", items }
      }
      for (;;) {
        const item = next()
        if (!isLiteralToken(item) && item.kind !== "jsonString") throw syntaxError(item.pos, text)
        const literal = literalOf(item, text)
        if (literal instanceof Fault) throw literal
        items.push(literal)
        const separator = next()
        if (separator.kind === "]") return { type: "array", items }
        if (separator.kind !== ",") throw syntaxError(separator.pos, text)
      }
    }
    if (isLiteralToken(token) || token.kind === "jsonString") {
      const literal = literalOf(token, text)
      if (literal instanceof Fault) throw literal
      return literal
    }
    if (token.kind === "end") throw odataFault(`Expression expected at position ${token.pos} in '${text}'.`)
    throw syntaxError(token.pos, text)
  }

  /** A parameter alias's value, parsed from its own text; an alias without a value is null (OData). */
  const aliasValue = (token: Token): ParameterValue => {
    const source = parameters[token.text]
    if (source === undefined) return { type: "null" }
    const aliasTokens = tokenize(source)
    if (aliasTokens instanceof Fault) throw aliasTokens
    const parser = makeParser(source, aliasTokens, {})
    const value = parser.parameterValue()
    parser.expectEnd()
    return value
  }

  const expectEnd = () => {
    const token = peek()
    if (token.kind !== "end") throw syntaxError(token.pos, text)
  }

  return { parseOr, parameterValue: parseParameterValue, expectEnd }
}

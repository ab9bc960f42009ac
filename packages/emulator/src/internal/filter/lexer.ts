/**
 * The OData lexer: a `$filter`/`$orderby` expression split into tokens, as Microsoft.OData.Core's
 * lexer does, and the OData layer's faults.
 */
import { codes, Fault } from "../fault.js"
type TokenKind =
  | "identifier"
  | "string"
  | "jsonString"
  | "number"
  | "guid"
  | "date"
  | "datetime"
  | "alias"
  | "("
  | ")"
  | ","
  | "/"
  | "="
  | "["
  | "]"
  | "-"
  | "end"

export interface Token {
  readonly kind: TokenKind
  /** The source text; for strings, the unescaped value. */
  readonly text: string
  readonly pos: number
}

export const odataFault = (message: string): Fault => new Fault(400, codes.segmentNotFound, message)

export const syntaxError = (pos: number, text: string): Fault =>
  odataFault(`Syntax error at position ${pos} in '${text}'.`)

const datetimeToken = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2})(?![\w.:])/y
const guidToken = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-])/y
const dateToken = /\d{4}-\d{2}-\d{2}(?![\w:.-])/y
const numberToken = /-?(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)[mMlLdDfF]?(?![\w.])/y
const identifierToken = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/y
const aliasToken = /@[A-Za-z_][A-Za-z0-9_]*/y
const punctuation = new Set(["(", ")", ",", "/", "=", "[", "]", "-"])

const matchAt = (regex: RegExp, text: string, pos: number): string | undefined => {
  regex.lastIndex = pos
  const match = regex.exec(text)
  return match === null ? undefined : match[0]
}

/** Splits a `$filter`/`$orderby` expression into tokens, as Microsoft.OData.Core's lexer does. */
export const tokenize = (text: string): Array<Token> | Fault => {
  const tokens: Array<Token> = []
  let pos = 0
  while (pos < text.length) {
    const char = text[pos]!
    if (char === " " || char === "\t" || char === "\n" || char === "\r") {
      pos++
      continue
    }
    if (char === "'" || char === "\"") {
      // OData strings double the quote; the JSON strings of query-function arrays escape with `\`.
      const start = pos
      let value = ""
      pos++
      for (;;) {
        if (pos >= text.length) {
          return odataFault(`There is an unterminated literal at position ${pos} in '${text}'.`)
        }
        const c = text[pos]!
        if (char === "\"" && c === "\\" && pos + 1 < text.length) {
          const next = text[pos + 1]!
          value += next === "n" ? "\n" : next === "t" ? "\t" : next
          pos += 2
          continue
        }
        if (c === char) {
          if (char === "'" && text[pos + 1] === "'") {
            value += "'"
            pos += 2
            continue
          }
          pos++
          break
        }
        value += c
        pos++
      }
      tokens.push({ kind: char === "'" ? "string" : "jsonString", text: value, pos: start })
      continue
    }
    const lexeme = matchAt(datetimeToken, text, pos)
    if (lexeme !== undefined) {
      tokens.push({ kind: "datetime", text: lexeme, pos })
      pos += lexeme.length
      continue
    }
    const guid = matchAt(guidToken, text, pos)
    if (guid !== undefined) {
      tokens.push({ kind: "guid", text: guid, pos })
      pos += guid.length
      continue
    }
    const date = matchAt(dateToken, text, pos)
    if (date !== undefined) {
      tokens.push({ kind: "date", text: date, pos })
      pos += date.length
      continue
    }
    const number = matchAt(numberToken, text, pos)
    if (number !== undefined) {
      tokens.push({ kind: "number", text: number, pos })
      pos += number.length
      continue
    }
    const identifier = matchAt(identifierToken, text, pos)
    if (identifier !== undefined) {
      tokens.push({ kind: "identifier", text: identifier, pos })
      pos += identifier.length
      continue
    }
    const alias = matchAt(aliasToken, text, pos)
    if (alias !== undefined) {
      tokens.push({ kind: "alias", text: alias, pos })
      pos += alias.length
      continue
    }
    if (punctuation.has(char)) {
      tokens.push({ kind: char as TokenKind, text: char, pos })
      pos++
      continue
    }
    return odataFault(`Syntax error: character '${char}' is not valid at position ${pos} in '${text}'.`)
  }
  tokens.push({ kind: "end", text: "", pos: text.length })
  return tokens
}

/**
 * Parses OData resource paths as Dataverse uses them: `contacts`, `contacts(<guid>)`,
 * `accounts(accountnumber='A-1')`, `EntityDefinitions(LogicalName='contact')/Attributes`,
 * `contacts/Microsoft.Dynamics.CRM.CreateMultiple`.
 */
import { badRequest, type Fault } from "./fault.js"

/** A key in parentheses: a single bare value, or named parts (alternate keys). */
export type KeyPredicate =
  | { readonly _tag: "Single"; readonly value: KeyValue }
  | { readonly _tag: "Named"; readonly parts: ReadonlyArray<readonly [string, KeyValue]> }

/** A key value: strings were quoted, everything else (GUIDs, numbers) was bare. */
export type KeyValue = { readonly _tag: "String"; readonly value: string } | {
  readonly _tag: "Bare"
  readonly value: string
}

export interface PathSegment {
  readonly name: string
  readonly key: KeyPredicate | undefined
}

/** Splits a decoded path into segments, keeping `/` and `)` inside quoted strings. */
export const parsePath = (path: string): ReadonlyArray<PathSegment> | Fault => {
  const segments: Array<PathSegment> = []
  let i = 0
  while (i < path.length) {
    let name = ""
    while (i < path.length && path[i] !== "/" && path[i] !== "(") name += path[i++]
    let key: KeyPredicate | undefined
    if (path[i] === "(") {
      const start = ++i
      let inString = false
      while (i < path.length) {
        const c = path[i]
        if (c === "'") {
          // `''` inside a string is an escaped quote
          if (inString && path[i + 1] === "'") i++
          else inString = !inString
        } else if (c === ")" && !inString) break
        i++
      }
      if (i >= path.length) return badRequest(`Bad Request - Error in query syntax: unterminated key in '${path}'.`)
      const parsed = parseKey(path.slice(start, i))
      if (typeof parsed === "string") return badRequest(`Bad Request - Error in query syntax: ${parsed}`)
      key = parsed
      i++
    }
    if (name === "" && key === undefined) {
      i++
      continue
    }
    segments.push({ name, key })
    if (i < path.length && path[i] !== "/") {
      return badRequest(`Bad Request - Error in query syntax at '${path.slice(i)}'.`)
    }
    i++
  }
  return segments
}

const splitTopLevel = (text: string): Array<string> => {
  const parts: Array<string> = []
  let current = ""
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === "'") {
      if (inString && text[i + 1] === "'") {
        current += "''"
        i++
        continue
      }
      inString = !inString
    }
    if (c === "," && !inString) {
      parts.push(current)
      current = ""
    } else current += c
  }
  parts.push(current)
  return parts
}

const parseValue = (raw: string): KeyValue | string => {
  const text = raw.trim()
  if (text.startsWith("'")) {
    if (text.length < 2 || !text.endsWith("'")) return `unterminated string literal ${text}`
    return { _tag: "String", value: text.slice(1, -1).replace(/''/g, "'") }
  }
  if (text === "") return "empty key value"
  return { _tag: "Bare", value: text }
}

const parseKey = (text: string): KeyPredicate | string => {
  const parts = splitTopLevel(text)
  const first = parts[0]!
  const eq = indexOfTopLevelEquals(first)
  if (parts.length === 1 && eq < 0) {
    const value = parseValue(first)
    return typeof value === "string" ? value : { _tag: "Single", value }
  }
  const named: Array<readonly [string, KeyValue]> = []
  for (const part of parts) {
    const at = indexOfTopLevelEquals(part)
    if (at < 0) return `key part '${part}' has no name`
    const value = parseValue(part.slice(at + 1))
    if (typeof value === "string") return value
    named.push([part.slice(0, at).trim(), value])
  }
  return { _tag: "Named", parts: named }
}

const indexOfTopLevelEquals = (text: string): number => {
  const quote = text.indexOf("'")
  const eq = text.indexOf("=")
  return eq >= 0 && (quote < 0 || eq < quote) ? eq : -1
}

/**
 * Parses OData resource paths as Dataverse uses them: `contacts`, `contacts(<guid>)`,
 * `accounts(accountnumber='A-1')`, `EntityDefinitions(LogicalName='contact')/Attributes`,
 * `contacts/Microsoft.Dynamics.CRM.CreateMultiple`, and function calls, whose parentheses hold
 * named parameters like a key's: `WhoAmI()`, `RetrieveTotalRecordCount(EntityNames=['account'])`,
 * `RetrieveTotalRecordCount(EntityNames=@p1)`.
 */
import { badRequest, type Fault } from "./fault.js"

/**
 * A key in parentheses: a single bare value, or named parts (alternate keys, function parameters;
 * none for the empty parentheses of a function call without parameters).
 */
export type KeyPredicate =
  | { readonly _tag: "Single"; readonly value: KeyValue }
  | { readonly _tag: "Named"; readonly parts: ReadonlyArray<readonly [string, KeyValue]> }

/**
 * A key value: strings were quoted, everything else (GUIDs, numbers, and in function parameters
 * `@p1` aliases, `[...]` collections and `{...}` objects) was bare, and is kept as written.
 */
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
      i = scanTopLevel(path, start, (c) => c === ")")
      if (i < 0 || i >= path.length) {
        return badRequest(`Bad Request - Error in query syntax: unterminated key in '${path}'.`)
      }
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

/**
 * The index of the first character of `text`, from `start`, for which `stop` holds outside string
 * literals and brackets; `text.length` when there is none, -1 when a string is unterminated.
 * Strings are OData's (`'...'`, `''` an escaped quote), and inside `[...]` or `{...}` also JSON's
 * (`"..."`, `\` escapes), as collection and object parameter values are written.
 */
const scanTopLevel = (text: string, start: number, stop: (c: string) => boolean): number => {
  let depth = 0
  for (let i = start; i < text.length; i++) {
    const c = text[i]!
    if (c === "'") {
      i++
      while (i < text.length && !(text[i] === "'" && text[i + 1] !== "'")) i += text[i] === "'" ? 2 : 1
      if (i >= text.length) return -1
    } else if (c === "\"" && depth > 0) {
      i++
      while (i < text.length && text[i] !== "\"") i += text[i] === "\\" ? 2 : 1
      if (i >= text.length) return -1
    } else if (depth === 0 && stop(c)) return i
    else if (c === "[" || c === "{") depth++
    else if ((c === "]" || c === "}") && depth > 0) depth--
  }
  return text.length
}

const splitTopLevel = (text: string): Array<string> => {
  const parts: Array<string> = []
  let from = 0
  for (;;) {
    const comma = scanTopLevel(text, from, (c) => c === ",")
    if (comma < 0) return [...parts, text.slice(from)]
    parts.push(text.slice(from, comma))
    if (comma >= text.length) return parts
    from = comma + 1
  }
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
  if (text.trim() === "") return { _tag: "Named", parts: [] }
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

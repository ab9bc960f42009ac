/**
 * Dataverse functions: operations without side effects, called with GET, unbound (`WhoAmI()`,
 * `RetrieveVersion()`, `RetrieveTotalRecordCount(EntityNames=@p1)?@p1=["account"]`) or bound to a
 * record (`systemusers(<id>)/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(Target=@p1)`), their
 * parameters inline or as parameter aliases, as
 * https://learn.microsoft.com/power-apps/developer/data-platform/webapi/use-web-api-functions
 * describes. Answers follow the Web API Functions and Actions sample
 * (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/web-api-functions-actions-sample).
 */
import type { VerifiedToken } from "../Identity.js"
import type { Store } from "../Store.js"
import { badRequest, codes, Fault, recordNotFound, segmentNotFound } from "./fault.js"
import { type KeyPredicate, type KeyValue, parsePath, type PathSegment } from "./odataPath.js"
import { findByKey, parseGuid } from "./records.js"
import { faultReply, type Reply } from "./reply.js"

/** What the functions read: the data, the org's identity and its users. */
export interface FunctionContext {
  readonly store: Store
  /** The Web API root with a trailing slash: `<org>/api/data/v9.2/`. */
  readonly webApiUrl: () => string
  readonly organizationId: string
  readonly businessUnitId: string
  /** Entra object id → systemuserid of the users the org knows. */
  readonly users: ReadonlyMap<string, string>
}

/**
 * An OData literal as a URL writes it, inline in a function's parentheses or as the value of a
 * parameter alias: `'text'` (quotes doubled inside), numbers, GUIDs, `true`/`false`, `null`,
 * `Namespace.EnumType'Member'`, JSON collections and objects (with `'` or `"` strings, as
 * Microsoft's examples write both), and `@alias` references.
 */
export type Literal =
  | { readonly _tag: "Null" }
  | { readonly _tag: "String"; readonly value: string }
  | { readonly _tag: "Number"; readonly value: number; readonly integer: boolean }
  | { readonly _tag: "Boolean"; readonly value: boolean }
  | { readonly _tag: "Guid"; readonly value: string }
  | { readonly _tag: "Enum"; readonly type: string; readonly member: string }
  | { readonly _tag: "Json"; readonly value: unknown }
  | { readonly _tag: "Alias"; readonly name: string }

const numberPattern = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/
const enumPattern = /^([A-Za-z_][\w.]*)'([^']*)'$/

/** Parses one literal; `undefined` when the text is none. */
export const parseLiteral = (raw: string): Literal | undefined => {
  const text = raw.trim()
  if (text === "null") return { _tag: "Null" }
  if (text === "true" || text === "false") return { _tag: "Boolean", value: text === "true" }
  if (text.startsWith("@")) return /^@[A-Za-z_]\w*$/.test(text) ? { _tag: "Alias", name: text } : undefined
  if (text.startsWith("'")) {
    const parsed = parseJson(text)
    return typeof parsed?.value === "string" ? { _tag: "String", value: parsed.value } : undefined
  }
  if (text.startsWith("[") || text.startsWith("{")) {
    const parsed = parseJson(text)
    return parsed === undefined ? undefined : { _tag: "Json", value: parsed.value }
  }
  if (numberPattern.test(text)) return { _tag: "Number", value: Number(text), integer: !/[.eE]/.test(text) }
  const guid = parseGuid(text)
  if (guid !== undefined) return { _tag: "Guid", value: guid }
  const member = enumPattern.exec(text)
  if (member !== null) return { _tag: "Enum", type: member[1]!, member: member[2]! }
  return undefined
}

/**
 * JSON as OData URLs carry it: standard JSON, and strings in single quotes (`''` an escaped quote)
 * as in `{'@odata.id':'accounts(<id>)'}`. The whole text must be one value.
 */
const parseJson = (text: string): { readonly value: unknown } | undefined => {
  let i = 0
  const space = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++
  }
  const fail = Symbol("fail")
  const value = (): unknown => {
    space()
    const c = text[i]
    if (c === "'") {
      let out = ""
      for (i++; i < text.length; i++) {
        if (text[i] === "'") {
          if (text[i + 1] !== "'") {
            i++
            return out
          }
          i++
        }
        out += text[i]
      }
      return fail
    }
    if (c === "\"") {
      const end = /^"(?:[^"\\]|\\.)*"/.exec(text.slice(i))
      if (end === null) return fail
      i += end[0].length
      return JSON.parse(end[0]) as string
    }
    if (c === "[") {
      i++
      const items: Array<unknown> = []
      space()
      if (text[i] === "]") {
        i++
        return items
      }
      for (;;) {
        const item = value()
        if (item === fail) return fail
        items.push(item)
        space()
        if (text[i] === "]") {
          i++
          return items
        }
        if (text[i++] !== ",") return fail
      }
    }
    if (c === "{") {
      i++
      const object: Record<string, unknown> = {}
      space()
      if (text[i] === "}") {
        i++
        return object
      }
      for (;;) {
        space()
        const name = text[i] === "'" || text[i] === "\"" ? value() : fail
        if (typeof name !== "string") return fail
        space()
        if (text[i++] !== ":") return fail
        const item = value()
        if (item === fail) return fail
        object[name] = item
        space()
        if (text[i] === "}") {
          i++
          return object
        }
        if (text[i++] !== ",") return fail
      }
    }
    const bare = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i))
    if (bare === null) return fail
    i += bare[0].length
    return JSON.parse(bare[0]) as unknown
  }
  const parsed = value()
  space()
  return parsed === fail || i < text.length ? undefined : { value: parsed }
}

/** The Edm types of the parameters the emulated functions take. */
type ParameterType = "Collection(Edm.String)" | "mscrm.crmbaseentity"

interface Parameter {
  readonly name: string
  readonly type: ParameterType
}

/** A record reference (`crmbaseentity` parameter): the `@odata.id` URL of a record. */
interface RecordReference {
  readonly "@odata.id": string
}

/** The values of a call's parameters, by name, converted to their types. */
type Arguments = ReadonlyMap<string, unknown>

interface FunctionDefinition {
  readonly name: string
  /** For a bound function, the entity set whose records it is bound to. */
  readonly boundTo?: string
  /** Every parameter here is required (not nullable, not optional), as for the emulated functions. */
  readonly parameters: ReadonlyArray<Parameter>
  readonly run: (call: FunctionCall) => Reply
}

interface FunctionCall {
  readonly args: Arguments
  readonly token: VerifiedToken
}

const boundPrefix = "Microsoft.Dynamics.CRM."

/** Writes a literal back as the URL wrote it, for error messages. */
const written = (value: KeyValue): string =>
  value._tag === "String" ? `'${value.value.replace(/'/g, "''")}'` : value.value

/**
 * The OData layer's answer to a value that is not of the parameter's type (its message for a literal
 * it cannot convert). Modelling choice: the code is the emulator's payload code (the service sends
 * `0x80048d19` or `0x0` for OData-layer errors, wire reference §5).
 */
const cannotConvert = (text: string, type: ParameterType): Fault =>
  badRequest(`Cannot convert the literal '${text}' to the expected type '${type}'.`)

/**
 * The platform's answer to a required parameter without a value (InvalidArgument, `0x80040203`,
 * with its message as clients report it).
 */
const requiredField = (parameter: string, fn: string): Fault =>
  new Fault(400, "0x80040203", `Required field '${parameter}' is missing for RequestName='${fn}'`)

const convert = (literal: Literal, type: ParameterType): unknown | undefined => {
  if (literal._tag !== "Json") return undefined
  const value = literal.value
  switch (type) {
    case "Collection(Edm.String)":
      return Array.isArray(value) && value.every((item) => typeof item === "string") ? value : undefined
    case "mscrm.crmbaseentity":
      return typeof value === "object" && value !== null && !Array.isArray(value) &&
          typeof (value as Record<string, unknown>)["@odata.id"] === "string"
        ? value
        : undefined
  }
}

/**
 * Binds the parameters written in a call's parentheses, resolving `@alias` references from the
 * query string. As the OData library that Dataverse runs on resolves overloads: a call with
 * parameters must name exactly the function's parameters, or the function is not found (404); a
 * call without any (`F`, `F()`) finds it, and the platform then reports the first required
 * parameter as missing, as it does for an alias the query string does not define (a null value).
 */
export const bindArguments = (
  definition: Pick<FunctionDefinition, "name" | "parameters">,
  key: KeyPredicate | undefined,
  search: URLSearchParams,
  segmentName: string = definition.name
): Arguments | Fault => {
  if (key?._tag === "Single") return segmentNotFound(segmentName)
  const given = new Map<string, KeyValue>()
  for (const [name, value] of key?.parts ?? []) {
    if (given.has(name)) {
      return badRequest(`Bad Request - Error in query syntax: the parameter '${name}' is given more than once.`)
    }
    given.set(name, value)
  }
  if (
    given.size > 0 &&
    (given.size !== definition.parameters.length ||
      definition.parameters.some((parameter) => !given.has(parameter.name)))
  ) return segmentNotFound(segmentName)
  const args = new Map<string, unknown>()
  for (const parameter of definition.parameters) {
    const value = given.get(parameter.name)
    if (value === undefined) return requiredField(parameter.name, definition.name)
    let text = written(value)
    let literal = value._tag === "String" ? { _tag: "String" as const, value: value.value } : parseLiteral(value.value)
    if (literal?._tag === "Alias") {
      const aliased = search.get(literal.name)
      if (aliased === null) return requiredField(parameter.name, definition.name)
      text = aliased
      literal = parseLiteral(aliased)
    }
    if (literal?._tag === "Null") return requiredField(parameter.name, definition.name)
    const converted = literal === undefined || literal._tag === "Alias" ? undefined : convert(literal, parameter.type)
    if (converted === undefined) return cannotConvert(text, parameter.type)
    args.set(parameter.name, converted)
  }
  return args
}

/**
 * The `AccessRights` the emulator reports: every right, as `AccessRights` flags are written (.NET
 * flag names in ascending value, comma and space). Modelling choice: the emulator has no security
 * roles or sharing, so every user of the org can do everything to every record.
 */
const allAccessRights = [
  "ReadAccess",
  "WriteAccess",
  "AppendAccess",
  "AppendToAccess",
  "CreateAccess",
  "DeleteAccess",
  "ShareAccess",
  "AssignAccess"
].join(", ")

/**
 * The version `RetrieveVersion` reports. Modelling choice: a fixed 9.2 version (the real one
 * carries the build, e.g. `9.2.22074.168`); the Web API version the emulator serves.
 */
export const emulatedVersion = "9.2.0.0"

/**
 * The functions, and the route that answers them.
 */
export const makeFunctions = (context: FunctionContext) => {
  const responseContext = (name: string) => `${context.webApiUrl()}$metadata#Microsoft.Dynamics.CRM.${name}Response`

  const systemUserIds = () => new Set(context.users.values())

  /** The record an `@odata.id` names (relative or absolute URL), which must exist. */
  const resolveReference = (reference: RecordReference): Fault | undefined => {
    const url = reference["@odata.id"]
    const path = url.replace(/^.*?\/api\/data\/v\d+(\.\d+)?\//, "").replace(/^\/+/, "")
    let decoded: string
    try {
      decoded = decodeURIComponent(path)
    } catch {
      return badRequest(`The @odata.id '${url}' is not a valid URL.`)
    }
    const segments = parsePath(decoded)
    if (segments instanceof Fault) return segments
    const [segment] = segments
    if (segments.length !== 1 || segment?.key === undefined) {
      return badRequest(`The @odata.id '${url}' does not identify a single record.`)
    }
    const table = context.store.entitySet(segment.name)
    if (table === undefined) return segmentNotFound(segment.name)
    const found = findByKey(table, segment.key)
    return found instanceof Fault ? found : undefined
  }

  const definitions: ReadonlyArray<FunctionDefinition> = [
    {
      // https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/whoami
      name: "WhoAmI",
      parameters: [],
      run: ({ token }) => {
        const userId = context.users.get(token.objectId)
        if (userId === undefined) {
          return faultReply(
            new Fault(
              403,
              codes.privilege,
              `The user with object id ${token.objectId} is not a user of this organization.`
            )
          )
        }
        return {
          status: 200,
          body: {
            "@odata.context": responseContext("WhoAmI"),
            BusinessUnitId: context.businessUnitId,
            UserId: userId,
            OrganizationId: context.organizationId
          }
        }
      }
    },
    {
      // https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/retrieveversion
      name: "RetrieveVersion",
      parameters: [],
      run: () => ({
        status: 200,
        body: { "@odata.context": responseContext("RetrieveVersion"), Version: emulatedVersion }
      })
    },
    {
      // https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/retrievetotalrecordcount
      // The service counts from a snapshot taken within the last 24 hours. Modelling choice: the
      // emulator counts the records stored now; a name given twice is counted once.
      name: "RetrieveTotalRecordCount",
      parameters: [{ name: "EntityNames", type: "Collection(Edm.String)" }],
      run: ({ args }) => {
        const names = [...new Set(args.get("EntityNames") as ReadonlyArray<string>)]
        const values: Array<number> = []
        for (const name of names) {
          const table = context.store.table(name)
          if (table === undefined) {
            // QueryBuilderNoEntity, with the message the service gives for an unknown logical name.
            return faultReply(
              new Fault(
                400,
                "0x80041102",
                `The entity with a name = '${name}' with namemapping = 'Logical' was not found in the MetadataCache.`
              )
            )
          }
          values.push(table.size)
        }
        return {
          status: 200,
          body: {
            "@odata.context": responseContext("RetrieveTotalRecordCount"),
            EntityRecordCountCollection: { Count: names.length, IsReadOnly: false, Keys: names, Values: values }
          }
        }
      }
    },
    {
      // https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/retrieveprincipalaccess
      // Bound to systemuser (and team, which the emulator does not have).
      name: "RetrievePrincipalAccess",
      boundTo: "systemusers",
      parameters: [{ name: "Target", type: "mscrm.crmbaseentity" }],
      run: ({ args }) => {
        const missing = resolveReference(args.get("Target") as RecordReference)
        if (missing !== undefined) return faultReply(missing)
        return {
          status: 200,
          body: { "@odata.context": responseContext("RetrievePrincipalAccess"), AccessRights: allAccessRights }
        }
      }
    }
  ]
  const unbound = new Map(definitions.filter((d) => d.boundTo === undefined).map((d) => [d.name, d]))
  const bound = new Map(definitions.filter((d) => d.boundTo !== undefined).map((d) => [d.name, d]))

  /** The id of the systemuser a bound call is made on, which must be a user of the org. */
  const boundUser = (segment: PathSegment): string | Fault => {
    const key = segment.key!
    const text = key._tag === "Single"
      ? key.value.value
      : key.parts.length === 1 && key.parts[0]![0] === "systemuserid"
      ? key.parts[0]![1].value
      : undefined
    const id = text === undefined ? undefined : parseGuid(text)
    if (id === undefined) return badRequest(`'${text ?? ""}' is not a valid key for 'systemuser'.`)
    const known = systemUserIds().has(id) || context.store.table("systemuser")?.get(id) !== undefined
    return known ? id : recordNotFound("systemuser", id)
  }

  /**
   * Answers a function call, or `undefined` when the path names no function (the other routes
   * answer it then). Unbound functions go by their bare name (the full name is not found: "Functions
   * that aren't bound must not use the full name"), bound ones by their full name after the record.
   * Only GET calls a function; another method does not find it (404), as for `WhoAmI`.
   */
  const call = (
    method: string,
    segments: ReadonlyArray<PathSegment>,
    search: URLSearchParams,
    token: VerifiedToken
  ): Reply | undefined => {
    const [first, second] = segments
    if (first === undefined) return undefined
    const definition = segments.length === 1
      ? unbound.get(first.name)
      : segments.length === 2 && second!.name.startsWith(boundPrefix)
      ? bound.get(second!.name.slice(boundPrefix.length))
      : undefined
    if (definition === undefined || (definition.boundTo !== undefined && definition.boundTo !== first.name)) {
      return undefined
    }
    const callSegment = segments.at(-1)!
    // A function bound to records is not found on the collection.
    if (method !== "GET" || (definition.boundTo !== undefined && first.key === undefined)) {
      return faultReply(segmentNotFound(callSegment.name))
    }
    if (definition.boundTo !== undefined) {
      const user = boundUser(first)
      if (user instanceof Fault) return faultReply(user)
    }
    const args = bindArguments(definition, callSegment.key, search, callSegment.name)
    if (args instanceof Fault) return faultReply(args)
    return definition.run({ args, token })
  }

  return { call }
}

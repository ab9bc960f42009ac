/**
 * The Web API itself: an `HttpApp` answering `{org}/api/data/v9.x/...` as Dataverse does,
 * on top of a `Store` and an `Identity`.
 *
 * @since 0.1.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import type { Identity, VerifiedToken } from "./Identity.js"
import { badRequest, codes, Fault, methodNotAllowed, segmentNotFound, unauthorized } from "./internal/fault.js"
import { parsePath, type PathSegment } from "./internal/odataPath.js"
import { checkInsertable, columnsOf, findByKey, prepareCreate, present } from "./internal/records.js"
import type { PreparedRecord, Store, TableStore } from "./Store.js"
import type { ColumnDefinition, TableDefinition } from "./TableSchema.js"

/**
 * What the Web API needs to answer: the data, the token verifier, the org's identity and
 * the figures it advertises.
 *
 * @since 0.1.0
 */
export interface WebApiContext {
  readonly store: Store
  readonly identity: Identity
  /** The org root without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  readonly orgUrl: () => string
  readonly organizationId: string
  readonly businessUnitId: string
  /** Entra object id → systemuserid of the users the org knows. */
  readonly users: ReadonlyMap<string, string>
  /** The `x-ms-dop-hint` every response carries. */
  readonly dopHint: number
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number
  readonly counters: WebApiCounters
}

/**
 * Counters that tests and benchmarks read.
 *
 * @since 0.1.0
 */
export interface WebApiCounters {
  requests: number
  recordsWritten: number
  errors: number
}

const apiPrefix = /^\/api\/data\/v9\.[0-2]\//
const maxPageSize = 5000

interface Prefer {
  readonly maxPageSize: number | undefined
  readonly returnRepresentation: boolean
  readonly annotations: boolean
}

const parsePrefer = (header: string | undefined): Prefer => {
  let pageSize: number | undefined
  let returnRepresentation = false
  let annotations = false
  for (const raw of (header ?? "").split(",")) {
    const part = raw.trim()
    const [name, value] = part.split("=", 2).map((s) => s.trim())
    if (name === "odata.maxpagesize" && value !== undefined && /^\d+$/.test(value)) pageSize = Number(value)
    else if (name === "return" && value === "representation") returnRepresentation = true
    else if (name === "odata.include-annotations") annotations = true
  }
  return { maxPageSize: pageSize, returnRepresentation, annotations }
}

interface Reply {
  readonly status: number
  readonly body?: unknown
  readonly headers?: Record<string, string>
}

/**
 * Builds the Web API's `HttpApp`.
 *
 * @since 0.1.0
 */
export const makeApp = (context: WebApiContext) => {
  const webApiUrl = () => `${context.orgUrl()}/api/data/v9.2/`

  const respond = (requestId: string, reply: Reply): HttpServerResponse.HttpServerResponse => {
    const headers: Record<string, string> = {
      "OData-Version": "4.0",
      "REQ_ID": requestId,
      "x-ms-service-request-id": requestId,
      "x-ms-dop-hint": String(context.dopHint),
      ...reply.headers
    }
    if (reply.body === undefined) return HttpServerResponse.empty({ status: reply.status, headers })
    return HttpServerResponse.text(JSON.stringify(reply.body), {
      status: reply.status,
      headers,
      contentType: "application/json; odata.metadata=minimal"
    })
  }

  const fail = (fault: Fault): Reply => ({
    status: fault.status,
    body: { error: { code: fault.code, message: fault.message } },
    headers: { ...fault.headers }
  })

  const readJson = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.map(
      Effect.either(request.text),
      (text): unknown => {
        if (text._tag === "Left") return badRequest("The request body could not be read.")
        if (Buffer.byteLength(text.right) > context.maxBodyBytes) {
          return new Fault(413, "", `The request body exceeds the limit of ${context.maxBodyBytes} bytes.`)
        }
        try {
          return JSON.parse(text.right) as unknown
        } catch (error) {
          return badRequest(`Error parsing the request body as JSON: ${(error as Error).message}`)
        }
      }
    )

  const whoAmI = (token: VerifiedToken): Reply => {
    const userId = context.users.get(token.objectId)
    if (userId === undefined) {
      return fail(
        new Fault(403, codes.privilege, `The user with object id ${token.objectId} is not a user of this organization.`)
      )
    }
    return {
      status: 200,
      body: {
        "@odata.context": `${webApiUrl()}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`,
        BusinessUnitId: context.businessUnitId,
        UserId: userId,
        OrganizationId: context.organizationId
      }
    }
  }

  const entityDefinition = (segment: PathSegment, query: URLSearchParams): Reply => {
    const key = segment.key
    const logicalName = key?._tag === "Named" && key.parts.length === 1 && key.parts[0]![0] === "LogicalName"
      ? key.parts[0]![1].value
      : undefined
    if (logicalName === undefined) {
      return fail(badRequest("Address table definitions as EntityDefinitions(LogicalName='<name>')."))
    }
    const table = context.store.table(logicalName)
    if (table === undefined) {
      return fail(new Fault(404, codes.notFound, `Could not find entity with name '${logicalName}'.`))
    }
    const d = table.definition
    const full: Record<string, unknown> = {
      MetadataId: metadataId(d),
      LogicalName: d.logicalName,
      SchemaName: d.schemaName,
      EntitySetName: d.entitySetName,
      LogicalCollectionName: d.entitySetName,
      PrimaryIdAttribute: d.primaryIdAttribute,
      PrimaryNameAttribute: d.primaryNameAttribute,
      ObjectTypeCode: d.objectTypeCode,
      TableType: d.tableType,
      IsCustomEntity: d.logicalName.includes("_")
    }
    const select = query.get("$select")?.split(",").map((s) => s.trim()).filter((s) => s !== "")
    const body: Record<string, unknown> = {
      "@odata.context": `${webApiUrl()}$metadata#EntityDefinitions(${select?.join(",") ?? ""})/$entity`
    }
    for (const [name, value] of Object.entries(full)) {
      if (select === undefined || select.includes(name) || name === "MetadataId") body[name] = value
    }
    for (const name of select ?? []) {
      if (!(name in full)) {
        return fail(
          new Fault(
            400,
            codes.segmentNotFound,
            `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.`
          )
        )
      }
    }
    return { status: 200, body }
  }

  const resolveSelect = (
    definition: TableDefinition,
    query: URLSearchParams
  ): ReadonlyArray<ColumnDefinition> | Fault | undefined => {
    const raw = query.get("$select")
    if (raw === null || raw.trim() === "") return undefined
    const columns = columnsOf(definition)
    const selected: Array<ColumnDefinition> = []
    for (const name of raw.split(",").map((s) => s.trim())) {
      if (name === definition.primaryIdAttribute) continue
      const lookup = /^_(.+)_value$/.exec(name)
      const column = columns.get(lookup !== null ? lookup[1]! : name)
      if (column === undefined || (lookup !== null && column.targets === undefined)) {
        return new Fault(
          400,
          codes.segmentNotFound,
          `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.${definition.logicalName}'.`
        )
      }
      selected.push(column)
    }
    return selected
  }

  const unsupportedOptions = ["$filter", "$orderby", "$expand", "$count", "$apply", "fetchXml", "$skip"]

  const query = (table: TableStore, search: URLSearchParams, prefer: Prefer): Reply => {
    const definition = table.definition
    for (const option of unsupportedOptions) {
      if (search.has(option)) {
        return fail(badRequest(
          option === "$skip"
            ? "The query parameter $skip is not supported."
            : `The query option '${option}' is not available in this version of the emulator.`
        ))
      }
    }
    const select = resolveSelect(definition, search)
    if (select instanceof Fault) return fail(select)
    const topText = search.get("$top")
    const top = topText === null ? undefined : Number(topText)
    if (top !== undefined && (!Number.isInteger(top) || top < 0)) {
      return fail(
        badRequest(
          `Invalid value '${topText}' for $top query option found. The $top query option requires a non-negative integer value.`
        )
      )
    }
    // As on the service: $top is ignored when a page size is asked for; page sizes above 5,000 are ignored.
    const askedPageSize =
      prefer.maxPageSize !== undefined && prefer.maxPageSize > 0 && prefer.maxPageSize <= maxPageSize
        ? prefer.maxPageSize
        : undefined
    const limit = askedPageSize === undefined ? top : undefined
    const cookie = readSkipToken(search.get("$skiptoken"))
    if (cookie instanceof Fault) return fail(cookie)
    const remaining = limit === undefined ? Infinity : limit - cookie.returned
    const pageSize = Math.min(askedPageSize ?? maxPageSize, remaining)
    const page = pageSize <= 0 ? { records: [], more: false } : table.page(cookie.seq, pageSize)
    const value = page.records.map((record) => present(definition, record, select, prefer.annotations))
    const selectList = select === undefined
      ? ""
      : [definition.primaryIdAttribute, ...select.map((c) => c.targets ? `_${c.logicalName}_value` : c.logicalName)]
        .join(",")
    const body: Record<string, unknown> = {
      "@odata.context": `${webApiUrl()}$metadata#${definition.entitySetName}(${selectList})`,
      value
    }
    const returned = cookie.returned + page.records.length
    if (page.more && returned < (limit ?? Infinity) && page.records.length > 0) {
      const next = new URLSearchParams(search)
      next.set("$skiptoken", writeSkipToken(cookie.page + 1, page.records[page.records.length - 1]!.seq, returned))
      body["@odata.nextLink"] = `${webApiUrl()}${definition.entitySetName}?${encodeQuery(next)}`
    }
    const applied = [
      ...(askedPageSize !== undefined ? [`odata.maxpagesize=${askedPageSize}`] : []),
      ...(prefer.annotations ? ["odata.include-annotations=\"*\""] : [])
    ]
    return { status: 200, body, headers: applied.length > 0 ? { "Preference-Applied": applied.join(",") } : {} }
  }

  const retrieve = (table: TableStore, segment: PathSegment, search: URLSearchParams, prefer: Prefer): Reply => {
    const record = findByKey(table, segment.key!)
    if (record instanceof Fault) return fail(record)
    const select = resolveSelect(table.definition, search)
    if (select instanceof Fault) return fail(select)
    return {
      status: 200,
      body: {
        "@odata.context": `${webApiUrl()}$metadata#${table.definition.entitySetName}/$entity`,
        ...present(table.definition, record, select, prefer.annotations)
      }
    }
  }

  const insert = (table: TableStore, records: ReadonlyArray<PreparedRecord>): Fault | undefined => {
    const conflict = checkInsertable(table, records)
    if (conflict !== undefined) return conflict
    table.insertAll(records)
    context.counters.recordsWritten += records.length
    return undefined
  }

  const create = (table: TableStore, body: unknown, prefer: Prefer): Reply => {
    const prepared = prepareCreate(context.store, table, body, now())
    if (prepared instanceof Fault) return fail(prepared)
    const fault = insert(table, [prepared])
    if (fault !== undefined) return fail(fault)
    const entityId = `${webApiUrl()}${table.definition.entitySetName}(${prepared.id})`
    if (prefer.returnRepresentation) {
      return {
        status: 201,
        body: {
          "@odata.context": `${webApiUrl()}$metadata#${table.definition.entitySetName}/$entity`,
          ...present(table.definition, table.get(prepared.id)!, undefined, prefer.annotations)
        },
        headers: { "OData-EntityId": entityId, "Location": entityId, "Preference-Applied": "return=representation" }
      }
    }
    return { status: 204, headers: { "OData-EntityId": entityId } }
  }

  const createMultiple = (table: TableStore, body: unknown): Reply => {
    const targets = typeof body === "object" && body !== null && !Array.isArray(body)
      ? (body as { Targets?: unknown }).Targets
      : undefined
    if (!Array.isArray(targets)) {
      return fail(badRequest("The parameter 'Targets' of 'CreateMultiple' is missing or is not a collection."))
    }
    const stamp = now()
    const prepared: Array<PreparedRecord> = []
    for (let i = 0; i < targets.length; i++) {
      const target: unknown = targets[i]
      if (typeof target !== "object" || target === null || !("@odata.type" in target)) {
        return fail(badRequest(`Targets[${i}]: every target of CreateMultiple must carry '@odata.type'.`))
      }
      const record = prepareCreate(context.store, table, target, stamp)
      // Standard tables are transactional: the first bad target fails the whole request.
      if (record instanceof Fault) return fail(record)
      prepared.push(record)
    }
    const fault = insert(table, prepared)
    if (fault !== undefined) return fail(fault)
    return {
      status: 200,
      body: {
        "@odata.context": `${webApiUrl()}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse`,
        Ids: prepared.map((record) => record.id)
      }
    }
  }

  const route = (
    request: HttpServerRequest.HttpServerRequest,
    token: VerifiedToken,
    segments: ReadonlyArray<PathSegment>,
    search: URLSearchParams,
    rawPath: string
  ): Effect.Effect<Reply> => {
    const method = request.method
    const prefer = parsePrefer(request.headers["prefer"])
    const [first, second] = segments
    if (first === undefined) return Effect.succeed(fail(segmentNotFound("")))
    if (first.name === "WhoAmI" && segments.length === 1 && first.key === undefined) {
      // WhoAmI is a function: only GET finds it.
      return Effect.succeed(method === "GET" ? whoAmI(token) : fail(segmentNotFound("WhoAmI")))
    }
    if (first.name === "EntityDefinitions" && segments.length === 1 && first.key !== undefined) {
      return Effect.succeed(
        method === "GET" ? entityDefinition(first, search) : fail(methodNotAllowed(method, rawPath))
      )
    }
    const table = context.store.entitySet(first.name)
    if (table === undefined) return Effect.succeed(fail(segmentNotFound(first.name)))
    if (segments.length === 1 && first.key === undefined) {
      if (method === "GET") return Effect.succeed(query(table, search, prefer))
      if (method === "POST") return withBody(request, (body) => create(table, body, prefer))
      return Effect.succeed(fail(methodNotAllowed(method, rawPath)))
    }
    if (segments.length === 1 && first.key !== undefined) {
      if (method === "GET") return Effect.succeed(retrieve(table, first, search, prefer))
      return Effect.succeed(fail(methodNotAllowed(method, rawPath)))
    }
    if (segments.length === 2 && first.key === undefined && second?.key === undefined) {
      if (second!.name === "Microsoft.Dynamics.CRM.CreateMultiple" && table.definition.messages.createMultiple) {
        return method === "POST"
          ? withBody(request, (body) => createMultiple(table, body))
          : Effect.succeed(fail(methodNotAllowed(method, rawPath)))
      }
    }
    const unknown = segments.length > 1 ? segments[1]!.name : first.name
    return Effect.succeed(fail(segmentNotFound(unknown)))
  }

  const withBody = (request: HttpServerRequest.HttpServerRequest, handle: (body: unknown) => Reply) =>
    Effect.map(readJson(request), (body) => (body instanceof Fault ? fail(body) : handle(body)))

  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const requestId = randomUUID()
    context.counters.requests++
    const url = new URL(request.url, "http://emulator")
    if (!apiPrefix.test(url.pathname)) {
      context.counters.errors++
      return respond(requestId, fail(segmentNotFound(url.pathname)))
    }
    const token = yield* Effect.promise(() =>
      context.identity.verify(request.headers["authorization"], context.orgUrl())
    )
    if (typeof token === "string") {
      context.counters.errors++
      return respond(
        requestId,
        fail(
          unauthorized(
            `${token} bearer token`,
            `https://login.microsoftonline.com/${context.identity.tenantId}/oauth2/authorize`
          )
        )
      )
    }
    const rawPath = url.pathname.replace(apiPrefix, "")
    let decoded: string
    try {
      decoded = decodeURIComponent(rawPath)
    } catch {
      context.counters.errors++
      return respond(requestId, fail(badRequest(`The request URL '${rawPath}' is not validly encoded.`)))
    }
    const segments = parsePath(decoded)
    const reply = segments instanceof Fault
      ? fail(segments)
      : yield* route(request, token, segments, url.searchParams, rawPath)
    if (reply.status >= 400) context.counters.errors++
    return respond(requestId, reply)
  })
}

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z")

const metadataIds = new WeakMap<TableDefinition, string>()
const metadataId = (definition: TableDefinition): string => {
  let id = metadataIds.get(definition)
  if (id === undefined) {
    id = randomUUID()
    metadataIds.set(definition, id)
  }
  return id
}

/**
 * Skip tokens look like the service's: a `<cookie>` whose `pagingcookie` attribute is URL-encoded
 * twice. Clients must treat them as opaque and follow `@odata.nextLink` verbatim.
 */
const writeSkipToken = (pageNumber: number, lastSeq: number, returned: number): string => {
  const inner = `<cookie page="${pageNumber - 1}" last="${lastSeq}" returned="${returned}" />`
  return `<cookie pagenumber="${pageNumber}" pagingcookie="${
    encodeURIComponent(encodeURIComponent(inner))
  }" istracking="False" />`
}

const readSkipToken = (token: string | null): { page: number; seq: number; returned: number } | Fault => {
  if (token === null) return { page: 1, seq: 0, returned: 0 }
  const pageNumber = /pagenumber="(\d+)"/.exec(token)
  const cookie = /pagingcookie="([^"]*)"/.exec(token)
  if (pageNumber === null || cookie === null) return badRequest("The $skiptoken is not valid.")
  let inner: string
  try {
    inner = decodeURIComponent(decodeURIComponent(cookie[1]!))
  } catch {
    return badRequest("The $skiptoken is not valid.")
  }
  const last = /last="(\d+)"/.exec(inner)
  const returned = /returned="(\d+)"/.exec(inner)
  if (last === null || returned === null) return badRequest("The $skiptoken is not valid.")
  return { page: Number(pageNumber[1]), seq: Number(last[1]), returned: Number(returned[1]) }
}

/** Query strings with OData's `$` left readable, as the service writes them. */
const encodeQuery = (params: URLSearchParams): string =>
  [...params].map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join("&")

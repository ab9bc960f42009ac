/**
 * The Web API itself: an `HttpApp` answering `{org}/api/data/v9.x/...` as Dataverse does, on top
 * of a `Store` and an `Identity`.
 *
 * Requests are handled in two steps: the HTTP layer reads the body and verifies the token
 * (asynchronous), then `handle` answers synchronously, so that a request's reads and writes
 * happen in one turn of the event loop, and `$batch` runs its parts through the same `handle`.
 *
 * @since 0.1.0
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import type { EmulatorCounters } from "../Emulator.js"
import type { Identity, VerifiedToken } from "../Identity.js"
import { latencyMs } from "../Model.js"
import type { LookupValue, Store, TableStore } from "../Store.js"
import { parseBatch, runBatch } from "./batch.js"
import { type BulkMessage, bulkMessages, runBulkMessage } from "./bulk.js"
import { makeBulkDelete } from "./bulkDelete.js"
import { writeCsdl } from "./csdl.js"
import { projection } from "./expand.js"
import { badRequest, Fault, methodNotAllowed, recordNotFound, segmentNotFound, unauthorized } from "./fault.js"
import { makeFunctions } from "./functions.js"
import { entityDefinitions, sdkMessageFilters } from "./metadata.js"
import { parsePath, type PathSegment } from "./odataPath.js"
import { createRecord, deleteRecord, etagOf, writeRecord } from "./operations.js"
import { parsePrefer, type Prefer, queryRelated, queryTable } from "./query.js"
import { findByKey, resolveKey } from "./records.js"
import { faultReply, type Reply } from "./reply.js"
import { ReadLag, sessionToken } from "./session.js"
import type { ServiceModel } from "./throttle.js"

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
  /** Limits, latency, web servers and faults. */
  readonly model: ServiceModel
  /** The identity endpoint's authority, named in 401 challenges; Entra's when none runs. */
  readonly authority: () => string
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number
  readonly counters: EmulatorCounters
}

/**
 * One request to the Web API, as `handle` takes it: from HTTP, or from a part of a `$batch`.
 *
 * @since 0.1.0
 */
export interface ApiRequest {
  readonly method: string
  /** Path and query after the version root, not decoded: `contacts(…)?$select=a`. */
  readonly target: string
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly body: string
  readonly token: VerifiedToken
}

const apiPrefix = /^\/api\/data\/v9\.[0-2]\//

/**
 * The synchronous request handler, for a context whose org URL is known.
 *
 * @since 0.1.0
 */
export const makeHandler = (context: WebApiContext) => {
  const webApiUrl = () => `${context.orgUrl()}/api/data/v9.2/`
  // One string per second, shared by every record written in it: a million records carry two dates each.
  let stampSecond = -1
  let stamp = ""
  const now = () => {
    const second = Math.floor(context.store.now() / 1000)
    if (second !== stampSecond) {
      stampSecond = second
      stamp = new Date(second * 1000).toISOString().replace(/\.\d{3}Z$/, "Z")
    }
    return stamp
  }

  const parseBody = (request: ApiRequest): unknown => {
    if (Buffer.byteLength(request.body) > context.maxBodyBytes) {
      return new Fault(413, "", `The request body exceeds the limit of ${context.maxBodyBytes} bytes.`)
    }
    if (request.body.trim() === "") return badRequest("The request has no body.")
    try {
      return JSON.parse(request.body) as unknown
    } catch (error) {
      return badRequest(`Error parsing the request body as JSON: ${(error as Error).message}`)
    }
  }

  // The caller as a lookup to its systemuser, one object per user (shared by every record it writes).
  const callers = new Map<string, LookupValue>()
  const callerOf = (token: VerifiedToken): LookupValue | undefined => {
    const userId = context.users.get(token.objectId)
    if (userId === undefined) return undefined
    let lookup = callers.get(userId)
    if (lookup === undefined) {
      lookup = { table: "systemuser", id: userId }
      callers.set(userId, lookup)
    }
    return lookup
  }

  const functions = makeFunctions({
    store: context.store,
    webApiUrl,
    organizationId: context.organizationId,
    businessUnitId: context.businessUnitId,
    users: context.users
  })

  const bulkDelete = makeBulkDelete(context.store, now)

  // Elastic tables: session tokens on writes, and reads that may lag behind without one.
  const readLag = new ReadLag(context.model.profile.elasticReadLagMs, () => context.store.now())
  const elastic = (table: TableStore) => table.definition.tableType === "Elastic"
  const visibleTo = (table: TableStore, request: ApiRequest) =>
    elastic(table) ? readLag.visibility(request.headers["mscrm.sessiontoken"]) : undefined
  /**
   * A successful write to an elastic table answers with the session token of the store after it.
   * Not a single-record DELETE: Microsoft documents that it returns none (a known issue).
   */
  const withSessionToken = (table: TableStore, reply: Reply): Reply =>
    !elastic(table) || reply.status >= 400
      ? reply
      : { ...reply, headers: { ...reply.headers, "x-ms-session-token": sessionToken(context.store.lastSeq) } }

  const entityUrl = (table: TableStore, id: string) => `${webApiUrl()}${table.definition.entitySetName}(${id})`

  const represent = (
    table: TableStore,
    id: string,
    prefer: Prefer,
    search: URLSearchParams,
    status: number,
    headers: Record<string, string>
  ): Reply => {
    const projected = projection(context.store, table.definition, search, prefer.annotations, webApiUrl())
    if (projected instanceof Fault) return faultReply(projected)
    const record = table.get(id)!
    return {
      status,
      body: { "@odata.context": projected.contextUrl(true), ...projected.present(record) },
      headers: { ...headers, "Preference-Applied": "return=representation", "ETag": etagOf(record) }
    }
  }

  const create = (table: TableStore, request: ApiRequest, prefer: Prefer, search: URLSearchParams): Reply => {
    const body = parseBody(request)
    if (body instanceof Fault) return faultReply(body)
    const record = createRecord(context.store, table, body, now, callerOf(request.token))
    if (record instanceof Fault) return faultReply(record)
    const headers = { "OData-EntityId": entityUrl(table, record.id) }
    if (prefer.returnRepresentation) {
      return represent(table, record.id, prefer, search, 201, { ...headers, Location: headers["OData-EntityId"] })
    }
    return { status: 204, headers }
  }

  /** `PATCH` on a record URL: upsert, or create-only / update-only by `If-None-Match` / `If-Match`. */
  const patch = (
    table: TableStore,
    segment: PathSegment,
    request: ApiRequest,
    prefer: Prefer,
    search: URLSearchParams
  ): Reply => {
    const body = parseBody(request)
    if (body instanceof Fault) return faultReply(body)
    const target = resolveKey(table, segment.key!, search.get("partitionId") ?? undefined)
    if (target instanceof Fault) return faultReply(target)
    const ifMatch = request.headers["if-match"]?.trim()
    const ifNoneMatch = request.headers["if-none-match"]?.trim()
    const written = writeRecord(
      context.store,
      table,
      target,
      body,
      {
        mode: ifNoneMatch === "*" ? "createOnly" : ifMatch !== undefined ? "updateOnly" : "upsert",
        // An upsert on an elastic table replaces the whole record.
        replace: table.definition.tableType === "Elastic" && ifMatch === undefined,
        ifMatch
      },
      now,
      callerOf(request.token)
    )
    if (written instanceof Fault) return faultReply(written)
    const headers = { "OData-EntityId": entityUrl(table, written.record.id) }
    if (prefer.returnRepresentation) {
      return represent(table, written.record.id, prefer, search, written.created ? 201 : 200, headers)
    }
    return { status: 204, headers }
  }

  const retrieve = (
    table: TableStore,
    segment: PathSegment,
    prefer: Prefer,
    search: URLSearchParams,
    request: ApiRequest
  ): Reply => {
    const record = findByKey(table, segment.key!, search.get("partitionId") ?? undefined)
    if (record instanceof Fault) return faultReply(record)
    const visible = visibleTo(table, request)
    if (visible !== undefined && !visible(record)) {
      return faultReply(recordNotFound(table.definition.logicalName, record.id))
    }
    if (request.headers["if-none-match"]?.trim() === etagOf(record)) return { status: 304 }
    const projected = projection(context.store, table.definition, search, prefer.annotations, webApiUrl())
    if (projected instanceof Fault) return faultReply(projected)
    return {
      status: 200,
      body: { "@odata.context": projected.contextUrl(true), ...projected.present(record) },
      headers: { ETag: etagOf(record) }
    }
  }

  const remove = (table: TableStore, segment: PathSegment, search: URLSearchParams, request: ApiRequest): Reply => {
    const target = resolveKey(table, segment.key!, search.get("partitionId") ?? undefined)
    if (target instanceof Fault) return faultReply(target)
    const ifMatch = request.headers["if-match"]?.trim()
    if (
      target.existing !== undefined && ifMatch !== undefined && ifMatch !== "*" && ifMatch !== etagOf(target.existing)
    ) {
      return faultReply(
        new Fault(
          412,
          "0x80060882",
          "The version of the existing record doesn't match the RowVersion property provided."
        )
      )
    }
    const deleted = deleteRecord(table, target)
    return deleted instanceof Fault ? faultReply(deleted) : { status: 204 }
  }

  const bulkMessageOf = (segment: PathSegment | undefined): BulkMessage | undefined => {
    const name = segment?.name.replace(/^Microsoft\.Dynamics\.CRM\./, "")
    return bulkMessages.find((message) => message === name)
  }

  const supports = (table: TableStore, message: BulkMessage): boolean => {
    const messages = table.definition.messages
    switch (message) {
      case "CreateMultiple":
        return messages.createMultiple
      case "UpdateMultiple":
        return messages.updateMultiple
      case "UpsertMultiple":
        return messages.upsertMultiple
      case "DeleteMultiple":
        // Bound to every table that has the other messages; standard tables answer that it is not implemented.
        return messages.deleteMultiple || messages.createMultiple
    }
  }

  const route = (
    request: ApiRequest,
    segments: ReadonlyArray<PathSegment>,
    search: URLSearchParams,
    path: string
  ): Reply => {
    const method = request.method
    const prefer = parsePrefer(request.headers["prefer"])
    const [first, second] = segments
    if (first === undefined) return faultReply(segmentNotFound(""))
    if (first.name === "$batch" && segments.length === 1) {
      if (method !== "POST") return faultReply(methodNotAllowed(method, path))
      const items = parseBatch(request.body, request.headers["content-type"])
      if (items instanceof Fault) return faultReply(items)
      return runBatch(
        context.store,
        items,
        (partMethod, target, headers, body) =>
          dispatch({ method: partMethod, target, headers, body, token: request.token }),
        prefer.continueOnError,
        webApiUrl()
      )
    }
    // Functions (`WhoAmI()`, `systemusers(<id>)/Microsoft.Dynamics.CRM.RetrievePrincipalAccess(...)`): only GET finds them.
    const called = functions.call(method, segments, search, request.token)
    if (called !== undefined) return called
    if (first.name === "$metadata" && segments.length === 1 && first.key === undefined) {
      // The CSDL document of the schema (Web API Service Documents, "CSDL $metadata document").
      return method === "GET"
        ? {
          status: 200,
          body: writeCsdl(context.store.tables.map((table) => table.definition)),
          contentType: "application/xml"
        }
        : faultReply(methodNotAllowed(method, path))
    }
    if (first.name === "EntityDefinitions") {
      return method === "GET"
        ? entityDefinitions(context.store, segments, search, webApiUrl())
        : faultReply(methodNotAllowed(method, path))
    }
    if ((first.name === "BulkDelete" || first.name === "Microsoft.Dynamics.CRM.BulkDelete") && segments.length === 1) {
      if (method !== "POST") return faultReply(segmentNotFound(first.name))
      const body = parseBody(request)
      return body instanceof Fault ? faultReply(body) : bulkDelete.start(body, webApiUrl())
    }
    if (first.name === "asyncoperations" && segments.length === 1 && first.key?._tag === "Single") {
      if (method !== "GET") return faultReply(methodNotAllowed(method, path))
      const select = search.get("$select")?.split(",").map((s) => s.trim())
      return bulkDelete.retrieve(first.key.value.value, select, webApiUrl())
    }
    if (first.name === "sdkmessagefilters" && segments.length === 1 && first.key === undefined) {
      return method === "GET"
        ? sdkMessageFilters(context.store, search, webApiUrl())
        : faultReply(methodNotAllowed(method, path))
    }
    const table = context.store.entitySet(first.name)
    if (table === undefined) return faultReply(segmentNotFound(first.name))
    if (segments.length === 1 && first.key === undefined) {
      if (method === "GET") {
        return queryTable(context.store, table, search, prefer, webApiUrl(), false, visibleTo(table, request))
      }
      if (method === "POST") return withSessionToken(table, create(table, request, prefer, search))
      return faultReply(methodNotAllowed(method, path))
    }
    if (segments.length === 1 && first.key !== undefined) {
      if (method === "GET") return retrieve(table, first, prefer, search, request)
      if (method === "PATCH") return withSessionToken(table, patch(table, first, request, prefer, search))
      if (method === "DELETE") return remove(table, first, search, request)
      return faultReply(methodNotAllowed(method, path))
    }
    if (
      segments.length === 2 && first.key !== undefined && second!.key === undefined && method === "GET" &&
      !second!.name.includes(".")
    ) {
      // A record's related records: the URL an expanded collection's `@odata.nextLink` names.
      const record = findByKey(table, first.key, search.get("partitionId") ?? undefined)
      if (record instanceof Fault) return faultReply(record)
      return queryRelated(context.store, table, record, second!.name, search, prefer, webApiUrl(), false)
    }
    if (segments.length === 2 && first.key === undefined && second!.key === undefined) {
      if (second!.name === "$count") {
        return method === "GET"
          ? queryTable(context.store, table, search, prefer, webApiUrl(), true, visibleTo(table, request))
          : faultReply(methodNotAllowed(method, path))
      }
      const message = bulkMessageOf(second)
      if (message !== undefined && supports(table, message)) {
        if (method !== "POST") return faultReply(methodNotAllowed(method, path))
        const body = parseBody(request)
        if (body instanceof Fault) return faultReply(body)
        return withSessionToken(
          table,
          runBulkMessage(context.store, table, message, body, {
            annotations: prefer.annotations,
            now,
            webApiUrl: webApiUrl(),
            by: callerOf(request.token)
          })
        )
      }
    }
    // An action not bound to this table is unknown to the OData layer, as on the service.
    return faultReply(segmentNotFound(segments.length > 1 ? segments[1]!.name : first.name))
  }

  /** Answers one request (or one part of a batch). */
  const dispatch = (request: ApiRequest): Reply => {
    const queryAt = request.target.indexOf("?")
    const rawPath = queryAt < 0 ? request.target : request.target.slice(0, queryAt)
    const search = new URLSearchParams(queryAt < 0 ? "" : request.target.slice(queryAt + 1))
    let decoded: string
    try {
      decoded = decodeURIComponent(rawPath)
    } catch {
      return faultReply(badRequest(`The request URL '${rawPath}' is not validly encoded.`))
    }
    const segments = parsePath(decoded)
    if (segments instanceof Fault) return faultReply(segments)
    return route(request, segments, search, rawPath)
  }

  /** Answers one request from outside, counting the records it wrote. */
  const handle = (request: ApiRequest): Reply => {
    const before = context.store.writes
    const sequence = context.store.lastSeq
    const reply = dispatch(request)
    context.counters.recordsWritten += context.store.writes - before
    // Every record the request created is at least this new (for the elastic read lag).
    if (context.store.lastSeq > sequence) readLag.wrote(sequence + 1)
    return reply
  }

  return { handle, webApiUrl }
}

/**
 * Builds the Web API's `HttpApp`: token check, then the performance model (web server by
 * affinity cookie, service protection limits, injected faults, latency), then `handle`.
 *
 * @since 0.1.0
 */
export const makeApp = (context: WebApiContext) => {
  const { handle } = makeHandler(context)
  const model = context.model
  const secureCookies = () => context.orgUrl().startsWith("https:")

  const respond = (
    requestId: string,
    reply: Reply,
    extraHeaders: Readonly<Record<string, string>> = {},
    server?: number
  ): HttpServerResponse.HttpServerResponse => {
    if (reply.status >= 400) context.counters.errors++
    const headers: Record<string, string> = {
      "OData-Version": "4.0",
      "REQ_ID": requestId,
      "x-ms-service-request-id": requestId,
      "x-ms-dop-hint": String(model.profile.dopHint),
      ...extraHeaders,
      ...reply.headers
    }
    let response = reply.body === undefined
      ? HttpServerResponse.empty({ status: reply.status, headers })
      : typeof reply.body === "string"
      ? HttpServerResponse.text(reply.body, {
        status: reply.status,
        headers,
        contentType: reply.contentType ?? "text/plain"
      })
      : HttpServerResponse.text(JSON.stringify(reply.body), {
        status: reply.status,
        headers,
        contentType: "application/json; odata.metadata=minimal"
      })
    if (server !== undefined) {
      // The load balancer's affinity cookies (documented; their values are opaque): a client that
      // sends them back sticks to this server, when the profile's balancer honours them.
      const token = model.affinityCookie(server)
      response = HttpServerResponse.unsafeSetCookies(response, [
        ["ARRAffinity", token, { path: "/", httpOnly: true, secure: secureCookies() }],
        ["ARRAffinitySameSite", token, {
          path: "/",
          httpOnly: true,
          secure: secureCookies(),
          sameSite: secureCookies() ? "none" : "lax"
        }]
      ])
    }
    return response
  }

  const resetConnection = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.sync(() => NodeHttpServerRequest.toIncomingMessage(request).socket.destroy())

  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const requestId = randomUUID()
    context.counters.requests++
    const url = new URL(request.url, "http://emulator")
    if (!apiPrefix.test(url.pathname)) return respond(requestId, faultReply(segmentNotFound(url.pathname)))
    const token = yield* Effect.promise(() =>
      context.identity.verify(request.headers["authorization"], context.orgUrl())
    )
    if (typeof token === "string") {
      return respond(
        requestId,
        faultReply(
          unauthorized(
            `${token} bearer token`,
            `${context.authority()}/oauth2/authorize`
          )
        )
      )
    }
    const server = model.pickServer(request.cookies["ARRAffinity"])
    const admission = model.admit(token.objectId, server)
    const admittedAt = yield* Clock.currentTimeMillis
    if (admission._tag === "Throttled") {
      return respond(requestId, faultReply(admission.fault), model.rateLimitHeaders(token.objectId, server), server)
    }
    // However the request ends (a client that hangs up mid-upload interrupts the body read), its
    // slot is freed; on the normal path it was already released with its execution time.
    return yield* Effect.gen(function*() {
      const fault = model.drawFault(server)
      if (fault === "throttle" || fault === "unavailable" || fault === "resetBeforeCommit") {
        admission.release(0)
        if (fault === "resetBeforeCommit") {
          yield* resetConnection(request)
          return HttpServerResponse.empty({ status: 500 })
        }
        return respond(
          requestId,
          faultReply(
            fault === "throttle"
              ? model.injectedThrottle(server)
              : new Fault(503, "", "The service is temporarily unavailable. Try again later.")
          ),
          {},
          server
        )
      }
      const declaredLength = Number(request.headers["content-length"] ?? 0)
      if (declaredLength > context.maxBodyBytes) {
        // Refused before reading: a huge body must not cost the server its memory.
        admission.release(0)
        return respond(
          requestId,
          faultReply(
            new Fault(
              413,
              "",
              `The request body of ${declaredLength} bytes exceeds the limit of ${context.maxBodyBytes} bytes.`
            )
          ),
          {},
          server
        )
      }
      const body = request.method === "GET" || request.method === "DELETE"
        ? ""
        : yield* Effect.orElseSucceed(request.text, () => "")
      const reply = handle({
        method: request.method,
        target: url.pathname.replace(apiPrefix, "") + url.search,
        headers: request.headers,
        body,
        token
      })
      // The request holds its slot for as long as the model says it runs, counted from its
      // admission (so the emulator's own reading, parsing and storing are not added on top),
      // then counts that time.
      const executionMs = latencyMs(model.profile, reply.work ?? { records: 0, operations: 1 }) * admission.slowdown *
        model.jitterFactor()
      admission.charge(executionMs)
      const holdMs = executionMs - ((yield* Clock.currentTimeMillis) - admittedAt)
      if (holdMs > 0) {
        yield* Effect.sleep(holdMs).pipe(
          Effect.onInterrupt(() => Effect.sync(() => admission.release(executionMs)))
        )
      }
      admission.release(executionMs)
      if (fault === "resetAfterCommit") {
        yield* resetConnection(request)
        return HttpServerResponse.empty({ status: 500 })
      }
      if (fault === "timeout") {
        yield* Effect.sleep(model.profile.faults.timeoutMs)
        yield* resetConnection(request)
        return HttpServerResponse.empty({ status: 504 })
      }
      return respond(requestId, reply, model.rateLimitHeaders(token.objectId, server), server)
    }).pipe(Effect.ensuring(Effect.sync(() => admission.release(0))))
  }).pipe(
    // A bug of the emulator still answers as the service does to its own: a 500 with the error
    // body of 0x80040216 (UnExpected, "An unexpected error occurred.", in Microsoft's list of web
    // service error codes), never an empty body. Logged, so that the bug is seen.
    Effect.catchAllDefect((defect) =>
      Effect.as(
        Effect.logError("the emulator failed on a request", defect),
        respond(randomUUID(), faultReply(new Fault(500, "0x80040216", "An unexpected error occurred.")))
      )
    )
  )
}

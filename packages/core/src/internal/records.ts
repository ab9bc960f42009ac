/**
 * Single-record operations (`Records`): the record's address from its key and the table's
 * metadata, then one request each.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { DataverseClient, type DataverseClientService } from "../DataverseClient.js"
import { DataverseError } from "../DataverseError.js"
import type { TableMetadata } from "../Metadata.js"
import type { DeleteOptions, RecordRef, RetrieveOptions, Row, UpdateOptions, UpsertOptions } from "../Records.js"
import * as annotations from "./annotations.js"
import { invalid } from "./invalidInput.js"
import { keySegment, kindsOf } from "./keys.js"
import { bindName } from "./metadataAccess.js"
import { badExpand, expandClause, normaliseGuid, quote, recordIdOf, withQuery } from "./odata.js"
import { bodyJson } from "./requestBody.js"
import { validateRow } from "./validate.js"

/** `Records.idFromEntityUrl`. */
export const idFromEntityUrl = (url: string | undefined): string | undefined =>
  url === undefined ? undefined : recordIdOf(url)

/** `<entityset>(<key>)` for a record of a table whose metadata is known. */
const recordPath = (metadata: TableMetadata, ref: RecordRef, partitionId: string | undefined) =>
  Either.match(
    keySegment(ref, {
      primaryIdAttribute: metadata.primaryIdAttribute,
      partitionId,
      kindOf: kindsOf(metadata)
    }),
    {
      onLeft: (message) => Effect.fail(invalid(`${metadata.logicalName}: ${message}`)),
      onRight: (segment) => Effect.succeed(`${metadata.entitySetName}${segment}`)
    }
  )

/** The connection, the table's metadata and the record's path, `<entityset>(<key>)`. */
const recordAt = (table: string, ref: RecordRef, partitionId: string | undefined) =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const path = yield* recordPath(metadata, ref, partitionId)
    return { client, metadata, path }
  })

/** A row as a request body: without the annotations read back with a record. */
const body = (row: Row): Row => annotations.withoutReadAnnotations(row)

/**
 * The request body of a write, its plain column values checked against the table's metadata as
 * the bulk engine checks each row (one rule, `validateRow`): a value that cannot be right fails
 * here, naming the column and the closest names, before anything is sent.
 */
const checkedBody = (
  client: DataverseClientService,
  metadata: TableMetadata,
  row: Row,
  isCreate: boolean
): Effect.Effect<Row, DataverseError> => {
  const written = body(row)
  // A single write may also create related records (deep insert: an object or an array under a
  // navigation property) and bind collection-valued ones, which the metadata as read does not
  // list: only plain column values are checked.
  const plain: Record<string, unknown> = {}
  for (const name in written) {
    const value = written[name]
    if (name.includes("@") || (typeof value === "object" && value !== null && !(value instanceof Date))) continue
    plain[name] = value
  }
  // Metadata without columns (not readable by this identity) checks nothing, as queries do.
  const problemIn = (table: TableMetadata) =>
    table.columns.length === 0 ? undefined : validateRow(table, plain, isCreate)
  if (problemIn(metadata) === undefined) return Effect.succeed(written)
  // The metadata is kept for the connection's life: a column or a choice added since, or a length
  // raised, is read again once before the write is refused.
  return client.invalidateMetadata(metadata.logicalName).pipe(
    Effect.zipRight(client.table(metadata.logicalName)),
    Effect.flatMap((fresh) => {
      const problem = problemIn(fresh)
      return problem === undefined
        ? Effect.succeed(written)
        : Effect.fail(new DataverseError({ reason: "Validation", message: problem }))
    })
  )
}

/** `Records.create`. */
export const create = (table: string, row: Row): Effect.Effect<string, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const written = yield* checkedBody(client, metadata, row, true)
    const result = yield* client.executeJson(
      HttpClientRequest.post(metadata.entitySetName).pipe(bodyJson(written)),
      { idempotent: typeof row[metadata.primaryIdAttribute] === "string" }
    )
    const id = idFromEntityUrl(result.headers["odata-entityid"] ?? result.headers["location"])
    if (id === undefined) {
      return yield* new DataverseError({
        reason: "Decode",
        message: `The create of a ${table} answered ${result.status} without an OData-EntityId header.`
      })
    }
    return id
  })

/** `Records.retrieve`. */
export const retrieve = (
  table: string,
  ref: RecordRef,
  options: RetrieveOptions = {}
): Effect.Effect<Row, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const badName = options.expand === undefined ? undefined : badExpand(options.expand)
    if (badName !== undefined) return yield* invalid(`'${badName}' is not a property name.`)
    const { client, metadata, path } = yield* recordAt(table, ref, options.partitionId)
    const params: Array<readonly [string, string]> = []
    if (options.select !== undefined && options.select.length > 0) params.push(["$select", options.select.join(",")])
    if (options.expand !== undefined && options.expand.length > 0) {
      params.push(["$expand", expandClause(options.expand)])
    }
    const result = yield* client.executeJson(HttpClientRequest.get(withQuery(path, params)))
    if (typeof result.body !== "object" || result.body === null) {
      return yield* new DataverseError({
        reason: "Decode",
        message: `The retrieve of a ${metadata.logicalName} answered without a record.`
      })
    }
    return result.body as Row
  })

/** `Records.update`. */
export const update = (
  table: string,
  ref: RecordRef,
  row: Row,
  options: UpdateOptions = {}
): Effect.Effect<void, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const { client, metadata, path } = yield* recordAt(table, ref, options.partitionId)
    const written = yield* checkedBody(client, metadata, row, false)
    yield* client.executeJson(
      HttpClientRequest.patch(path).pipe(
        HttpClientRequest.setHeader("If-Match", options.etag ?? "*"),
        bodyJson(written)
      ),
      // The same values again change nothing; but after a version-checked update that landed, a
      // retry would fail its own precondition: report the ambiguity instead.
      { idempotent: options.etag === undefined }
    )
  })

/** `Records.upsert`. */
export const upsert = (
  table: string,
  ref: RecordRef,
  row: Row,
  options: UpsertOptions = {}
): Effect.Effect<Option.Option<string>, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const { client, metadata, path } = yield* recordAt(table, ref, options.partitionId)
    const mode = options.mode ?? "upsert"
    // A create-only upsert creates: the columns a create requires are required. By alternate key,
    // some are in the URL (as the key's own types, not the body's): the service judges those.
    const written = yield* checkedBody(client, metadata, row, mode === "createOnly" && typeof ref !== "object")
    const request = HttpClientRequest.patch(path).pipe(bodyJson(written))
    const result = yield* client.executeJson(
      mode === "createOnly"
        ? HttpClientRequest.setHeader(request, "If-None-Match", "*")
        : mode === "updateOnly"
        ? HttpClientRequest.setHeader(request, "If-Match", "*")
        : request,
      { idempotent: true }
    )
    const id = idFromEntityUrl(result.headers["odata-entityid"] ?? result.headers["location"]) ??
      (typeof ref === "string" ? normaliseGuid(ref) : undefined)
    return Option.fromNullable(id)
  })

/** `Records.delete`. */
export const deleteRecord = (
  table: string,
  ref: RecordRef,
  options: DeleteOptions = {}
): Effect.Effect<boolean, DataverseError, DataverseClient> =>
  Effect.flatMap(recordAt(table, ref, options.partitionId), ({ client, path }) => {
    const request = HttpClientRequest.del(path)
    return client.executeJson(
      options.etag === undefined ? request : HttpClientRequest.setHeader(request, "If-Match", options.etag),
      { idempotent: true }
    ).pipe(
      Effect.as(true),
      Effect.catchIf(
        (error) => error.reason === "NotFound" && options.ifMissing === "ignore",
        () => Effect.succeed(false)
      )
    )
  })

/** `Records.bind`; with `partitionId`, an elastic record's (`t(tid=<id>,partitionid='p')`). */
export const bind = (target: string | TableMetadata, ref: RecordRef, partitionId?: string): string => {
  const entitySet = typeof target === "string" ? target : target.entitySetName
  const segment = keySegment(
    ref,
    typeof target === "string"
      ? { partitionId }
      : { primaryIdAttribute: target.primaryIdAttribute, partitionId, kindOf: kindsOf(target) }
  )
  if (Either.isRight(segment)) return `/${entitySet}${segment.right}`
  // Written as given: the service names what is wrong when the row is sent.
  const written = typeof ref === "string"
    ? encodeURIComponent(ref)
    : Object.entries(ref).map(([name, value]) =>
      `${encodeURIComponent(name)}=${encodeURIComponent(typeof value === "string" ? quote(value) : String(value))}`
    ).join(",")
  return `/${entitySet}(${written})`
}

/** `Records.lookup`. */
export const lookup = (
  table: string,
  column: string,
  target: string,
  ref: RecordRef
): Effect.Effect<Readonly<Record<string, string>>, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const [referencing, referenced] = yield* Effect.all([client.table(table), client.table(target)], {
      concurrency: "unbounded"
    })
    const property = yield* bindName(referencing, column, referenced.logicalName)
    const segment = keySegment(ref, {
      primaryIdAttribute: referenced.primaryIdAttribute,
      kindOf: kindsOf(referenced)
    })
    if (Either.isLeft(segment)) return yield* invalid(`${referenced.logicalName}: ${segment.left}`)
    return { [property]: `/${referenced.entitySetName}${segment.right}` }
  })

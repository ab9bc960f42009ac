/**
 * OData queries: the query string of `QueryOptions`, the rows as a `Stream` that follows
 * `@odata.nextLink`, and `/$count`. What FetchXML paging shares with them (the page size check,
 * the `value` array of a page) is here too.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { DataverseClient } from "../DataverseClient.js"
import { DataverseError } from "../DataverseError.js"
import type { QueryOptions } from "../Query.js"
import type { Row } from "../Records.js"
import { cutOffError } from "./clientErrors.js"
import { invalid } from "./invalidInput.js"
import { expandClause, expandProblem, parseRawQuery, withQuery } from "./odata.js"
import { queryColumnsProblem } from "./validate.js"

/** Fails unless `pageSize` is absent or a whole number from 1 to 5,000. */
export const checkPageSize = (pageSize: number | undefined) =>
  pageSize !== undefined && (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 5000)
    ? Effect.fail(invalid(`pageSize must be between 1 and 5000, got ${pageSize}.`))
    : Effect.void

/** `Query.toQueryString`. */
export const toQueryString = (options: QueryOptions): Either.Either<string, DataverseError> =>
  Either.map(queryParams(options), (params) => withQuery("", params).replace(/^\?/, ""))

const queryParams = (options: QueryOptions): Either.Either<Array<readonly [string, string]>, DataverseError> => {
  if (options.top !== undefined && (!Number.isInteger(options.top) || options.top < 0)) {
    return Either.left(invalid(`top must be a whole number of rows, got ${options.top}.`))
  }
  if (options.query !== undefined) {
    const mixed = (["select", "filter", "orderBy", "top", "expand"] as const).filter((name) =>
      options[name] !== undefined
    )
    if (mixed.length > 0) {
      return Either.left(invalid(`A raw query cannot be combined with ${mixed.join(", ")}: put them in the query.`))
    }
    const params = parseRawQuery(options.query)
    const bad = params.find(([name]) => !/^(\$[a-z]+|[A-Za-z][A-Za-z0-9_]*)$/.test(name))
    return bad === undefined
      ? Either.right(params)
      : Either.left(invalid(`'${bad[0]}' is not a query option (expected $select, $filter, ...).`))
  }
  const params: Array<readonly [string, string]> = []
  if (options.select !== undefined && options.select.length > 0) params.push(["$select", options.select.join(",")])
  if (options.filter !== undefined && options.filter.trim() !== "") params.push(["$filter", options.filter])
  if (options.orderBy !== undefined && options.orderBy.trim() !== "") params.push(["$orderby", options.orderBy])
  if (options.expand !== undefined && options.expand.length > 0) {
    const problem = expandProblem(options.expand)
    if (problem !== undefined) return Either.left(invalid(problem))
    params.push(["$expand", expandClause(options.expand)])
  }
  // The service ignores $top when a page size is asked for; `stream` enforces it either way.
  if (options.top !== undefined && options.pageSize === undefined) params.push(["$top", String(options.top)])
  return Either.right(params)
}

/** The limit a query asks for: `top`, or `$top` in a raw query. */
const limitOf = (options: QueryOptions, params: ReadonlyArray<readonly [string, string]>): number | undefined => {
  if (options.top !== undefined) return options.top
  const raw = params.find(([name]) => name === "$top")?.[1]
  const top = raw === undefined ? NaN : Number(raw)
  return Number.isInteger(top) && top >= 0 ? top : undefined
}

/** The rows of a page: its `value` array; a page without one fails with reason `Decode`. */
export const valueOf = (entitySet: string, body: unknown) => {
  const b = body as { value?: unknown } | undefined
  return Array.isArray(b?.value)
    ? Effect.succeed(b.value as Array<Row>)
    : Effect.fail(
      new DataverseError({ reason: "Decode", message: `The query of ${entitySet} answered without a 'value' array.` })
    )
}

/** `Query.stream`. */
export const stream = (
  table: string,
  options: QueryOptions | string = {}
): Stream.Stream<Row, DataverseError, DataverseClient> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const opts: QueryOptions = typeof options === "string" ? { query: options } : options
      yield* checkPageSize(opts.pageSize)
      const params = yield* queryParams(opts)
      const top = limitOf(opts, params)
      const client = yield* DataverseClient
      const metadata = yield* client.table(table)
      // Checked before the first request: a misspelt column gets the closest names the table has.
      const problem = metadata.columns.length === 0 ? undefined : queryColumnsProblem(metadata, params)
      if (problem !== undefined) return yield* invalid(problem)
      const prefer = [
        ...(opts.pageSize !== undefined ? [`odata.maxpagesize=${opts.pageSize}`] : []),
        ...(opts.annotations === true ? ["odata.include-annotations=\"*\""] : [])
      ].join(",")
      const headers = { ...opts.headers, ...(prefer === "" ? {} : { Prefer: prefer }) }
      const page = (url: string) =>
        client.executeJson(HttpClientRequest.get(url, { headers })).pipe(
          Effect.flatMap(({ body }) =>
            Effect.map(valueOf(metadata.entitySetName, body), (rows) => {
              const next = (body as { "@odata.nextLink"?: unknown })["@odata.nextLink"]
              return [
                Chunk.unsafeFromArray(rows),
                typeof next === "string" ? Option.some(next) : Option.none()
              ] as const
            })
          )
        )
      const rows = Stream.paginateChunkEffect(withQuery(metadata.entitySetName, params), page)
      return top === undefined ? rows : Stream.take(rows, top)
    })
  )

/** `Query.count`. */
export const count = (table: string, filter?: string): Effect.Effect<number, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const url = withQuery(
      `${metadata.entitySetName}/$count`,
      filter === undefined || filter.trim() === "" ? [] : [["$filter", filter]]
    )
    // Plain text, possibly with a byte-order mark: read it as text, not as JSON.
    const text = yield* Effect.scoped(
      Effect.flatMap(
        client.execute(HttpClientRequest.get(url)),
        (response) =>
          Effect.mapError(response.text, (cause) => cutOffError(`GET ${metadata.entitySetName}/$count`, cause))
      )
    ).pipe(Effect.retry(client.retryPolicy))
    const value = Number(text.replace(/^\uFEFF/, "").trim())
    if (!Number.isSafeInteger(value) || value < 0) {
      return yield* new DataverseError({
        reason: "Decode",
        message: `The count of ${metadata.entitySetName} answered '${text.slice(0, 40)}', not a number.`
      })
    }
    return value
  })

/**
 * Queries as lazily paging `Stream`s: a page is fetched only when the consumer wants more rows,
 * following `@odata.nextLink` verbatim, so memory stays flat however many rows there are.
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { DataverseClient } from "./DataverseClient.js"
import { DataverseError } from "./DataverseError.js"
import type { Row } from "./Records.js"

/**
 * OData query options.
 *
 * @since 0.1.0
 */
export interface QueryOptions {
  /** Columns to return (`$select`); all when omitted (slow on wide tables). */
  readonly select?: ReadonlyArray<string>
  /** An OData `$filter` expression. */
  readonly filter?: string
  /** An OData `$orderby` expression. */
  readonly orderBy?: string
  /** At most this many rows in all. */
  readonly top?: number
  /** Rows per page (`Prefer: odata.maxpagesize`), 1 to 5,000. The service's default is 5,000. */
  readonly pageSize?: number
  /** Ask for formatted values and lookup annotations (`Prefer: odata.include-annotations="*"`). */
  readonly annotations?: boolean
}

const invalid = (message: string) => new DataverseError({ reason: "InvalidInput", message })

/**
 * The rows of a table that match `options`, page by page.
 *
 * `top` is sent as `$top` and also enforced here: the service ignores `$top` when a page size
 * is asked for, and paging stops as soon as enough rows arrived.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Query } from "@dv-effect/core"
 * const emails = Query.stream("contact", { select: ["emailaddress1"], pageSize: 1000 }).pipe(
 *   Stream.map((row) => row.emailaddress1),
 *   Stream.runCollect
 * )
 * ```
 *
 * @since 0.1.0
 */
export const stream = (
  table: string,
  options: QueryOptions = {}
): Stream.Stream<Row, DataverseError, DataverseClient> =>
  Stream.unwrap(
    Effect.gen(function*() {
      if (options.top !== undefined && (!Number.isInteger(options.top) || options.top < 0)) {
        return yield* invalid(`top must be a whole number of rows, got ${options.top}.`)
      }
      if (
        options.pageSize !== undefined &&
        (!Number.isInteger(options.pageSize) || options.pageSize < 1 || options.pageSize > 5000)
      ) {
        return yield* invalid(`pageSize must be between 1 and 5000, got ${options.pageSize}.`)
      }
      const client = yield* DataverseClient
      const metadata = yield* client.table(table)
      const params: Record<string, string> = {}
      if (options.select !== undefined && options.select.length > 0) params.$select = options.select.join(",")
      if (options.filter !== undefined) params.$filter = options.filter
      if (options.orderBy !== undefined) params.$orderby = options.orderBy
      if (options.top !== undefined && options.pageSize === undefined) params.$top = String(options.top)
      const prefer = [
        ...(options.pageSize !== undefined ? [`odata.maxpagesize=${options.pageSize}`] : []),
        ...(options.annotations === true ? ["odata.include-annotations=\"*\""] : [])
      ].join(",")
      const page = (request: HttpClientRequest.HttpClientRequest) =>
        client.executeJson(prefer === "" ? request : HttpClientRequest.setHeader(request, "Prefer", prefer)).pipe(
          Effect.flatMap(({ body }) => {
            const b = body as { value?: unknown; "@odata.nextLink"?: unknown } | undefined
            if (!Array.isArray(b?.value)) {
              return Effect.fail(
                new DataverseError({
                  reason: "Decode",
                  message: `The query of ${metadata.entitySetName} answered without a 'value' array.`
                })
              )
            }
            const next = typeof b["@odata.nextLink"] === "string" ? Option.some(b["@odata.nextLink"]) : Option.none()
            return Effect.succeed([Chunk.unsafeFromArray(b.value as Array<Row>), next] as const)
          })
        )
      const first = HttpClientRequest.get(metadata.entitySetName, { urlParams: params })
      const rows = Stream.paginateChunkEffect(first, (request) =>
        page(request).pipe(
          Effect.map(([chunk, next]) => [chunk, Option.map(next, (url) => HttpClientRequest.get(url))] as const)
        ))
      return options.top === undefined ? rows : Stream.take(rows, options.top)
    })
  )

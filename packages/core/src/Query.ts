/**
 * Queries as lazily paging `Stream`s: a page is fetched only when the consumer wants more rows,
 * so memory stays flat however many rows there are. OData queries (built from options, with
 * filter helpers, or written raw) follow `@odata.nextLink` verbatim; FetchXML pages with the
 * service's paging cookie. `count` asks `/$count`.
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { DataverseClient } from "./DataverseClient.js"
import { DataverseError } from "./DataverseError.js"
import { fetchAttributes, readPagingCookie, setFetchAttributes } from "./internal/fetchXml.js"
import { expandClause, expandProblem, normaliseGuid, parseRawQuery, quote, withQuery } from "./internal/odata.js"
import type { Row } from "./Records.js"

/**
 * A navigation property to expand, optionally with the columns of the related records to
 * return: `"primarycontactid"` or `{ property: "primarycontactid", select: ["fullname"] }`.
 * A collection-valued one (the records whose lookup points here) also takes `filter`,
 * `orderBy` and `top`; either takes a nested `expand`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * const parent: Query.ExpandItem = { property: "parentcustomerid_account", select: ["name"] }
 * const contacts: Query.ExpandItem = {
 *   property: "contact_customer_accounts",
 *   select: ["fullname"],
 *   filter: Query.eq("statecode", 0),
 *   orderBy: "fullname asc",
 *   top: 10
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type ExpandItem = string | {
  readonly property: string
  readonly select?: ReadonlyArray<string>
  readonly filter?: string
  readonly orderBy?: string
  readonly top?: number
  readonly expand?: ReadonlyArray<ExpandItem>
}

/**
 * OData query options.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * const options: Query.QueryOptions = {
 *   select: ["fullname", "emailaddress1"],
 *   filter: Query.and(Query.eq("address1_city", "Paris"), Query.contains("emailaddress1", "@example.com")),
 *   orderBy: "lastname asc",
 *   expand: [{ property: "parentcustomerid_account", select: ["name"] }],
 *   pageSize: 500
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface QueryOptions {
  /** Columns to return (`$select`); all when omitted (slow on wide tables). */
  readonly select?: ReadonlyArray<string>
  /** An OData `$filter` expression (see `eq`, `and`, `contains`, ...). */
  readonly filter?: string
  /** An OData `$orderby` expression. */
  readonly orderBy?: string
  /** At most this many rows in all. */
  readonly top?: number
  /**
   * Navigation properties whose related records come along (`$expand`): a single-valued one
   * (a lookup) as an object or null, a collection-valued one as an array (at most 5,000 per
   * record, not paged).
   */
  readonly expand?: ReadonlyArray<ExpandItem>
  /**
   * A raw OData query string instead of the options above: `$select=fullname&$filter=...`, as in
   * a URL (encoded or not). A `$top` in it is enforced like `top`.
   */
  readonly query?: string
  /** Rows per page (`Prefer: odata.maxpagesize`), 1 to 5,000. The service's default is 5,000. */
  readonly pageSize?: number
  /** Ask for formatted values and lookup annotations (`Prefer: odata.include-annotations="*"`). */
  readonly annotations?: boolean
  /**
   * Headers of every page's request: `MSCRM.SessionToken` to read your own writes to an elastic
   * table, `Consistency: Strong`, ...
   */
  readonly headers?: Readonly<Record<string, string>>
}

const invalid = (message: string) => new DataverseError({ reason: "InvalidInput", message })

const checkPageSize = (pageSize: number | undefined) =>
  pageSize !== undefined && (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 5000)
    ? Effect.fail(invalid(`pageSize must be between 1 and 5000, got ${pageSize}.`))
    : Effect.void

/**
 * The query string (without `?`) that `stream` sends for `options`; spaces are `%20`.
 * `pageSize` and `annotations` travel in the `Prefer` header, not here. Left: what is wrong with
 * the options.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.toQueryString({ select: ["fullname"], filter: Query.eq("lastname", "O'Hara"), top: 5 })
 * // Either.right("$select=fullname&$filter=lastname%20eq%20'O''Hara'&$top=5")
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
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

const valueOf = (entitySet: string, body: unknown) => {
  const b = body as { value?: unknown } | undefined
  return Array.isArray(b?.value)
    ? Effect.succeed(b.value as Array<Row>)
    : Effect.fail(
      new DataverseError({ reason: "Decode", message: `The query of ${entitySet} answered without a 'value' array.` })
    )
}

/**
 * The rows of a table that match `options` (or a raw OData query string), page by page.
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
 * const raw = Query.stream("contact", "$select=fullname&$filter=startswith(lastname,'Lo')")
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
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

/**
 * Options of `fetchXml`.
 *
 * @example
 * ```ts
 * import type { Query } from "@dv-effect/core"
 * const options: Query.FetchXmlOptions = { pageSize: 500 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface FetchXmlOptions {
  /** Rows per page (`count` on `<fetch>`), 1 to 5,000. Default: the query's own `count`, else the service's 5,000. */
  readonly pageSize?: number
  /** Ask for formatted values and lookup annotations too (`Prefer: odata.include-annotations="*"`). */
  readonly annotations?: boolean
}

const pagingAnnotations =
  "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\""

/**
 * The rows a FetchXML query returns, page by page (`GET <set>?fetchXml=...`). While the service
 * says `@Microsoft.Dynamics.CRM.morerecords`, the next page is asked for with the paging cookie
 * it returned (`paging-cookie` and `page` on `<fetch>`); cookies of the current and of the older
 * format (the whole element URL-encoded) are both read. A query with `top` is one page. FetchXML
 * results leave out null columns.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { Query } from "@dv-effect/core"
 * const rows = Query.fetchXml(
 *   "contact",
 *   `<fetch><entity name="contact"><attribute name="fullname" />
 *     <filter><condition attribute="address1_city" operator="eq" value="Paris" /></filter>
 *   </entity></fetch>`,
 *   { pageSize: 1000 }
 * ).pipe(Stream.runCollect)
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const fetchXml = (
  table: string,
  xml: string,
  options: FetchXmlOptions = {}
): Stream.Stream<Row, DataverseError, DataverseClient> =>
  Stream.unwrap(
    Effect.gen(function*() {
      yield* checkPageSize(options.pageSize)
      const attributes = fetchAttributes(xml)
      if (typeof attributes === "string") return yield* invalid(`Not a FetchXML query: ${attributes}`)
      const single = attributes.has("top")
      if (single && options.pageSize !== undefined) {
        return yield* invalid("A FetchXML query with 'top' is not paged: leave out pageSize, or 'top'.")
      }
      const firstPage = attributes.has("page") ? Number(attributes.get("page")) : 1
      if (!Number.isInteger(firstPage) || firstPage < 1) {
        return yield* invalid(
          `The 'page' of the FetchXML query must be a whole number from 1, got ${attributes.get("page")}.`
        )
      }
      const setAttributes = (values: Readonly<Record<string, string | undefined>>) => {
        const written = setFetchAttributes(xml, values)
        return typeof written === "string" ? Effect.succeed(written) : Effect.fail(invalid(written.error))
      }
      const first = options.pageSize === undefined ? xml : yield* setAttributes({ count: String(options.pageSize) })
      const client = yield* DataverseClient
      const metadata = yield* client.table(table)
      const prefer = options.annotations === true ? "odata.include-annotations=\"*\"" : pagingAnnotations
      const page = (state: { readonly xml: string; readonly page: number }) =>
        client.executeJson(
          HttpClientRequest.get(withQuery(metadata.entitySetName, [["fetchXml", state.xml]]), {
            headers: { Prefer: prefer }
          })
        ).pipe(
          Effect.flatMap(({ body }) =>
            Effect.flatMap(valueOf(metadata.entitySetName, body), (rows) => {
              const b = body as Record<string, unknown>
              const more = b["@Microsoft.Dynamics.CRM.morerecords"] === true ||
                b["@Microsoft.Dynamics.CRM.morerecords"] === "true"
              const chunk = Chunk.unsafeFromArray(rows)
              // An empty page that claims more would loop forever: stop.
              if (single || !more || rows.length === 0) return Effect.succeed([chunk, Option.none()] as const)
              const annotation = b["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
              // Without a readable cookie the service still pages by number (simple paging).
              const cookie = typeof annotation === "string" ? readPagingCookie(annotation)?.cookie : undefined
              const next = state.page + 1
              return Effect.map(
                setAttributes({
                  ...(options.pageSize === undefined ? {} : { count: String(options.pageSize) }),
                  page: String(next),
                  "paging-cookie": cookie
                }),
                (nextXml) => [chunk, Option.some({ xml: nextXml, page: next })] as const
              )
            })
          )
        )
      return Stream.paginateChunkEffect({ xml: first, page: firstPage }, page)
    })
  )

/**
 * How many rows of a table match `filter` (all rows without one): `GET <set>/$count`. The
 * service stops counting at 5,000, so 5,000 means "5,000 or more".
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * const inParis = Query.count("contact", Query.eq("address1_city", "Paris"))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
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
          Effect.mapError(response.text, (cause) =>
            new DataverseError({
              reason: "Transport",
              message: `The answer was cut off: ${cause.message}`,
              request: `GET ${metadata.entitySetName}/$count`,
              cause
            }))
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

// ---------------------------------------------------------------------------------------------
// Filter expressions

/**
 * A literal written as it is (see `guid` and `raw`), not quoted.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * const value: Query.RawLiteral = Query.raw("Microsoft.Dynamics.CRM.Today()")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RawLiteral {
  readonly _tag: "RawLiteral"
  readonly text: string
}

/**
 * A value in a filter: strings are quoted (`'` doubled), numbers and booleans bare, `null` is
 * `null`, a `Date` is an ISO timestamp; `guid(...)` and `raw(...)` are written as they are.
 *
 * @example
 * ```ts
 * import type { Query } from "@dv-effect/core"
 * const values: ReadonlyArray<Query.FilterValue> = ["Paris", 3, true, null, new Date()]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type FilterValue = string | number | bigint | boolean | null | Date | RawLiteral

/**
 * A GUID for a filter (bare, as Edm.Guid comparisons need): `_parentcustomerid_value eq <guid>`.
 * Not a GUID: written quoted, and the service says so.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * const mine = Query.eq("_parentcustomerid_value", Query.guid("5d1d2f3e-6a1b-4c8d-9e0f-112233445566"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const guid = (id: string): RawLiteral => {
  const normal = normaliseGuid(id)
  return { _tag: "RawLiteral", text: normal ?? quote(id) }
}

/**
 * Any OData text, written as given (a function call, an enum value).
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * const recent = Query.ge("createdon", Query.raw("2024-01-01"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const raw = (text: string): RawLiteral => ({ _tag: "RawLiteral", text })

/**
 * A value as an OData literal.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.literal("O'Hara") // "'O''Hara'"
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const literal = (value: FilterValue): string => {
  if (value === null) return "null"
  if (typeof value === "string") return quote(value)
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "null"
  if (typeof value === "bigint" || typeof value === "boolean") return String(value)
  if (value instanceof Date) return value.toISOString()
  return value.text
}

const comparison = (operator: string) => (column: string, value: FilterValue): string =>
  `${column} ${operator} ${literal(value)}`

/**
 * `column eq value`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.eq("lastname", "Doe") // "lastname eq 'Doe'"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const eq: (column: string, value: FilterValue) => string = comparison("eq")

/**
 * `column ne value`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.ne("emailaddress1", null) // "emailaddress1 ne null"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const ne: (column: string, value: FilterValue) => string = comparison("ne")

/**
 * `column gt value`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.gt("creditlimit", 1000)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const gt: (column: string, value: FilterValue) => string = comparison("gt")

/**
 * `column ge value`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.ge("createdon", new Date("2024-01-01T00:00:00Z"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const ge: (column: string, value: FilterValue) => string = comparison("ge")

/**
 * `column lt value`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.lt("numberofemployees", 50)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const lt: (column: string, value: FilterValue) => string = comparison("lt")

/**
 * `column le value`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.le("numberofemployees", 50)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const le: (column: string, value: FilterValue) => string = comparison("le")

const join = (operator: string, filters: ReadonlyArray<string>) =>
  filters.length === 1 ? filters[0]! : filters.map((filter) => `(${filter})`).join(` ${operator} `)

/**
 * All of the filters: `(a) and (b)`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.and(Query.eq("lastname", "Doe"), Query.ne("emailaddress1", null))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const and = (first: string, ...rest: ReadonlyArray<string>): string => join("and", [first, ...rest])

/**
 * Any of the filters: `(a) or (b)`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.or(Query.eq("address1_city", "Paris"), Query.eq("address1_city", "Lyon"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const or = (first: string, ...rest: ReadonlyArray<string>): string => join("or", [first, ...rest])

/**
 * The negation of a filter: `not (a)`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.not(Query.contains("emailaddress1", "@example.com"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const not = (filter: string): string => `not (${filter})`

/**
 * `contains(column,'text')`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.contains("fullname", "ada")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const contains = (column: string, text: string): string => `contains(${column},${quote(text)})`

/**
 * `startswith(column,'text')`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.startsWith("lastname", "Lo")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const startsWith = (column: string, text: string): string => `startswith(${column},${quote(text)})`

/**
 * `endswith(column,'text')`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.endsWith("emailaddress1", "@example.com")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const endsWith = (column: string, text: string): string => `endswith(${column},${quote(text)})`

/**
 * The column's value is one of `values`:
 * `Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['<id>','<id>'])`.
 *
 * @example
 * ```ts
 * import { Query } from "@dv-effect/core"
 * Query.isIn("address1_city", ["Paris", "Lyon"])
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const isIn = (column: string, values: ReadonlyArray<string | number>): string =>
  `Microsoft.Dynamics.CRM.In(PropertyName=${quote(column)},PropertyValues=[${
    values.map((value) => quote(String(value))).join(",")
  }])`

/**
 * Queries as lazily paging `Stream`s: a page is fetched only when the consumer wants more rows,
 * so memory stays flat however many rows there are. OData queries (built from options, with
 * filter helpers, or written raw) follow `@odata.nextLink` verbatim; FetchXML pages with the
 * service's paging cookie. `count` asks `/$count`.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Stream from "effect/Stream"
import type { DataverseClient } from "./DataverseClient.js"
import type { DataverseError } from "./DataverseError.js"
import * as internal from "./internal/query.js"
import * as internalFetchXml from "./internal/queryFetchXml.js"
import * as internalFilter from "./internal/queryFilter.js"
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
  readonly select?: ReadonlyArray<string> | undefined
  readonly filter?: string | undefined
  readonly orderBy?: string | undefined
  readonly top?: number | undefined
  readonly expand?: ReadonlyArray<ExpandItem> | undefined
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
  /**
   * Columns to return (`$select`); all when omitted (slow on wide tables). A name the table does
   * not have (here or in `orderBy`) fails with `InvalidInput`, naming the closest, before any request.
   */
  readonly select?: ReadonlyArray<string> | undefined
  /** An OData `$filter` expression (see `eq`, `and`, `contains`, ...). */
  readonly filter?: string | undefined
  /** An OData `$orderby` expression. */
  readonly orderBy?: string | undefined
  /** At most this many rows in all. */
  readonly top?: number | undefined
  /**
   * Navigation properties whose related records come along (`$expand`): a single-valued one
   * (a lookup) as an object or null, a collection-valued one as an array (at most 5,000 per
   * record, not paged).
   */
  readonly expand?: ReadonlyArray<ExpandItem> | undefined
  /**
   * A raw OData query string instead of the options above: `$select=fullname&$filter=...`, as in
   * a URL (encoded or not). A `$top` in it is enforced like `top`.
   */
  readonly query?: string | undefined
  /** Rows per page (`Prefer: odata.maxpagesize`), 1 to 5,000. The service's default is 5,000. */
  readonly pageSize?: number | undefined
  /** Ask for formatted values and lookup annotations (`Prefer: odata.include-annotations="*"`). */
  readonly annotations?: boolean | undefined
  /**
   * Headers of every page's request: `MSCRM.SessionToken` to read your own writes to an elastic
   * table, `Consistency: Strong`, ...
   */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

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
export const toQueryString: (options: QueryOptions) => Either.Either<string, DataverseError> = internal.toQueryString

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
export const stream: (
  table: string,
  options?: QueryOptions | string
) => Stream.Stream<Row, DataverseError, DataverseClient> = internal.stream

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
  readonly pageSize?: number | undefined
  /** Ask for formatted values and lookup annotations too (`Prefer: odata.include-annotations="*"`). */
  readonly annotations?: boolean | undefined
}

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
export const fetchXml: (
  table: string,
  xml: string,
  options?: FetchXmlOptions
) => Stream.Stream<Row, DataverseError, DataverseClient> = internalFetchXml.fetchXml

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
export const count: (table: string, filter?: string) => Effect.Effect<number, DataverseError, DataverseClient> =
  internal.count

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
export const guid: (id: string) => RawLiteral = internalFilter.guid

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
export const raw: (text: string) => RawLiteral = internalFilter.raw

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
export const literal: (value: FilterValue) => string = internalFilter.literal

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
export const eq: (column: string, value: FilterValue) => string = internalFilter.eq

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
export const ne: (column: string, value: FilterValue) => string = internalFilter.ne

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
export const gt: (column: string, value: FilterValue) => string = internalFilter.gt

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
export const ge: (column: string, value: FilterValue) => string = internalFilter.ge

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
export const lt: (column: string, value: FilterValue) => string = internalFilter.lt

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
export const le: (column: string, value: FilterValue) => string = internalFilter.le

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
export const and: (first: string, ...rest: ReadonlyArray<string>) => string = internalFilter.and

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
export const or: (first: string, ...rest: ReadonlyArray<string>) => string = internalFilter.or

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
export const not: (filter: string) => string = internalFilter.not

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
export const contains: (column: string, text: string) => string = internalFilter.contains

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
export const startsWith: (column: string, text: string) => string = internalFilter.startsWith

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
export const endsWith: (column: string, text: string) => string = internalFilter.endsWith

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
export const isIn: (column: string, values: ReadonlyArray<string | number>) => string = internalFilter.isIn

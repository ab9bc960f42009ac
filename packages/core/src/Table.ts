/**
 * Typed tables: a table described with Effect `Schema` (its columns, primary key and alternate
 * keys), so that typed code sends checked records and receives decoded ones. Built on the
 * untyped API (`Records`, `Query`, `Bulk`), which stays.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Table } from "@dv-effect/core"
 *
 * const Contact = Table.make({
 *   logicalName: "contact",
 *   primaryKey: "contactid",
 *   fields: {
 *     contactid: Schema.optional(Schema.UUID),
 *     firstname: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.maxLength(50)))),
 *     lastname: Schema.String.pipe(Schema.maxLength(50)),
 *     creditlimit: Schema.optional(Schema.NullOr(Schema.Number))
 *   }
 * })
 * const id = Table.create(Contact, { lastname: "Lovelace" })
 * const people = Table.query(Contact, { filter: "creditlimit gt 1000" })   // Stream of typed contacts
 * ```
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as S from "effect/Schema"
import type * as Stream from "effect/Stream"
import type * as Bulk from "./Bulk.js"
import type { DataverseClient } from "./DataverseClient.js"
import type { DataverseError } from "./DataverseError.js"
import * as internal from "./internal/table.js"
import type * as Journal from "./Journal.js"
import type * as Query from "./Query.js"
import type * as Records from "./Records.js"

/**
 * A typed table: `A` is the record in code, `I` the record on the wire (column logical names).
 *
 * @since 0.1.0
 * @category models
 */
export interface Table<A, I> {
  readonly logicalName: string
  readonly schema: S.Schema<A, I>
  readonly primaryKey: string
  readonly alternateKeys: ReadonlyArray<ReadonlyArray<string>>
  /** The columns the schema names: what queries select. */
  readonly columns: ReadonlyArray<string>
}

/**
 * Describes a table by its fields (an Effect `Schema.Struct`'s fields, keyed by column logical
 * name; lookups as `_<column>_value` to read, `<nav>@odata.bind` to write).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <const Fields extends S.Struct.Fields>(options: {
  readonly logicalName: string
  readonly primaryKey: keyof Fields & string
  readonly alternateKeys?: ReadonlyArray<ReadonlyArray<keyof Fields & string>>
  readonly fields: Fields
}) => Table<S.Struct.Type<Fields>, S.Struct.Encoded<Fields>> = internal.make

/**
 * Checks and encodes a record for the wire; a record that does not fit the schema fails with
 * reason `InvalidInput` naming the column.
 *
 * @since 0.1.0
 * @category conversions
 */
export const encode: <A, I>(table: Table<A, I>, record: A) => Either.Either<Records.Row, DataverseError> =
  internal.encode

/**
 * Decodes a record read from the service; OData annotations and columns outside the schema are
 * ignored. A record that does not fit fails with reason `Decode` naming the column.
 *
 * @since 0.1.0
 * @category conversions
 */
export const decode: <A, I>(table: Table<A, I>, row: Records.Row) => Either.Either<A, DataverseError> = internal.decode

/**
 * Creates a record and returns its id.
 *
 * @since 0.1.0
 * @category accessors
 */
export const create: <A, I>(table: Table<A, I>, record: A) => Effect.Effect<string, DataverseError, DataverseClient> =
  internal.create

/**
 * Reads one record by id, decoded.
 *
 * @since 0.1.0
 * @category accessors
 */
export const retrieve: <A, I>(table: Table<A, I>, id: string) => Effect.Effect<A, DataverseError, DataverseClient> =
  internal.retrieve

/**
 * The table's records as a lazily paging `Stream` of decoded records; selects the schema's
 * columns unless `select` says otherwise.
 *
 * @since 0.1.0
 * @category accessors
 */
export const query: <A, I>(
  table: Table<A, I>,
  options?: Query.QueryOptions
) => Stream.Stream<A, DataverseError, DataverseClient> = internal.query

/**
 * Creates many records through the bulk engine; a record that does not fit the schema is
 * reported failed at its position and never sent.
 *
 * @since 0.1.0
 * @category accessors
 */
export const createMany: <A, I, E = never, R = never>(
  table: Table<A, I>,
  records: Iterable<A> | Stream.Stream<A, E, R>,
  options?: Bulk.BulkOptions
) => Stream.Stream<Bulk.RowOutcome, DataverseError | Journal.JournalError | E, DataverseClient | R> =
  internal.createMany

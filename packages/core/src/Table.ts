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
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as S from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Bulk from "./Bulk.js"
import type { DataverseClient } from "./DataverseClient.js"
import { DataverseError } from "./DataverseError.js"
import { mapInput } from "./internal/input.js"
import type * as Journal from "./Journal.js"
import * as Query from "./Query.js"
import * as Records from "./Records.js"

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
export const make = <const Fields extends S.Struct.Fields>(options: {
  readonly logicalName: string
  readonly primaryKey: keyof Fields & string
  readonly alternateKeys?: ReadonlyArray<ReadonlyArray<keyof Fields & string>>
  readonly fields: Fields
}): Table<S.Struct.Type<Fields>, S.Struct.Encoded<Fields>> => ({
  logicalName: options.logicalName,
  schema: S.Struct(options.fields) as unknown as S.Schema<S.Struct.Type<Fields>, S.Struct.Encoded<Fields>>,
  primaryKey: options.primaryKey,
  alternateKeys: options.alternateKeys ?? [],
  columns: Object.keys(options.fields).filter((name) => !name.includes("@"))
})

/** `path: message` of the first problem, for a one-line error. */
const describe = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return error.message
  const path = issue.path.map(String).join(".")
  return `${path === "" ? "" : `${path}: `}${issue.message.split("\n")[0]}`
}

/**
 * Checks and encodes a record for the wire; a record that does not fit the schema fails with
 * reason `InvalidInput` naming the column.
 *
 * @since 0.1.0
 * @category conversions
 */
export const encode = <A, I>(table: Table<A, I>, record: A): Either.Either<Records.Row, DataverseError> =>
  S.encodeEither(table.schema, { errors: "first" })(record).pipe(
    Either.map((encoded) => encoded as unknown as Records.Row),
    Either.mapLeft((error) =>
      new DataverseError({
        reason: "InvalidInput",
        message: `A ${table.logicalName} record does not fit its schema: ${describe(error)}`
      })
    )
  )

/**
 * Decodes a record read from the service; OData annotations and columns outside the schema are
 * ignored. A record that does not fit fails with reason `Decode` naming the column.
 *
 * @since 0.1.0
 * @category conversions
 */
export const decode = <A, I>(table: Table<A, I>, row: Records.Row): Either.Either<A, DataverseError> =>
  S.decodeUnknownEither(table.schema, { errors: "first", onExcessProperty: "ignore" })(row).pipe(
    Either.mapLeft((error) =>
      new DataverseError({
        reason: "Decode",
        message: `A ${table.logicalName} record read back does not fit its schema: ${describe(error)}`
      })
    )
  )

/**
 * Creates a record and returns its id.
 *
 * @since 0.1.0
 * @category accessors
 */
export const create = <A, I>(table: Table<A, I>, record: A): Effect.Effect<string, DataverseError, DataverseClient> =>
  Effect.flatMap(encode(table, record), (row) => Records.create(table.logicalName, row))

/**
 * Reads one record by id, decoded.
 *
 * @since 0.1.0
 * @category accessors
 */
export const retrieve = <A, I>(table: Table<A, I>, id: string): Effect.Effect<A, DataverseError, DataverseClient> =>
  Records.retrieve(table.logicalName, id, { select: table.columns }).pipe(Effect.flatMap((row) => decode(table, row)))

/**
 * The table's records as a lazily paging `Stream` of decoded records; selects the schema's
 * columns unless `select` says otherwise.
 *
 * @since 0.1.0
 * @category accessors
 */
export const query = <A, I>(
  table: Table<A, I>,
  options: Query.QueryOptions = {}
): Stream.Stream<A, DataverseError, DataverseClient> =>
  Query.stream(table.logicalName, { select: table.columns, ...options }).pipe(
    Stream.mapEffect((row) => decode(table, row))
  )

/**
 * Creates many records through the bulk engine; a record that does not fit the schema is
 * reported failed at its position and never sent.
 *
 * @since 0.1.0
 * @category accessors
 */
export const createMany = <A, I, E = never, R = never>(
  table: Table<A, I>,
  records: Iterable<A> | Stream.Stream<A, E, R>,
  options: Bulk.BulkOptions = {}
): Stream.Stream<Bulk.RowOutcome, DataverseError | Journal.JournalError | E, DataverseClient | R> => {
  const toInput = (record: A): Bulk.RowInput =>
    Either.match(encode(table, record), {
      onLeft: (error) => new Bulk.InvalidRow({ message: error.message }),
      onRight: (row) => row
    })
  return Bulk.createMany(table.logicalName, mapInput(records, toInput), options)
}

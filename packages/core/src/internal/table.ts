/**
 * Typed tables (`Table`): records checked and encoded by their schema on the way out, decoded on
 * the way in, over the untyped operations.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as S from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Bulk from "../Bulk.js"
import type { DataverseClient } from "../DataverseClient.js"
import { DataverseError } from "../DataverseError.js"
import type * as Journal from "../Journal.js"
import type { QueryOptions } from "../Query.js"
import type { Row } from "../Records.js"
import type { Table } from "../Table.js"
import { mapInput } from "./input.js"
import * as Query from "./query.js"
import * as Records from "./records.js"

/** `Table.make`. */
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

/** `Table.encode`. */
export const encode = <A, I>(table: Table<A, I>, record: A): Either.Either<Row, DataverseError> =>
  S.encodeEither(table.schema, { errors: "first" })(record).pipe(
    Either.map((encoded) => encoded as unknown as Row),
    Either.mapLeft((error) =>
      new DataverseError({
        reason: "InvalidInput",
        message: `A ${table.logicalName} record does not fit its schema: ${describe(error)}`
      })
    )
  )

/** `Table.decode`. */
export const decode = <A, I>(table: Table<A, I>, row: Row): Either.Either<A, DataverseError> =>
  S.decodeUnknownEither(table.schema, { errors: "first", onExcessProperty: "ignore" })(row).pipe(
    Either.mapLeft((error) =>
      new DataverseError({
        reason: "Decode",
        message: `A ${table.logicalName} record read back does not fit its schema: ${describe(error)}`
      })
    )
  )

/** `Table.create`. */
export const create = <A, I>(table: Table<A, I>, record: A): Effect.Effect<string, DataverseError, DataverseClient> =>
  Effect.flatMap(encode(table, record), (row) => Records.create(table.logicalName, row))

/** `Table.retrieve`. */
export const retrieve = <A, I>(table: Table<A, I>, id: string): Effect.Effect<A, DataverseError, DataverseClient> =>
  Records.retrieve(table.logicalName, id, { select: table.columns }).pipe(Effect.flatMap((row) => decode(table, row)))

/** `Table.query`. */
export const query = <A, I>(
  table: Table<A, I>,
  options: QueryOptions = {}
): Stream.Stream<A, DataverseError, DataverseClient> =>
  // `select: undefined` (as exactOptionalPropertyTypes now lets a caller write) keeps the table's columns.
  Query.stream(table.logicalName, { ...options, select: options.select ?? table.columns }).pipe(
    Stream.mapEffect((row) => decode(table, row))
  )

/** `Table.createMany`. */
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

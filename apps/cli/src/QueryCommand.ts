/**
 * `dv-effect query`: stream a table's rows out.
 *
 * @since 0.1.0
 */
import * as Query from "@dv-effect/core/Query"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Connection from "./Connection.js"
import { list } from "./Flags.js"
import * as Output from "./Output.js"

// ---------------------------------------------------------------------------------------------
// query

/**
 * The `query` command.
 *
 * @since 0.1.0
 */
export const queryCommand = Command.make(
  "query",
  {
    connection: Connection.options,
    table: Args.text({ name: "table" }).pipe(Args.withDescription("Table logical name, e.g. contact")),
    select: Options.text("select").pipe(Options.withDescription("Columns, comma-separated"), Options.optional),
    filter: Options.text("filter").pipe(Options.withDescription("OData $filter expression"), Options.optional),
    orderBy: Options.text("orderby").pipe(Options.withDescription("OData $orderby expression"), Options.optional),
    top: Options.integer("top").pipe(Options.withDescription("At most this many rows"), Options.optional),
    pageSize: Options.integer("page-size").pipe(
      Options.withDescription("Rows per page, 1 to 5000 (the service default is 5000)"),
      Options.optional
    ),
    output: Options.choice("output", ["jsonl", "json"]).pipe(
      Options.withAlias("o"),
      Options.withDescription("jsonl: one record per line; json: one array"),
      Options.withDefault("jsonl" as const)
    )
  },
  (args) =>
    Effect.gen(function*() {
      const rows = Query.stream(args.table, {
        ...Option.match(args.select, { onNone: () => ({}), onSome: (s) => ({ select: list(s) }) }),
        ...Option.match(args.filter, { onNone: () => ({}), onSome: (filter) => ({ filter }) }),
        ...Option.match(args.orderBy, { onNone: () => ({}), onSome: (orderBy) => ({ orderBy }) }),
        ...Option.match(args.top, { onNone: () => ({}), onSome: (top) => ({ top }) }),
        ...Option.match(args.pageSize, { onNone: () => ({}), onSome: (pageSize) => ({ pageSize }) })
      })
      const count = yield* Output.writeRecords(Stream.map(rows, Output.withoutAnnotations), args.output)
      yield* Effect.logDebug(`${count} rows written`)
    }).pipe(Effect.provide(Connection.layer(args.connection)))
).pipe(Command.withDescription("Stream the rows of a table to stdout as JSON lines or a JSON array"))

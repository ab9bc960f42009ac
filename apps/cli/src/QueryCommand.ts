/**
 * `dv-effect query`: stream a table's rows out, as JSON lines, one JSON array or CSV, to stdout or
 * to a file; or count them.
 *
 * @since 0.1.0
 */
import type { DataverseClient } from "@dv-effect/core/DataverseClient"
import type { DataverseError } from "@dv-effect/core/DataverseError"
import * as Metadata from "@dv-effect/core/Metadata"
import * as Query from "@dv-effect/core/Query"
import type { Row } from "@dv-effect/core/Records"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import { CliError } from "./CliError.js"
import * as Coerce from "./Coerce.js"
import * as Connection from "./Connection.js"
import { list } from "./Flags.js"
import * as Help from "./Help.js"
import * as Output from "./Output.js"

// ---------------------------------------------------------------------------------------------
// Helpers

/** The service stops counting at this many rows (`/$count`). */
const countLimit = 5000

/** The top-level items of an `$expand` value, split at commas outside parentheses and strings. */
const expandItems = (expand: string): Array<string> => {
  const items: Array<string> = []
  let depth = 0
  let current = ""
  let inString = false
  for (const c of expand) {
    if (c === "'") inString = !inString
    if (!inString && c === "(") depth++
    if (!inString && c === ")") depth--
    if (!inString && depth === 0 && c === ",") {
      items.push(current)
      current = ""
    } else current += c
  }
  items.push(current)
  return items.map((item) => item.trim()).filter((item) => item !== "")
}

/**
 * The top-level navigation properties of an `$expand` value:
 * `parentcustomerid_account($select=name),ownerid` → `["parentcustomerid_account", "ownerid"]`.
 *
 * @since 0.1.0
 */
export const expandedProperties = (expand: string): Array<string> =>
  expandItems(expand).map((item) => item.replace(/\(.*$/s, "").trim()).filter((name) => name !== "")

/**
 * The CSV columns of the records an `$expand` value brings along: `<navprop>.<column>` for each
 * nested `$select` column of a single-valued navigation property (one of `lookups`; a lookup
 * column as `_<name>_value`, as the Web API returns it), `<navprop>` (JSON text) for a
 * collection-valued one, nothing for a single-valued one without `$select` (its columns come
 * from the first page).
 *
 * @since 0.1.0
 */
export const expandedColumns = (expand: string, lookups: ReadonlySet<string>): Array<string> =>
  expandItems(expand).flatMap((item) => {
    const property = item.replace(/\(.*$/s, "").trim()
    if (!lookups.has(property)) return [property]
    const select = /[(;]\s*\$select=([^;)]*)/.exec(item)?.[1]
    return select === undefined ? [] : list(select).map((column) => `${property}.${column}`)
  })

/**
 * For CSV: the record of each expanded single-valued navigation property (an object) becomes
 * columns `<navprop>.<column>`; a null one, no columns (empty cells). Arrays stay (JSON text).
 *
 * @since 0.1.0
 */
export const flattenExpanded = (properties: ReadonlySet<string>) => (row: Row): Row => {
  if (!Object.keys(row).some((key) => properties.has(key))) return row
  const out: Record<string, unknown> = {}
  for (const key in row) {
    const value = row[key]
    if (!properties.has(key)) out[key] = value
    else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const column in value) out[`${key}.${column}`] = (value as Record<string, unknown>)[column]
    } else if (Array.isArray(value)) out[key] = value
  }
  return out
}

/**
 * A raw OData query string with every value percent-encoded, for options core's structured query
 * does not take as written (`$expand` with nested options).
 *
 * @since 0.1.0
 */
export const rawQuery = (params: ReadonlyArray<readonly [string, string | undefined]>): string =>
  params.flatMap(([name, value]) =>
    value === undefined || value.trim() === "" ? [] : [`${name}=${encodeURIComponent(value)}`]
  ).join("&")

/**
 * The table a FetchXML query reads (`<entity name="...">`), if it says.
 *
 * @since 0.1.0
 */
export const fetchXmlEntity = (xml: string): string | undefined =>
  /<entity\s[^>]*?\bname\s*=\s*["']([^"']+)["']/i.exec(xml)?.[1]

const xmlText = (text: string): string =>
  text.replace(/&(lt|gt|quot|apos|amp|#x[0-9a-fA-F]+|#\d+);/g, (_, entity: string) =>
    entity === "lt"
      ? "<"
      : entity === "gt"
      ? ">"
      : entity === "quot"
      ? "\""
      : entity === "apos"
      ? "'"
      : entity === "amp"
      ? "&"
      : String.fromCodePoint(entity.startsWith("#x") ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10)))

const xmlAttributes = (text: string): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const match of text.matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    out[match[1]!.toLowerCase()] = xmlText(match[2] ?? match[3] ?? "")
  }
  return out
}

/**
 * What a FetchXML query returns of its main entity: its `<attribute>`s (name, and alias when it
 * has one) in document order, or `all` for `<all-attributes/>` or no attribute element (the
 * service then returns every column); `<no-attrs/>` is none. Attributes of `<link-entity>`s are
 * not the main entity's and are not listed. Undefined when the text has no `<fetch><entity>`.
 *
 * @since 0.1.0
 */
export interface FetchXmlSelection {
  readonly attributes: ReadonlyArray<{ readonly name: string; readonly alias: string | undefined }> | "all"
  /** `aggregate="true"` or `distinct="true"` on `<fetch>`: the primary key is not returned unasked. */
  readonly grouped: boolean
}

/**
 * Reads the `FetchXmlSelection` of a FetchXML query.
 *
 * @since 0.1.0
 */
export const fetchXmlSelection = (xml: string): FetchXmlSelection | undefined => {
  const text = xml.replace(/<!--[\s\S]*?-->/g, "").replace(/<\?[\s\S]*?\?>/g, "")
  const stack: Array<string> = []
  let grouped = false
  let sawEntity = false
  let all = false
  let none = false
  const attributes: Array<{ readonly name: string; readonly alias: string | undefined }> = []
  for (const match of text.matchAll(/<(\/?)([A-Za-z_][\w.:-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g)) {
    const [, closing, tag, rest, selfClosing] = match
    const name = tag!.toLowerCase()
    if (closing === "/") {
      const at = stack.lastIndexOf(name)
      if (at >= 0) stack.length = at
      continue
    }
    const path = stack.join("/")
    const values = xmlAttributes(rest!)
    if (name === "fetch" && stack.length === 0) {
      grouped = values["aggregate"]?.toLowerCase() === "true" || values["distinct"]?.toLowerCase() === "true"
    } else if (name === "entity" && path === "fetch") sawEntity = true
    else if (path === "fetch/entity") {
      if (name === "attribute" && values["name"] !== undefined) {
        attributes.push({ name: values["name"].toLowerCase(), alias: values["alias"] })
      } else if (name === "all-attributes") all = true
      else if (name === "no-attrs") none = true
    }
    if (selfClosing !== "/") stack.push(name)
  }
  if (!sawEntity) return undefined
  return { attributes: all || (attributes.length === 0 && !none) ? "all" : attributes, grouped }
}

/**
 * The CSV header of a FetchXML query, from its `<attribute>`s: their aliases or names (a lookup
 * as `_<name>_value`, as the Web API returns it), then the primary key, which the service always
 * returns (but not for aggregate or distinct queries). Undefined for `all`: the first page says.
 *
 * @since 0.1.0
 */
export const fetchXmlColumns = (
  selection: FetchXmlSelection,
  table: Metadata.TableMetadata
): ReadonlyArray<string> | undefined => {
  if (selection.attributes === "all") return undefined
  const lookups = new Set(table.columns.filter(Coerce.isLookup).map((column) => column.logicalName))
  const columns = selection.attributes.map(({ alias, name }) => alias ?? (lookups.has(name) ? `_${name}_value` : name))
  if (!selection.grouped) columns.push(table.primaryIdAttribute)
  return [...new Set(columns)]
}

const lookupTargetAnnotation = "@Microsoft.Dynamics.CRM.lookuplogicalname"

/**
 * Writes the value of each lookup of `columns` (lookups to several tables) as `<table>:<GUID>`,
 * the table from the row's `_<column>_value@Microsoft.Dynamics.CRM.lookuplogicalname`
 * annotation, so that an import of the row knows which table the GUID is in. Values without the
 * annotation stay as they are.
 *
 * @since 0.1.0
 */
export const withLookupTargets = (columns: ReadonlyArray<string>) => (row: Row): Row => {
  let out: Record<string, unknown> | undefined
  for (const column of columns) {
    const key = `_${column}_value`
    const value = row[key]
    const target = row[`${key}${lookupTargetAnnotation}`]
    if (typeof value === "string" && typeof target === "string" && target !== "") {
      out ??= { ...row }
      out[key] = `${target}:${value}`
    }
  }
  return out ?? row
}

/**
 * Whether a query returns one of the lookups `polymorphic` (so the rows need the lookup target
 * annotation): `selected` is the `--select` columns, or the FetchXML attributes, or `all`.
 *
 * @since 0.1.0
 */
export const returnsLookup = (
  polymorphic: ReadonlyArray<string>,
  selected: ReadonlyArray<string> | "all"
): boolean =>
  selected === "all"
    ? polymorphic.length > 0
    : selected.some((name) => {
      const column = /^_(.+)_value$/.exec(name.trim().toLowerCase())?.[1] ?? name.trim().toLowerCase()
      return polymorphic.includes(column)
    })

const readAllText = (path: string): Effect.Effect<string, CliError> =>
  Effect.tryPromise({
    try: async () => {
      if (path !== "-") return await Fs.promises.readFile(path, "utf8")
      let text = ""
      for await (const chunk of process.stdin) {
        text += typeof chunk === "string"
          ? chunk
          : (chunk as Buffer).toString("utf8")
      }
      return text
    },
    catch: (error) =>
      new CliError({
        message: `Cannot read --fetchxml ${path}: ${
          (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message
        }`
      })
  })

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
    select: Options.text("select").pipe(
      Options.withPseudoName("columns"),
      Options.withDescription("Columns to return, comma-separated (default: every column)"),
      Options.optional
    ),
    filter: Options.text("filter").pipe(
      Options.withPseudoName("expr"),
      Options.withDescription("OData $filter expression, e.g. \"statecode eq 0\""),
      Options.optional
    ),
    orderBy: Options.text("orderby").pipe(
      Options.withPseudoName("expr"),
      Options.withDescription("OData $orderby expression, e.g. \"createdon desc\""),
      Options.optional
    ),
    expand: Options.text("expand").pipe(
      Options.withPseudoName("expr"),
      Options.withDescription(
        "Related records to bring along (OData $expand), repeatable or comma-separated: " +
          "--expand 'parentcustomerid_account($select=name,accountnumber)' (a lookup: an object; in CSV, " +
          "columns parentcustomerid_account.name, ...) or " +
          "--expand 'contact_customer_accounts($select=fullname;$filter=lastname ne null;$orderby=fullname;$top=10)' " +
          "(related records: an array; in CSV, JSON text)"
      ),
      Options.repeated
    ),
    top: Options.integer("top").pipe(Options.withDescription("At most this many rows"), Options.optional),
    fetchXml: Options.text("fetchxml").pipe(
      Options.withPseudoName("file"),
      Options.withDescription("A FetchXML query from a file, or - for stdin, instead of the OData options"),
      Options.optional
    ),
    pageSize: Options.integer("page-size").pipe(
      Options.withDescription("Rows per page, 1 to 5000 (default: the service's, 5000)"),
      Options.optional
    ),
    count: Options.boolean("count").pipe(
      Options.withDescription("Print how many rows match (with --filter, --top or --fetchxml), not the rows")
    ),
    output: Options.choice("output", ["jsonl", "json", "csv"]).pipe(
      Options.withAlias("o"),
      Options.withDescription("jsonl: a record a line; json: one array; csv: a header row, then a line a record"),
      Options.withDefault("jsonl" as const)
    ),
    out: Options.text("out").pipe(
      Options.withPseudoName("file"),
      Options.withDescription("Write to this file (replaced only when the query succeeds) instead of stdout"),
      Options.optional
    )
  },
  (args) =>
    Effect.gen(function*() {
      const given = <A>(option: Option.Option<A>) => Option.getOrUndefined(option)
      // `--select ""` names no column: every column, as without --select.
      const select = Option.filter(Option.map(args.select, list), (columns) => columns.length > 0)
      const fetchXmlPath = given(args.fetchXml)
      if (fetchXmlPath !== undefined) {
        const flags: ReadonlyArray<readonly [string, Option.Option<unknown>]> = [
          ["--select", args.select],
          ["--filter", args.filter],
          ["--orderby", args.orderBy],
          ["--expand", args.expand.length > 0 ? Option.some(args.expand) : Option.none()],
          ["--top", args.top]
        ]
        const mixed = flags.filter(([, option]) => Option.isSome(option)).map(([flag]) => flag)
        if (mixed.length > 0) {
          return yield* new CliError({
            message: `--fetchxml cannot be combined with ${mixed.join(", ")}: write them in the FetchXML.`
          })
        }
      }
      const top = given(args.top)
      if (top !== undefined && (!Number.isInteger(top) || top < 0)) {
        return yield* new CliError({ message: `--top must be a whole number of rows, got ${top}.` })
      }
      const pageSize = given(args.pageSize)
      if (pageSize !== undefined && (pageSize < 1 || pageSize > 5000)) {
        return yield* new CliError({ message: `--page-size must be from 1 to 5000, got ${pageSize}.` })
      }
      const xml = fetchXmlPath === undefined ? undefined : yield* readAllText(fetchXmlPath)
      if (xml !== undefined) {
        const entity = fetchXmlEntity(xml)
        if (entity !== undefined && entity.toLowerCase() !== args.table.toLowerCase()) {
          return yield* new CliError({
            message: `--fetchxml queries the table '${entity}', but the command names '${args.table}'.`
          })
        }
      }
      const selection = xml === undefined ? undefined : fetchXmlSelection(xml)
      const expand = args.expand.length === 0 ? undefined : args.expand.join(",")
      const options: Query.QueryOptions = expand !== undefined
        ? {
          query: rawQuery([
            ["$select", Option.getOrUndefined(select)?.join(",")],
            ["$filter", given(args.filter)],
            ["$orderby", given(args.orderBy)],
            ["$expand", expand],
            ["$top", top === undefined ? undefined : String(top)]
          ]),
          ...(pageSize === undefined ? {} : { pageSize })
        }
        : {
          ...Option.match(select, { onNone: () => ({}), onSome: (columns) => ({ select: columns }) }),
          ...Option.match(args.filter, { onNone: () => ({}), onSome: (filter) => ({ filter }) }),
          ...Option.match(args.orderBy, { onNone: () => ({}), onSome: (orderBy) => ({ orderBy }) }),
          ...(top === undefined ? {} : { top }),
          ...(pageSize === undefined ? {} : { pageSize })
        }
      // With lookup annotations, the rows say which table a polymorphic lookup points at.
      const rowsOf = (annotations: boolean) =>
        xml === undefined
          ? Query.stream(args.table, annotations ? { ...options, annotations } : options)
          : Query.fetchXml(args.table, xml, {
            ...(pageSize === undefined ? {} : { pageSize }),
            ...(annotations ? { annotations } : {})
          })

      const out = given(args.out)
      const emit = <E, R>(
        write: (sink: (text: string) => Effect.Effect<void, CliError>) => Effect.Effect<void, E, R>
      ) =>
        out === undefined || out === "-"
          ? write(Output.stdout)
          : Effect.scoped(Effect.gen(function*() {
            const file = yield* Output.openFile(out)
            yield* write(file.write)
            yield* file.commit
          })).pipe(
            // Ctrl-C: the rows read so far are dropped with the temporary file; say what is left.
            Effect.onInterrupt(() =>
              Output.stderr(
                `Stopped: ${out} was not written${Fs.existsSync(out) ? " (it holds what it held before)" : ""}.\n`
              ).pipe(Effect.ignore)
            )
          )

      if (args.count) {
        const count = yield* countRows(args.table, {
          filter: given(args.filter),
          top,
          xmlRows: xml === undefined ? undefined : rowsOf(false)
        })
        yield* emit((sink) => sink(`${count}\n`))
        return
      }
      const metadata = yield* Metadata.table(args.table)
      const polymorphic = Coerce.polymorphicLookups(metadata)
      const selected: ReadonlyArray<string> | "all" = selection === undefined
        ? Option.getOrElse(select, (): ReadonlyArray<string> | "all" => "all")
        : selection.attributes === "all"
        ? "all"
        : selection.attributes.map((attribute) => attribute.name)
      const annotations = returnsLookup(polymorphic, selected)
      // In CSV, an expanded lookup's record becomes `<navprop>.<column>` columns.
      const flatten = args.output === "csv" && expand !== undefined
        ? flattenExpanded(new Set(expandedProperties(expand)))
        : (row: Row) => row
      const rows = Stream.map(
        rowsOf(annotations),
        (row) => flatten(Output.withoutAnnotationsDeep(annotations ? withLookupTargets(polymorphic)(row) : row))
      )
      const fromXml = selection === undefined ? undefined : fetchXmlColumns(selection, metadata)
      // A lookup selected by its name comes back as `_<name>_value`.
      const lookups = new Set(metadata.columns.filter(Coerce.isLookup).map((column) => column.logicalName))
      const navigation = new Set(metadata.lookups.map((lookup) => lookup.navigationProperty))
      const columns = xml !== undefined ? fromXml : Option.match(select, {
        onNone: () => undefined,
        // The service returns the primary key whatever `$select` names, as for FetchXML: the CSV
        // keeps it too, so that its rows can go back in through update or upsert.
        onSome: (columns) => [
          // A column named twice is one column of the CSV (its header must not repeat a name).
          ...new Set(columns.map((name) => (lookups.has(name) ? `_${name}_value` : name))),
          ...(columns.includes(metadata.primaryIdAttribute) ? [] : [metadata.primaryIdAttribute]),
          ...(expand === undefined ? [] : expandedColumns(expand, navigation))
        ]
      })
      yield* emit((sink) =>
        Effect.flatMap(
          Output.writeTable(rows, args.output, sink, {
            columns,
            // A FetchXML query's link-entity columns come after its own, as do the columns of
            // expanded records that the --expand text does not name (their primary keys).
            moreColumns: xml !== undefined || expand !== undefined,
            warn: (message) => Output.stderr(`dv-effect: ${message}\n`),
            ...(xml === undefined ? {} : {
              advice: fromXml === undefined
                ? "name the columns with <attribute name=\"...\"/> elements in the FetchXML instead of <all-attributes/>"
                : "name them with <attribute> elements of the FetchXML"
            })
          }),
          (count) => Effect.logDebug(`${count} rows written`)
        )
      )
    }).pipe(Effect.provide(Connection.layer(args.connection)))
).pipe(
  Command.withDescription(Help.withExamples(
    "Stream a table's rows (OData options or FetchXML) as JSON lines, a JSON array or CSV; or --count them",
    [
      ["dv-effect query contact --select fullname,emailaddress1 --top 100", "A few columns of the first rows"],
      [
        "dv-effect query contact --filter \"address1_city eq 'Paris'\" -o csv --out paris.csv",
        "A filtered export to CSV"
      ],
      ["dv-effect query contact --fetchxml active.xml -o json", "A FetchXML query, as one JSON array"]
    ],
    {
      notes: [
        "CSV columns: the --select columns or the FetchXML's <attribute>s, else those of the first page.",
        "A lookup to several tables is written table:GUID."
      ]
    }
  ))
)

/**
 * How many rows match: `/$count` (cheap), and when that says 5,000 (where the service stops
 * counting), the primary keys paged through and counted. A FetchXML query's rows are counted as
 * they page.
 */
const countRows = (
  table: string,
  options: {
    readonly filter: string | undefined
    readonly top: number | undefined
    readonly xmlRows: Stream.Stream<Row, DataverseError, DataverseClient> | undefined
  }
): Effect.Effect<number, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    if (options.xmlRows !== undefined) {
      return yield* Stream.runCount(options.xmlRows)
    }
    const quick = yield* Query.count(table, options.filter)
    const limited = (n: number) => (options.top === undefined ? n : Math.min(n, options.top))
    if (quick < countLimit || (options.top !== undefined && options.top <= quick)) return limited(quick)
    const metadata = yield* Metadata.table(table)
    return yield* Stream.runCount(Query.stream(table, {
      select: [metadata.primaryIdAttribute],
      ...(options.filter === undefined ? {} : { filter: options.filter }),
      ...(options.top === undefined ? {} : { top: options.top }),
      pageSize: 5000
    }))
  })

/**
 * `dv-effect schema export`: an org's schema in a file, so that a team can emulate production
 * offline with `dv-effect emulator --schema <file>`: the org's CSDL `$metadata` document as served
 * (`--format csdl`), or the emulator's JSON schema file built from `EntityDefinitions`
 * (`--format json`), which adds what CSDL does not carry: lengths, ranges, choices, required
 * levels, primary names, table types and bulk-message support.
 *
 * @since 0.2.0
 */
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import { type DataverseError, isTransient } from "@dv-effect/core/DataverseError"
import type { ColumnMetadata, TableMetadata } from "@dv-effect/core/Metadata"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs/promises"
import { CliError } from "./CliError.js"
import * as Connection from "./Connection.js"
import * as Help from "./Help.js"
import { listTables } from "./MetadataCommands.js"
import * as Output from "./Output.js"

type Json = Record<string, unknown>

const lookupTypes: ReadonlySet<string> = new Set(["Lookup", "Customer", "Owner"])
const choiceTypes: ReadonlySet<string> = new Set(["Picklist", "State", "Status"])
const numberTypes: ReadonlySet<string> = new Set(["Integer", "BigInt", "Decimal", "Double", "Money"])

/**
 * The schema file of some tables, and what of them it leaves out (`table.column (why)`).
 *
 * @since 0.2.0
 */
export interface SchemaFile {
  readonly file: { readonly tables: ReadonlyArray<Json> }
  readonly leftOut: ReadonlyArray<string>
}

/**
 * The emulator's schema file of tables as `EntityDefinitions` describes them. Left out: columns of
 * types the emulator does not serve (files, images, multi-select choices, ...), lookups whose
 * targets are all outside the export, and tables with no column left but lookups. A choice
 * column without options becomes an Integer.
 *
 * @since 0.2.0
 */
export const schemaFile = (
  tables: ReadonlyArray<TableMetadata>,
  /** The column types the emulator serves (`TableSchema.columnTypes`). */
  emulatedTypes: ReadonlySet<string>
): SchemaFile => {
  const leftOut: Array<string> = []
  const ownColumns = (table: TableMetadata) =>
    table.columns.filter((c) => !c.isPrimaryId && c.logicalName !== table.primaryIdAttribute)
  // A table needs a column other than lookups (its primary name, at least).
  const kept = tables.filter((table) =>
    ownColumns(table).some((c) => emulatedTypes.has(c.type) && !lookupTypes.has(c.type))
  )
  for (const table of tables) {
    if (!kept.includes(table)) leftOut.push(`${table.logicalName} (no column the emulator serves)`)
  }
  const keptNames = new Set(kept.map((t) => t.logicalName))

  const column = (table: TableMetadata, c: ColumnMetadata): Json | undefined => {
    const where = `${table.logicalName}.${c.logicalName}`
    if (!emulatedTypes.has(c.type)) {
      leftOut.push(`${where} (${c.typeName ?? c.type})`)
      return undefined
    }
    const out: Json = { logicalName: c.logicalName, type: c.type }
    if (c.requiredLevel !== "None") out.requiredLevel = c.requiredLevel
    if (c.maxLength !== undefined && Number.isInteger(c.maxLength) && c.maxLength > 0) out.maxLength = c.maxLength
    // Only a date-only column behaves differently on the wire (an Edm.Date); the default is UserLocal.
    if (c.type === "DateTime" && c.dateTimeBehavior !== undefined && c.dateTimeBehavior !== "UserLocal") {
      out.dateTimeBehavior = c.dateTimeBehavior
    }
    if (numberTypes.has(c.type)) {
      if (c.minValue !== undefined) out.minValue = c.minValue
      if (c.maxValue !== undefined) out.maxValue = c.maxValue
    }
    if (choiceTypes.has(c.type)) {
      if (c.options === undefined) out.type = "Integer"
      else out.options = c.options.map((o) => ({ value: o.value, label: o.label ?? String(o.value) }))
    }
    if (lookupTypes.has(c.type)) {
      const navigations = table.lookups.filter((l) => l.column === c.logicalName)
      // An owner lookup has one navigation property for both its targets (see Metadata.navigationProperty).
      const only = new Set(navigations.map((l) => l.navigationProperty)).size === 1 ? navigations[0] : undefined
      const targets = (c.targets ?? []).flatMap((target) => {
        const navigationProperty = (navigations.find((l) => l.target === target) ?? only)?.navigationProperty
        return keptNames.has(target) && navigationProperty !== undefined ? [{ table: target, navigationProperty }] : []
      })
      if (targets.length === 0) {
        leftOut.push(`${where} (lookup to ${(c.targets ?? []).join(", ") || "no table"}, not exported)`)
        return undefined
      }
      // A lookup to several tables keeps the targets exported; each other one is said.
      for (const target of c.targets ?? []) {
        if (targets.some((t) => t.table === target)) continue
        leftOut.push(
          `${where} (its target ${target}, ${
            keptNames.has(target) ? "without a navigation property in the metadata" : "not exported"
          })`
        )
      }
      out.targets = targets
    }
    return out
  }

  const files = kept.map((table): Json => {
    const columns = ownColumns(table).flatMap((c): Array<Json> => {
      const out = column(table, c)
      return out === undefined ? [] : [out]
    })
    const names = new Set(columns.map((c) => c.logicalName))
    const primaryName = table.primaryNameAttribute
    return {
      logicalName: table.logicalName,
      entitySetName: table.entitySetName,
      ...(table.objectTypeCode === undefined ? {} : { objectTypeCode: table.objectTypeCode }),
      primaryIdAttribute: table.primaryIdAttribute,
      // Else the emulator's default primary name (see TableSchema.decode).
      ...(primaryName !== undefined && names.has(primaryName) ? { primaryNameAttribute: primaryName } : {}),
      tableType: table.tableType,
      columns,
      keys: table.keys
        .filter((key) => key.keyAttributes.every((a) => names.has(a)))
        .map((key) => ({ logicalName: key.logicalName, keyAttributes: key.keyAttributes })),
      messages: table.messages
    }
  })
  return { file: { tables: files }, leftOut }
}

/** The org's `$metadata` document as it serves it, retried as the connection retries JSON reads. */
const fetchCsdl: Effect.Effect<string, DataverseError | CliError, DataverseClient.DataverseClient> = Effect.flatMap(
  DataverseClient.DataverseClient,
  (client) =>
    client.execute(HttpClientRequest.get("$metadata").pipe(HttpClientRequest.setHeader("Accept", "application/xml")))
      .pipe(
        Effect.retry({
          schedule: client.retryPolicy,
          while: (error) => isTransient(error) && error.reason !== "Throttled"
        }),
        Effect.flatMap((response) =>
          Effect.mapError(
            response.text,
            (error) => new CliError({ message: `The $metadata document was cut off: ${error.message}` })
          )
        ),
        Effect.scoped
      )
)

const writeOut = (path: string, text: string) =>
  Effect.tryPromise({
    try: () => Fs.writeFile(path, text),
    catch: (error) => new CliError({ message: `Cannot write --out ${path}: ${(error as Error).message}` })
  })

const exportCommand = Command.make(
  "export",
  {
    connection: Connection.options,
    out: Options.text("out").pipe(
      Options.withPseudoName("file"),
      Options.withDescription("The file to write; an existing one is replaced")
    ),
    format: Options.choice("format", ["json", "csdl"]).pipe(
      Options.withDescription(
        "json: the emulator's schema file, from EntityDefinitions (lengths, choices, required levels); csdl: the $metadata document as served"
      ),
      Options.withDefault("json" as const)
    ),
    tables: Options.text("tables").pipe(
      Options.withPseudoName("a,b"),
      Options.withDescription(
        "Only these tables, by logical name (json only; default: every table with an entity set)"
      ),
      Options.optional
    )
  },
  (args) =>
    Effect.gen(function*() {
      const TableSchema = yield* Effect.promise(() => import("@dv-effect/emulator/TableSchema"))
      if (args.format === "csdl") {
        if (Option.isSome(args.tables)) {
          return yield* new CliError({
            message: "--tables works with --format json; --format csdl saves the whole $metadata document as served."
          })
        }
        const xml = yield* fetchCsdl
        // Saved as served, once the emulator is known to load it.
        const schema = TableSchema.parse(xml)
        if (typeof schema === "string") {
          return yield* new CliError({ message: `The org's $metadata cannot be emulated: ${schema}` })
        }
        yield* writeOut(args.out, xml)
        return yield* Output.stderr(
          `Wrote the $metadata document to ${args.out} (${schema.tables.length} tables for the emulator)\n`
        )
      }
      const client = yield* DataverseClient.DataverseClient
      const names = Option.isSome(args.tables)
        ? [...new Set(args.tables.value.split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== ""))]
        : (yield* listTables).flatMap((t) => (t.entitySetName === null ? [] : [t.logicalName]))
      if (names.length === 0) return yield* new CliError({ message: "--tables names no table." })
      // Every definition first: nothing is written when a table does not exist.
      const tables = yield* Effect.forEach(names, (name) => client.table(name), { concurrency: 4 })
      const { file, leftOut } = schemaFile(tables, new Set(TableSchema.columnTypes))
      const checked = TableSchema.decode(file)
      if (typeof checked === "string") {
        return yield* new CliError({ message: `The exported schema would not load in the emulator: ${checked}` })
      }
      yield* writeOut(args.out, `${JSON.stringify(file, null, 2)}\n`)
      for (const line of leftOut) yield* Effect.logDebug(`Left out ${line}`)
      yield* Output.stderr(
        `Wrote ${file.tables.length} table${file.tables.length === 1 ? "" : "s"} to ${args.out}${
          leftOut.length === 0
            ? ""
            : `; left out ${leftOut.length} (types the emulator does not serve, lookups and lookup targets to ` +
              `tables not exported; --verbose lists them)`
        }\n`
      )
    }).pipe(Effect.provide(Connection.layer(args.connection)))
).pipe(
  Command.withDescription(
    Help.withExamples(
      "Write an org's schema to a file, for dv-effect emulator --schema: JSON from EntityDefinitions, or the CSDL $metadata",
      [
        [
          "dv-effect schema export --out prod.json --tables account,contact --profile prod",
          "Two tables, with lengths and choices"
        ],
        [
          "dv-effect schema export --out prod.xml --format csdl --profile prod",
          "The whole $metadata document as served"
        ],
        ["dv-effect emulator --schema prod.json", "Then emulate production offline"]
      ]
    )
  )
)

/**
 * The `schema` command group.
 *
 * @since 0.2.0
 */
export const schemaCommand = Command.make("schema").pipe(
  Command.withDescription(Help.withExamples(
    "An org's schema for the emulator (export writes it to a file)",
    [
      ["dv-effect schema export --out prod.json --profile prod", "Every table, as the emulator's schema file"],
      ["dv-effect schema export --out prod.xml --format csdl --profile prod", "The $metadata document as served"]
    ]
  )),
  Command.withSubcommands([exportCommand])
)

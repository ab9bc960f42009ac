/**
 * `dv-effect tables`, `dv-effect metadata <table>` and `dv-effect typegen <tables...>`: what the
 * org's tables look like, for people and for code.
 *
 * @since 0.1.0
 */
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import type { DataverseError } from "@dv-effect/core/DataverseError"
import type { ColumnMetadata, TableMetadata } from "@dv-effect/core/Metadata"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { CliError } from "./CliError.js"
import * as Connection from "./Connection.js"
import * as Help from "./Help.js"
import * as Output from "./Output.js"
import * as Typegen from "./Typegen.js"

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)
const string = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : undefined)

/** `Label.UserLocalizedLabel.Label`, else the first localized label. */
const labelText = (label: unknown): string | undefined => {
  if (!isObject(label)) return undefined
  const user = isObject(label.UserLocalizedLabel) ? string(label.UserLocalizedLabel.Label) : undefined
  if (user !== undefined) return user
  const all = Array.isArray(label.LocalizedLabels) ? label.LocalizedLabels : []
  for (const l of all) if (isObject(l) && string(l.Label) !== undefined) return string(l.Label)
  return undefined
}

const quoted = (logicalName: string) => encodeURIComponent(`'${logicalName.replace(/'/g, "''")}'`)

/** The first of the `$select` lists the service accepts (the emulator serves fewer properties than the service). */
const firstAccepted = (path: string, selects: ReadonlyArray<string>) =>
  Effect.flatMap(DataverseClient.DataverseClient, (client) => {
    const attempt = (i: number): Effect.Effect<unknown, DataverseError> =>
      client.executeJson(HttpClientRequest.get(`${path}?$select=${selects[i]}`)).pipe(
        Effect.map(({ body }) => body),
        Effect.catchIf((error) => error.status === 400 && i + 1 < selects.length, () => attempt(i + 1))
      )
    return attempt(0)
  })

const outputOption = Options.choice("output", ["text", "json"]).pipe(
  Options.withAlias("o"),
  Options.withDescription("text: aligned columns for people; json: machine-readable"),
  Options.withDefault("text" as const)
)

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length)))
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n"
}

// ---------------------------------------------------------------------------------------------
// tables

/**
 * A row of `dv-effect tables`.
 *
 * @since 0.1.0
 */
export interface TableSummary {
  readonly logicalName: string
  readonly entitySetName: string | null
  readonly displayName: string | null
  readonly tableType: "Standard" | "Elastic" | string
  readonly custom: boolean
}

/**
 * Every table of the org (one `EntityDefinitions` request), sorted by logical name.
 *
 * @since 0.1.0
 */
export const listTables: Effect.Effect<
  Array<TableSummary>,
  DataverseError,
  DataverseClient.DataverseClient
> = Effect.map(
  firstAccepted("EntityDefinitions", ["LogicalName,EntitySetName,DisplayName,TableType,IsCustomEntity"]),
  (body) =>
    (isObject(body) && Array.isArray(body.value) ? body.value : [])
      .filter(isObject)
      .flatMap((entity): Array<TableSummary> => {
        const logicalName = string(entity.LogicalName)
        if (logicalName === undefined) return []
        return [{
          logicalName,
          entitySetName: string(entity.EntitySetName) ?? null,
          displayName: labelText(entity.DisplayName) ?? null,
          tableType: string(entity.TableType) ?? "Standard",
          custom: entity.IsCustomEntity === true
        }]
      })
      .sort((a, b) => a.logicalName.localeCompare(b.logicalName))
)

/**
 * The `tables` command.
 *
 * @since 0.1.0
 */
export const tablesCommand = Command.make(
  "tables",
  {
    connection: Connection.options,
    custom: Options.boolean("custom").pipe(Options.withDescription("Only custom tables")),
    search: Options.text("search").pipe(
      Options.withPseudoName("text"),
      Options.withDescription("Only tables whose logical, display or entity set name contains this text"),
      Options.optional
    ),
    output: outputOption
  },
  (args) =>
    Effect.gen(function*() {
      const needle = Option.getOrUndefined(args.search)?.toLowerCase()
      const tables = (yield* listTables).filter((t) =>
        (!args.custom || t.custom) &&
        (needle === undefined ||
          [t.logicalName, t.displayName ?? "", t.entitySetName ?? ""].some((s) => s.toLowerCase().includes(needle)))
      )
      if (args.output === "json") return yield* Output.stdout(`${JSON.stringify(tables, null, 2)}\n`)
      yield* Output.stdout(
        table([
          ["LOGICAL NAME", "ENTITY SET", "TYPE", "CUSTOM", "DISPLAY NAME"],
          ...tables.map((t) => [
            t.logicalName,
            t.entitySetName ?? "",
            t.tableType.toLowerCase(),
            t.custom ? "yes" : "no",
            t.displayName ?? ""
          ])
        ])
      )
      yield* Output.stderr(`${tables.length} table${tables.length === 1 ? "" : "s"}\n`)
    }).pipe(Effect.provide(Connection.layer(args.connection)))
).pipe(
  Command.withDescription(
    Help.withExamples("List the org's tables: logical name, entity set, standard or elastic, custom or not", [
      ["dv-effect tables --custom", "Only custom tables"],
      ["dv-effect tables --search contact -o json", "As JSON, filtered by name"],
      ["dv-effect tables --emulator", "The tables of the in-process emulator"]
    ])
  )
)

// ---------------------------------------------------------------------------------------------
// metadata

const limits = (column: ColumnMetadata): string =>
  [
    column.maxLength === undefined ? undefined : `max ${column.maxLength}`,
    column.minValue === undefined && column.maxValue === undefined
      ? undefined
      : `${column.minValue ?? ""}..${column.maxValue ?? ""}`
  ].filter((s) => s !== undefined).join(", ")

const details = (metadata: TableMetadata, column: ColumnMetadata): string => {
  const parts: Array<string> = []
  if (column.isPrimaryId) parts.push("primary key")
  if (column.logicalName === metadata.primaryNameAttribute) parts.push("primary name")
  // Written differently: a date (2024-01-31), never a date and time.
  if (column.dateTimeBehavior === "DateOnly") parts.push("date only")
  if (!column.isValidForCreate && !column.isValidForUpdate) parts.push("read-only")
  else if (!column.isValidForUpdate && !column.isPrimaryId) parts.push("create only")
  else if (!column.isValidForCreate) parts.push("update only")
  if (column.targets !== undefined) {
    const navigation = metadata.lookups.filter((l) => l.column === column.logicalName)
    parts.push(
      `-> ${
        column.targets.map((target) => {
          const via = navigation.find((l) => l.target === target)?.navigationProperty
          return via === undefined ? target : `${target} (${via}@odata.bind)`
        }).join(", ")
      }`
    )
  }
  if (column.options !== undefined) {
    parts.push(column.options.map((o) => `${o.value}${o.label === undefined ? "" : `=${o.label}`}`).join(", "))
  }
  return parts.join("; ")
}

const typeOf = (column: ColumnMetadata) =>
  column.typeName === "MultiSelectPicklistType" ? "MultiSelectPicklist" : column.type

/**
 * A table's metadata as text for people.
 *
 * @since 0.1.0
 */
export const describeTable = (metadata: TableMetadata): string => {
  const yes = (supported: boolean) => (supported ? "yes" : "no ($batch)")
  const header = [
    `${metadata.logicalName}: ${metadata.tableType.toLowerCase()} table, entity set ${metadata.entitySetName}`,
    `  primary key    ${metadata.primaryIdAttribute}`,
    `  primary name   ${metadata.primaryNameAttribute ?? "(none)"}`,
    ...(metadata.objectTypeCode === undefined ? [] : [`  type code      ${metadata.objectTypeCode}`]),
    `  bulk messages  CreateMultiple ${yes(metadata.messages.createMultiple)}, UpdateMultiple ${
      yes(metadata.messages.updateMultiple)
    }, UpsertMultiple ${yes(metadata.messages.upsertMultiple)}, DeleteMultiple ${
      yes(metadata.messages.deleteMultiple)
    }`,
    ""
  ].join("\n")
  const columns = table([
    ["COLUMN", "TYPE", "REQUIRED", "LIMITS", "DETAILS"],
    ...metadata.columns.map((c) => [c.logicalName, typeOf(c), c.requiredLevel, limits(c), details(metadata, c)])
  ])
  const keys = metadata.keys.length === 0
    ? "No alternate keys.\n"
    : table([
      ["KEY", "COLUMNS", "STATUS"],
      ...metadata.keys.map((k) => [k.logicalName, k.keyAttributes.join(", "), k.status])
    ])
  return `${header}\n${columns}\n${keys}`
}

/**
 * The `metadata` command.
 *
 * @since 0.1.0
 */
export const metadataCommand = Command.make(
  "metadata",
  {
    connection: Connection.options,
    table: Args.text({ name: "table" }).pipe(Args.withDescription("Table logical name, e.g. contact")),
    output: outputOption
  },
  (args) =>
    Effect.gen(function*() {
      const client = yield* DataverseClient.DataverseClient
      const metadata = yield* client.table(args.table)
      yield* Output.stdout(args.output === "json" ? `${JSON.stringify(metadata, null, 2)}\n` : describeTable(metadata))
    }).pipe(Effect.provide(Connection.layer(args.connection)))
).pipe(
  Command.withDescription(
    Help.withExamples(
      "Describe a table: columns (type, required level, lengths, ranges, choices, lookups), keys, type, bulk messages",
      [
        ["dv-effect metadata contact", "For people"],
        [
          "dv-effect metadata account -o json | jq '.columns[] | select(.requiredLevel != \"None\") | .logicalName'",
          "The required columns, with jq"
        ]
      ]
    )
  )
)

// ---------------------------------------------------------------------------------------------
// typegen

/** A table's metadata with what else the service says of it (display names), best effort. */
const typegenInput = (logicalName: string) =>
  Effect.gen(function*() {
    const client = yield* DataverseClient.DataverseClient
    const metadata = yield* client.table(logicalName)
    const path = `EntityDefinitions(LogicalName=${quoted(metadata.logicalName)})`
    const entity = yield* firstAccepted(path, ["SchemaName,DisplayName,Description", "SchemaName,DisplayName"]).pipe(
      Effect.catchAll((error) =>
        Effect.as(Effect.logDebug(`No display names for ${logicalName}: ${error.message}`), undefined)
      )
    )
    const attributes = yield* firstAccepted(`${path}/Attributes`, [
      "LogicalName,SchemaName,DisplayName,Description,AttributeOf,IsValidForRead",
      "LogicalName,SchemaName,IsValidForRead"
    ]).pipe(
      Effect.catchAll((error) =>
        Effect.as(Effect.logDebug(`No column display names for ${logicalName}: ${error.message}`), undefined)
      )
    )
    const columns = new Map<string, Typegen.ColumnExtras>()
    for (const attribute of isObject(attributes) && Array.isArray(attributes.value) ? attributes.value : []) {
      if (!isObject(attribute)) continue
      const name = string(attribute.LogicalName)
      if (name === undefined) continue
      columns.set(name, {
        schemaName: string(attribute.SchemaName),
        displayName: labelText(attribute.DisplayName),
        description: labelText(attribute.Description),
        attributeOf: string(attribute.AttributeOf),
        isValidForRead: typeof attribute.IsValidForRead === "boolean" ? attribute.IsValidForRead : undefined
      })
    }
    const about = isObject(entity) ? entity : {}
    return {
      metadata,
      schemaName: string(about.SchemaName),
      displayName: labelText(about.DisplayName),
      description: labelText(about.Description),
      columns
    } satisfies Typegen.TableInput
  })

/**
 * The `typegen` command.
 *
 * @since 0.1.0
 */
export const typegenCommand = Command.make(
  "typegen",
  {
    connection: Connection.options,
    tables: Args.text({ name: "table" }).pipe(
      Args.withDescription("Tables by logical name, e.g. contact account"),
      Args.atLeast(1)
    ),
    out: Options.text("out").pipe(
      Options.withPseudoName("dir"),
      Options.withDescription(
        "Directory for the modules, created if missing; files of the same names are replaced, and index.ts " +
          "keeps the tables generated there before"
      )
    )
  },
  (args) =>
    Effect.gen(function*() {
      // As typed (a table is named by its logical name, as everywhere: a wrong case gets a suggestion).
      const names = [...new Set(args.tables.map((t) => t.trim()).filter((t) => t !== ""))]
      // Every definition first: nothing is written when a table does not exist.
      const inputs = yield* Effect.forEach(names, typegenInput, { concurrency: 4 }).pipe(
        Effect.provide(Connection.layer(args.connection))
      )
      const ids = new Map<string, string>()
      for (const input of inputs) {
        const id = Typegen.tableIdentifier(input)
        const other = ids.get(id)
        if (other !== undefined) {
          return yield* new CliError({
            message:
              `Tables ${other} and ${input.metadata.logicalName} would both be named ${id}; generate them into different --out directories.`
          })
        }
        ids.set(id, input.metadata.logicalName)
      }
      const out = Path.resolve(args.out)
      let files: Array<Typegen.GeneratedFile> = []
      yield* Effect.tryPromise({
        try: async () => {
          await Fs.mkdir(out, { recursive: true })
          // Tables an earlier run generated here stay in the index while their modules are there.
          const earlier = await Fs.readFile(Path.join(out, "index.ts"), "utf8").catch(() => "")
          const kept: Array<string> = []
          for (const name of Typegen.indexedTables(earlier)) {
            if (await Fs.access(Path.join(out, `${name}.ts`)).then(() => true, () => false)) kept.push(name)
          }
          files = Typegen.generate(inputs, kept)
          for (const file of files) await Fs.writeFile(Path.join(out, file.path), file.contents)
        },
        catch: (error) => new CliError({ message: `Cannot write to --out ${args.out}: ${(error as Error).message}` })
      })
      yield* Output.stderr(
        `Wrote ${files.length} files to ${out}: ${files.map((f) => f.path).join(", ")}\n`
      )
    })
).pipe(
  Command.withDescription(
    Help.withExamples(
      "Generate Effect Schema modules for tables, typed tables of @dv-effect/core (Table.create, ...), and an index.ts",
      [
        ["dv-effect typegen contact account --out src/dataverse", "Two modules and src/dataverse/index.ts"],
        [
          "dv-effect typegen dve_product --out src/dataverse --profile dev",
          "From the org of a saved profile"
        ]
      ]
    )
  )
)

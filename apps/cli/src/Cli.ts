/**
 * The `dv-effect` command and its subcommands.
 *
 * @since 0.1.0
 */
import * as Bulk from "@dv-effect/core/Bulk"
import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import type { DataverseError } from "@dv-effect/core/DataverseError"
import type * as Journal from "@dv-effect/core/Journal"
import * as Query from "@dv-effect/core/Query"
import * as Model from "@dv-effect/emulator/Model"
import type { SchemaDefinition as TableSchemaDefinition } from "@dv-effect/emulator/TableSchema"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs/promises"
import { authCommand } from "./AuthCommand.js"
import { CliError } from "./CliError.js"
import * as Connection from "./Connection.js"
import * as Demo from "./Demo.js"
import { chunkSizeOption, concurrencyOption, positiveInteger, seconds } from "./Flags.js"
import * as Help from "./Help.js"
import { createCommand, deleteCommand, updateCommand, upsertCommand } from "./ImportCommand.js"
import { metadataCommand, tablesCommand, typegenCommand } from "./MetadataCommands.js"
import * as Output from "./Output.js"
import * as ProgressReporter from "./ProgressReporter.js"
import { queryCommand } from "./QueryCommand.js"
import { schemaCommand } from "./SchemaCommand.js"

// ---------------------------------------------------------------------------------------------
// emulator

/** The named performance profiles, as `--profile` takes them: "fast, realistic, bench, silent". */
const profileNames = Object.keys(Model.profiles).join(", ")

const readTextFile = (flag: string, path: string): Effect.Effect<string, CliError> =>
  Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8"),
    catch: (error) =>
      new CliError({
        message: (error as NodeJS.ErrnoException).code === "ENOENT"
          ? `Cannot read ${flag} ${path}: no such file`
          : `Cannot read ${flag} ${path}: ${(error as Error).message}`
      })
  })

const readJsonFile = (flag: string, path: string): Effect.Effect<unknown, CliError> =>
  Effect.flatMap(readTextFile(flag, path), (text) =>
    Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (error) => new CliError({ message: `Cannot read ${flag} ${path}: ${(error as Error).message}` })
    }))

const emulatorCommand = Command.make(
  "emulator",
  {
    host: Options.text("host").pipe(
      Options.withPseudoName("address"),
      Options.withDescription("Interface to listen on"),
      Options.withDefault("127.0.0.1")
    ),
    port: Options.integer("port").pipe(
      Options.withDescription("Port to listen on; 0 picks a free one"),
      Options.withDefault(0)
    ),
    profile: Options.text("profile").pipe(
      Options.withPseudoName("name|file"),
      Options.withDescription(`Performance model: ${profileNames}, or a JSON profile file`),
      Options.withDefault("fast")
    ),
    servers: Options.integer("servers").pipe(
      Options.withDescription("Web servers behind the load balancer (default: the profile's)"),
      positiveInteger("servers"),
      Options.optional
    ),
    dopHint: Options.integer("dop-hint").pipe(
      Options.withDescription(
        "The x-ms-dop-hint to advertise (and, without slowdown.capacity, the full-speed parallelism)"
      ),
      positiveInteger("dop-hint"),
      Options.optional
    ),
    schema: Options.text("schema").pipe(
      Options.withPseudoName("file"),
      Options.withDescription(
        "Tables to serve: a schema file or an org's CSDL $metadata document (see the README; default: the built-in tables)"
      ),
      Options.optional
    ),
    dataDir: Options.text("data-dir").pipe(
      Options.withPseudoName("dir"),
      Options.withDescription("Keep the data in this directory across restarts (journalled every second)"),
      Options.optional
    ),
    users: Options.integer("users").pipe(
      Options.withPseudoName("n"),
      Options.withDescription(
        "Application users to register, each with its own credentials, token and limits (the start line's users)"
      ),
      Options.withDefault(1),
      positiveInteger("users", 1000)
    )
  },
  (args) =>
    Effect.gen(function*() {
      const { host, port } = args
      if (port < 0 || port > 65535) {
        return yield* new CliError({ message: `--port must be from 0 to 65535, got ${port}.` })
      }
      const [Emulator, TableSchema] = yield* Effect.promise(() =>
        Promise.all([
          import("@dv-effect/emulator/Emulator"),
          import("@dv-effect/emulator/TableSchema")
        ])
      )
      let profile = Object.hasOwn(Model.profiles, args.profile) ? Model.profiles[args.profile] : undefined
      if (profile === undefined) {
        const file = yield* readJsonFile("--profile", args.profile).pipe(
          Effect.mapError((error) =>
            error.message.endsWith("no such file")
              ? new CliError({
                message:
                  `--profile must be one of ${profileNames} or a JSON profile file; '${args.profile}' is none of them.`
              })
              : error
          )
        )
        const decoded = Model.decodeProfile(file)
        if (typeof decoded === "string") {
          return yield* new CliError({ message: `--profile ${args.profile}: ${decoded}` })
        }
        profile = decoded
      }
      if (Option.isSome(args.servers)) profile = { ...profile, servers: args.servers.value }
      if (Option.isSome(args.dopHint)) profile = { ...profile, dopHint: args.dopHint.value }
      let schema: TableSchemaDefinition | undefined
      if (Option.isSome(args.schema)) {
        // A CSDL $metadata document or the JSON schema file, told apart by content.
        const decoded = TableSchema.parse(yield* readTextFile("--schema", args.schema.value))
        if (typeof decoded === "string") {
          return yield* new CliError({ message: `--schema ${args.schema.value}: ${decoded}` })
        }
        schema = decoded
      }
      const users = args.users
      const running = yield* Emulator.make({
        host,
        port,
        profile,
        users,
        ...(schema === undefined ? {} : { schema }),
        ...(Option.isSome(args.dataDir) ? { dataDir: args.dataDir.value } : {})
      }).pipe(
        Effect.mapError((cause) =>
          new CliError({
            message: cause.reason === "Listen"
              ? `Could not listen on ${host}:${port}: ${cause.message}`
              : cause.message,
            cause
          })
        )
      )
      // The start contract: the first line on stdout is one JSON object.
      yield* Output.stdout(`${JSON.stringify(running.info)}\n`)
      yield* Output.stderr(
        `Dataverse emulator listening on ${running.info.webApiUrl} (profile ${profile.name}, ${profile.servers} web server${
          profile.servers === 1 ? "" : "s"
        }; Ctrl-C to stop)\n`
      )
      // Ctrl-C is how it stops: exit 0 (ExitCode.of).
      return yield* Effect.never
    }).pipe(Effect.scoped)
).pipe(Command.withDescription(Help.withExamples(
  "Run a local Dataverse Web API; prints its URL and a token as one JSON line on stdout",
  [
    ["dv-effect emulator --port 0 > emulator.json &", "A local Dataverse for scripts and tests"],
    [
      "dv-effect emulator --profile bench --servers 2 --users 4",
      "With the service's throttling, scaled down in time; four application users, each with its own limits"
    ],
    ["dv-effect emulator --data-dir ./dv-data --port 5555", "Keep the data across restarts"]
  ]
)))

// ---------------------------------------------------------------------------------------------
// whoami

const whoamiCommand = Command.make(
  "whoami",
  { connection: Connection.options },
  ({ connection }) =>
    Effect.gen(function*() {
      const client = yield* DataverseClient.DataverseClient
      if (client.identities.length === 1) {
        const me = yield* DataverseClient.whoAmI
        return yield* Output.stdout(`${JSON.stringify({ url: client.url, ...me })}\n`)
      }
      // Several identities (--profile a --profile b): every sign-in is checked, one line for each
      // that works, then one error line naming each that does not.
      const answers = yield* Effect.forEach(
        client.identities,
        (identity) =>
          Effect.either(Effect.provideService(DataverseClient.whoAmI, DataverseClient.DataverseClient, identity)),
        { concurrency: "unbounded" }
      )
      const failed: Array<string> = []
      for (const [i, answer] of answers.entries()) {
        const identity = client.identities[i]!
        const named = `identity ${identity.label}: `
        if (answer._tag === "Left") {
          failed.push(answer.left.message.startsWith(named) ? answer.left.message : named + answer.left.message)
          continue
        }
        yield* Output.stdout(`${JSON.stringify({ url: client.url, identity: identity.label, ...answer.right })}\n`)
      }
      if (failed.length > 0) return yield* new CliError({ message: failed.join("; ") })
    }).pipe(Effect.provide(Connection.layer(connection)))
).pipe(
  Command.withDescription(Help.withExamples(
    "Show who the connection acts as (UserId, BusinessUnitId, OrganizationId)",
    [
      ["dv-effect whoami --url https://contoso.crm.dynamics.com --device-code", "Check a sign-in"],
      ["dv-effect whoami --profile app1 --profile app2", "Check saved profiles, one line per identity"],
      ["dv-effect whoami --emulator", "Against an in-process emulator, no credentials needed"]
    ]
  ))
)

// ---------------------------------------------------------------------------------------------
// create

interface ImportReport {
  readonly table: string
  readonly total: number
  readonly created: number
  readonly failed: number
  readonly durationMs: number
  readonly rowsPerSecond: number
  readonly requests: number
  readonly throttled: number
}

/** Runs a bulk create with progress on stderr and one stderr line per failed row. */
const runCreate = (
  table: string,
  rows: Iterable<Bulk.RowInput> | Stream.Stream<Bulk.RowInput, CliError>,
  options: {
    readonly chunkSize: number
    readonly concurrency: number | "auto"
    readonly total: number | undefined
    readonly label: string
    readonly describeRow: (index: number) => string
    readonly onCreated?: (index: number, id: string) => void
  }
): Effect.Effect<ImportReport, CliError | DataverseError | Journal.JournalError, DataverseClient.DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient.DataverseClient
    // The table's definition is fetched first, so the summary counts the import's own requests.
    yield* client.table(table)
    const before = yield* client.stats
    const started = Date.now()
    const reporter = ProgressReporter.make(options.label, options.total)
    const summary = yield* Bulk.summarize(
      Bulk.createMany(table, rows, {
        chunkSize: options.chunkSize,
        concurrency: options.concurrency,
        onProgress: reporter.update
      }),
      (outcome) => {
        if (outcome.status !== "failed") {
          if (outcome.id !== undefined) options.onCreated?.(outcome.index, outcome.id)
          return Effect.void
        }
        const code = outcome.error.code === undefined ? "" : ` [${outcome.error.code}]`
        return Output.stderr(`${options.describeRow(outcome.index)}: ${outcome.error.message}${code}\n`)
      }
    ).pipe(Effect.ensuring(Effect.sync(reporter.stop)))
    const durationMs = Date.now() - started
    const after = yield* client.stats
    return {
      table,
      total: summary.total,
      created: summary.succeeded,
      failed: summary.failed,
      durationMs,
      rowsPerSecond: durationMs > 0 ? Math.round((summary.succeeded * 1000) / durationMs) : 0,
      requests: after.requests - before.requests,
      throttled: after.throttled - before.throttled
    }
  })

// ---------------------------------------------------------------------------------------------
// demo

const demoCommand = Command.make(
  "demo",
  {
    rows: Options.integer("rows").pipe(
      Options.withDescription("Contacts to import"),
      Options.withDefault(10_000),
      positiveInteger("rows")
    ),
    accounts: Options.integer("accounts").pipe(
      Options.withDescription("Accounts to import first"),
      Options.withDefault(250),
      positiveInteger("accounts")
    ),
    chunkSize: chunkSizeOption(250),
    concurrency: concurrencyOption
  },
  (args) =>
    Effect.gen(function*() {
      const { accounts: accountCount, chunkSize, concurrency, rows: rowCount } = args
      const Emulator = yield* Effect.promise(() => import("@dv-effect/emulator/Emulator"))
      const emulator = yield* Emulator.make({ identity: false }).pipe(
        Effect.mapError((cause) =>
          new CliError({ message: `Could not start the in-process emulator: ${cause.message}`, cause })
        )
      )
      yield* Output.stdout(
        `dv-effect demo: an in-process Dataverse emulator is listening on ${emulator.info.webApiUrl}\n`
      )
      const connection = DataverseClient.layerNode({
        url: emulator.info.url,
        credentials: Credentials.staticToken(emulator.info.accessToken)
      })
      yield* Effect.gen(function*() {
        const client = yield* DataverseClient.DataverseClient
        const me = yield* DataverseClient.whoAmI
        const dop = Option.getOrElse((yield* client.hints).dopHint, () => 0)
        yield* Output.stdout(`Connected as user ${me.UserId}; the service recommends ${dop} requests in parallel.\n\n`)

        const accountIds: Array<string> = []
        const accountReport = yield* runCreate("account", Demo.accounts(accountCount), {
          chunkSize,
          concurrency,
          total: accountCount,
          label: "accounts",
          describeRow: (index) => `account ${index + 1}`,
          onCreated: (index, id) => {
            accountIds[index] = id
          }
        })
        const contactReport = yield* runCreate("contact", Demo.contacts(rowCount, accountIds), {
          chunkSize,
          concurrency,
          total: rowCount,
          label: "contacts",
          describeRow: (index) => `contact ${index + 1}`
        })

        const readStarted = Date.now()
        const readBack = yield* Stream.runCount(Query.stream("contact", { select: ["contactid"], pageSize: 5000 }))
        const readMs = Date.now() - readStarted
        const sample = yield* Stream.runCollect(
          Query.stream("contact", {
            select: ["fullname", "emailaddress1", "telephone1", "jobtitle", "_parentcustomerid_value"],
            top: 5
          })
        )
        const stats = yield* client.stats
        const lines = [
          "",
          "A sample read back:",
          ...[...sample].map((row) =>
            `  ${String(row.fullname).padEnd(26)} ${String(row.emailaddress1).padEnd(44)} ${
              String(row.telephone1).padEnd(16)
            } ${String(row.jobtitle)}`
          ),
          "",
          "Summary",
          `  accounts created      ${accountReport.created} of ${accountReport.total} (${accountReport.failed} failed)`,
          `  contacts created      ${contactReport.created} of ${contactReport.total} (${contactReport.failed} failed)`,
          `  contact import time   ${seconds(contactReport.durationMs)}`,
          `  contact rows/s        ${contactReport.rowsPerSecond}`,
          `  contacts read back    ${readBack} in ${seconds(readMs)}`,
          `  requests              ${stats.requests} (CreateMultiple in chunks of ${chunkSize})`,
          `  throttled (429)       ${stats.throttled}`,
          ""
        ]
        yield* Output.stdout(lines.join("\n"))
        if (accountReport.failed + contactReport.failed > 0 || readBack !== contactReport.created) {
          return yield* new CliError({
            message:
              `The demo did not load every row: ${contactReport.created} contacts created, ${readBack} read back.`
          })
        }
      }).pipe(Effect.provide(connection))
    }).pipe(Effect.scoped)
).pipe(
  Command.withDescription(Help.withExamples(
    "Load contacts and their accounts into an in-process emulator through the bulk path, read them back, summarise",
    [
      ["dv-effect demo", "The end-to-end demo: 250 accounts, 10,000 contacts"],
      ["dv-effect demo --rows 100000 --chunk-size 1000", "A bigger load, in bigger requests"],
      ["dv-effect demo --concurrency 4", "At most 4 requests in flight"]
    ]
  ))
)

// ---------------------------------------------------------------------------------------------

/**
 * The root command.
 *
 * @since 0.1.0
 */
export const command = Command.make("dv-effect").pipe(
  Command.withDescription(Help.withExamples("Move data in and out of Microsoft Dataverse in bulk", [
    ["dv-effect demo", "Try it on an in-process emulator"],
    ["dv-effect create contact -f contacts.csv --profile dev", "Load a CSV into an org"]
  ])),
  Command.withSubcommands([
    emulatorCommand,
    demoCommand,
    authCommand,
    whoamiCommand,
    tablesCommand,
    metadataCommand,
    queryCommand,
    createCommand,
    updateCommand,
    upsertCommand,
    deleteCommand,
    typegenCommand,
    schemaCommand
  ])
)

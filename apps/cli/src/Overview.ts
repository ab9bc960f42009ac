/**
 * `dv-effect` and `dv-effect --help`: a one-screen overview of the commands. @effect/cli's own
 * listing repeats every flag of every command on one line, which no terminal can show; each
 * command's `--help` has its flags and examples.
 *
 * @since 0.1.0
 */

const commands: ReadonlyArray<readonly [string, string]> = [
  ["demo", "Load 10,000 contacts into an in-process emulator through the bulk path, and summarise"],
  ["emulator", "Run a local Dataverse Web API; its URL and a token come as one JSON line on stdout"],
  ["auth login|list|select|logout", "Named connection profiles, signed in once; tokens cached (0600)"],
  ["whoami", "Who the connection acts as"],
  ["tables", "List the tables: logical name, entity set, standard or elastic"],
  ["metadata <table>", "A table's columns, types, keys, type and bulk-message support"],
  ["typegen <tables...> --out <dir>", "Effect Schema modules for typed tables, from metadata"],
  ["schema export --out <file>", "The org's schema as a file for emulator --schema (JSON or CSDL)"],
  ["query <table>", "Stream rows out as JSON lines, a JSON array or CSV (OData options or FetchXML)"],
  ["create <table>", "Create rows from CSV, JSON lines or a JSON array (stdin or --file)"],
  ["update <table>", "Update rows by primary key or --key columns"],
  ["upsert <table>", "Create or update rows by primary key or --key columns"],
  ["delete <table>", "Delete rows by primary key or --key columns (e.g. what a query found)"]
]

/**
 * Whether the arguments ask for the overview: none, or only `--help`/`-h`.
 *
 * @since 0.1.0
 */
export const wanted = (args: ReadonlyArray<string>): boolean =>
  args.length === 0 || (args.length === 1 && (args[0] === "--help" || args[0] === "-h"))

/**
 * The overview text.
 *
 * @since 0.1.0
 */
export const text = (version: string): string => {
  const width = Math.max(...commands.map(([name]) => name.length))
  return [
    `dv-effect ${version}: move data in and out of Microsoft Dataverse in bulk`,
    "",
    "USAGE",
    "  dv-effect <command> [flags]",
    "",
    "COMMANDS",
    ...commands.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`),
    "",
    "CONNECTION (every command that talks to Dataverse)",
    "  --url <org url> with --access-token, --connection-string, --tenant-id/--client-id (secret in",
    "  AZURE_CLIENT_SECRET, or --certificate), --device-code, --username, --managed-identity,",
    "  --federated-token-file, --profile <name>, or --emulator (in-process). Each has an environment",
    "  variable (DATAVERSE_URL, DATAVERSE_ACCESS_TOKEN, ...); see a command's --help.",
    "",
    "OTHER FLAGS",
    "  --verbose                         stack traces and debug logs on stderr (never secrets)",
    "  --completions <sh|bash|fish|zsh>  print a shell completion script",
    "  --version                         print the version",
    "",
    "EXIT CODES",
    "  0 every row succeeded, 2 some rows were rejected, 1 a fatal error, 130 interrupted, 143 terminated",
    "",
    "Run 'dv-effect <command> --help' for its flags and examples.",
    ""
  ].join("\n")
}

/**
 * `dv-effect auth login|list|select|logout`: named connection profiles.
 *
 * @since 0.1.0
 */
import * as ConnectionString from "@dv-effect/core/ConnectionString"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import { DataverseError } from "@dv-effect/core/DataverseError"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "./CliError.js"
import * as Connection from "./Connection.js"
import * as Help from "./Help.js"
import * as Output from "./Output.js"
import * as Profiles from "./Profiles.js"

const { emulator: _emulator, profile: _profile, ...loginConnectionOptions } = Connection.options

const outputOption = Options.choice("output", ["text", "json"]).pipe(
  Options.withAlias("o"),
  Options.withDescription("text: for people; json: machine-readable, on stdout"),
  Options.withDefault("text" as const)
)

const absolute = (file: string | undefined) => (file === undefined ? undefined : Path.resolve(file))

const secretNames: Record<string, string> = {
  "client-secret": "client secret",
  "certificate": "certificate password",
  "username-password": "password",
  "connection-string": "connection string"
}

/** Moves the token cache a login wrote to its place, or removes a stale one. */
const keepTokenCache = (temporary: string, final: string) =>
  Effect.try({
    try: () => {
      if (Fs.existsSync(temporary)) {
        if (process.platform !== "win32") Fs.chmodSync(temporary, 0o600)
        Fs.renameSync(temporary, final)
      } else Fs.rmSync(final, { force: true })
    },
    catch: (error) => new CliError({ message: `Cannot write ${final}: ${(error as Error).message}`, cause: error })
  })

const loginCommand = Command.make(
  "login",
  {
    name: Options.text("name").pipe(
      Options.withPseudoName("name"),
      Options.withDescription("Name of the profile to save (letters, digits, . _ -)")
    ),
    storeSecret: Options.boolean("store-secret").pipe(
      Options.withDescription("Also save the secret (client secret, password, ...) in the profile file, in clear text")
    ),
    output: outputOption,
    connection: loginConnectionOptions
  },
  (args) =>
    Effect.gen(function*() {
      const name = yield* Profiles.validateName("--name", args.name)
      const flags: Connection.ConnectionArgs = { ...args.connection, profile: [], emulator: false }
      // Said before the flags are combined: beside another sign-in flag the token would be
      // refused too, for a reason that does not tell the user a token is never saved.
      const target = flags.accessToken.length > 0
        ? { flow: "access-token" as const }
        : yield* Connection.fromFlags(flags)
      if (target.flow === "access-token") {
        return yield* new CliError({
          message:
            "auth login does not save --access-token (DATAVERSE_ACCESS_TOKEN): a token expires within hours; pass it to each command, or log in with --device-code, --username or --client-id."
        })
      }
      if (target.flow === "connection-string" && !args.storeSecret) {
        return yield* new CliError({
          message:
            "A connection string may hold a secret: pass its parts as flags (--url, --tenant-id, --client-id, ...), or add --store-secret to save it in clear text."
        })
      }
      let url = target.url
      if (url === undefined && target.secret !== undefined) {
        const fields = ConnectionString.parseFields(Redacted.value(target.secret))
        url = fields instanceof DataverseError ? undefined : fields.get("url")
      }
      if (url === undefined || url === "") {
        return yield* new CliError({ message: "No Dataverse URL: pass --url <org url> or set DATAVERSE_URL." })
      }
      url = yield* Connection.checkUrl(url, target.allowHttp)
      const stored = args.storeSecret && target.secret !== undefined ? Redacted.value(target.secret) : undefined
      const profile: Profiles.Profile = {
        name,
        url: url.replace(/\/+$/, ""),
        flow: target.flow,
        ...(target.tenantId === undefined ? {} : { tenantId: target.tenantId }),
        ...(target.clientId === undefined ? {} : { clientId: target.clientId }),
        ...(target.authority === undefined ? {} : { authority: target.authority }),
        ...(target.caFile === undefined ? {} : { caFile: absolute(target.caFile)! }),
        ...(target.certificate === undefined ? {} : { certificate: absolute(target.certificate)! }),
        ...(target.federatedTokenFile === undefined
          ? {}
          : { federatedTokenFile: absolute(target.federatedTokenFile)! }),
        ...(target.username === undefined ? {} : { username: target.username }),
        ...(args.connection.allowHttp ? { allowHttp: true } : {}),
        ...(stored === undefined ? {} : { secret: stored })
      }

      // Sign in once, into a token cache of its own: the profile's cache is replaced only on success.
      yield* Profiles.ensureTokenDir()
      const finalCache = Profiles.tokenCacheFile(name)
      const temporaryCache = `${finalCache}.login-${process.pid}`
      const me = yield* DataverseClient.whoAmI.pipe(
        Effect.provide(Connection.layerTarget({ ...target, url, cacheFile: temporaryCache })),
        Effect.tapError(() => Profiles.removeFile(temporaryCache).pipe(Effect.ignore))
      )
      yield* keepTokenCache(temporaryCache, finalCache)
      const contents = Profiles.upsert(yield* Profiles.load, profile)
      yield* Profiles.save({ ...contents, selected: name })

      const file = Profiles.profilesFile()
      yield* Output.stderr(`Signed in to ${profile.url} as user ${me.UserId}.\n`)
      yield* Output.stderr(`Profile '${name}' saved in ${file} and selected.\n`)
      const what = secretNames[profile.flow]
      if (stored !== undefined) {
        yield* Output.stderr(
          `Warning: the ${what} is stored in clear text in ${file} (mode 0600); anyone who can read that file can sign in as this ${
            profile.flow === "username-password" ? "user" : "app"
          }. Remove it with dv-effect auth logout ${name}.\n`
        )
      } else if (profile.flow === "client-secret") {
        yield* Output.stderr(
          `The client secret is not stored: commands with this profile read it from ${
            Connection.profileSecretVariable(name)
          }, else AZURE_CLIENT_SECRET, or prompt for it.\n`
        )
      } else if (profile.flow === "username-password") {
        yield* Output.stderr(
          "The password is not stored: once the cached sign-in expires, commands read it from DATAVERSE_PASSWORD.\n"
        )
      }
      if (args.output === "json") {
        yield* Output.stdout(
          `${
            JSON.stringify({
              profile: Profiles.display(profile, true),
              UserId: me.UserId,
              BusinessUnitId: me.BusinessUnitId,
              OrganizationId: me.OrganizationId
            })
          }\n`
        )
      }
    })
).pipe(
  Command.withDescription(
    Help.withExamples(
      "Sign in, check the connection (WhoAmI) and save it as a named profile, which becomes the selected one",
      [
        [
          "dv-effect auth login --name dev --url https://contoso.crm.dynamics.com --device-code",
          "A person: the code and URL to enter go to stderr; the sign-in is cached (mode 0600)"
        ],
        [
          "AZURE_CLIENT_SECRET=... dv-effect auth login --name ci --url https://contoso.crm.dynamics.com --tenant-id <tenant> --client-id <app>",
          "An app registration; later runs read the secret from AZURE_CLIENT_SECRET again"
        ],
        ["dv-effect whoami --profile ci", "Use a profile explicitly (or set DATAVERSE_PROFILE)"]
      ],
      { notes: ["Secrets are not saved in the profile unless --store-secret; tokens are cached (mode 0600)."] }
    )
  )
)

const listCommand = Command.make(
  "list",
  { output: outputOption },
  (args) =>
    Effect.gen(function*() {
      const contents = yield* Profiles.load
      const shown = contents.profiles.map((p) => Profiles.display(p, p.name === contents.selected))
      if (args.output === "json") return yield* Output.stdout(`${JSON.stringify(shown, null, 2)}\n`)
      if (shown.length === 0) {
        return yield* Output.stderr(
          `No profiles in ${Profiles.profilesFile()}; create one with dv-effect auth login --name <name> ...\n`
        )
      }
      const rows = [
        ["", "NAME", "URL", "FLOW", "IDENTITY"],
        ...shown.map((p) => [
          p.selected ? "*" : "",
          p.name,
          p.url,
          p.flow,
          [
            p.username === undefined ? undefined : `user ${p.username}`,
            p.clientId === undefined ? undefined : `client ${p.clientId}`,
            p.tenantId === undefined ? undefined : `tenant ${p.tenantId}`,
            p.secretStored ? "secret stored" : undefined
          ].filter((s) => s !== undefined).join(", ")
        ])
      ]
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
      yield* Output.stdout(
        rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n"
      )
    })
).pipe(
  Command.withDescription(
    Help.withExamples("List the saved profiles; * marks the selected one", [
      ["dv-effect auth list", "A table for people"],
      ["dv-effect auth list -o json | jq -r '.[] | select(.selected) | .url'", "The selected profile's URL"]
    ])
  )
)

const selectCommand = Command.make(
  "select",
  {
    name: Args.text({ name: "name" }).pipe(Args.withDescription("The profile to use when no connection flag is given"))
  },
  (args) =>
    Effect.gen(function*() {
      const contents = yield* Profiles.load
      const profile = yield* Profiles.find(contents, args.name)
      yield* Profiles.save({ ...contents, selected: profile.name })
      yield* Output.stderr(`Profile '${profile.name}' (${profile.url}) selected.\n`)
    })
).pipe(
  Command.withDescription(
    Help.withExamples("Select the profile commands use when no connection flag is given", [
      ["dv-effect auth select prod && dv-effect whoami", "whoami now runs against prod"],
      ["dv-effect auth list", "The profiles there are; * marks the selected one"]
    ])
  )
)

const logoutCommand = Command.make(
  "logout",
  {
    name: Args.text({ name: "name" }).pipe(
      Args.withDescription("The profile to remove (default: the selected one)"),
      Args.optional
    ),
    all: Options.boolean("all").pipe(
      Options.withDescription("Remove every profile and every cached sign-in")
    )
  },
  (args) =>
    Effect.gen(function*() {
      if (args.all && Option.isSome(args.name)) {
        // Removing every profile when one was named would remove more than was asked.
        return yield* new CliError({
          message:
            `--all removes every profile: leave out '${args.name.value}', or leave out --all to remove only that profile.`
        })
      }
      const contents = yield* Profiles.load
      if (args.all) {
        for (const profile of contents.profiles) yield* Profiles.removeFile(Profiles.tokenCacheFile(profile.name))
        yield* Profiles.removeFile(Connection.tokenCacheFile())
        yield* Profiles.save({ version: 1, profiles: [] })
        return yield* Output.stderr(
          `Removed ${contents.profiles.length} profile${
            contents.profiles.length === 1 ? "" : "s"
          } and every cached sign-in.\n`
        )
      }
      const name = Option.getOrUndefined(args.name) ?? contents.selected
      if (name === undefined) {
        return yield* new CliError({
          message: "No profile is selected: name the one to remove (dv-effect auth logout <name>), or pass --all."
        })
      }
      const profile = yield* Profiles.find(contents, name)
      yield* Profiles.removeFile(Profiles.tokenCacheFile(profile.name))
      yield* Profiles.save(Profiles.remove(contents, profile.name))
      yield* Output.stderr(
        `Profile '${profile.name}' removed, with its cached sign-in${
          contents.selected === profile.name ? "; no profile is selected now" : ""
        }.\n`
      )
    })
).pipe(
  Command.withDescription(
    Help.withExamples("Remove a profile and its cached sign-in (default: the selected profile)", [
      ["dv-effect auth logout dev", "Forget the profile dev and its tokens"],
      ["dv-effect auth logout --all", "Forget every profile and every cached sign-in"]
    ])
  )
)

/**
 * The `auth` command and its subcommands.
 *
 * @since 0.1.0
 */
export const authCommand = Command.make("auth").pipe(
  Command.withDescription(Help.withExamples(
    "Manage named connection profiles (login signs in and saves one; list, select, logout)",
    [
      ["dv-effect auth login --name dev --url https://contoso.crm.dynamics.com --device-code", "Sign in and save"],
      ["dv-effect auth list", "The saved profiles; * marks the selected one"],
      ["dv-effect auth select dev", "Use dev when no connection flag is given"]
    ]
  )),
  Command.withSubcommands([loginCommand, listCommand, selectCommand, logoutCommand])
)

/**
 * The connection flags every command that talks to Dataverse takes, and the layer they build:
 * flags (or their environment variables), a saved profile (`--profile`, `DATAVERSE_PROFILE`, or
 * the one `dv-effect auth select` chose when no connection flag is given), or `--emulator`.
 *
 * @since 0.1.0
 */
import * as ConnectionString from "@dv-effect/core/ConnectionString"
import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import { DataverseError } from "@dv-effect/core/DataverseError"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "./CliError.js"
import * as Profiles from "./Profiles.js"

/** The conventional variables, named once in core. */
const Env = DataverseClient.environmentVariables

/** What they hold (empty counts as unset); reading cannot fail: every setting is optional. */
const environment = Effect.orDie(DataverseClient.environmentConfig)

const text = (name: string, value: string, description: string, variable?: string) => {
  const option = Options.text(name).pipe(Options.withPseudoName(value), Options.withDescription(description))
  // An empty value (DATAVERSE_URL= in a shell or an .env file) counts as unset, as in `environment`.
  return (variable === undefined ? option : option.pipe(Options.withFallbackConfig(Config.string(variable)))).pipe(
    Options.optional,
    Options.map(Option.filter((value) => value !== ""))
  )
}

/**
 * The values of a list flag or variable: comma-separated, blanks dropped. A profile name has no
 * comma (see Profiles.validateName), nor has a JWT.
 */
const listOf = (value: string): ReadonlyArray<string> =>
  value.split(",").map((item) => item.trim()).filter((item) => item !== "")

const secret = (name: string, value: string, description: string, variable: string) =>
  Options.redacted(name).pipe(
    Options.withPseudoName(value),
    Options.withDescription(description),
    Options.withFallbackConfig(Config.redacted(variable)),
    Options.optional
  )

/**
 * The connection flags, each with its environment variable.
 *
 * @since 0.1.0
 */
export const options = {
  profile: Options.text("profile").pipe(
    Options.withPseudoName("name"),
    Options.withDescription(
      "A saved profile (see dv-effect auth list); repeat (or a,b) to load as several identities; env DATAVERSE_PROFILES=a,b or DATAVERSE_PROFILE"
    ),
    Options.repeated,
    Options.map((names) => names.flatMap(listOf))
  ),
  url: text("url", "url", "Org URL, e.g. https://contoso.crm.dynamics.com; env DATAVERSE_URL", Env.url),
  // Read as text and redacted at once: @effect/cli 0.77 refuses a repeated `Options.redacted`
  // ("'<redacted>' is not a redacted").
  accessToken: Options.text("access-token").pipe(
    Options.withPseudoName("token"),
    Options.withDescription(
      "Bearer token (never printed); repeat (or t1,t2) to load as several identities; env DATAVERSE_ACCESS_TOKEN (t1,t2 for several)"
    ),
    Options.repeated,
    Options.map((tokens) => tokens.flatMap(listOf).map((token) => Redacted.make(token)))
  ),
  connectionString: secret(
    "connection-string",
    "string",
    "AuthType=...;Url=...;...; env DATAVERSE_CONNECTION_STRING",
    Env.connectionString
  ),
  tenantId: text("tenant-id", "id", "Entra tenant id, for an app registration; env AZURE_TENANT_ID", Env.tenantId),
  clientId: text(
    "client-id",
    "id",
    "App registration (client) id; env AZURE_CLIENT_ID",
    Env.clientId
  ),
  certificate: text(
    "certificate",
    "file",
    "PEM (with key) or PFX; env AZURE_CLIENT_CERTIFICATE_PATH",
    Env.certificatePath
  ),
  federatedTokenFile: text(
    "federated-token-file",
    "file",
    "Workload identity token; env AZURE_FEDERATED_TOKEN_FILE",
    Env.federatedTokenFile
  ),
  username: text(
    "username",
    "user",
    "Sign in as this user (a password sign-in); env DATAVERSE_USERNAME",
    Env.username
  ),
  deviceCode: Options.boolean("device-code").pipe(
    Options.withDescription("Sign in with a device code, shown on stderr; the sign-in is cached")
  ),
  managedIdentity: Options.boolean("managed-identity").pipe(
    Options.withDescription("This host's managed identity (user-assigned: with --client-id)")
  ),
  authority: text(
    "authority",
    "url",
    "Identity endpoint (default: login.microsoftonline.com/<tenant>)",
    undefined
  ),
  caFile: text(
    "ca-file",
    "file",
    "Trust this CA for sign-in (the emulator's caFile); env DATAVERSE_CA_FILE",
    Env.caFile
  ),
  allowHttp: Options.boolean("allow-http").pipe(
    Options.withDescription("Allow http:// to a remote org (tokens travel unencrypted)")
  ),
  emulator: Options.boolean("emulator").pipe(
    Options.withDescription("Use a fresh in-process emulator instead of --url")
  )
}

/**
 * The parsed connection flags.
 *
 * @since 0.1.0
 */
export interface ConnectionArgs {
  /** Saved profiles, one per identity (none: the flags, or the selected profile). */
  readonly profile: ReadonlyArray<string>
  readonly url: Option.Option<string>
  /** Bearer tokens, one per identity. */
  readonly accessToken: ReadonlyArray<Redacted.Redacted<string>>
  readonly connectionString: Option.Option<Redacted.Redacted<string>>
  readonly tenantId: Option.Option<string>
  readonly clientId: Option.Option<string>
  readonly certificate: Option.Option<string>
  readonly federatedTokenFile: Option.Option<string>
  readonly username: Option.Option<string>
  readonly deviceCode: boolean
  readonly managedIdentity: boolean
  readonly authority: Option.Option<string>
  readonly caFile: Option.Option<string>
  readonly allowHttp: boolean
  readonly emulator: boolean
}

/**
 * Where interactive sign-ins made without a profile are cached between runs (mode 0600).
 *
 * @since 0.1.0
 */
export const tokenCacheFile = (): string => Path.join(Profiles.configDir(), "tokens.json")

/** The public client id Microsoft's samples use for interactive Dataverse sign-ins. */
const samplePublicClientId = "51f81489-12ee-4a9e-aaae-a2591f45987d"

const fail = (message: string) => Effect.fail(new CliError({ message }))

/**
 * A connection before sign-in: the org, the flow and its parameters, the secret it needs (never
 * printed), where interactive sign-ins are cached.
 *
 * @since 0.1.0
 */
export interface Target {
  /** Undefined for a connection string without `--url`: its `Url=` is used. */
  readonly url: string | undefined
  readonly flow: Profiles.Flow | "access-token"
  readonly tenantId?: string | undefined
  readonly clientId?: string | undefined
  readonly certificate?: string | undefined
  readonly federatedTokenFile?: string | undefined
  readonly username?: string | undefined
  readonly authority?: string | undefined
  readonly caFile?: string | undefined
  /** The access token, client secret, certificate password, password or connection string. */
  readonly secret?: Redacted.Redacted<string> | undefined
  readonly cacheFile: string
  readonly allowHttp: boolean
  /** The profile it came from. */
  readonly profile?: string | undefined
}

const nonEmpty = (value: string | undefined): string | undefined =>
  value === undefined || value === "" ? undefined : value

const isLoopback = (hostname: string) => {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase()
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host)
}

/**
 * Refuses a plain `http://` org URL on a host other than this machine unless `--allow-http`.
 *
 * @since 0.1.0
 */
export const checkUrl = (url: string, allowHttp: boolean): Effect.Effect<string, CliError> => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return fail(`The org URL '${url}' is not a URL; pass it as https://<org>.crm.dynamics.com.`)
  }
  if (parsed.protocol === "https:") return Effect.succeed(url)
  if (parsed.protocol !== "http:") {
    return fail(`The org URL '${url}' must start with https:// (or http:// for a local emulator).`)
  }
  if (allowHttp || isLoopback(parsed.hostname)) return Effect.succeed(url)
  return fail(
    `Refusing plain http to ${parsed.host}: tokens would cross the network unencrypted; use https://, or pass --allow-http.`
  )
}

/** Asks for a secret on the terminal without echoing it. */
const readHidden = (message: string): Effect.Effect<string, CliError> =>
  Effect.async<string, CliError>((resume) => {
    const stdin = process.stdin
    const wasRaw = stdin.isRaw
    let value = ""
    const restore = () => {
      stdin.off("data", onData)
      stdin.setRawMode(wasRaw)
      stdin.pause()
    }
    const finish = (result: Effect.Effect<string, CliError>) => {
      restore()
      process.stderr.write("\n")
      resume(result)
    }
    const onData = (chunk: string) => {
      for (const c of chunk) {
        if (c === "\r" || c === "\n" || (c === "\u0004" && value !== "")) return finish(Effect.succeed(value))
        if (c === "\u0003" || c === "\u0004") return finish(fail("Cancelled at the secret prompt."))
        if (c === "\u007f" || c === "\b") value = value.slice(0, -1)
        else value += c
      }
    }
    // Raw mode (no echo) before the prompt shows: what is typed as soon as it appears is not echoed.
    stdin.setEncoding("utf8")
    stdin.setRawMode(true)
    stdin.on("data", onData)
    stdin.resume()
    process.stderr.write(message)
    return Effect.sync(restore)
  })

const noUrl = "No Dataverse URL: pass --url <org url> or set DATAVERSE_URL (or use --emulator or --connection-string)"

/**
 * The variable that holds a profile's own client secret: `AZURE_CLIENT_SECRET_<NAME>`, the name
 * upper-cased with every character other than a letter or digit as `_` (`app-1` →
 * `AZURE_CLIENT_SECRET_APP_1`), so that a run of several profiles needs no secret in a file.
 *
 * @since 0.2.0
 */
export const profileSecretVariable = (profile: string): string =>
  `AZURE_CLIENT_SECRET_${profile.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`

/**
 * The client secret: a profile's own `AZURE_CLIENT_SECRET_<NAME>`, else `AZURE_CLIENT_SECRET`,
 * else a hidden prompt when stdin is a terminal.
 *
 * @since 0.1.0
 */
export const clientSecret = (
  clientId: string,
  profile?: string
): Effect.Effect<Redacted.Redacted<string>, CliError> =>
  Effect.gen(function*() {
    // Several profiles of one run each read their own variable first (AZURE_CLIENT_SECRET_APP1).
    const own = profile === undefined ? Option.none() : yield* Effect.orDie(
      Config.option(Config.redacted(profileSecretVariable(profile))).pipe(
        Config.map(Option.filter((value) => Redacted.value(value) !== ""))
      )
    )
    if (Option.isSome(own)) return own.value
    const shared = (yield* environment).clientSecret
    if (Option.isSome(shared)) return shared.value
    if (process.stdin.isTTY !== true) {
      return yield* fail(
        profile === undefined
          ? "--client-id needs the client secret in AZURE_CLIENT_SECRET (stdin is not a terminal to prompt on), or use --certificate or --federated-token-file."
          : `Profile '${profile}' needs the client secret in ${
            profileSecretVariable(profile)
          } or AZURE_CLIENT_SECRET (it is not stored in the profile, and stdin is not a terminal to prompt on).`
      )
    }
    const typed = yield* readHidden(`Client secret for ${clientId} (not shown): `)
    if (typed.trim() === "") {
      return yield* fail("No client secret typed; set AZURE_CLIENT_SECRET or type it at the prompt.")
    }
    return Redacted.make(typed.trim())
  })

/** The user's password from `DATAVERSE_PASSWORD`, if set. */
const passwordFromEnv: Effect.Effect<Redacted.Redacted<string> | undefined> = Effect.map(
  environment,
  (env) => Option.getOrUndefined(env.password)
)

const passwordNeeded = "--username needs the password in DATAVERSE_PASSWORD (it is never taken as a flag)."

const password: Effect.Effect<Redacted.Redacted<string>, CliError> = Effect.flatMap(
  passwordFromEnv,
  (value) => value === undefined ? fail(passwordNeeded) : Effect.succeed(value)
)

const certificatePassword: Effect.Effect<Redacted.Redacted<string> | undefined> = Effect.map(
  environment,
  (env) => Option.getOrUndefined(env.certificatePassword)
)

/** The connection settings, each with its flag and its environment variable. */
const connectionSettings: ReadonlyArray<
  readonly [key: keyof ConnectionArgs, flag: string, variable: string | undefined]
> = [
  ["url", "--url", Env.url],
  ["accessToken", "--access-token", Env.accessToken],
  ["connectionString", "--connection-string", Env.connectionString],
  ["tenantId", "--tenant-id", Env.tenantId],
  ["clientId", "--client-id", Env.clientId],
  ["certificate", "--certificate", Env.certificatePath],
  ["federatedTokenFile", "--federated-token-file", Env.federatedTokenFile],
  ["username", "--username", Env.username],
  ["deviceCode", "--device-code", undefined],
  ["managedIdentity", "--managed-identity", undefined]
]

const joinAnd = (items: ReadonlyArray<string>) =>
  items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`

/**
 * Why the selected profile is not used: the connection flags given, and the variables set, that
 * take its place; e.g. `the selected profile 'dev' is not used because DATAVERSE_URL is set; unset
 * it or pass --profile dev`.
 *
 * @since 0.1.0
 */
export const profileNotUsed = (
  name: string,
  args: ConnectionArgs,
  argv: ReadonlyArray<string> = process.argv,
  env: NodeJS.ProcessEnv = process.env
): string => {
  const flags: Array<string> = []
  const variables: Array<string> = []
  for (const [key, flag, variable] of connectionSettings) {
    if (!isSet(args[key])) continue
    if (!onCommandLine(argv, flag) && variable !== undefined && nonEmpty(env[variable]) !== undefined) {
      variables.push(variable)
    } else flags.push(flag)
  }
  const because = [
    variables.length === 0 ? undefined : `${joinAnd(variables)} ${variables.length === 1 ? "is" : "are"} set`,
    flags.length === 0 ? undefined : `${joinAnd(flags)} ${flags.length === 1 ? "is" : "are"} given`
  ].filter((part) => part !== undefined).join(" and ")
  const advice = variables.length === 0
    ? `pass --profile ${name} to use it`
    : `unset ${variables.length === 1 ? "it" : "them"} or pass --profile ${name}`
  return `the selected profile '${name}' is not used because ${because}; ${advice}`
}

const onCommandLine = (argv: ReadonlyArray<string>, flag: string) =>
  argv.some((arg) => arg === flag || arg.startsWith(`${flag}=`))

/** Whether a connection setting has a value (a boolean flag: is on). */
const isSet = (value: unknown): boolean =>
  value === true || (Option.isOption(value) && Option.isSome(value)) || (Array.isArray(value) && value.length > 0)

/** The connection flags typed on the command line and set (`--device-code=false` is off). */
const typedFlags = (args: ConnectionArgs, argv: ReadonlyArray<string>): Array<string> =>
  connectionSettings.flatMap(([key, flag]) => (isSet(args[key]) && onCommandLine(argv, flag) ? [flag] : []))

/** The flags of the ways to sign in other than a token and a connection string. */
const otherSignInFlags = [
  "--tenant-id",
  "--client-id",
  "--certificate",
  "--federated-token-file",
  "--username",
  "--device-code",
  "--managed-identity"
]

/**
 * What a way to sign in given on the command line would lose to another, silently: a token
 * beside `--tenant-id` or `--device-code` (the token signs in by itself), or `--access-token`,
 * `--client-id` or `--device-code` beside a connection string (which comes first). Only a flag
 * given, and set (`--device-code=false` is off), counts: a variable such as AZURE_TENANT_ID may be
 * set for the whole machine, and a connection string on the command line rightly wins over a
 * token in the environment.
 */
const droppedSignIn = (args: ConnectionArgs, argv: ReadonlyArray<string>): string | undefined => {
  const refusal = (winner: string, variable: string, dropped: ReadonlyArray<string>) => {
    const inEnvironment = !onCommandLine(argv, winner)
    return `${inEnvironment ? `${variable} (set)` : winner} signs in by itself, so ${
      joinAnd(dropped)
    } would not be used: give one way to sign in${
      inEnvironment ? ` (unset ${variable} to use ${joinAnd(dropped)})` : ""
    }.`
  }
  const typed = typedFlags(args, argv)
  if (Option.isSome(args.connectionString)) {
    // `--tenant-id` also serves a connection string without `TenantId=`.
    const dropped = typed.filter((flag) =>
      flag === "--access-token" || (flag !== "--tenant-id" && otherSignInFlags.includes(flag))
    )
    return dropped.length === 0 ? undefined : refusal("--connection-string", Env.connectionString, dropped)
  }
  if (args.accessToken.length === 0) return undefined
  const others = typed.filter((flag) => otherSignInFlags.includes(flag))
  return others.length === 0 ? undefined : refusal("--access-token", Env.accessToken, others)
}

/**
 * What a profile would drop: the org and sign-in flags typed beside it (a profile names both; only
 * `--authority`, `--ca-file` and `--allow-http` apply with it). `--access-token` beside `--profile`
 * is refused on its own terms (`resolveTargets`).
 */
const droppedByProfile = (
  args: ConnectionArgs,
  argv: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv = process.env
): string | undefined => {
  const typed = typedFlags(args, argv)
  if (typed.length === 0) return undefined
  const names = args.profile.join(",")
  const fromFlag = onCommandLine(argv, "--profile")
  // The variable `withEnvironment` read: DATAVERSE_PROFILES first.
  const variable = nonEmpty(env.DATAVERSE_PROFILES) !== undefined ? "DATAVERSE_PROFILES" : "DATAVERSE_PROFILE"
  const profile = fromFlag ? `--profile ${names}` : `${variable}=${names} (set)`
  return `${profile} names the org and the sign-in, so ${joinAnd(typed)} would not be used: give one or the other${
    fromFlag ? "" : ` (unset ${variable} to use the flags)`
  }.`
}

/** Whether any flag (or variable) that chooses the org or the sign-in was given. */
const hasConnectionFlags = (args: ConnectionArgs) =>
  Option.isSome(args.url) || args.accessToken.length > 0 || Option.isSome(args.connectionString) ||
  Option.isSome(args.tenantId) || Option.isSome(args.clientId) || Option.isSome(args.certificate) ||
  Option.isSome(args.federatedTokenFile) || Option.isSome(args.username) || args.deviceCode || args.managedIdentity

/**
 * The target the flags describe, ignoring profiles. The secret of the flow is read here
 * (environment, or the hidden prompt for a client secret).
 *
 * @since 0.1.0
 */
export const fromFlags = (
  args: ConnectionArgs,
  argv: ReadonlyArray<string> = process.argv
): Effect.Effect<Target, CliError> =>
  Effect.gen(function*() {
    const dropped = droppedSignIn(args, argv)
    if (dropped !== undefined) return yield* fail(dropped)
    const common = {
      authority: Option.getOrUndefined(args.authority),
      caFile: Option.getOrUndefined(args.caFile),
      cacheFile: tokenCacheFile(),
      allowHttp: args.allowHttp,
      tenantId: Option.getOrUndefined(args.tenantId)
    }
    if (Option.isSome(args.connectionString)) {
      return {
        ...common,
        url: Option.getOrUndefined(args.url),
        flow: "connection-string",
        secret: args.connectionString.value
      } satisfies Target
    }
    if (Option.isNone(args.url)) {
      return yield* fail(`${noUrl}.`)
    }
    const url = args.url.value
    if (args.accessToken.length > 0) {
      return { ...common, url, flow: "access-token", secret: args.accessToken[0] } satisfies Target
    }
    if (args.managedIdentity) {
      return {
        ...common,
        url,
        flow: "managed-identity",
        clientId: Option.getOrUndefined(args.clientId)
      } satisfies Target
    }
    if (Option.isSome(args.username)) {
      return {
        ...common,
        url,
        flow: "username-password",
        username: args.username.value,
        clientId: Option.getOrElse(args.clientId, () => samplePublicClientId),
        secret: yield* password
      } satisfies Target
    }
    if (args.deviceCode) {
      return {
        ...common,
        url,
        flow: "device-code",
        clientId: Option.getOrElse(args.clientId, () => samplePublicClientId)
      } satisfies Target
    }
    const appFlow = Option.isSome(args.certificate) || Option.isSome(args.federatedTokenFile) ||
      Option.isSome(args.clientId) || Option.isSome((yield* environment).clientSecret)
    if (appFlow) {
      if (common.tenantId === undefined || Option.isNone(args.clientId)) {
        return yield* fail(
          "Client credentials need --tenant-id and --client-id (or AZURE_TENANT_ID and AZURE_CLIENT_ID)."
        )
      }
      const clientId = args.clientId.value
      if (Option.isSome(args.federatedTokenFile)) {
        return {
          ...common,
          url,
          flow: "workload-identity",
          clientId,
          federatedTokenFile: args.federatedTokenFile.value
        } satisfies Target
      }
      if (Option.isSome(args.certificate)) {
        return {
          ...common,
          url,
          flow: "certificate",
          clientId,
          certificate: args.certificate.value,
          secret: yield* certificatePassword
        } satisfies Target
      }
      return { ...common, url, flow: "client-secret", clientId, secret: yield* clientSecret(clientId) } satisfies Target
    }
    return yield* fail(
      "No credentials: pass --access-token, --connection-string, --device-code, --username, --managed-identity, --profile, or --tenant-id and --client-id with AZURE_CLIENT_SECRET, --certificate or --federated-token-file."
    )
  })

/**
 * The target a saved profile describes; `--authority`, `--ca-file` and `--allow-http` on the
 * command line still apply. The secret comes from the profile when it was stored there, else
 * from the flow's environment variable (or the prompt, for a client secret).
 *
 * @since 0.1.0
 */
export const fromProfile = (
  profile: Profiles.Profile,
  args: Pick<ConnectionArgs, "authority" | "caFile" | "allowHttp">,
  cacheFile: string = Profiles.tokenCacheFile(profile.name)
): Effect.Effect<Target, CliError> =>
  Effect.gen(function*() {
    const stored = profile.secret === undefined ? undefined : Redacted.make(profile.secret)
    const secretOf = (): Effect.Effect<Redacted.Redacted<string> | undefined, CliError> => {
      if (stored !== undefined) return Effect.succeed(stored)
      switch (profile.flow) {
        case "client-secret":
          return clientSecret(profile.clientId ?? "", profile.name)
        case "username-password":
          // Without DATAVERSE_PASSWORD the profile's cached sign-in is used; the password is asked
          // for only when that cannot give a token (see `credentials`).
          return passwordFromEnv
        case "certificate":
          return certificatePassword
        case "connection-string":
          return fail(`Profile '${profile.name}' has no stored connection string; log in again with --store-secret.`)
        default:
          return Effect.succeed(undefined)
      }
    }
    return {
      url: profile.url,
      flow: profile.flow,
      tenantId: profile.tenantId,
      clientId: profile.clientId,
      certificate: profile.certificate,
      federatedTokenFile: profile.federatedTokenFile,
      username: profile.username,
      authority: Option.getOrElse(args.authority, () => profile.authority),
      caFile: Option.getOrElse(args.caFile, () => profile.caFile),
      secret: yield* secretOf(),
      cacheFile,
      allowHttp: args.allowHttp || profile.allowHttp === true,
      profile: profile.name
    } satisfies Target
  })

/**
 * The repeatable connection flags, from their environment variables when none is given:
 * `DATAVERSE_PROFILES` (comma-separated) or `DATAVERSE_PROFILE`, and `DATAVERSE_ACCESS_TOKEN`
 * (several comma-separated: a JWT has no comma).
 *
 * @since 0.2.0
 */
export const withEnvironment = (args: ConnectionArgs): Effect.Effect<ConnectionArgs, CliError> =>
  Effect.gen(function*() {
    const variable = (name: string) =>
      Config.option(Config.string(name)).pipe(
        Effect.orElseSucceed(() => Option.none<string>()),
        Effect.map((value) => Option.match(value, { onNone: () => [], onSome: listOf }))
      )
    const profile = args.profile.length > 0
      ? args.profile
      : yield* Effect.flatMap(
        variable("DATAVERSE_PROFILES"),
        (names) => names.length > 0 ? Effect.succeed(names) : variable("DATAVERSE_PROFILE")
      )
    const accessToken = args.accessToken.length > 0 ? args.accessToken : (yield* environment).accessTokens
    return { ...args, profile, accessToken }
  })

/** The first value given twice, if any. */
const repeated = <A>(values: ReadonlyArray<A>, key: (value: A) => string = String): A | undefined => {
  const seen = new Set<string>()
  for (const value of values) {
    if (seen.has(key(value))) return value
    seen.add(key(value))
  }
  return undefined
}

/**
 * The targets of a command, one per identity: each `--profile` (or `DATAVERSE_PROFILES`), or
 * each `--access-token` with the other flags; else what `resolveTarget` finds.
 *
 * @since 0.2.0
 */
export const resolveTargets = (flags: ConnectionArgs): Effect.Effect<ReadonlyArray<Target>, CliError> =>
  Effect.gen(function*() {
    if (flags.profile.length > 0 && flags.accessToken.length > 0) {
      return yield* fail(
        "--profile and --access-token both name identities: give them all one way (several --profile, or several --access-token with --url)."
      )
    }
    const args = yield* withEnvironment(flags)
    const dropped = args.profile.length > 0 ? droppedByProfile(args, process.argv) : undefined
    if (dropped !== undefined) return yield* fail(dropped)
    const twice = repeated(args.profile)
    if (twice !== undefined) return yield* fail(`--profile ${twice} is given twice: each identity once.`)
    if (args.profile.length > 1) return yield* Effect.forEach(args.profile, (name) => profileTarget(name, args))
    if (args.profile.length === 0 && args.accessToken.length > 1) {
      if (repeated(args.accessToken, Redacted.value) !== undefined) {
        return yield* fail("The same --access-token is given twice: each identity once.")
      }
      return yield* Effect.forEach(args.accessToken, (token) => fromFlags({ ...args, accessToken: [token] }))
    }
    return [yield* resolveTarget(args)]
  })

const profileTarget = (name: string, args: ConnectionArgs) =>
  Effect.gen(function*() {
    const valid = yield* Profiles.validateName("--profile", name)
    return yield* fromProfile(yield* Profiles.find(yield* Profiles.load, valid), args)
  })

/**
 * The target of a command: `--profile` (or `DATAVERSE_PROFILE`) first; else the flags; else,
 * when no connection flag at all is given, the selected profile. With several identities, the
 * first (see `resolveTargets`).
 *
 * @since 0.1.0
 */
export const resolveTarget = (flags: ConnectionArgs): Effect.Effect<Target, CliError> =>
  Effect.gen(function*() {
    const args = yield* withEnvironment(flags)
    if (args.profile.length > 0) return yield* profileTarget(args.profile[0]!, args)
    if (!hasConnectionFlags(args)) {
      const saved = yield* Profiles.load
      if (saved.selected !== undefined) {
        const profile = saved.profiles.find((p) => p.name === saved.selected)
        if (profile !== undefined) return yield* fromProfile(profile, args)
      }
      // No connection flag and no profile selected (the selected one logged out) while others are
      // saved: say which there are.
      if (saved.profiles.length > 0) {
        return yield* fail(
          `${noUrl}, or name a saved profile (${
            saved.profiles.map((p) => p.name).join(", ")
          }) with --profile <name> or select one with dv-effect auth select <name>.`
        )
      }
      return yield* fromFlags(args)
    }
    // The flags (or variables) win over the selected profile: when they do not make a connection,
    // the error says that a selected profile was passed over, and why.
    return yield* fromFlags(args).pipe(
      Effect.catchAll((error) =>
        Effect.flatMap(
          Profiles.load.pipe(Effect.orElseSucceed((): Profiles.ProfileFile | undefined => undefined)),
          (saved) => {
            const selected = saved?.profiles.find((p) => p.name === saved.selected)
            if (selected === undefined) return Effect.fail(error)
            return Effect.fail(
              new CliError({
                message: `${error.message.replace(/\.$/, "")} (${profileNotUsed(selected.name, args)}).`,
                cause: error
              })
            )
          }
        )
      )
    )
  })

/**
 * A username/password sign-in from a profile's token cache alone, for when DATAVERSE_PASSWORD is
 * not set: core asks for the password only when the cache cannot sign in silently, and then
 * this one line asks the user for it, before anything is sent.
 */
const cachedSignIn = (
  options: Omit<Parameters<typeof Credentials.usernamePassword>[0], "password">,
  profile: string
): Credentials.Credential =>
  Credentials.usernamePassword({
    ...options,
    password: Effect.fail(
      new DataverseError({
        reason: "Unauthorized",
        message:
          `Profile '${profile}' has no usable cached sign-in for ${options.username}: set DATAVERSE_PASSWORD to sign in again (the password is not stored in the profile, nor taken as a flag).`
      })
    )
  })

/**
 * Signs in as the target says: the org URL (checked) and the credential.
 *
 * @since 0.1.0
 */
export const credentials = (
  target: Target
): Effect.Effect<{ url: string; credentials: Credentials.Credential }, CliError | DataverseError> =>
  Effect.gen(function*() {
    const caFile = target.caFile
    const ca = caFile === undefined ? undefined : yield* Effect.try({
      try: () => Fs.readFileSync(caFile, "utf8"),
      catch: () => new CliError({ message: `Cannot read --ca-file ${caFile}.` })
    })
    const authorityHost = Option.getOrUndefined((yield* environment).authorityHost)
    const tenantId = target.tenantId
    const authority = target.authority ??
      (authorityHost !== undefined && tenantId !== undefined
        ? `${authorityHost.replace(/\/+$/, "")}/${tenantId}`
        : undefined)
    const endpoint = { ...(authority === undefined ? {} : { authority }), ...(ca === undefined ? {} : { ca }) }
    const prompt = (message: string) => process.stderr.write(`${message}\n`)
    const secretOf = (what: string) =>
      target.secret === undefined ? fail(`No ${what} for this connection.`) : Effect.succeed(target.secret)
    const ids = { ...(tenantId === undefined ? {} : { tenantId }), clientId: target.clientId ?? samplePublicClientId }

    if (target.flow === "connection-string") {
      const parsed = yield* ConnectionString.parse(yield* secretOf("connection string"), {
        onPrompt: prompt,
        cacheFile: target.cacheFile,
        ...(ca === undefined ? {} : { ca }),
        ...(authority === undefined ? {} : { authority })
      })
      const url = yield* checkUrl(target.url ?? parsed.url, target.allowHttp)
      return { url, credentials: parsed.credentials }
    }
    const url = yield* checkUrl(target.url ?? "", target.allowHttp)
    switch (target.flow) {
      case "access-token":
        return { url, credentials: Credentials.staticToken(yield* secretOf("access token")) }
      case "managed-identity":
        return {
          url,
          credentials: Credentials.managedIdentity({
            ...(target.clientId === undefined ? {} : { clientId: target.clientId }),
            ...(ca === undefined ? {} : { ca })
          })
        }
      case "device-code":
        return {
          url,
          credentials: Credentials.deviceCode({ ...endpoint, ...ids, cacheFile: target.cacheFile, onPrompt: prompt })
        }
      case "username-password": {
        const user = { ...endpoint, ...ids, cacheFile: target.cacheFile, username: target.username ?? "" }
        if (target.secret !== undefined) {
          return { url, credentials: Credentials.usernamePassword({ ...user, password: target.secret }) }
        }
        if (target.profile === undefined) {
          return yield* fail(passwordNeeded)
        }
        return { url, credentials: cachedSignIn(user, target.profile) }
      }
      default: {
        if (tenantId === undefined || target.clientId === undefined) {
          return yield* fail(
            "Client credentials need --tenant-id and --client-id (or AZURE_TENANT_ID and AZURE_CLIENT_ID)."
          )
        }
        const app = { ...endpoint, tenantId, clientId: target.clientId }
        if (target.flow === "workload-identity") {
          return {
            url,
            credentials: Credentials.workloadIdentity({ ...app, tokenFile: target.federatedTokenFile ?? "" })
          }
        }
        if (target.flow === "certificate") {
          const read = yield* Credentials.readCertificateFile(target.certificate ?? "", target.secret)
          return { url, credentials: Credentials.clientCertificate({ ...app, ...read }) }
        }
        return {
          url,
          credentials: Credentials.clientSecret({ ...app, clientSecret: yield* secretOf("client secret") })
        }
      }
    }
  })

/**
 * Connection options a command sets from its own flags.
 *
 * @since 0.1.0
 */
export type ConnectionSettings = Pick<DataverseClient.ClientOptions, "maxSockets" | "maxThrottleWait">

/**
 * A `DataverseClient` for a resolved target.
 *
 * @since 0.1.0
 */
export const layerTarget = (
  target: Target,
  settings: ConnectionSettings = {}
): Layer.Layer<DataverseClient.DataverseClient, CliError | DataverseError> => layerTargets([target], settings)

/** How an identity is named in progress and messages: its profile, else its place. */
const labelOf = (target: Target, index: number) => target.profile ?? `token ${index + 1}`

/**
 * A `DataverseClient` of one identity per target, all of one org. `maxSockets` is per identity.
 *
 * @since 0.2.0
 */
export const layerTargets = (
  targets: ReadonlyArray<Target>,
  settings: ConnectionSettings = {}
): Layer.Layer<DataverseClient.DataverseClient, CliError | DataverseError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const signIns = yield* Effect.forEach(targets, credentials)
    const org = DataverseClient.normaliseOrgUrl(signIns[0]!.url)
    for (const [i, signIn] of signIns.entries()) {
      if (DataverseClient.normaliseOrgUrl(signIn.url) !== org) {
        return yield* fail(
          `Identity ${labelOf(targets[i]!, i)} is for ${signIn.url}, not ${
            signIns[0]!.url
          }: the identities of a run must be of one org.`
        )
      }
    }
    return DataverseClient.layerNode({
      ...settings,
      url: signIns[0]!.url,
      credentials: signIns.map((signIn) => signIn.credentials),
      labels: targets.map(labelOf),
      ...(settings.maxSockets === undefined ? {} : { maxSockets: settings.maxSockets * signIns.length })
    })
  }))

/**
 * A `DataverseClient` from the flags: an in-process emulator with `--emulator`, else the org
 * and credential the flags (or their environment variables, or a profile) describe.
 *
 * @since 0.1.0
 */
export const layer = (
  args: ConnectionArgs,
  settings: ConnectionSettings = {}
): Layer.Layer<DataverseClient.DataverseClient, CliError | DataverseError> => {
  if (args.emulator) {
    return Layer.unwrapScoped(
      Effect.gen(function*() {
        // Loaded on demand: `--help` and remote runs never pay for the emulator's modules.
        const Emulator = yield* Effect.promise(() => import("@dv-effect/emulator/Emulator"))
        // Only the static token is used: no identity endpoint, a faster start.
        const running = yield* Emulator.make({ identity: false }).pipe(
          Effect.mapError((cause) =>
            new CliError({ message: `Could not start the in-process emulator: ${cause.message}`, cause })
          )
        )
        return DataverseClient.layerNode({
          url: running.info.url,
          credentials: Credentials.staticToken(running.info.accessToken),
          ...settings
        })
      })
    )
  }
  return Layer.unwrapEffect(Effect.map(resolveTargets(args), (targets) => layerTargets(targets, settings)))
}

/**
 * The connection flags every command that talks to Dataverse takes, and the layer they build.
 *
 * @since 0.1.0
 */
import * as ConnectionString from "@dv-effect/core/ConnectionString"
import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import type { DataverseError } from "@dv-effect/core/DataverseError"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "./CliError.js"

const text = (name: string, description: string, variable?: string) => {
  const option = Options.text(name).pipe(Options.withDescription(description))
  return (variable === undefined ? option : option.pipe(Options.withFallbackConfig(Config.string(variable)))).pipe(
    Options.optional
  )
}

const secret = (name: string, description: string, variable: string) =>
  Options.redacted(name).pipe(
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
  url: text("url", "Org URL, e.g. https://contoso.crm.dynamics.com (env DATAVERSE_URL)", "DATAVERSE_URL"),
  accessToken: secret(
    "access-token",
    "Bearer token for the org (env DATAVERSE_ACCESS_TOKEN); never printed",
    "DATAVERSE_ACCESS_TOKEN"
  ),
  connectionString: secret(
    "connection-string",
    "AuthType=ClientSecret|Certificate|OAuth;Url=...;... (env DATAVERSE_CONNECTION_STRING)",
    "DATAVERSE_CONNECTION_STRING"
  ),
  tenantId: text("tenant-id", "Entra tenant id (env AZURE_TENANT_ID)", "AZURE_TENANT_ID"),
  clientId: text("client-id", "App registration (client) id (env AZURE_CLIENT_ID)", "AZURE_CLIENT_ID"),
  certificate: text(
    "certificate",
    "Client certificate: PEM with its key, or PFX (password in AZURE_CLIENT_CERTIFICATE_PASSWORD) (env AZURE_CLIENT_CERTIFICATE_PATH)",
    "AZURE_CLIENT_CERTIFICATE_PATH"
  ),
  federatedTokenFile: text(
    "federated-token-file",
    "Workload identity: file holding the external token (env AZURE_FEDERATED_TOKEN_FILE)",
    "AZURE_FEDERATED_TOKEN_FILE"
  ),
  username: text(
    "username",
    "Sign in as this user; password from DATAVERSE_PASSWORD (env DATAVERSE_USERNAME)",
    "DATAVERSE_USERNAME"
  ),
  deviceCode: Options.boolean("device-code").pipe(
    Options.withDescription(
      "Sign in with a device code (the code and URL go to stderr); later runs reuse the cached sign-in"
    )
  ),
  managedIdentity: Options.boolean("managed-identity").pipe(
    Options.withDescription("Use the managed identity of this host (user-assigned with --client-id)")
  ),
  authority: text(
    "authority",
    "Identity endpoint, default https://login.microsoftonline.com/<tenant> (env AZURE_AUTHORITY_HOST: the host part)",
    undefined
  ),
  caFile: text(
    "ca-file",
    "Trust this CA for the identity endpoint, e.g. the emulator's caFile (env DATAVERSE_CA_FILE)",
    "DATAVERSE_CA_FILE"
  ),
  emulator: Options.boolean("emulator").pipe(
    Options.withDescription("Run against a fresh in-process emulator instead of --url")
  )
}

/**
 * The parsed connection flags.
 *
 * @since 0.1.0
 */
export interface ConnectionArgs {
  readonly url: Option.Option<string>
  readonly accessToken: Option.Option<Redacted.Redacted<string>>
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
  readonly emulator: boolean
}

/** Where interactive sign-ins are cached between runs (mode 0600). */
export const tokenCacheFile = (): string =>
  Path.join(process.env.XDG_CONFIG_HOME ?? Path.join(Os.homedir(), ".config"), "dv-effect", "tokens.json")

/** The public client id Microsoft's samples use for interactive Dataverse sign-ins. */
const samplePublicClientId = "51f81489-12ee-4a9e-aaae-a2591f45987d"

const fail = (message: string) => Effect.fail(new CliError({ message }))

/** The org URL and the credential the flags describe. */
const resolve = (
  args: ConnectionArgs
): Effect.Effect<{ url: string; credentials: Credentials.Credential }, CliError | DataverseError> =>
  Effect.gen(function*() {
    const caFile = Option.getOrUndefined(args.caFile)
    const ca = caFile === undefined ? undefined : yield* Effect.try({
      try: () => Fs.readFileSync(caFile, "utf8"),
      catch: () => new CliError({ message: `Cannot read --ca-file ${caFile}.` })
    })
    const authorityHost = process.env.AZURE_AUTHORITY_HOST
    const authority = (tenantId: string | undefined) =>
      Option.isSome(args.authority)
        ? args.authority.value
        : authorityHost !== undefined && tenantId !== undefined
        ? `${authorityHost.replace(/\/+$/, "")}/${tenantId}`
        : undefined
    const endpoint = (tenantId: string | undefined) => {
      const value = authority(tenantId)
      return { ...(value === undefined ? {} : { authority: value }), ...(ca === undefined ? {} : { ca }) }
    }
    const prompt = (message: string) => process.stderr.write(`${message}\n`)

    if (Option.isSome(args.connectionString)) {
      const parsed = yield* ConnectionString.parse(args.connectionString.value, {
        onPrompt: prompt,
        cacheFile: tokenCacheFile(),
        ...(ca === undefined ? {} : { ca })
      })
      return { url: Option.getOrElse(args.url, () => parsed.url), credentials: parsed.credentials }
    }
    if (Option.isNone(args.url)) {
      return yield* fail(
        "No Dataverse URL: pass --url <org url> or set DATAVERSE_URL (or use --emulator or --connection-string)."
      )
    }
    const url = args.url.value
    if (Option.isSome(args.accessToken)) return { url, credentials: Credentials.staticToken(args.accessToken.value) }
    const tenantId = Option.getOrUndefined(args.tenantId)
    if (args.managedIdentity) {
      return {
        url,
        credentials: Credentials.managedIdentity({
          ...(Option.isSome(args.clientId) ? { clientId: args.clientId.value } : {}),
          ...(ca === undefined ? {} : { ca })
        })
      }
    }
    if (args.deviceCode || Option.isSome(args.username)) {
      const user = {
        ...endpoint(tenantId),
        ...(tenantId === undefined ? {} : { tenantId }),
        clientId: Option.getOrElse(args.clientId, () => samplePublicClientId),
        cacheFile: tokenCacheFile()
      }
      if (Option.isSome(args.username)) {
        const password = process.env.DATAVERSE_PASSWORD
        if (password === undefined || password === "") {
          return yield* fail("--username needs the password in DATAVERSE_PASSWORD (it is never taken as a flag).")
        }
        return {
          url,
          credentials: Credentials.usernamePassword({
            ...user,
            username: args.username.value,
            password: Redacted.make(password)
          })
        }
      }
      return { url, credentials: Credentials.deviceCode({ ...user, onPrompt: prompt }) }
    }
    const appFlow = Option.isSome(args.certificate) || Option.isSome(args.federatedTokenFile) ||
      process.env.AZURE_CLIENT_SECRET !== undefined
    if (appFlow) {
      if (tenantId === undefined || Option.isNone(args.clientId)) {
        return yield* fail(
          "Client credentials need --tenant-id and --client-id (or AZURE_TENANT_ID and AZURE_CLIENT_ID)."
        )
      }
      const app = { ...endpoint(tenantId), tenantId, clientId: args.clientId.value }
      if (Option.isSome(args.federatedTokenFile)) {
        return { url, credentials: Credentials.workloadIdentity({ ...app, tokenFile: args.federatedTokenFile.value }) }
      }
      if (Option.isSome(args.certificate)) {
        const password = process.env.AZURE_CLIENT_CERTIFICATE_PASSWORD
        const read = yield* Credentials.readCertificateFile(
          args.certificate.value,
          password === undefined ? undefined : Redacted.make(password)
        )
        return { url, credentials: Credentials.clientCertificate({ ...app, ...read }) }
      }
      return {
        url,
        credentials: Credentials.clientSecret({ ...app, clientSecret: Redacted.make(process.env.AZURE_CLIENT_SECRET!) })
      }
    }
    return yield* fail(
      "No credentials: pass --access-token, --connection-string, --device-code, --username, --managed-identity, or --tenant-id and --client-id with AZURE_CLIENT_SECRET, --certificate or --federated-token-file."
    )
  })

/**
 * A `DataverseClient` from the flags: an in-process emulator with `--emulator`, else the org
 * and credential the flags (or their environment variables) describe.
 *
 * @since 0.1.0
 */
export const layer = (
  args: ConnectionArgs,
  settings: { readonly maxSockets?: number } = {}
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
        return DataverseClient.layer({
          url: running.info.url,
          credentials: Credentials.staticToken(running.info.accessToken),
          ...settings
        })
      })
    )
  }
  return Layer.unwrapEffect(
    Effect.map(resolve(args), ({ credentials, url }) => DataverseClient.layer({ url, credentials, ...settings }))
  )
}

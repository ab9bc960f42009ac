// The conventional environment variables of a connection, and the connection they describe.
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as ConnectionString from "../ConnectionString.js"
import * as Credentials from "../Credentials.js"
import type { EnvironmentSettings } from "../DataverseClient.js"
import { DataverseError } from "../DataverseError.js"

/** The variables' names, by the setting each holds (`DataverseClient.environmentVariables`). */
export const environmentVariables = {
  url: "DATAVERSE_URL",
  connectionString: "DATAVERSE_CONNECTION_STRING",
  accessToken: "DATAVERSE_ACCESS_TOKEN",
  tenantId: "AZURE_TENANT_ID",
  clientId: "AZURE_CLIENT_ID",
  clientSecret: "AZURE_CLIENT_SECRET",
  certificatePath: "AZURE_CLIENT_CERTIFICATE_PATH",
  certificatePassword: "AZURE_CLIENT_CERTIFICATE_PASSWORD",
  federatedTokenFile: "AZURE_FEDERATED_TOKEN_FILE",
  authorityHost: "AZURE_AUTHORITY_HOST",
  caFile: "DATAVERSE_CA_FILE",
  username: "DATAVERSE_USERNAME",
  password: "DATAVERSE_PASSWORD",
  identityEndpoint: "IDENTITY_ENDPOINT",
  msiEndpoint: "MSI_ENDPOINT"
} as const

const nonEmpty = (value: string) => value.trim() !== ""
const optionalText = (name: string) => Config.option(Config.string(name)).pipe(Config.map(Option.filter(nonEmpty)))
const optionalSecret = (name: string) =>
  Config.option(Config.redacted(name)).pipe(
    Config.map(Option.filter((value) => nonEmpty(Redacted.value(value))))
  )

/** The variables as one `Config` (`DataverseClient.environmentConfig`). */
export const environmentConfig: Config.Config<EnvironmentSettings> = Config.all({
  url: optionalText(environmentVariables.url),
  connectionString: optionalSecret(environmentVariables.connectionString),
  accessTokens: Config.map(
    optionalSecret(environmentVariables.accessToken),
    Option.match({
      onNone: () => [],
      onSome: (tokens) =>
        Redacted.value(tokens).split(",").map((t) => t.trim()).filter(nonEmpty).map((t) => Redacted.make(t))
    })
  ),
  tenantId: optionalText(environmentVariables.tenantId),
  clientId: optionalText(environmentVariables.clientId),
  clientSecret: optionalSecret(environmentVariables.clientSecret),
  certificatePath: optionalText(environmentVariables.certificatePath),
  certificatePassword: Config.option(Config.redacted(environmentVariables.certificatePassword)),
  federatedTokenFile: optionalText(environmentVariables.federatedTokenFile),
  authorityHost: optionalText(environmentVariables.authorityHost),
  caFile: optionalText(environmentVariables.caFile),
  username: optionalText(environmentVariables.username),
  password: optionalSecret(environmentVariables.password),
  managedIdentity: Config.map(
    Config.all([optionalText(environmentVariables.identityEndpoint), optionalText(environmentVariables.msiEndpoint)]),
    ([identity, msi]) => Option.isSome(identity) || Option.isSome(msi)
  )
})

/** The connection the variables describe (`DataverseClient.configFromEnvironment`). */
export const configFromEnvironment: Effect.Effect<
  {
    readonly url: string
    readonly credentials: Credentials.Credential | ReadonlyArray<Credentials.Credential>
  },
  DataverseError | ConfigError.ConfigError
> = Effect.gen(function*() {
  const env = yield* environmentConfig
  const ca = Option.isSome(env.caFile) ? yield* readText(environmentVariables.caFile, env.caFile.value) : undefined
  if (Option.isSome(env.connectionString)) {
    const parsed = yield* ConnectionString.parse(env.connectionString.value, ca === undefined ? {} : { ca })
    return { url: Option.getOrElse(env.url, () => parsed.url), credentials: parsed.credentials }
  }
  // Without a connection string the org must be named: fail as `Config.string` does.
  const url = Option.isSome(env.url) ? env.url.value : yield* Config.string(environmentVariables.url)
  if (env.accessTokens.length > 0) {
    return {
      url,
      credentials: env.accessTokens.length === 1
        ? Credentials.staticToken(env.accessTokens[0]!)
        : env.accessTokens.map((token) => Credentials.staticToken(token))
    }
  }
  const app = () => {
    if (Option.isNone(env.tenantId) || Option.isNone(env.clientId)) return undefined
    return {
      tenantId: env.tenantId.value,
      clientId: env.clientId.value,
      ...(Option.isSome(env.authorityHost)
        ? { authority: `${env.authorityHost.value.replace(/\/+$/, "")}/${env.tenantId.value}` }
        : {}),
      ...(ca === undefined ? {} : { ca })
    }
  }
  const settings = app()
  if (settings !== undefined && Option.isSome(env.federatedTokenFile)) {
    return { url, credentials: Credentials.workloadIdentity({ ...settings, tokenFile: env.federatedTokenFile.value }) }
  }
  if (settings !== undefined && Option.isSome(env.certificatePath)) {
    const read = yield* Credentials.readCertificateFile(
      env.certificatePath.value,
      Option.getOrUndefined(env.certificatePassword)
    )
    return { url, credentials: Credentials.clientCertificate({ ...settings, ...read }) }
  }
  if (settings !== undefined && Option.isSome(env.clientSecret)) {
    return { url, credentials: Credentials.clientSecret({ ...settings, clientSecret: env.clientSecret.value }) }
  }
  if (env.managedIdentity) {
    return {
      url,
      credentials: Credentials.managedIdentity({
        ...(Option.isSome(env.clientId) ? { clientId: env.clientId.value } : {}),
        ...(ca === undefined ? {} : { ca })
      })
    }
  }
  return yield* new DataverseError({
    reason: "InvalidInput",
    message:
      "No credentials in the environment: set DATAVERSE_ACCESS_TOKEN, DATAVERSE_CONNECTION_STRING, or AZURE_TENANT_ID + AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE."
  })
})

const readText = (variable: string, path: string) =>
  Effect.tryPromise({
    try: () => Fs.promises.readFile(path, "utf8"),
    catch: () => new DataverseError({ reason: "InvalidInput", message: `Cannot read ${variable}=${path}.` })
  })

/**
 * Dataverse connection strings, the form many users already have:
 * `AuthType=ClientSecret;Url=https://contoso.crm.dynamics.com;ClientId=...;ClientSecret=...`,
 * `AuthType=Certificate;Url=...;ClientId=...;CertificateFile=cert.pfx;CertificatePassword=...`,
 * `AuthType=OAuth;Url=...;Username=...;Password=...` (without a password: device code).
 *
 * Keys are case-insensitive and may contain spaces (`Service Uri`); values may be quoted. Without
 * `TenantId` or `Authority`, the tenant is discovered from the org's `WWW-Authenticate` challenge.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Credentials from "./Credentials.js"
import type { DataverseError } from "./DataverseError.js"
import * as internal from "./internal/connectionString.js"

/**
 * Splits a connection string into lower-cased canonical keys and values. Values may be quoted
 * with `'` or `"` to hold `;`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const parseFields: (text: string) => Map<string, string> | DataverseError = internal.parseFields

/**
 * What a connection string needs from its caller: where the device-code prompt goes, where
 * user tokens are kept, and a CA or authority for local identity endpoints.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionStringOptions {
  readonly onPrompt?: (message: string) => void
  readonly cacheFile?: string
  readonly ca?: string
  /**
   * The sign-in authority when the string names none (`Authority=` wins), instead of
   * `https://login.microsoftonline.com/<TenantId>`.
   */
  readonly authority?: string
}

/**
 * The tenant of an org, from the `WWW-Authenticate` challenge of an unauthenticated request:
 * `Bearer authorization_uri=https://login.microsoftonline.com/<tenant>/oauth2/authorize`. Returns
 * the authority (`https://login.microsoftonline.com/<tenant>`).
 *
 * @since 0.1.0
 * @category utils
 */
export const discoverAuthority: (orgUrl: string) => Effect.Effect<string, DataverseError> = internal.discoverAuthority

/**
 * Reads a connection string into the org URL and a credential.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { ConnectionString, DataverseClient } from "@dv-effect/core"
 * const Live = Effect.map(
 *   ConnectionString.parse(Redacted.make(process.env.DATAVERSE_CONNECTION_STRING!)),
 *   ({ url, credentials }) => DataverseClient.layerNode({ url, credentials })
 * )
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const parse: (
  connectionString: Redacted.Redacted<string>,
  options?: ConnectionStringOptions
) => Effect.Effect<{ readonly url: string; readonly credentials: Credentials.Credential }, DataverseError> =
  internal.parse

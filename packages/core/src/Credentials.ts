/**
 * Where access tokens come from. Every authentication flow is a `TokenProvider`; the client asks
 * it for a token before each request and tells it when the service refused one.
 *
 * Flows on `@azure/msal-node`: client secret, client certificate (PEM, or PFX with a password),
 * workload identity federation, username/password, device code and managed identity; besides a
 * static token and a token callback. msal flows take the org URL when the connection is built
 * (the scope is `<org url>/.default`), so they are `Credential`s: functions of the resource.
 * Tokens are cached and refreshed five minutes before they expire, one refresh at a time however
 * many requests wait. Secrets stay `Redacted`.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { DataverseError } from "./DataverseError.js"
import * as internalCertificate from "./internal/certificate.js"
import * as internal from "./internal/credentials.js"
import * as internalMsalFlows from "./internal/msalFlows.js"

/**
 * A source of bearer tokens for one Dataverse org.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenProvider {
  /** A token valid for the org; a caching provider returns the cached one while it is valid. */
  readonly getToken: Effect.Effect<Redacted.Redacted<string>, DataverseError>
  /** Forgets a cached token after the service answered 401 with it. */
  readonly invalidate: Effect.Effect<void>
  /**
   * `false` for a token that cannot be renewed (`staticToken`): a 401 is then final at once, and
   * its error says the token cannot be refreshed. Left out: a 401 refreshes the token once.
   *
   * @since 0.2.0
   */
  readonly refreshable?: boolean | undefined
}

/**
 * What a connection takes as credentials: a provider, or a function that makes one for the
 * resource (the org URL), as the msal flows are.
 *
 * @since 0.1.0
 * @category models
 */
export type Credential = TokenProvider | ((resource: string) => TokenProvider)

/**
 * The provider of a credential for a resource.
 *
 * @since 0.1.0
 * @category utils
 */
export const forResource: (credential: Credential, resource: string) => TokenProvider = internal.forResource

/**
 * A token handed in from outside (`--access-token`, `DATAVERSE_ACCESS_TOKEN`). It cannot be
 * refreshed: once it expires, requests fail with reason `Unauthorized`.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { Credentials } from "@dv-effect/core"
 * const provider = Credentials.staticToken(Redacted.make(process.env.DATAVERSE_ACCESS_TOKEN!))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const staticToken: (token: string | Redacted.Redacted<string>) => TokenProvider = internal.staticToken

/**
 * A token with its expiry, as a flow acquires it.
 *
 * @since 0.1.0
 * @category models
 */
export interface AccessToken {
  readonly token: Redacted.Redacted<string>
  /** When it expires; undefined when unknown (then it is kept for 5 minutes). */
  readonly expiresOn: Date | undefined
}

/**
 * A provider that caches what `acquire` returns and acquires again five minutes before expiry
 * (or after `invalidate`); concurrent callers share one acquisition.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cached: (
  acquire: (forceRefresh: boolean) => Effect.Effect<AccessToken, DataverseError>
) => TokenProvider = internal.cached

/**
 * A provider from a callback that returns a token (and optionally its expiry), e.g. from a
 * secret store or another library's credential. Cached like every other flow.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCallback: (
  callback: (resource: string) => Promise<string | { readonly token: string; readonly expiresOn?: Date }>
) => Credential = internal.fromCallback

/**
 * Where tokens come from: Microsoft Entra ID by default, or another authority (a sovereign cloud,
 * a local identity endpoint such as the emulator's).
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthorityOptions {
  /** `https://login.microsoftonline.com/<tenant>` unless given. */
  readonly authority?: string
  /** PEM of a CA to trust for the authority, on top of the system's (a local identity endpoint). */
  readonly ca?: string
}

/**
 * Options shared by the flows of an app registration.
 *
 * @since 0.1.0
 * @category models
 */
export interface AppOptions extends AuthorityOptions {
  readonly tenantId: string
  readonly clientId: string
}

/**
 * Client credentials with a secret (an application user of the org).
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { Credentials, DataverseClient } from "@dv-effect/core"
 * declare const tenantId: string, clientId: string, secret: string
 * DataverseClient.layerNode({
 *   url: "https://contoso.crm.dynamics.com",
 *   credentials: Credentials.clientSecret({ tenantId, clientId, clientSecret: Redacted.make(secret) })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientSecret: (
  options: AppOptions & { readonly clientSecret: Redacted.Redacted<string> }
) => Credential = internalMsalFlows.clientSecret

/**
 * A client certificate: PEM (certificate and private key, in one file or two) or PFX is read by
 * the caller; pass the PEM texts. The thumbprint is computed from the certificate.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientCertificate: (
  options: AppOptions & {
    readonly certificatePem: string
    readonly privateKeyPem: Redacted.Redacted<string>
  }
) => Credential = internalMsalFlows.clientCertificate

/**
 * Reads a certificate file for `clientCertificate`: PEM holding the certificate and its private
 * key, or PKCS#12 (`.pfx`/`.p12`) with its password. Fails with a clear message otherwise.
 *
 * @since 0.1.0
 * @category utils
 */
export const readCertificateFile: (
  path: string,
  password?: Redacted.Redacted<string>
) => Effect.Effect<
  { readonly certificatePem: string; readonly privateKeyPem: Redacted.Redacted<string> },
  DataverseError
> = internalCertificate.readCertificateFile

/**
 * Workload identity federation: an external token (a Kubernetes service account token, a GitHub
 * OIDC token) read from `tokenFile` on every sign-in, as `AZURE_FEDERATED_TOKEN_FILE` provides.
 *
 * @since 0.1.0
 * @category constructors
 */
export const workloadIdentity: (options: AppOptions & { readonly tokenFile: string }) => Credential =
  internalMsalFlows.workloadIdentity

/**
 * Options of the user flows (a public client app registration).
 *
 * @since 0.1.0
 * @category models
 */
export interface UserFlowOptions extends AuthorityOptions {
  readonly tenantId?: string
  readonly clientId: string
  /** Keep tokens (and refresh tokens) in this file, mode 0600, across runs. */
  readonly cacheFile?: string
}

/**
 * Username and password (the resource owner password flow). Works only for accounts without MFA;
 * prefer device code for people and client credentials for automation.
 *
 * @since 0.1.0
 * @category constructors
 */
export const usernamePassword: (
  options: UserFlowOptions & {
    readonly username: string
    /**
     * The password, or an effect that gives it: it runs only when the cache cannot sign in
     * silently, so a caller can ask for the password (or fail with its own message) only then.
     */
    readonly password: Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, DataverseError>
  }
) => Credential = internalMsalFlows.usernamePassword

/**
 * Device code: the user signs in on another device. `onPrompt` receives the message to show
 * ("To sign in, use a web browser to open ... and enter the code ..."); library code never
 * prints it. With `cacheFile`, later runs sign in silently.
 *
 * @since 0.1.0
 * @category constructors
 */
export const deviceCode: (
  options: UserFlowOptions & { readonly onPrompt: (message: string) => void }
) => Credential = internalMsalFlows.deviceCode

/**
 * Managed identity (App Service, Functions, Container Apps, and the other sources msal-node
 * knows): system-assigned, or user-assigned by client id.
 *
 * @since 0.1.0
 * @category constructors
 */
export const managedIdentity: (options?: AuthorityOptions & { readonly clientId?: string }) => Credential =
  internalMsalFlows.managedIdentity

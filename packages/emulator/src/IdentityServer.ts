/**
 * The emulator's identity endpoint: a small Microsoft Entra ID look-alike served over HTTPS that
 * `@azure/msal-node` talks to for real, issuing access tokens the emulator's Web API accepts.
 *
 * Served, under `https://<host>:<port>/<tenant>` (the tenant id, or `common` / `organizations`):
 * - `GET  v2.0/.well-known/openid-configuration`: the OpenID configuration msal discovers;
 * - `GET  discovery/v2.0/keys`: the JWKS that verifies every token the server signs;
 * - `POST oauth2/v2.0/token`: grants `client_credentials` (client secret, certificate assertion,
 *   workload identity federation), `password`, `urn:ietf:params:oauth:grant-type:device_code` (also
 *   `device_code`, which msal sends) and `refresh_token`, with Entra's error format (`error`,
 *   `error_description` starting `AADSTS<n>:`, `error_codes`, `timestamp`, `trace_id`,
 *   `correlation_id`);
 * - `POST oauth2/v2.0/devicecode`: the device authorization endpoint;
 * - `GET|POST oauth2/v2.0/devicecode/approve`: the "verification URI", a form (GET) and the approval
 *   of a user code (POST, form or JSON `user_code`, `username`, optional `password`: checked when
 *   given), so that a device-code sign-in can be scripted from another process;
 * - and, outside the tenant paths, `GET /msi/token`: an App Service managed identity endpoint
 *   (`IDENTITY_ENDPOINT`, secret header `X-IDENTITY-HEADER`, `api-version=2019-08-01`).
 *
 * The certificate is issued by a CA generated at start; `caFile`/`caPem` is what a client trusts.
 *
 * ## msal-node configuration (verified with msal-node 7.2)
 *
 * ```ts
 * import { ConfidentialClientApplication } from "@azure/msal-node"
 * import { type Identity, IdentityServer } from "@dv-effect/emulator"
 * import { Effect } from "effect"
 * declare const identity: Identity.Identity, orgUrl: string, clientId: string, clientSecret: string
 * declare const apps: ReadonlyArray<IdentityServer.RegisteredApp>
 * declare const users: ReadonlyArray<IdentityServer.RegisteredUser>
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* IdentityServer.make({ identity, audience: () => orgUrl, apps, users })
 *   const app = new ConfidentialClientApplication({            // or PublicClientApplication
 *     auth: {
 *       clientId, clientSecret,                                // or clientCertificate / clientAssertion
 *       authority: server.authority,                           // https://127.0.0.1:<port>/<tenantId>
 *       knownAuthorities: [...server.knownAuthorities]         // ["127.0.0.1:<port>"]
 *     },
 *     system: { networkClient: server.msalNetworkClient }      // trusts the CA; see below
 *   })
 *   const scopes = [`${orgUrl}/.default`]
 *   return yield* Effect.promise(() => app.acquireTokenByClientCredential({ scopes }))
 * })
 * ```
 *
 * - `knownAuthorities` with the authority's `host:port` is required: without it msal asks
 *   `https://login.microsoftonline.com/common/discovery/instance` whether the host is an authority.
 *   With it, msal fetches only `<authority>/v2.0/.well-known/openid-configuration` (once per
 *   application object; it checks that `issuer` has the authority's scheme, host and port) and then
 *   posts to the token (and device code) endpoints.
 * - msal refuses a non-https authority, hence TLS. Its default network client is Node's global
 *   `fetch`, which cannot be given a CA per request. Either pass `system.networkClient` (an
 *   `INetworkModule`: `msalNetworkClient` here, built by {@link makeMsalNetworkClient} on
 *   `node:https` with `ca: caPem`), or start the process with `NODE_EXTRA_CA_CERTS=<caFile>` (read
 *   only at process start; then msal's default client works unchanged).
 * - Managed identity: set `process.env.IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from
 *   `managedIdentityEnvironment` before the first `ManagedIdentityApplication.acquireToken`, with the
 *   same `system.networkClient`; ask for `resource: orgUrl` (or `${orgUrl}/.default`). msal keeps the
 *   source it built on first use (endpoint, header, network client) in a static for the rest of the
 *   process, so one process can use managed identity against one identity server only.
 * - Device code: `interval` is `deviceCodeIntervalSeconds` (default 1; msal waits that long after
 *   every `authorization_pending`, so tests use 0 or approve before msal's first poll).
 *
 * Not emulated: the authorization code flow (interactive sign-in), on-behalf-of, v1 endpoints,
 * conditional access, MFA, consent.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { AssertionKey, Identity } from "./Identity.js"
import * as msalNetworkClient from "./internal/identity/msalNetworkClient.js"
import * as server from "./internal/identity/server.js"

/**
 * Workload identity federation: the external tokens an application trusts as its credential.
 *
 * @since 0.1.0
 * @category models
 */
export interface FederatedCredential {
  /** `iss` of the external assertion, e.g. `https://token.actions.githubusercontent.com`. */
  readonly issuer: string
  /** `sub` of the external assertion, e.g. `repo:contoso/app:ref:refs/heads/main`. */
  readonly subject: string
  /** Expected `aud`. Default `api://AzureADTokenExchange`, Entra's default. */
  readonly audience?: string
  /** Verifies the external assertion: a PEM certificate or public key, or the issuer's JWKS. */
  readonly key: AssertionKey
}

/**
 * An application registration (and its service principal).
 *
 * @since 0.1.0
 * @category models
 */
export interface RegisteredApp {
  readonly clientId: string
  readonly clientSecret?: string
  /** PEM public certificate for certificate (`client_assertion`) auth. */
  readonly certificatePem?: string
  /** Entra object id of the app's service principal: the `oid` of app-only tokens. */
  readonly objectId: string
  /** Workload identity federation: the external assertions this app accepts as its credential. */
  readonly federated?: FederatedCredential
}

/**
 * A user of the tenant, for the user flows (password, device code, refresh).
 *
 * @since 0.1.0
 * @category models
 */
export interface RegisteredUser {
  readonly username: string
  readonly password: string
  readonly objectId: string
  /** `name` in the ID token. Default: the username. */
  readonly displayName?: string
}

/**
 * A managed identity the App Service endpoint (`/msi/token`) issues tokens for.
 *
 * @since 0.1.0
 * @category models
 */
export interface ManagedIdentity {
  /** The identity's client (application) id: `appid` of its tokens; selects it by `client_id`. */
  readonly clientId: string
  /** Its service principal's object id: `oid` of its tokens; selects it by `object_id`. */
  readonly objectId: string
  /** ARM resource id of a user-assigned identity; selects it by `mi_res_id`. */
  readonly resourceId?: string
  /** The system-assigned identity answers requests that name none. Default `false`. */
  readonly systemAssigned?: boolean
}

/**
 * How to start an identity server.
 *
 * @since 0.1.0
 * @category models
 */
export interface IdentityServerOptions {
  /** Signs the tokens (and verifies them in the Web API). */
  readonly identity: Identity
  /**
   * The org URL, e.g. `http://127.0.0.1:41234`: the only resource tokens are issued for. Scopes
   * are `${audience}/.default`, also `${audience}//.default` and `${audience}/user_impersonation`.
   */
  readonly audience: () => string
  readonly apps: ReadonlyArray<RegisteredApp>
  readonly users: ReadonlyArray<RegisteredUser>
  /** For `/msi/token`. Default none. */
  readonly managedIdentities?: ReadonlyArray<ManagedIdentity>
  /** Default `127.0.0.1`. */
  readonly host?: string
  /** Default `0`: a free port. */
  readonly port?: number
  /**
   * `"auto"` (default): a new device code is approved at once for the first registered user (with
   * no user registered it waits, as with `"manual"`, for `approveDeviceCode` or the approve endpoint).
   */
  readonly deviceCodeApproval?: "auto" | "manual"
  /** The polling `interval` served with a device code, in seconds (fractions allowed). Default 1. */
  readonly deviceCodeIntervalSeconds?: number
  /** How long a device code stays valid, in seconds. Default 900, as Entra. */
  readonly deviceCodeLifetimeSeconds?: number
  /** Lifetime of access and ID tokens, in seconds. Default 3600. */
  readonly tokenLifetimeSeconds?: number
  /** Lifetime of refresh tokens, in seconds. Default 90 days. */
  readonly refreshTokenLifetimeSeconds?: number
}

/**
 * What the server has done, for tests.
 *
 * @since 0.1.0
 * @category models
 */
export interface IdentityServerCounters {
  /** Successful token responses, every grant and managed identity included. */
  tokensIssued: number
  /** Error responses (bad credentials, bad requests), `authorization_pending` excluded. */
  refused: number
  /** `authorization_pending` answers to device-code polls. */
  pendingPolls: number
}

/**
 * The options msal passes to a network call (a subset of msal-common's `NetworkRequestOptions`).
 *
 * @since 0.1.0
 * @category models
 */
export interface MsalNetworkRequestOptions {
  readonly headers?: Record<string, string>
  readonly body?: string
}

/**
 * A network response as msal expects it (msal-common's `NetworkResponse`).
 *
 * @since 0.1.0
 * @category models
 */
export interface MsalNetworkResponse<T> {
  readonly headers: Record<string, string>
  readonly body: T
  readonly status: number
}

/**
 * Structurally msal-common's `INetworkModule`: what `system.networkClient` takes.
 *
 * @since 0.1.0
 * @category models
 */
export interface MsalNetworkModule {
  sendGetRequestAsync<T>(
    url: string,
    options?: MsalNetworkRequestOptions,
    timeout?: number
  ): Promise<MsalNetworkResponse<T>>
  sendPostRequestAsync<T>(url: string, options?: MsalNetworkRequestOptions): Promise<MsalNetworkResponse<T>>
}

/**
 * A running identity server.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningIdentityServer {
  /** `https://127.0.0.1:<port>`. */
  readonly origin: string
  readonly tenantId: string
  /** `https://127.0.0.1:<port>/<tenantId>`: msal's `auth.authority`. */
  readonly authority: string
  /** `["127.0.0.1:<port>"]`: msal's `auth.knownAuthorities`. */
  readonly knownAuthorities: ReadonlyArray<string>
  /** `<authority>/oauth2/v2.0/token`: also the `aud` of certificate client assertions. */
  readonly tokenEndpoint: string
  /** Path of a PEM file with the CA certificate (removed when the scope closes). */
  readonly caFile: string
  readonly caPem: string
  /** An msal `system.networkClient` that trusts the CA. */
  readonly msalNetworkClient: MsalNetworkModule
  /** The environment msal's App Service managed identity source reads. */
  readonly managedIdentityEnvironment: { readonly IDENTITY_ENDPOINT: string; readonly IDENTITY_HEADER: string }
  /** Approves a pending device code for a user; `false` if the code or the user is unknown. */
  readonly approveDeviceCode: (userCode: string, username: string) => boolean
  readonly counters: Readonly<IdentityServerCounters>
  /**
   * Test control, not part of the service model: `false` takes the endpoint down (an outage of
   * the identity provider) while the Web API keeps answering: open connections are closed and new
   * ones are closed as soon as they connect, so clients see a reset, not an answer. `true` (the
   * state at start) brings it back.
   */
  readonly setAvailable: (available: boolean) => void
}

/**
 * The identity server could not start.
 *
 * @since 0.1.0
 * @category errors
 */
export class IdentityServerError extends Data.TaggedError("IdentityServerError")<{
  readonly reason: "Certificate" | "CaFile" | "Listen"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A `system.networkClient` for msal-node on `node:https`, trusting `caPem` (on top of nothing
 * else: it is for talking to the emulator). Responses are parsed as JSON, as msal's own client does.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMsalNetworkClient = (caPem: string): MsalNetworkModule =>
  msalNetworkClient.makeMsalNetworkClient(caPem)

/**
 * Starts an identity server; it stops, and its CA file is removed, when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: IdentityServerOptions
): Effect.Effect<RunningIdentityServer, IdentityServerError, Scope.Scope> =>
  Effect.mapError(server.make(options), (failure) => new IdentityServerError(failure))

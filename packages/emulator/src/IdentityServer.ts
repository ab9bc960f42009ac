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
 * const server = yield* IdentityServer.make({ identity, audience: () => orgUrl, apps, users })
 * const app = new ConfidentialClientApplication({            // or PublicClientApplication
 *   auth: {
 *     clientId, clientSecret,                                // or clientCertificate / clientAssertion
 *     authority: server.authority,                           // https://127.0.0.1:<port>/<tenantId>
 *     knownAuthorities: [...server.knownAuthorities]         // ["127.0.0.1:<port>"]
 *   },
 *   system: { networkClient: server.msalNetworkClient }      // trusts the CA; see below
 * })
 * await app.acquireTokenByClientCredential({ scopes: [`${orgUrl}/.default`] })
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
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Jose from "jose"
import { createHash, randomBytes, randomInt, randomUUID, timingSafeEqual } from "node:crypto"
import * as Fs from "node:fs/promises"
import type * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { type AssertionKey, type Identity, verifyAssertion } from "./Identity.js"
import { makeTlsMaterial } from "./internal/tls.js"

/**
 * Workload identity federation: the external tokens an application trusts as its credential.
 *
 * @since 0.1.0
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
 */
export interface MsalNetworkRequestOptions {
  readonly headers?: Record<string, string>
  readonly body?: string
}

/**
 * A network response as msal expects it (msal-common's `NetworkResponse`).
 *
 * @since 0.1.0
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
 */
export const makeMsalNetworkClient = (caPem: string): MsalNetworkModule => {
  // No keep-alive: every exchange closes its socket, so a server can stop at once.
  const agent = new Https.Agent({ ca: caPem, keepAlive: false })
  const send = <T>(
    method: "GET" | "POST",
    url: string,
    options: MsalNetworkRequestOptions | undefined,
    timeoutMs: number | undefined
  ) =>
    new Promise<MsalNetworkResponse<T>>((resolve, reject) => {
      const body = method === "POST" ? options?.body ?? "" : undefined
      const headers: Record<string, string> = { ...options?.headers }
      if (body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(body))
      const request = Https.request(new URL(url), { method, headers, agent }, (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("error", reject)
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          let parsed: unknown
          try {
            parsed = text === "" ? {} : JSON.parse(text)
          } catch {
            reject(new Error(`Failed to parse response from ${url} (status ${response.statusCode})`))
            return
          }
          const responseHeaders: Record<string, string> = {}
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined) responseHeaders[name] = Array.isArray(value) ? value.join(", ") : value
          }
          resolve({ headers: responseHeaders, body: parsed as T, status: response.statusCode ?? 0 })
        })
      })
      if (timeoutMs !== undefined && timeoutMs > 0) {
        request.setTimeout(timeoutMs, () => request.destroy(new Error(`Request timeout after ${timeoutMs} ms: ${url}`)))
      }
      request.on("error", reject)
      request.end(body)
    })
  return {
    sendGetRequestAsync: (url, options, timeout) => send("GET", url, options, timeout),
    sendPostRequestAsync: (url, options) => send("POST", url, options, undefined)
  }
}

// ---------------------------------------------------------------------------------------------
// Protocol

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
// RFC 8628's grant type; msal sends the short form `device_code`, which Entra accepts too.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"
const tokenExchangeAudience = "api://AzureADTokenExchange"
const oidcScopes = new Set(["openid", "profile", "offline_access", "email"])
const tenantAliases = new Set(["common", "organizations"])
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ23456789"

/** An OAuth 2.0 error answer, in Entra's shape. */
class OAuthFailure extends Data.TaggedError("OAuthFailure")<{
  readonly status: number
  readonly error: string
  readonly code: number
  readonly description: string
}> {}

const refuse = (status: number, error: string, code: number, description: string) =>
  Effect.fail(new OAuthFailure({ status, error, code, description }))

const missingParameter = (name: string) =>
  refuse(400, "invalid_request", 900144, `The request body must contain the following parameter: '${name}'.`)

interface Reply {
  readonly status: number
  readonly json?: unknown
  readonly html?: string
}

interface RequestedScopes {
  /** The resource scopes as requested, e.g. `http://org/.default`. */
  readonly resource: ReadonlyArray<string>
  /** `openid`, `profile`, `offline_access`, `email` as requested. */
  readonly oidc: ReadonlySet<string>
}

interface DeviceCode {
  readonly deviceCode: string
  readonly userCode: string
  readonly clientId: string
  readonly scopes: RequestedScopes
  readonly expiresAt: number
  approvedFor: RegisteredUser | undefined
}

interface RefreshGrant {
  readonly clientId: string
  readonly user: RegisteredUser
  readonly scopes: RequestedScopes
  readonly expiresAt: number
}

const entraTimestamp = (date: Date) => date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")

const normaliseResource = (resource: string) => resource.replace(/\/+$/, "").toLowerCase()

const normaliseUserCode = (userCode: string) => userCode.replace(/[\s-]/g, "").toUpperCase()

const sameSecret = (presented: string, expected: string) => {
  const a = Buffer.from(presented, "utf8")
  const b = Buffer.from(expected, "utf8")
  return a.length === b.length && timingSafeEqual(a, b)
}

const base64UrlJson = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8").toString("base64url")

const decodeClaims = (jwt: string): Jose.JWTPayload | undefined => {
  try {
    return Jose.decodeJwt(jwt)
  } catch {
    return undefined
  }
}

const audiencesOf = (payload: Jose.JWTPayload) =>
  Array.isArray(payload.aud) ? payload.aud : typeof payload.aud === "string" ? [payload.aud] : []

const secondsToIso = (seconds: unknown) =>
  typeof seconds === "number" ? new Date(seconds * 1000).toISOString() : "(none)"

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

/** Reads a form (or JSON object) body into search params. */
const readForm = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.map(Effect.orElseSucceed(request.text, () => ""), (text) => {
    if ((request.headers["content-type"] ?? "").includes("json")) {
      try {
        const parsed: unknown = JSON.parse(text)
        const params = new URLSearchParams()
        if (typeof parsed === "object" && parsed !== null) {
          for (const [name, value] of Object.entries(parsed)) {
            if (typeof value === "string" || typeof value === "number") params.set(name, String(value))
          }
        }
        return params
      } catch {
        return new URLSearchParams()
      }
    }
    return new URLSearchParams(text)
  })

/** `Authorization: Basic base64(client_id:client_secret)` (client_secret_basic). */
const basicCredentials = (header: string | undefined) => {
  const match = /^Basic\s+(\S+)\s*$/i.exec(header ?? "")
  if (match === null) return undefined
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return undefined
  return {
    clientId: decodeURIComponent(decoded.slice(0, colon)),
    clientSecret: decodeURIComponent(decoded.slice(colon + 1))
  }
}

const devicePage = (action: string, message: string | undefined) =>
  `<!doctype html>
<html><head><meta charset="utf-8"><title>dv-effect emulator: device sign-in</title></head>
<body>
<h1>Sign in to the dv-effect emulator</h1>
${message === undefined ? "" : `<p>${escapeHtml(message)}</p>`}
<form method="post" action="${escapeHtml(action)}">
<p><label>Code <input name="user_code" autocomplete="off" required></label></p>
<p><label>Username <input name="username" required></label></p>
<p><label>Password <input name="password" type="password"></label></p>
<p><button type="submit">Sign in</button></p>
</form>
</body></html>
`

/**
 * Starts an identity server; it stops, and its CA file is removed, when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (
  options: IdentityServerOptions
): Effect.Effect<RunningIdentityServer, IdentityServerError, Scope.Scope> =>
  Effect.gen(function*() {
    const { identity } = options
    const tenantId = identity.tenantId
    const host = options.host ?? "127.0.0.1"
    const tokenLifetime = options.tokenLifetimeSeconds ?? 3600
    const refreshLifetime = options.refreshTokenLifetimeSeconds ?? 90 * 24 * 60 * 60
    const deviceInterval = options.deviceCodeIntervalSeconds ?? 1
    const deviceLifetime = options.deviceCodeLifetimeSeconds ?? 900
    const autoApprove = (options.deviceCodeApproval ?? "auto") === "auto"
    const apps = new Map(options.apps.map((app) => [app.clientId.toLowerCase(), app]))
    const users = new Map(options.users.map((user) => [user.username.toLowerCase(), user]))
    const managedIdentities = options.managedIdentities ?? []
    const identityHeader = randomBytes(24).toString("base64url")
    const deviceCodes = new Map<string, DeviceCode>()
    const refreshTokens = new Map<string, RefreshGrant>()
    const counters: IdentityServerCounters = { tokensIssued: 0, refused: 0, pendingPolls: 0 }

    const tls = yield* Effect.tryPromise({
      try: () => makeTlsMaterial([host]),
      catch: (cause) =>
        new IdentityServerError({ reason: "Certificate", message: "Could not make certificates", cause })
    })
    const directory = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => Fs.mkdtemp(Path.join(Os.tmpdir(), "dv-effect-identity-")),
        catch: (cause) =>
          new IdentityServerError({ reason: "CaFile", message: "Could not make a temporary directory", cause })
      }),
      (directory) =>
        Effect.tryPromise(() => Fs.rm(directory, { recursive: true, force: true })).pipe(
          Effect.catchAll((error) => Effect.logWarning(`could not remove ${directory}`, error))
        )
    )
    const caFile = Path.join(directory, "ca.pem")
    yield* Effect.tryPromise({
      try: () => Fs.writeFile(caFile, tls.caPem, { mode: 0o644 }),
      catch: (cause) => new IdentityServerError({ reason: "CaFile", message: `Could not write ${caFile}`, cause })
    })

    let httpsServer: Https.Server | undefined
    const server = yield* NodeHttpServer.make(() => {
      httpsServer = Https.createServer({ key: tls.keyPem, cert: tls.certPem })
      // An https.Server is what NodeHttpServer needs of an http.Server: listen, close, "request" events.
      return httpsServer as unknown as Http.Server
    }, { host, port: options.port ?? 0 }).pipe(
      Effect.mapError((error) =>
        new IdentityServerError({ reason: "Listen", message: `Could not listen on ${host}`, cause: error.cause })
      )
    )
    // Runs before the server's own close: sockets still open (a client mid-poll) must not hold it.
    yield* Effect.addFinalizer(() => Effect.sync(() => httpsServer?.closeAllConnections()))
    // Test control (`setAvailable`), not part of the service model: while down, every connection
    // is closed as soon as it is made.
    let available = true
    httpsServer?.on("connection", (socket: Net.Socket) => {
      if (!available) socket.destroy()
    })
    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the identity server must listen on TCP")
    const listenHost = address.hostname === "0.0.0.0" || address.hostname === "::" ? "127.0.0.1" : address.hostname
    const hostAndPort = `${listenHost.includes(":") ? `[${listenHost}]` : listenHost}:${address.port}`
    const origin = `https://${hostAndPort}`
    const authority = `${origin}/${tenantId}`
    const v2Issuer = `${authority}/v2.0`
    const audience = () => options.audience().replace(/\/+$/, "")

    // -------------------------------------------------------------------------------------------
    // Scopes

    const parseScopes = (raw: string | null, flow: "app" | "user") =>
      Effect.gen(function*() {
        const scopes = (raw ?? "").split(/\s+/).filter((scope) => scope !== "")
        if (scopes.length === 0) return yield* missingParameter("scope")
        const resource: Array<string> = []
        const oidc = new Set<string>()
        for (const scope of scopes) {
          if (oidcScopes.has(scope.toLowerCase())) {
            oidc.add(scope.toLowerCase())
            continue
          }
          const slash = scope.lastIndexOf("/")
          if (slash <= 0) {
            return yield* refuse(
              400,
              "invalid_scope",
              70011,
              `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`
            )
          }
          const name = scope.slice(0, slash)
          const permission = scope.slice(slash + 1).toLowerCase()
          if (normaliseResource(name) !== normaliseResource(audience())) {
            return yield* refuse(
              400,
              "invalid_resource",
              500011,
              `The resource principal named ${
                name.replace(/\/+$/, "")
              } was not found in the tenant named ${tenantId}. ` +
                "This can happen if the application has not been installed by the administrator of the tenant or " +
                "consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            )
          }
          if (flow === "app" && permission !== ".default") {
            return yield* refuse(
              400,
              "invalid_scope",
              1002012,
              `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value ` +
                "with /.default suffixed to the resource identifier (application ID URI)."
            )
          }
          if (permission !== ".default" && permission !== "user_impersonation") {
            return yield* refuse(
              400,
              "invalid_scope",
              70011,
              `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`
            )
          }
          if (!resource.includes(scope)) resource.push(scope)
        }
        if (resource.length === 0) {
          return yield* refuse(
            400,
            "invalid_scope",
            70011,
            `The provided value for the input parameter 'scope' is not valid: it names no resource. ` +
              `Ask for ${audience()}/.default.`
          )
        }
        return { resource, oidc } satisfies RequestedScopes
      })

    // -------------------------------------------------------------------------------------------
    // Client authentication

    const assertionAudiences = (tenantSegment: string) =>
      new Set(
        [tenantSegment, tenantId].flatMap((tenant) => [
          `${origin}/${tenant}/oauth2/v2.0/token`,
          `${origin}/${tenant}/oauth2/token`,
          `${origin}/${tenant}/v2.0`,
          `${origin}/${tenant}`
        ]).map(normaliseResource)
      )

    const rejectAssertion = (
      rejection: "malformed" | "expired" | "not yet valid" | "bad signature" | "key not found",
      claims: Jose.JWTPayload
    ) => {
      switch (rejection) {
        case "malformed":
          return refuse(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
        case "expired":
        case "not yet valid":
          return refuse(
            401,
            "invalid_client",
            700024,
            `Client assertion is not within its valid time range. Current time: ${new Date().toISOString()}, ` +
              `assertion valid from ${secondsToIso(claims.nbf ?? claims.iat)}, expiry time of assertion ` +
              `${secondsToIso(claims.exp)}.`
          )
        case "bad signature":
          return refuse(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]"
          )
        case "key not found":
          return refuse(
            401,
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature. [Reason - The key was not found.]"
          )
      }
    }

    const verifyClientAssertion = (app: RegisteredApp, assertion: string, tenantSegment: string) =>
      Effect.gen(function*() {
        const claims = decodeClaims(assertion)
        if (claims === undefined) return yield* rejectAssertion("malformed", {})
        if (claims.iss === app.clientId) {
          // The application's own certificate: iss = sub = client id, aud = the token endpoint.
          if (app.certificatePem === undefined) return yield* rejectAssertion("key not found", claims)
          const certificatePem = app.certificatePem
          const verified = yield* Effect.promise(() => verifyAssertion(assertion, certificatePem))
          if (typeof verified === "string") return yield* rejectAssertion(verified, claims)
          if (verified.payload.sub !== app.clientId) {
            return yield* refuse(
              401,
              "invalid_client",
              700021,
              "Client assertion application identifier doesn't match 'client_id' parameter."
            )
          }
          const accepted = assertionAudiences(tenantSegment)
          if (!audiencesOf(verified.payload).some((aud) => accepted.has(normaliseResource(aud)))) {
            return yield* refuse(
              401,
              "invalid_client",
              50012,
              `Client assertion audience claim does not match Realm issuer. Expected ${origin}/${tenantId}/oauth2/v2.0/token.`
            )
          }
          return
        }
        const federated = app.federated
        if (federated === undefined || claims.iss !== federated.issuer) {
          return yield* refuse(
            401,
            "invalid_client",
            700211,
            `No matching federated identity record found for presented assertion issuer '${String(claims.iss)}'. ` +
              "Please note that the matching is done using a case-sensitive comparison. Check your federated identity " +
              "credential Subject, Audience and Issuer against the presented assertion."
          )
        }
        const verified = yield* Effect.promise(() => verifyAssertion(assertion, federated.key))
        if (typeof verified === "string") return yield* rejectAssertion(verified, claims)
        if (verified.payload.sub !== federated.subject) {
          return yield* refuse(
            401,
            "invalid_client",
            70021,
            `No matching federated identity record found for presented assertion. Assertion Issuer: '${federated.issuer}'. ` +
              `Assertion Subject: '${String(verified.payload.sub)}'. Assertion Audience: '${
                audiencesOf(verified.payload).join(",")
              }'.`
          )
        }
        const expectedAudience = federated.audience ?? tokenExchangeAudience
        if (!audiencesOf(verified.payload).includes(expectedAudience)) {
          return yield* refuse(
            401,
            "invalid_client",
            700212,
            `No matching federated identity record found for presented assertion audience '${
              audiencesOf(verified.payload).join(",")
            }'.`
          )
        }
      })

    /**
     * Authenticates the client of a token request. A public client (no credential registered)
     * must present none; a confidential one must present one, and `requireCredential` refuses a
     * public client outright (client credentials).
     */
    const authenticateClient = (
      app: RegisteredApp,
      form: URLSearchParams,
      basic: ReturnType<typeof basicCredentials>,
      tenantSegment: string,
      requireCredential: boolean
    ) =>
      Effect.gen(function*() {
        const confidential = app.clientSecret !== undefined || app.certificatePem !== undefined ||
          app.federated !== undefined
        const secret = form.get("client_secret") ?? basic?.clientSecret ?? null
        const assertion = form.get("client_assertion")
        if (!confidential && (secret !== null || assertion !== null)) {
          return yield* refuse(
            401,
            "invalid_client",
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."
          )
        }
        if (secret === null && assertion === null) {
          if (!confidential && !requireCredential) return
          return yield* refuse(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
          )
        }
        if (secret !== null && assertion !== null) {
          return yield* refuse(
            400,
            "invalid_request",
            90014,
            "Only one of the parameters 'client_assertion' and 'client_secret' may be presented."
          )
        }
        if (secret !== null) {
          if (app.clientSecret === undefined || !sameSecret(secret, app.clientSecret)) {
            return yield* refuse(
              401,
              "invalid_client",
              7000215,
              "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, " +
                `not the client secret ID, for a secret added to app '${app.clientId}'.`
            )
          }
          return
        }
        if (form.get("client_assertion_type") !== jwtBearer) {
          return yield* refuse(
            400,
            "invalid_request",
            50027,
            `Invalid client_assertion_type '${form.get("client_assertion_type") ?? ""}'; expected '${jwtBearer}'.`
          )
        }
        yield* verifyClientAssertion(app, assertion!, tenantSegment)
      })

    // -------------------------------------------------------------------------------------------
    // Token issuance

    const issueAppToken = (app: RegisteredApp) =>
      Effect.promise(async () => {
        const accessToken = await identity.issueAccessToken({
          audience: audience(),
          objectId: app.objectId,
          appId: app.clientId,
          lifetimeSeconds: tokenLifetime,
          claims: { idtyp: "app", azp: app.clientId, azpacr: "1" }
        })
        counters.tokensIssued++
        return {
          status: 200,
          json: {
            token_type: "Bearer",
            expires_in: tokenLifetime,
            ext_expires_in: tokenLifetime,
            access_token: accessToken
          }
        } satisfies Reply
      })

    const issueUserTokens = (
      app: RegisteredApp,
      user: RegisteredUser,
      scopes: RequestedScopes,
      form: URLSearchParams,
      method: "pwd" | "mfa"
    ) =>
      Effect.promise(async () => {
        const name = user.displayName ?? user.username
        const accessToken = await identity.issueAccessToken({
          audience: audience(),
          objectId: user.objectId,
          appId: app.clientId,
          lifetimeSeconds: tokenLifetime,
          claims: {
            idtyp: "user",
            scp: "user_impersonation",
            upn: user.username,
            unique_name: user.username,
            name,
            amr: [method]
          }
        })
        const granted = [...scopes.resource]
        const impersonation = `${audience()}/user_impersonation`
        if (!granted.some((scope) => scope.toLowerCase().endsWith("/user_impersonation"))) {
          granted.unshift(impersonation)
        }
        const json: Record<string, unknown> = {
          token_type: "Bearer",
          scope: granted.join(" "),
          expires_in: tokenLifetime,
          ext_expires_in: tokenLifetime,
          access_token: accessToken
        }
        if (scopes.oidc.has("offline_access")) {
          const refreshToken = `0.${randomBytes(48).toString("base64url")}`
          refreshTokens.set(refreshToken, {
            clientId: app.clientId,
            user,
            scopes,
            expiresAt: Date.now() + refreshLifetime * 1000
          })
          json.refresh_token = refreshToken
        }
        if (scopes.oidc.has("openid")) {
          json.id_token = await identity.sign({
            iss: v2Issuer,
            aud: app.clientId,
            // Entra's `sub` is pairwise: stable per user and application.
            sub: createHash("sha256").update(`${user.objectId}:${app.clientId}`).digest("base64url").slice(0, 43),
            oid: user.objectId,
            tid: tenantId,
            preferred_username: user.username,
            name,
            ver: "2.0"
          }, { lifetimeSeconds: tokenLifetime })
        }
        if (form.get("client_info") === "1") json.client_info = base64UrlJson({ uid: user.objectId, utid: tenantId })
        counters.tokensIssued++
        return { status: 200, json } satisfies Reply
      })

    // -------------------------------------------------------------------------------------------
    // Endpoints

    const findApp = (clientId: string | null) =>
      Effect.gen(function*() {
        if (clientId === null || clientId === "") return yield* missingParameter("client_id")
        const app = apps.get(clientId.toLowerCase())
        if (app === undefined) {
          return yield* refuse(
            400,
            "unauthorized_client",
            700016,
            `Application with identifier '${clientId}' was not found in the directory '${tenantId}'. This can happen if ` +
              "the application has not been installed by the administrator of the tenant or consented to by any user in " +
              "the tenant. You may have sent your authentication request to the wrong tenant."
          )
        }
        return app
      })

    const tokenEndpoint = (tenantSegment: string, request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const form = yield* readForm(request)
        const basic = basicCredentials(request.headers["authorization"])
        const grantType = form.get("grant_type")
        if (grantType === null || grantType === "") return yield* missingParameter("grant_type")
        const app = yield* findApp(form.get("client_id") ?? basic?.clientId ?? null)
        switch (grantType) {
          case "client_credentials": {
            yield* authenticateClient(app, form, basic, tenantSegment, true)
            yield* parseScopes(form.get("scope"), "app")
            return yield* issueAppToken(app)
          }
          case "password": {
            yield* authenticateClient(app, form, basic, tenantSegment, false)
            const username = form.get("username")
            const password = form.get("password")
            if (username === null || username === "") return yield* missingParameter("username")
            if (password === null) return yield* missingParameter("password")
            const scopes = yield* parseScopes(form.get("scope"), "user")
            const user = users.get(username.toLowerCase())
            if (user === undefined) {
              return yield* refuse(
                400,
                "invalid_grant",
                50034,
                `The user account ${username} does not exist in the ${tenantId} directory. To sign into this application, ` +
                  "the account must be added to the directory."
              )
            }
            if (!sameSecret(password, user.password)) {
              return yield* refuse(
                400,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password."
              )
            }
            return yield* issueUserTokens(app, user, scopes, form, "pwd")
          }
          case deviceCodeGrant:
          case "device_code": {
            yield* authenticateClient(app, form, basic, tenantSegment, false)
            const code = form.get("device_code")
            if (code === null || code === "") return yield* missingParameter("device_code")
            const pending = deviceCodes.get(code)
            if (pending === undefined || pending.clientId !== app.clientId) {
              return yield* refuse(
                400,
                "invalid_grant",
                70000,
                "The provided value for the 'device_code' parameter is not valid."
              )
            }
            if (Date.now() >= pending.expiresAt) {
              deviceCodes.delete(code)
              return yield* refuse(
                400,
                "expired_token",
                70020,
                "The provided value for the input parameter 'device_code' is not valid. This device code has expired."
              )
            }
            if (pending.approvedFor === undefined) {
              return yield* refuse(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling."
              )
            }
            deviceCodes.delete(code)
            return yield* issueUserTokens(app, pending.approvedFor, pending.scopes, form, "mfa")
          }
          case "refresh_token": {
            yield* authenticateClient(app, form, basic, tenantSegment, false)
            const token = form.get("refresh_token")
            if (token === null || token === "") return yield* missingParameter("refresh_token")
            const grant = refreshTokens.get(token)
            if (grant === undefined) {
              return yield* refuse(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
            }
            if (grant.clientId !== app.clientId) {
              return yield* refuse(
                400,
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed: the refresh token was issued to another client."
              )
            }
            if (Date.now() >= grant.expiresAt) {
              refreshTokens.delete(token)
              return yield* refuse(
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity."
              )
            }
            const scopes = form.get("scope") === null ? grant.scopes : yield* parseScopes(form.get("scope"), "user")
            return yield* issueUserTokens(app, grant.user, scopes, form, "pwd")
          }
          default:
            return yield* refuse(
              400,
              "unsupported_grant_type",
              70003,
              `The app requested an unsupported grant type '${grantType}'.`
            )
        }
      })

    const approveUrl = (tenantSegment: string) => `${origin}/${tenantSegment}/oauth2/v2.0/devicecode/approve`

    const deviceAuthorization = (tenantSegment: string, request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const form = yield* readForm(request)
        const app = yield* findApp(form.get("client_id"))
        const scopes = yield* parseScopes(form.get("scope"), "user")
        const now = Date.now()
        for (const [key, code] of deviceCodes) if (now >= code.expiresAt) deviceCodes.delete(key)
        let userCode = ""
        do {
          userCode = Array.from({ length: 9 }, () => userCodeAlphabet[randomInt(userCodeAlphabet.length)]).join("")
        } while ([...deviceCodes.values()].some((code) => code.userCode === userCode))
        const deviceCode = randomBytes(48).toString("base64url")
        deviceCodes.set(deviceCode, {
          deviceCode,
          userCode,
          clientId: app.clientId,
          scopes,
          expiresAt: now + deviceLifetime * 1000,
          approvedFor: autoApprove ? options.users[0] : undefined
        })
        const verificationUri = approveUrl(tenantSegment)
        return {
          status: 200,
          json: {
            user_code: userCode,
            device_code: deviceCode,
            verification_uri: verificationUri,
            expires_in: deviceLifetime,
            interval: deviceInterval,
            message:
              `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${userCode} to authenticate.`
          }
        } satisfies Reply
      })

    /** Approves a device code; the reason when it cannot. */
    const approve = (userCode: string, username: string, password: string | undefined): string | undefined => {
      const wanted = normaliseUserCode(userCode)
      const pending = [...deviceCodes.values()].find((code) => code.userCode === wanted)
      if (pending === undefined || Date.now() >= pending.expiresAt) return "The code is not valid or has expired."
      if (pending.approvedFor !== undefined) return "The code has already been approved."
      const user = users.get(username.toLowerCase())
      if (user === undefined) return `The user account ${username} does not exist in the ${tenantId} directory.`
      if (password !== undefined && !sameSecret(password, user.password)) {
        return "Error validating credentials due to invalid username or password."
      }
      pending.approvedFor = user
      return undefined
    }

    const approveEndpoint = (tenantSegment: string, request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        if (request.method === "GET") {
          return { status: 200, html: devicePage(approveUrl(tenantSegment), undefined) } satisfies Reply
        }
        const form = yield* readForm(request)
        const userCode = form.get("user_code")
        const username = form.get("username")
        if (userCode === null || userCode === "") return yield* missingParameter("user_code")
        if (username === null || username === "") return yield* missingParameter("username")
        const password = form.get("password")
        const reason = approve(userCode, username, password === null || password === "" ? undefined : password)
        const html = (request.headers["accept"] ?? "").includes("text/html")
        if (reason !== undefined) {
          if (html) return { status: 400, html: devicePage(approveUrl(tenantSegment), reason) } satisfies Reply
          return yield* refuse(400, "invalid_grant", 70000, reason)
        }
        if (html) {
          return {
            status: 200,
            html: devicePage(approveUrl(tenantSegment), `Signed in as ${username}. You may close this page.`)
          } satisfies Reply
        }
        return {
          status: 200,
          json: { approved: true, user_code: normaliseUserCode(userCode), username }
        } satisfies Reply
      })

    const openIdConfiguration = (tenantSegment: string) => {
      const base = `${origin}/${tenantSegment}`
      // For `common`/`organizations` Entra leaves the issuer's tenant as a placeholder.
      const issuerTenant = tenantAliases.has(tenantSegment.toLowerCase()) ? "{tenantid}" : tenantId
      return {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_modes_supported: ["query", "fragment", "form_post"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
        response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
        scopes_supported: ["openid", "profile", "email", "offline_access"],
        issuer: `${origin}/${issuerTenant}/v2.0`,
        request_uri_parameter_supported: false,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        http_logout_supported: true,
        frontchannel_logout_supported: true,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        claims_supported: [
          "sub",
          "iss",
          "aud",
          "exp",
          "iat",
          "auth_time",
          "acr",
          "nonce",
          "preferred_username",
          "name",
          "tid",
          "ver",
          "at_hash",
          "c_hash",
          "email"
        ],
        tenant_region_scope: null,
        cloud_instance_name: "microsoftonline.com",
        cloud_graph_host_name: "graph.windows.net",
        msgraph_host: "graph.microsoft.com",
        rbac_url: "https://pas.windows.net"
      }
    }

    const msiError = (status: number, message: string): Reply => {
      counters.refused++
      return { status, json: { statusCode: status, message, correlationId: randomUUID() } }
    }

    const managedIdentityEndpoint = (request: HttpServerRequest.HttpServerRequest, url: URL) =>
      Effect.gen(function*() {
        const header = request.headers["x-identity-header"]
        if (header === undefined || !sameSecret(header, identityHeader)) {
          return msiError(401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
        }
        const apiVersion = url.searchParams.get("api-version")
        if (apiVersion !== "2019-08-01") {
          return msiError(400, `Unsupported api-version '${apiVersion ?? ""}'; this endpoint serves 2019-08-01.`)
        }
        const resource = url.searchParams.get("resource")
        if (resource === null || resource === "") {
          return msiError(400, "Required query parameter 'resource' is missing.")
        }
        const clientId = url.searchParams.get("client_id")
        const objectId = url.searchParams.get("object_id") ?? url.searchParams.get("principal_id")
        const resourceId = url.searchParams.get("mi_res_id")
        const chosen = clientId !== null
          ? managedIdentities.find((mi) => mi.clientId.toLowerCase() === clientId.toLowerCase())
          : objectId !== null
          ? managedIdentities.find((mi) => mi.objectId.toLowerCase() === objectId.toLowerCase())
          : resourceId !== null
          ? managedIdentities.find((mi) => mi.resourceId?.toLowerCase() === resourceId.toLowerCase())
          : managedIdentities.find((mi) => mi.systemAssigned === true)
        if (chosen === undefined) {
          return msiError(400, "No managed identity found for specified ClientId/ResourceId/PrincipalId.")
        }
        const requested = resource.replace(/\/\.default$/i, "")
        if (normaliseResource(requested) !== normaliseResource(audience())) {
          return msiError(
            400,
            `AADSTS500011: The resource principal named ${requested} was not found in the tenant named ${tenantId}.`
          )
        }
        const accessToken = yield* Effect.promise(() =>
          identity.issueAccessToken({
            audience: audience(),
            objectId: chosen.objectId,
            appId: chosen.clientId,
            lifetimeSeconds: tokenLifetime,
            claims: {
              idtyp: "app",
              ...(chosen.resourceId === undefined ? {} : { xms_mirid: chosen.resourceId })
            }
          })
        )
        counters.tokensIssued++
        return {
          status: 200,
          json: {
            access_token: accessToken,
            // App Service sends seconds since the epoch as a string.
            expires_on: String(Math.floor(Date.now() / 1000) + tokenLifetime),
            resource,
            token_type: "Bearer",
            client_id: chosen.clientId
          }
        } satisfies Reply
      })

    const route = (request: HttpServerRequest.HttpServerRequest, url: URL): Effect.Effect<Reply, OAuthFailure> => {
      const segments = url.pathname.split("/").filter((segment) => segment !== "")
      const method = request.method
      if (segments.length === 2 && segments[0] === "msi" && segments[1] === "token" && method === "GET") {
        return managedIdentityEndpoint(request, url)
      }
      const [tenant, ...rest] = segments
      const path = rest.join("/")
      if (tenant === undefined || path === "") {
        return refuse(404, "invalid_request", 900561, `No endpoint at ${url.pathname}.`)
      }
      if (tenant.toLowerCase() !== tenantId.toLowerCase() && !tenantAliases.has(tenant.toLowerCase())) {
        return refuse(
          400,
          "invalid_tenant",
          90002,
          `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`
        )
      }
      switch (path) {
        case "v2.0/.well-known/openid-configuration":
          return Effect.succeed({ status: 200, json: openIdConfiguration(tenant) })
        case "discovery/v2.0/keys":
        case "discovery/keys":
          return Effect.succeed({ status: 200, json: identity.jwks })
        case "oauth2/v2.0/token":
          return method === "POST" ? tokenEndpoint(tenant, request) : refuse(
            400,
            "invalid_request",
            900561,
            `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`
          )
        case "oauth2/v2.0/devicecode":
          return method === "POST" ? deviceAuthorization(tenant, request) : refuse(
            400,
            "invalid_request",
            900561,
            `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`
          )
        case "oauth2/v2.0/devicecode/approve":
          return approveEndpoint(tenant, request)
        case "oauth2/v2.0/authorize":
          return refuse(
            400,
            "invalid_request",
            90023,
            "The emulator does not offer interactive sign-in (authorization code flow); use the device code flow."
          )
        default:
          return refuse(404, "invalid_request", 900561, `No endpoint at ${url.pathname}.`)
      }
    }

    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, origin)
      const traceId = randomUUID()
      const correlationId = url.searchParams.get("client-request-id") ?? request.headers["client-request-id"] ??
        randomUUID()
      const reply: Reply = yield* route(request, url).pipe(
        Effect.catchTag("OAuthFailure", (failure) => {
          if (failure.error === "authorization_pending") counters.pendingPolls++
          else counters.refused++
          const timestamp = entraTimestamp(new Date())
          return Effect.as(
            failure.error === "authorization_pending"
              ? Effect.void
              : Effect.logDebug(`identity server refused ${url.pathname}: AADSTS${failure.code} ${failure.error}`),
            {
              status: failure.status,
              json: {
                error: failure.error,
                error_description: `AADSTS${failure.code}: ${failure.description}\r\nTrace ID: ${traceId}\r\n` +
                  `Correlation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
                error_codes: [failure.code],
                timestamp,
                trace_id: traceId,
                correlation_id: correlationId,
                error_uri: `${origin}/error?code=${failure.code}`
              }
            } satisfies Reply
          )
        })
      )
      const headers = {
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "x-ms-request-id": traceId,
        "client-request-id": correlationId
      }
      return reply.html !== undefined
        ? HttpServerResponse.text(reply.html, {
          status: reply.status,
          headers,
          contentType: "text/html; charset=utf-8"
        })
        : HttpServerResponse.text(JSON.stringify(reply.json ?? {}), {
          status: reply.status,
          headers,
          contentType: "application/json; charset=utf-8"
        })
    })

    yield* server.serve(app)
    yield* Effect.logDebug(`identity server listening on ${origin}`)

    return {
      origin,
      tenantId,
      authority,
      knownAuthorities: [hostAndPort],
      tokenEndpoint: `${authority}/oauth2/v2.0/token`,
      caFile,
      caPem: tls.caPem,
      msalNetworkClient: makeMsalNetworkClient(tls.caPem),
      managedIdentityEnvironment: { IDENTITY_ENDPOINT: `${origin}/msi/token`, IDENTITY_HEADER: identityHeader },
      approveDeviceCode: (userCode, username) => approve(userCode, username, undefined) === undefined,
      counters,
      setAvailable: (value) => {
        available = value
        if (!value) httpsServer?.closeAllConnections()
      }
    }
  })

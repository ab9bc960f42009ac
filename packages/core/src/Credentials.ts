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
import type * as Msal from "@azure/msal-node"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as forgeModule from "node-forge"
import { createHash, createPrivateKey, X509Certificate } from "node:crypto"
import * as Fs from "node:fs"
import { DataverseError } from "./DataverseError.js"

// node-forge (for PFX files only) loads when first needed. It is CommonJS without exports Node's
// ESM loader can detect: its API is on `default` there.
const loadForge = (): Promise<typeof forgeModule> =>
  import("node-forge").then((module) =>
    (module as unknown as { readonly default?: typeof forgeModule }).default ?? module
  )
import { authorityFor, fileCachePlugin, networkClient, signInError } from "./internal/msal.js"

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
export const forResource = (credential: Credential, resource: string): TokenProvider =>
  typeof credential === "function" ? credential(resource) : credential

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
export const staticToken = (token: string | Redacted.Redacted<string>): TokenProvider => {
  const redacted = typeof token === "string" ? Redacted.make(token) : token
  const value = Redacted.value(redacted).trim()
  const getToken = value === ""
    ? Effect.fail(new DataverseError({ reason: "InvalidInput", message: "The access token is empty." }))
    : Effect.succeed(Redacted.make(value.replace(/^Bearer\s+/i, "")))
  return { getToken, invalidate: Effect.void }
}

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

const refreshMargin = Duration.minutes(5)

/**
 * A provider that caches what `acquire` returns and acquires again five minutes before expiry
 * (or after `invalidate`); concurrent callers share one acquisition.
 *
 * @since 0.1.0
 * @category constructors
 */
export const cached = (
  acquire: (forceRefresh: boolean) => Effect.Effect<AccessToken, DataverseError>
): TokenProvider => {
  let current: { readonly token: Redacted.Redacted<string>; readonly refreshAt: number } | undefined
  let forceNext = false
  const lock = Effect.unsafeMakeSemaphore(1)
  const fresh = (now: number) => current !== undefined && now < current.refreshAt
  const getToken = Effect.gen(function*() {
    const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    if (fresh(now)) return current!.token
    return yield* lock.withPermits(1)(
      Effect.gen(function*() {
        const later = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        // Someone else refreshed while this caller waited for the lock.
        if (fresh(later)) return current!.token
        const acquired = yield* acquire(forceNext)
        forceNext = false
        const refreshAt = acquired.expiresOn === undefined
          ? later + Duration.toMillis(refreshMargin)
          : Math.max(later, acquired.expiresOn.getTime() - Duration.toMillis(refreshMargin))
        current = { token: acquired.token, refreshAt }
        return acquired.token
      })
    )
  })
  return {
    getToken,
    invalidate: Effect.sync(() => {
      current = undefined
      forceNext = true
    })
  }
}

/**
 * A provider from a callback that returns a token (and optionally its expiry), e.g. from a
 * secret store or another library's credential. Cached like every other flow.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCallback = (
  callback: (resource: string) => Promise<string | { readonly token: string; readonly expiresOn?: Date }>
): Credential =>
(resource) =>
  cached(() =>
    Effect.tryPromise({
      try: () => callback(resource),
      catch: (cause) => signInError("the token callback", cause)
    }).pipe(
      Effect.map((result) =>
        typeof result === "string"
          ? { token: Redacted.make(result), expiresOn: undefined }
          : { token: Redacted.make(result.token), expiresOn: result.expiresOn }
      )
    )
  )

const scopeOf = (resource: string) => `${resource.replace(/\/+$/, "")}/.default`

const fromResult = (
  flow: string,
  result: Msal.AuthenticationResult | null
): Effect.Effect<AccessToken, DataverseError> =>
  result === null || result.accessToken === ""
    ? Effect.fail(new DataverseError({ reason: "Unauthorized", message: `Sign-in with ${flow} returned no token.` }))
    : Effect.succeed({ token: Redacted.make(result.accessToken), expiresOn: result.expiresOn ?? undefined })

const msalCall = (flow: string, call: () => Promise<Msal.AuthenticationResult | null>) =>
  Effect.tryPromise({ try: call, catch: (cause) => signInError(flow, cause) }).pipe(
    Effect.flatMap((result) => fromResult(flow, result))
  )

/**
 * msal-node (and its dependencies) load only when a sign-in flow first runs: a command that
 * uses a static token, or only prints its help, never pays for them.
 */
const lazy = <A>(make: (msal: typeof Msal) => A): () => Promise<A> => {
  let made: Promise<A> | undefined
  return () => (made ??= import("@azure/msal-node").then(make))
}

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

const systemOptions = (options: AuthorityOptions): Msal.NodeSystemOptions =>
  options.ca === undefined ? {} : { networkClient: networkClient(options.ca) }

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
export const clientSecret =
  (options: AppOptions & { readonly clientSecret: Redacted.Redacted<string> }): Credential => (resource) => {
    const app = lazy((msal) =>
      new msal.ConfidentialClientApplication({
        auth: {
          clientId: options.clientId,
          clientSecret: Redacted.value(options.clientSecret),
          ...authorityFor(options.tenantId, options)
        },
        system: systemOptions(options)
      })
    )
    return cached((forceRefresh) =>
      msalCall(
        "a client secret",
        async () =>
          (await app()).acquireTokenByClientCredential({ scopes: [scopeOf(resource)], skipCache: forceRefresh })
      )
    )
  }

/**
 * A client certificate: PEM (certificate and private key, in one file or two) or PFX is read by
 * the caller; pass the PEM texts. The thumbprint is computed from the certificate.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientCertificate = (
  options: AppOptions & {
    readonly certificatePem: string
    readonly privateKeyPem: Redacted.Redacted<string>
  }
): Credential =>
(resource) => {
  const certificate = new X509Certificate(options.certificatePem)
  const thumbprintSha256 = createHash("sha256").update(certificate.raw).digest("hex")
  const app = lazy((msal) =>
    new msal.ConfidentialClientApplication({
      auth: {
        clientId: options.clientId,
        clientCertificate: {
          thumbprintSha256,
          privateKey: Redacted.value(options.privateKeyPem),
          x5c: options.certificatePem
        },
        ...authorityFor(options.tenantId, options)
      },
      system: systemOptions(options)
    })
  )
  return cached((forceRefresh) =>
    msalCall(
      "a client certificate",
      async () => (await app()).acquireTokenByClientCredential({ scopes: [scopeOf(resource)], skipCache: forceRefresh })
    )
  )
}

/**
 * Reads a certificate file for `clientCertificate`: PEM holding the certificate and its private
 * key, or PKCS#12 (`.pfx`/`.p12`) with its password. Fails with a clear message otherwise.
 *
 * @since 0.1.0
 * @category utils
 */
export const readCertificateFile = (
  path: string,
  password?: Redacted.Redacted<string>
): Effect.Effect<
  { readonly certificatePem: string; readonly privateKeyPem: Redacted.Redacted<string> },
  DataverseError
> =>
  Effect.tryPromise({
    try: async () => {
      const bytes = Fs.readFileSync(path)
      const text = bytes.toString("utf8")
      if (text.includes("-----BEGIN CERTIFICATE-----")) {
        const certificatePem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)![0]
        const keyMatch =
          /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/
            .exec(text)
        if (keyMatch === null) throw new Error("the PEM file holds a certificate but no private key")
        const key = createPrivateKey({
          key: keyMatch[0],
          ...(password === undefined ? {} : { passphrase: Redacted.value(password) })
        })
        return {
          certificatePem,
          privateKeyPem: Redacted.make(key.export({ type: "pkcs8", format: "pem" }).toString())
        }
      }
      return readPfx(await loadForge(), bytes, password)
    },
    catch: (cause) =>
      new DataverseError({
        reason: "InvalidInput",
        message: `Cannot use the certificate ${path}: ${(cause as Error).message}`
      })
  })

/** PKCS#12: the first certificate and the key that goes with it. */
const readPfx = (forge: typeof forgeModule, bytes: Buffer, password: Redacted.Redacted<string> | undefined) => {
  let p12: forgeModule.pkcs12.Pkcs12Pfx
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString("binary")))
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, password === undefined ? "" : Redacted.value(password))
  } catch (error) {
    throw new Error(
      /password|MAC/i.test(String(error))
        ? "the PFX password is wrong (or missing)"
        : "it is neither a PEM file with a certificate and key nor a PFX (PKCS#12) file"
    )
  }
  const certificate = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag]?.[0]?.cert
  const key =
    p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag]?.[0]?.key ??
      p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag]?.[0]?.key
  if (certificate === undefined || key === undefined) throw new Error("the PFX holds no certificate with a private key")
  return {
    certificatePem: forge.pki.certificateToPem(certificate),
    privateKeyPem: Redacted.make(
      forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key)))
    )
  }
}

/**
 * Workload identity federation: an external token (a Kubernetes service account token, a GitHub
 * OIDC token) read from `tokenFile` on every sign-in, as `AZURE_FEDERATED_TOKEN_FILE` provides.
 *
 * @since 0.1.0
 * @category constructors
 */
export const workloadIdentity = (options: AppOptions & { readonly tokenFile: string }): Credential => (resource) => {
  const app = lazy((msal) =>
    new msal.ConfidentialClientApplication({
      auth: {
        clientId: options.clientId,
        clientAssertion: () => Fs.promises.readFile(options.tokenFile, "utf8").then((text) => text.trim()),
        ...authorityFor(options.tenantId, options)
      },
      system: systemOptions(options)
    })
  )
  return cached((forceRefresh) =>
    msalCall(
      "workload identity federation",
      async () => (await app()).acquireTokenByClientCredential({ scopes: [scopeOf(resource)], skipCache: forceRefresh })
    )
  )
}

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

const publicApp = (options: UserFlowOptions) =>
  lazy((msal) =>
    new msal.PublicClientApplication({
      auth: { clientId: options.clientId, ...authorityFor(options.tenantId, options) },
      system: systemOptions(options),
      ...(options.cacheFile === undefined ? {} : { cache: { cachePlugin: fileCachePlugin(options.cacheFile) } })
    })
  )

/** Silent sign-in with a cached account first; the interactive step only when that fails. */
const userFlow = (
  flow: string,
  load: () => Promise<Msal.PublicClientApplication>,
  resource: string,
  interactive: (app: Msal.PublicClientApplication) => Effect.Effect<AccessToken, DataverseError>,
  /** The user to sign in as, when the flow names one: another user's cached account is not used. */
  username?: string
) =>
  cached((forceRefresh) =>
    Effect.gen(function*() {
      const app = yield* Effect.tryPromise({ try: load, catch: (cause) => signInError(flow, cause) })
      const accounts = yield* Effect.tryPromise({
        try: () => app.getTokenCache().getAllAccounts(),
        catch: (cause) => signInError(flow, cause)
      })
      const account = username === undefined
        ? accounts[0]
        : accounts.find((candidate) => candidate.username.toLowerCase() === username.toLowerCase())
      if (account !== undefined) {
        const silent = yield* Effect.option(
          msalCall(flow, () => app.acquireTokenSilent({ account, scopes: [scopeOf(resource)], forceRefresh }))
        )
        if (Option.isSome(silent)) return silent.value
      }
      return yield* interactive(app)
    })
  )

/**
 * Username and password (the resource owner password flow). Works only for accounts without MFA;
 * prefer device code for people and client credentials for automation.
 *
 * @since 0.1.0
 * @category constructors
 */
export const usernamePassword = (
  options: UserFlowOptions & {
    readonly username: string
    /**
     * The password, or an effect that gives it: it runs only when the cache cannot sign in
     * silently, so a caller can ask for the password (or fail with its own message) only then.
     */
    readonly password: Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, DataverseError>
  }
): Credential =>
(resource) => {
  const flow = "a username and password"
  const password = Effect.isEffect(options.password) ? options.password : Effect.succeed(options.password)
  return userFlow(
    flow,
    publicApp(options),
    resource,
    (app) =>
      Effect.flatMap(password, (value) =>
        msalCall(flow, () =>
          app.acquireTokenByUsernamePassword({
            username: options.username,
            password: Redacted.value(value),
            scopes: [scopeOf(resource)]
          }))),
    options.username
  )
}

/**
 * Device code: the user signs in on another device. `onPrompt` receives the message to show
 * ("To sign in, use a web browser to open ... and enter the code ..."); library code never
 * prints it. With `cacheFile`, later runs sign in silently.
 *
 * @since 0.1.0
 * @category constructors
 */
export const deviceCode =
  (options: UserFlowOptions & { readonly onPrompt: (message: string) => void }): Credential => (resource) => {
    return userFlow(
      "a device code",
      publicApp(options),
      resource,
      (app) =>
        msalCall("a device code", () =>
          app.acquireTokenByDeviceCode({
            scopes: [scopeOf(resource)],
            deviceCodeCallback: (response) => options.onPrompt(response.message)
          }))
    )
  }

/**
 * Managed identity (App Service, Functions, Container Apps, and the other sources msal-node
 * knows): system-assigned, or user-assigned by client id.
 *
 * @since 0.1.0
 * @category constructors
 */
export const managedIdentity =
  (options: AuthorityOptions & { readonly clientId?: string } = {}): Credential => (resource) => {
    const app = lazy((msal) =>
      new msal.ManagedIdentityApplication({
        ...(options.clientId === undefined
          ? {}
          : { managedIdentityIdParams: { userAssignedClientId: options.clientId } }),
        system: systemOptions(options)
      })
    )
    return cached((forceRefresh) =>
      msalCall(
        "a managed identity",
        async () => (await app()).acquireToken({ resource: resource.replace(/\/+$/, ""), forceRefresh })
      )
    )
  }

/**
 * The sign-in flows on msal-node: the app registration flows (client secret, client certificate,
 * workload identity federation), the user flows (username and password, device code; silent
 * first, from the token cache) and managed identity. Each is cached like every other provider.
 */
import type * as Msal from "@azure/msal-node"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { createHash, X509Certificate } from "node:crypto"
import * as Fs from "node:fs"
import type * as Credentials from "../Credentials.js"
import type { DataverseError } from "../DataverseError.js"
import { cached } from "./credentials.js"
import { authorityFor, fileCachePlugin, lazy, msalCall, scopeOf, signInError, systemOptions } from "./msal.js"

/**
 * A flow of an app registration (client credentials): a confidential client that proves itself
 * with what `credential` gives (a secret, a certificate or an assertion) when msal-node loads.
 */
const confidentialClient = (
  flow: string,
  options: Credentials.AppOptions,
  resource: string,
  credential: () => Pick<Msal.NodeAuthOptions, "clientSecret" | "clientCertificate" | "clientAssertion">
) => {
  const app = lazy((msal) =>
    new msal.ConfidentialClientApplication({
      auth: { clientId: options.clientId, ...credential(), ...authorityFor(options.tenantId, options) },
      system: systemOptions(options)
    })
  )
  return cached((forceRefresh) =>
    msalCall(
      flow,
      async () => (await app()).acquireTokenByClientCredential({ scopes: [scopeOf(resource)], skipCache: forceRefresh })
    )
  )
}

export const clientSecret: typeof Credentials.clientSecret = (options) => (resource) =>
  confidentialClient("a client secret", options, resource, () => ({
    clientSecret: Redacted.value(options.clientSecret)
  }))

export const clientCertificate: typeof Credentials.clientCertificate = (options) => (resource) => {
  const certificate = new X509Certificate(options.certificatePem)
  const thumbprintSha256 = createHash("sha256").update(certificate.raw).digest("hex")
  return confidentialClient("a client certificate", options, resource, () => ({
    clientCertificate: {
      thumbprintSha256,
      privateKey: Redacted.value(options.privateKeyPem),
      x5c: options.certificatePem
    }
  }))
}

export const workloadIdentity: typeof Credentials.workloadIdentity = (options) => (resource) =>
  confidentialClient("workload identity federation", options, resource, () => ({
    clientAssertion: () => Fs.promises.readFile(options.tokenFile, "utf8").then((text) => text.trim())
  }))

const publicApp = (options: Credentials.UserFlowOptions) =>
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
  interactive: (app: Msal.PublicClientApplication) => Effect.Effect<Credentials.AccessToken, DataverseError>,
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

export const usernamePassword: typeof Credentials.usernamePassword = (options) => (resource) => {
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

export const deviceCode: typeof Credentials.deviceCode = (options) => (resource) => {
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

export const managedIdentity: typeof Credentials.managedIdentity = (options = {}) => (resource) => {
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

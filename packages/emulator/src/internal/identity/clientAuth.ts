/**
 * Client authentication of token requests: the registered application a request names and the
 * credential it presents (client secret, certificate assertion, workload identity federation).
 */
import * as Effect from "effect/Effect"
import * as Jose from "jose"
import { verifyAssertion } from "../../Identity.js"
import type { RegisteredApp } from "../../IdentityServer.js"
import { missingParameter, refuse } from "./protocol.js"
import { type basicCredentials, normaliseResource, sameSecret } from "./request.js"
import type { IdentityState } from "./state.js"

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
const tokenExchangeAudience = "api://AzureADTokenExchange"

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

/** The registered application a request names, or Entra's answer to an unknown one. */
export const findApp = ({ apps, tenantId }: IdentityState, clientId: string | null) =>
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

const assertionAudiences = ({ origin, tenantId }: IdentityState, tenantSegment: string) =>
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

const verifyClientAssertion = (
  state: IdentityState,
  app: RegisteredApp,
  assertion: string,
  tenantSegment: string
) =>
  Effect.gen(function*() {
    const { origin, tenantId } = state
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
      const accepted = assertionAudiences(state, tenantSegment)
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
export const authenticateClient = (
  state: IdentityState,
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
    yield* verifyClientAssertion(state, app, assertion!, tenantSegment)
  })

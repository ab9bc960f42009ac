/**
 * The token endpoint and its grants: `client_credentials`, `password`, the device code and
 * `refresh_token`.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import { authenticateClient, findApp } from "./clientAuth.js"
import { missingParameter, refuse } from "./protocol.js"
import { basicCredentials, readForm, sameSecret } from "./request.js"
import { parseScopes } from "./scopes.js"
import type { IdentityState } from "./state.js"
import { issueAppToken, issueUserTokens } from "./tokens.js"

// RFC 8628's grant type; msal sends the short form `device_code`, which Entra accepts too.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"

/** `POST oauth2/v2.0/token`. */
export const tokenEndpoint = (
  state: IdentityState,
  tenantSegment: string,
  request: HttpServerRequest.HttpServerRequest
) =>
  Effect.gen(function*() {
    const { deviceCodes, refreshTokens, tenantId, users } = state
    const form = yield* readForm(request)
    const basic = basicCredentials(request.headers["authorization"])
    const grantType = form.get("grant_type")
    if (grantType === null || grantType === "") return yield* missingParameter("grant_type")
    const app = yield* findApp(state, form.get("client_id") ?? basic?.clientId ?? null)
    switch (grantType) {
      case "client_credentials": {
        yield* authenticateClient(state, app, form, basic, tenantSegment, true)
        yield* parseScopes(state, form.get("scope"), "app")
        return yield* issueAppToken(state, app)
      }
      case "password": {
        yield* authenticateClient(state, app, form, basic, tenantSegment, false)
        const username = form.get("username")
        const password = form.get("password")
        if (username === null || username === "") return yield* missingParameter("username")
        if (password === null) return yield* missingParameter("password")
        const scopes = yield* parseScopes(state, form.get("scope"), "user")
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
        return yield* issueUserTokens(state, app, user, scopes, form, "pwd")
      }
      case deviceCodeGrant:
      case "device_code": {
        yield* authenticateClient(state, app, form, basic, tenantSegment, false)
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
        return yield* issueUserTokens(state, app, pending.approvedFor, pending.scopes, form, "mfa")
      }
      case "refresh_token": {
        yield* authenticateClient(state, app, form, basic, tenantSegment, false)
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
        const scopes = form.get("scope") === null ? grant.scopes : yield* parseScopes(state, form.get("scope"), "user")
        return yield* issueUserTokens(state, app, grant.user, scopes, form, "pwd")
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

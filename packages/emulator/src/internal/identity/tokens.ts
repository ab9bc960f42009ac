/**
 * Token issuance: access tokens signed by the emulator's identity, ID tokens, refresh tokens.
 */
import * as Effect from "effect/Effect"
import { createHash, randomBytes } from "node:crypto"
import type { RegisteredApp, RegisteredUser } from "../../IdentityServer.js"
import type { Reply } from "./protocol.js"
import type { IdentityState, RequestedScopes } from "./state.js"

const base64UrlJson = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8").toString("base64url")

/** An app-only access token (client credentials). */
export const issueAppToken = (state: IdentityState, app: RegisteredApp) =>
  Effect.promise(async () => {
    const { audience, counters, identity, tokenLifetime } = state
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

/** A user's tokens: access token, and refresh and ID tokens when `offline_access` and `openid` ask for them. */
export const issueUserTokens = (
  state: IdentityState,
  app: RegisteredApp,
  user: RegisteredUser,
  scopes: RequestedScopes,
  form: URLSearchParams,
  method: "pwd" | "mfa"
) =>
  Effect.promise(async () => {
    const { audience, counters, identity, refreshLifetime, refreshTokens, tenantId, tokenLifetime, v2Issuer } = state
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

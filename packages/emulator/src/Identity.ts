/**
 * The emulator's token issuer: signs JWT access tokens (RS256, a key generated at start) and
 * verifies the ones presented to the Web API: signature, expiry and audience = the org URL.
 *
 * @since 0.1.0
 */
import * as Jose from "jose"
import { randomUUID } from "node:crypto"

/**
 * Why a presented token was refused.
 *
 * @since 0.1.0
 */
export type TokenRejection = "missing" | "malformed" | "expired" | "wrong audience" | "bad signature" | "not yet valid"

/**
 * The claims the Web API uses: who is calling.
 *
 * @since 0.1.0
 */
export interface VerifiedToken {
  readonly objectId: string
  readonly appId: string
  readonly expiresAt: Date
}

/**
 * An issuer and verifier of access tokens for one tenant.
 *
 * @since 0.1.0
 */
export interface Identity {
  readonly tenantId: string
  readonly issuer: string
  readonly issueAccessToken: (options: {
    readonly audience: string
    readonly objectId: string
    readonly appId: string
    readonly lifetimeSeconds: number
  }) => Promise<string>
  readonly verify: (authorization: string | undefined, audience: string) => Promise<VerifiedToken | TokenRejection>
}

/**
 * Makes an identity with a fresh signing key.
 *
 * @since 0.1.0
 */
export const make = async (tenantId: string): Promise<Identity> => {
  const { privateKey, publicKey } = await Jose.generateKeyPair("RS256")
  const keyId = randomUUID()
  const issuer = `https://sts.windows.net/${tenantId}/`
  // Audiences are compared without a trailing slash: Entra issues either form.
  const normalise = (audience: string) => audience.replace(/\/+$/, "").toLowerCase()
  return {
    tenantId,
    issuer,
    issueAccessToken: ({ appId, audience, lifetimeSeconds, objectId }) =>
      new Jose.SignJWT({ tid: tenantId, oid: objectId, appid: appId, ver: "1.0" })
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: keyId })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(objectId)
        .setIssuedAt()
        .setNotBefore("0s")
        .setExpirationTime(`${lifetimeSeconds}s`)
        .setJti(randomUUID())
        .sign(privateKey),
    verify: async (authorization, audience) => {
      if (authorization === undefined || authorization.trim() === "") return "missing"
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
      if (match === null) return "malformed"
      try {
        const { payload } = await Jose.jwtVerify(match[1]!, publicKey, { issuer, algorithms: ["RS256"] })
        const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud ?? ""]
        if (!audiences.some((a) => normalise(a) === normalise(audience))) return "wrong audience"
        if (typeof payload.oid !== "string" || typeof payload.exp !== "number") return "malformed"
        return {
          objectId: payload.oid,
          appId: typeof payload.appid === "string" ? payload.appid : "",
          expiresAt: new Date(payload.exp * 1000)
        }
      } catch (error) {
        if (error instanceof Jose.errors.JWTExpired) return "expired"
        if (error instanceof Jose.errors.JWSSignatureVerificationFailed) return "bad signature"
        if (error instanceof Jose.errors.JWTClaimValidationFailed && error.claim === "nbf") return "not yet valid"
        return "malformed"
      }
    }
  }
}

/**
 * The emulator's token issuer: signs JWT access tokens (RS256, a key generated at start) and
 * verifies the ones presented to the Web API: signature, expiry and audience = the org URL.
 * It also signs the identity server's ID tokens, publishes its key as a JWKS, and verifies the
 * JWT client assertions that applications present (certificate credentials and workload
 * identity federation).
 *
 * @since 0.1.0
 */
import * as Jose from "jose"
import { createPublicKey, type KeyObject, randomUUID, X509Certificate } from "node:crypto"

/**
 * Why a presented token was refused.
 *
 * @since 0.1.0
 * @category models
 */
export type TokenRejection = "missing" | "malformed" | "expired" | "wrong audience" | "bad signature" | "not yet valid"

/**
 * The claims the Web API uses: who is calling.
 *
 * @since 0.1.0
 * @category models
 */
export interface VerifiedToken {
  readonly objectId: string
  readonly appId: string
  readonly expiresAt: Date
}

/**
 * A JSON Web Key Set, as published at an issuer's `jwks_uri`.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonWebKeySet {
  readonly keys: ReadonlyArray<Jose.JWK>
}

/**
 * An issuer and verifier of access tokens for one tenant.
 *
 * @since 0.1.0
 * @category models
 */
export interface Identity {
  readonly tenantId: string
  /** The `iss` of the access tokens: `https://sts.windows.net/<tenant>/`, as Entra's v1 tokens. */
  readonly issuer: string
  /** The public signing key, as a JWKS (`kid`, `use: "sig"`, `alg: "RS256"`). */
  readonly jwks: JsonWebKeySet
  readonly issueAccessToken: (options: {
    readonly audience: string
    readonly objectId: string
    readonly appId: string
    readonly lifetimeSeconds: number
    /** More claims (e.g. `scp`, `upn`, `idtyp`); `iss`, `aud`, `tid`, `oid`, `appid` and the times win. */
    readonly claims?: Readonly<Record<string, unknown>>
  }) => Promise<string>
  /**
   * Signs any JWT with the identity's key (e.g. an ID token): `iat`, `nbf`, `exp` and `jti` are
   * added; `iss`, `aud`, `sub` and the rest come from `claims`.
   */
  readonly sign: (
    claims: Readonly<Record<string, unknown>>,
    options: { readonly lifetimeSeconds: number }
  ) => Promise<string>
  readonly verify: (authorization: string | undefined, audience: string) => Promise<VerifiedToken | TokenRejection>
}

/**
 * Makes an identity with a fresh signing key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = async (tenantId: string): Promise<Identity> => {
  const { privateKey, publicKey } = await Jose.generateKeyPair("RS256")
  const keyId = randomUUID()
  const issuer = `https://sts.windows.net/${tenantId}/`
  const publicJwk = await Jose.exportJWK(publicKey)
  // Audiences are compared without a trailing slash: Entra issues either form.
  const normalise = (audience: string) => audience.replace(/\/+$/, "").toLowerCase()
  const sign: Identity["sign"] = (claims, { lifetimeSeconds }) =>
    new Jose.SignJWT({ ...claims })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: keyId })
      .setIssuedAt()
      .setNotBefore("0s")
      .setExpirationTime(`${lifetimeSeconds}s`)
      .setJti(randomUUID())
      .sign(privateKey)
  return {
    tenantId,
    issuer,
    jwks: { keys: [{ ...publicJwk, kid: keyId, use: "sig", alg: "RS256" }] },
    issueAccessToken: ({ appId, audience, claims, lifetimeSeconds, objectId }) =>
      sign({
        ...claims,
        iss: issuer,
        aud: audience,
        sub: objectId,
        tid: tenantId,
        oid: objectId,
        appid: appId,
        ver: "1.0"
      }, { lifetimeSeconds }),
    sign,
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

/**
 * The key that verifies a client assertion: a PEM certificate or public key (SPKI), or a JWKS.
 *
 * @since 0.1.0
 * @category models
 */
export type AssertionKey = string | JsonWebKeySet

/**
 * Why a client assertion was refused. `"key not found"`: its `x5t`/`x5t#S256`/`kid` header names
 * another key than the registered one.
 *
 * @since 0.1.0
 * @category models
 */
export type AssertionRejection = "malformed" | "expired" | "not yet valid" | "bad signature" | "key not found"

/**
 * A client assertion whose signature and validity period were checked; its claims (`iss`, `sub`,
 * `aud`) are for the caller to match.
 *
 * @since 0.1.0
 * @category models
 */
export interface VerifiedAssertion {
  readonly header: Jose.ProtectedHeaderParameters
  readonly payload: Jose.JWTPayload
}

const assertionAlgorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]

const base64UrlOfHex = (hex: string) => Buffer.from(hex.replace(/:/g, ""), "hex").toString("base64url")

/**
 * Verifies a JWT client assertion (RFC 7523): its signature with `key`, that it has an `exp` and
 * that `nbf`/`exp` hold within `clockToleranceSeconds` (default 300, Entra's allowed skew). When
 * `key` is a certificate and the assertion names a thumbprint (`x5t` or `x5t#S256`), the thumbprint
 * must be the certificate's.
 *
 * @since 0.1.0
 * @category utils
 */
export const verifyAssertion = async (
  jwt: string,
  key: AssertionKey,
  options: { readonly clockToleranceSeconds?: number } = {}
): Promise<VerifiedAssertion | AssertionRejection> => {
  let header: Jose.ProtectedHeaderParameters
  try {
    header = Jose.decodeProtectedHeader(jwt)
    Jose.decodeJwt(jwt)
  } catch {
    return "malformed"
  }
  let verificationKey: KeyObject | Jose.JWTVerifyGetKey
  if (typeof key === "string") {
    if (key.includes("BEGIN CERTIFICATE")) {
      const certificate = new X509Certificate(key)
      const x5t = header.x5t
      const x5tS256 = header["x5t#S256"]
      if (typeof x5t === "string" && x5t !== base64UrlOfHex(certificate.fingerprint)) return "key not found"
      if (typeof x5tS256 === "string" && x5tS256 !== base64UrlOfHex(certificate.fingerprint256)) {
        return "key not found"
      }
      verificationKey = certificate.publicKey
    } else {
      try {
        verificationKey = createPublicKey(key)
      } catch {
        return "key not found"
      }
    }
  } else {
    verificationKey = Jose.createLocalJWKSet({ keys: [...key.keys] })
  }
  try {
    const verifyOptions: Jose.JWTVerifyOptions = {
      algorithms: assertionAlgorithms,
      clockTolerance: options.clockToleranceSeconds ?? 300,
      requiredClaims: ["exp"]
    }
    const { payload, protectedHeader } = typeof verificationKey === "function"
      ? await Jose.jwtVerify(jwt, verificationKey, verifyOptions)
      : await Jose.jwtVerify(jwt, verificationKey, verifyOptions)
    return { header: protectedHeader, payload }
  } catch (error) {
    if (error instanceof Jose.errors.JWTExpired) return "expired"
    if (error instanceof Jose.errors.JWSSignatureVerificationFailed) return "bad signature"
    if (error instanceof Jose.errors.JWKSNoMatchingKey) return "key not found"
    if (error instanceof Jose.errors.JWKSMultipleMatchingKeys) return "key not found"
    if (error instanceof Jose.errors.JWTClaimValidationFailed && error.claim === "nbf") return "not yet valid"
    return "malformed"
  }
}

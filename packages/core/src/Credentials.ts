/**
 * Where access tokens come from. Every authentication flow is a `TokenProvider`; the client asks
 * it for a token before each request and tells it when the service refused one.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { DataverseError } from "./DataverseError.js"

/**
 * A source of bearer tokens for one Dataverse org.
 *
 * @since 0.1.0
 */
export interface TokenProvider {
  /** A token valid for the org; a caching provider returns the cached one while it is valid. */
  readonly getToken: Effect.Effect<Redacted.Redacted<string>, DataverseError>
  /** Forgets a cached token after the service answered 401 with it. */
  readonly invalidate: Effect.Effect<void>
}

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
 */
export const staticToken = (token: string | Redacted.Redacted<string>): TokenProvider => {
  const redacted = typeof token === "string" ? Redacted.make(token) : token
  const value = Redacted.value(redacted).trim()
  const getToken = value === ""
    ? Effect.fail(
      new DataverseError({ reason: "InvalidInput", message: "The access token is empty." })
    )
    : Effect.succeed(Redacted.make(value.replace(/^Bearer\s+/i, "")))
  return { getToken, invalidate: Effect.void }
}

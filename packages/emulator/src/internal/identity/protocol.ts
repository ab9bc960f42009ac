/**
 * Entra's OAuth 2.0 protocol as the identity server speaks it: the error answer (`error`,
 * `AADSTS<n>` codes) and the reply every endpoint produces.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** Tenant segments that stand for any tenant. */
export const tenantAliases = new Set(["common", "organizations"])

/** An OAuth 2.0 error answer, in Entra's shape. */
export class OAuthFailure extends Data.TaggedError("OAuthFailure")<{
  readonly status: number
  readonly error: string
  readonly code: number
  readonly description: string
}> {}

/** Fails with an OAuth error answer. */
export const refuse = (status: number, error: string, code: number, description: string) =>
  Effect.fail(new OAuthFailure({ status, error, code, description }))

/** Entra's answer to a missing body parameter. */
export const missingParameter = (name: string) =>
  refuse(400, "invalid_request", 900144, `The request body must contain the following parameter: '${name}'.`)

/** What an endpoint answers: JSON, or HTML (the device page). */
export interface Reply {
  readonly status: number
  readonly json?: unknown
  readonly html?: string
}

/** `2026-01-02 03:04:05Z`: the `timestamp` of Entra's error answers. */
export const entraTimestamp = (date: Date) => date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z")

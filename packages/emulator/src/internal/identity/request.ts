/**
 * Reading what a request presents: form (or JSON) bodies, Basic client credentials, secrets
 * compared in constant time, resource identifiers compared as the service compares them.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import { timingSafeEqual } from "node:crypto"

/** A resource or audience URI as compared: no trailing slashes, lower case. */
export const normaliseResource = (resource: string) => resource.replace(/\/+$/, "").toLowerCase()

/** Compares a presented secret in constant time. */
export const sameSecret = (presented: string, expected: string) => {
  const a = Buffer.from(presented, "utf8")
  const b = Buffer.from(expected, "utf8")
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Reads a form (or JSON object) body into search params. */
export const readForm = (request: HttpServerRequest.HttpServerRequest) =>
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
export const basicCredentials = (header: string | undefined) => {
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

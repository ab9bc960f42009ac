/**
 * Routing of the identity server's endpoints, and the HTTP answer: JSON (or the device page's
 * HTML), with Entra's error body and headers.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import { approveEndpoint, deviceAuthorization } from "./deviceCode.js"
import { openIdConfiguration } from "./discovery.js"
import { managedIdentityEndpoint } from "./managedIdentity.js"
import { entraTimestamp, type OAuthFailure, refuse, type Reply, tenantAliases } from "./protocol.js"
import type { IdentityState } from "./state.js"
import { tokenEndpoint } from "./tokenEndpoint.js"

const route = (
  state: IdentityState,
  request: HttpServerRequest.HttpServerRequest,
  url: URL
): Effect.Effect<Reply, OAuthFailure> => {
  const { identity, tenantId } = state
  const segments = url.pathname.split("/").filter((segment) => segment !== "")
  const method = request.method
  if (segments.length === 2 && segments[0] === "msi" && segments[1] === "token" && method === "GET") {
    return managedIdentityEndpoint(state, request, url)
  }
  const [tenant, ...rest] = segments
  const path = rest.join("/")
  if (tenant === undefined || path === "") {
    return refuse(404, "invalid_request", 900561, `No endpoint at ${url.pathname}.`)
  }
  if (tenant.toLowerCase() !== tenantId.toLowerCase() && !tenantAliases.has(tenant.toLowerCase())) {
    return refuse(
      400,
      "invalid_tenant",
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`
    )
  }
  // Entra's answer to another verb on a POST-only endpoint.
  const postOnly = () =>
    refuse(
      400,
      "invalid_request",
      900561,
      `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`
    )
  switch (path) {
    case "v2.0/.well-known/openid-configuration":
      return Effect.succeed({ status: 200, json: openIdConfiguration(state, tenant) })
    case "discovery/v2.0/keys":
    case "discovery/keys":
      return Effect.succeed({ status: 200, json: identity.jwks })
    case "oauth2/v2.0/token":
      return method === "POST" ? tokenEndpoint(state, tenant, request) : postOnly()
    case "oauth2/v2.0/devicecode":
      return method === "POST" ? deviceAuthorization(state, tenant, request) : postOnly()
    case "oauth2/v2.0/devicecode/approve":
      return approveEndpoint(state, tenant, request)
    case "oauth2/v2.0/authorize":
      return refuse(
        400,
        "invalid_request",
        90023,
        "The emulator does not offer interactive sign-in (authorization code flow); use the device code flow."
      )
    default:
      return refuse(404, "invalid_request", 900561, `No endpoint at ${url.pathname}.`)
  }
}

/** The server's HTTP app: routes a request and renders its reply or Entra's error answer. */
export const makeHttpApp = (state: IdentityState) =>
  Effect.gen(function*() {
    const { counters, origin } = state
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, origin)
    const traceId = randomUUID()
    const correlationId = url.searchParams.get("client-request-id") ?? request.headers["client-request-id"] ??
      randomUUID()
    const reply: Reply = yield* route(state, request, url).pipe(
      Effect.catchTag("OAuthFailure", (failure) => {
        if (failure.error === "authorization_pending") counters.pendingPolls++
        else counters.refused++
        const timestamp = entraTimestamp(new Date())
        return Effect.as(
          failure.error === "authorization_pending"
            ? Effect.void
            : Effect.logDebug(`identity server refused ${url.pathname}: AADSTS${failure.code} ${failure.error}`),
          {
            status: failure.status,
            json: {
              error: failure.error,
              error_description: `AADSTS${failure.code}: ${failure.description}\r\nTrace ID: ${traceId}\r\n` +
                `Correlation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
              error_codes: [failure.code],
              timestamp,
              trace_id: traceId,
              correlation_id: correlationId,
              error_uri: `${origin}/error?code=${failure.code}`
            }
          } satisfies Reply
        )
      })
    )
    const headers = {
      "Cache-Control": "no-store, no-cache",
      "Pragma": "no-cache",
      "x-ms-request-id": traceId,
      "client-request-id": correlationId
    }
    return reply.html !== undefined
      ? HttpServerResponse.text(reply.html, {
        status: reply.status,
        headers,
        contentType: "text/html; charset=utf-8"
      })
      : HttpServerResponse.text(JSON.stringify(reply.json ?? {}), {
        status: reply.status,
        headers,
        contentType: "application/json; charset=utf-8"
      })
  })

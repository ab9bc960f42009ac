/**
 * The App Service managed identity endpoint (`IDENTITY_ENDPOINT`, secret header
 * `X-IDENTITY-HEADER`), outside the tenant paths.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import type { Reply } from "./protocol.js"
import { normaliseResource, sameSecret } from "./request.js"
import type { IdentityState } from "./state.js"

const msiError = ({ counters }: IdentityState, status: number, message: string): Reply => {
  counters.refused++
  return { status, json: { statusCode: status, message, correlationId: randomUUID() } }
}

/** `GET /msi/token`: App Service's managed identity endpoint, api-version 2019-08-01. */
export const managedIdentityEndpoint = (
  state: IdentityState,
  request: HttpServerRequest.HttpServerRequest,
  url: URL
) =>
  Effect.gen(function*() {
    const { audience, counters, identity, identityHeader, managedIdentities, tenantId, tokenLifetime } = state
    const header = request.headers["x-identity-header"]
    if (header === undefined || !sameSecret(header, identityHeader)) {
      return msiError(state, 401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
    }
    const apiVersion = url.searchParams.get("api-version")
    if (apiVersion !== "2019-08-01") {
      return msiError(state, 400, `Unsupported api-version '${apiVersion ?? ""}'; this endpoint serves 2019-08-01.`)
    }
    const resource = url.searchParams.get("resource")
    if (resource === null || resource === "") {
      return msiError(state, 400, "Required query parameter 'resource' is missing.")
    }
    const clientId = url.searchParams.get("client_id")
    const objectId = url.searchParams.get("object_id") ?? url.searchParams.get("principal_id")
    const resourceId = url.searchParams.get("mi_res_id")
    const chosen = clientId !== null
      ? managedIdentities.find((mi) => mi.clientId.toLowerCase() === clientId.toLowerCase())
      : objectId !== null
      ? managedIdentities.find((mi) => mi.objectId.toLowerCase() === objectId.toLowerCase())
      : resourceId !== null
      ? managedIdentities.find((mi) => mi.resourceId?.toLowerCase() === resourceId.toLowerCase())
      : managedIdentities.find((mi) => mi.systemAssigned === true)
    if (chosen === undefined) {
      return msiError(state, 400, "No managed identity found for specified ClientId/ResourceId/PrincipalId.")
    }
    const requested = resource.replace(/\/\.default$/i, "")
    if (normaliseResource(requested) !== normaliseResource(audience())) {
      return msiError(
        state,
        400,
        `AADSTS500011: The resource principal named ${requested} was not found in the tenant named ${tenantId}.`
      )
    }
    const accessToken = yield* Effect.promise(() =>
      identity.issueAccessToken({
        audience: audience(),
        objectId: chosen.objectId,
        appId: chosen.clientId,
        lifetimeSeconds: tokenLifetime,
        claims: {
          idtyp: "app",
          ...(chosen.resourceId === undefined ? {} : { xms_mirid: chosen.resourceId })
        }
      })
    )
    counters.tokensIssued++
    return {
      status: 200,
      json: {
        access_token: accessToken,
        // App Service sends seconds since the epoch as a string.
        expires_on: String(Math.floor(Date.now() / 1000) + tokenLifetime),
        resource,
        token_type: "Bearer",
        client_id: chosen.clientId
      }
    } satisfies Reply
  })

/**
 * The `scope` of a token request: OpenID scopes and the resource's (the org URL's) `.default` or
 * `user_impersonation`, refused with Entra's codes.
 */
import * as Effect from "effect/Effect"
import { missingParameter, refuse } from "./protocol.js"
import { normaliseResource } from "./request.js"
import type { IdentityState, RequestedScopes } from "./state.js"

const oidcScopes = new Set(["openid", "profile", "offline_access", "email"])

/** Parses a `scope` parameter; `"app"` flows (client credentials) accept only `/.default`. */
export const parseScopes = (state: IdentityState, raw: string | null, flow: "app" | "user") =>
  Effect.gen(function*() {
    const { audience, tenantId } = state
    const scopes = (raw ?? "").split(/\s+/).filter((scope) => scope !== "")
    if (scopes.length === 0) return yield* missingParameter("scope")
    const resource: Array<string> = []
    const oidc = new Set<string>()
    for (const scope of scopes) {
      if (oidcScopes.has(scope.toLowerCase())) {
        oidc.add(scope.toLowerCase())
        continue
      }
      const slash = scope.lastIndexOf("/")
      if (slash <= 0) {
        return yield* refuse(
          400,
          "invalid_scope",
          70011,
          `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`
        )
      }
      const name = scope.slice(0, slash)
      const permission = scope.slice(slash + 1).toLowerCase()
      if (normaliseResource(name) !== normaliseResource(audience())) {
        return yield* refuse(
          400,
          "invalid_resource",
          500011,
          `The resource principal named ${name.replace(/\/+$/, "")} was not found in the tenant named ${tenantId}. ` +
            "This can happen if the application has not been installed by the administrator of the tenant or " +
            "consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        )
      }
      if (flow === "app" && permission !== ".default") {
        return yield* refuse(
          400,
          "invalid_scope",
          1002012,
          `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value ` +
            "with /.default suffixed to the resource identifier (application ID URI)."
        )
      }
      if (permission !== ".default" && permission !== "user_impersonation") {
        return yield* refuse(
          400,
          "invalid_scope",
          70011,
          `The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`
        )
      }
      if (!resource.includes(scope)) resource.push(scope)
    }
    if (resource.length === 0) {
      return yield* refuse(
        400,
        "invalid_scope",
        70011,
        `The provided value for the input parameter 'scope' is not valid: it names no resource. ` +
          `Ask for ${audience()}/.default.`
      )
    }
    return { resource, oidc } satisfies RequestedScopes
  })

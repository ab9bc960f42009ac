/**
 * Discovery: the OpenID configuration of a tenant (or of `common` / `organizations`).
 */
import { tenantAliases } from "./protocol.js"
import type { IdentityState } from "./state.js"

/** `GET v2.0/.well-known/openid-configuration`: what msal discovers of an authority. */
export const openIdConfiguration = ({ origin, tenantId }: IdentityState, tenantSegment: string) => {
  const base = `${origin}/${tenantSegment}`
  // For `common`/`organizations` Entra leaves the issuer's tenant as a placeholder.
  const issuerTenant = tenantAliases.has(tenantSegment.toLowerCase()) ? "{tenantid}" : tenantId
  return {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer: `${origin}/${issuerTenant}/v2.0`,
    request_uri_parameter_supported: false,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    claims_supported: [
      "sub",
      "iss",
      "aud",
      "exp",
      "iat",
      "auth_time",
      "acr",
      "nonce",
      "preferred_username",
      "name",
      "tid",
      "ver",
      "at_hash",
      "c_hash",
      "email"
    ],
    tenant_region_scope: null,
    cloud_instance_name: "microsoftonline.com",
    cloud_graph_host_name: "graph.windows.net",
    msgraph_host: "graph.microsoft.com",
    rbac_url: "https://pas.windows.net"
  }
}

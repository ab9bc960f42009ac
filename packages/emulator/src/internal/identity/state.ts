/**
 * What one identity server holds while it runs: its settings, the registrations it knows, the
 * device codes and refresh tokens it has issued, its counters. Every handler takes it explicitly.
 */
import { randomBytes } from "node:crypto"
import type { Identity } from "../../Identity.js"
import type {
  IdentityServerCounters,
  IdentityServerOptions,
  ManagedIdentity,
  RegisteredApp,
  RegisteredUser
} from "../../IdentityServer.js"

/** The `scope` of a request, parsed. */
export interface RequestedScopes {
  /** The resource scopes as requested, e.g. `http://org/.default`. */
  readonly resource: ReadonlyArray<string>
  /** `openid`, `profile`, `offline_access`, `email` as requested. */
  readonly oidc: ReadonlySet<string>
}

/** A device code issued and not yet redeemed; `approvedFor` once a user approved it. */
export interface DeviceCode {
  readonly deviceCode: string
  readonly userCode: string
  readonly clientId: string
  readonly scopes: RequestedScopes
  readonly expiresAt: number
  approvedFor: RegisteredUser | undefined
}

/** What a refresh token stands for. */
export interface RefreshGrant {
  readonly clientId: string
  readonly user: RegisteredUser
  readonly scopes: RequestedScopes
  readonly expiresAt: number
}

/** The state the handlers share; the maps change as codes and tokens are issued and redeemed. */
export interface IdentityState {
  readonly identity: Identity
  readonly tenantId: string
  /** `https://<host>:<port>`. */
  readonly origin: string
  /** `<origin>/<tenantId>`. */
  readonly authority: string
  /** The `iss` of ID tokens. */
  readonly v2Issuer: string
  /** The org URL tokens are issued for, without a trailing slash. */
  readonly audience: () => string
  readonly tokenLifetime: number
  readonly refreshLifetime: number
  readonly deviceInterval: number
  readonly deviceLifetime: number
  readonly autoApprove: boolean
  /** The users as registered, in order: the first is the one `autoApprove` approves for. */
  readonly registeredUsers: ReadonlyArray<RegisteredUser>
  /** By lower-case client id. */
  readonly apps: ReadonlyMap<string, RegisteredApp>
  /** By lower-case username. */
  readonly users: ReadonlyMap<string, RegisteredUser>
  readonly managedIdentities: ReadonlyArray<ManagedIdentity>
  /** The secret `X-IDENTITY-HEADER` of the managed identity endpoint. */
  readonly identityHeader: string
  /** Pending device codes, by device code. */
  readonly deviceCodes: Map<string, DeviceCode>
  /** Live refresh tokens, by token. */
  readonly refreshTokens: Map<string, RefreshGrant>
  readonly counters: IdentityServerCounters
}

/** The state of a server listening at `origin`. */
export const makeState = (options: IdentityServerOptions, origin: string): IdentityState => {
  const { identity } = options
  const tenantId = identity.tenantId
  const tokenLifetime = options.tokenLifetimeSeconds ?? 3600
  const refreshLifetime = options.refreshTokenLifetimeSeconds ?? 90 * 24 * 60 * 60
  const deviceInterval = options.deviceCodeIntervalSeconds ?? 1
  const deviceLifetime = options.deviceCodeLifetimeSeconds ?? 900
  const autoApprove = (options.deviceCodeApproval ?? "auto") === "auto"
  const apps = new Map(options.apps.map((app) => [app.clientId.toLowerCase(), app]))
  const users = new Map(options.users.map((user) => [user.username.toLowerCase(), user]))
  const managedIdentities = options.managedIdentities ?? []
  const identityHeader = randomBytes(24).toString("base64url")
  const deviceCodes = new Map<string, DeviceCode>()
  const refreshTokens = new Map<string, RefreshGrant>()
  const counters: IdentityServerCounters = { tokensIssued: 0, refused: 0, pendingPolls: 0 }
  const authority = `${origin}/${tenantId}`
  const v2Issuer = `${authority}/v2.0`
  const audience = () => options.audience().replace(/\/+$/, "")
  return {
    identity,
    tenantId,
    origin,
    authority,
    v2Issuer,
    audience,
    tokenLifetime,
    refreshLifetime,
    deviceInterval,
    deviceLifetime,
    autoApprove,
    registeredUsers: options.users,
    apps,
    users,
    managedIdentities,
    identityHeader,
    deviceCodes,
    refreshTokens,
    counters
  }
}

import {
  type AuthenticationResult,
  ConfidentialClientApplication,
  type DeviceCodeRequest,
  ManagedIdentityApplication,
  PublicClientApplication
} from "@azure/msal-node"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Jose from "jose"
import { execFile, spawn } from "node:child_process"
import { createPrivateKey, randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Identity from "../src/Identity.js"
import * as IdentityServer from "../src/IdentityServer.js"
import { makeSelfSignedCertificate, type SelfSignedCertificate } from "../src/internal/tls.js"

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))
const audience = "http://127.0.0.1:1"
const scopes = [`${audience}/.default`]
const tenantId = randomUUID()
const githubIssuer = "https://token.actions.githubusercontent.com"
const githubSubject = "repo:contoso/dataverse-jobs:ref:refs/heads/main"

const secretApp = { clientId: randomUUID(), clientSecret: "s3cr3t~value", objectId: randomUUID() }
const publicApp = { clientId: randomUUID(), objectId: randomUUID() }
const ada = { username: "ada@contoso.test", password: "Analytical-Engine-1843", objectId: randomUUID() }
const grace = { username: "grace@contoso.test", password: "Cobol-1959", objectId: randomUUID(), displayName: "Grace" }
const systemIdentity = { clientId: randomUUID(), objectId: randomUUID(), systemAssigned: true }
const userIdentity = {
  clientId: randomUUID(),
  objectId: randomUUID(),
  resourceId: "/subscriptions/0/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/jobs"
}

interface Started {
  readonly server: IdentityServer.RunningIdentityServer
  readonly close: () => Promise<void>
}

const start = async (options: IdentityServer.IdentityServerOptions): Promise<Started> => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(IdentityServer.make(options), scope))
  return { server, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

let identity: Identity.Identity
let certificate: SelfSignedCertificate
let certApp: { clientId: string; certificatePem: string; objectId: string }
let federatedApp: IdentityServer.RegisteredApp
let githubKey: Jose.GenerateKeyPairResult
let started: Started
let server: IdentityServer.RunningIdentityServer

const verified = async (token: string) => {
  const result = await identity.verify(`Bearer ${token}`, audience)
  if (typeof result === "string") throw new Error(`token refused: ${result}`)
  return result
}

const msalAuth = (clientId: string, on: IdentityServer.RunningIdentityServer = server) => ({
  clientId,
  authority: on.authority,
  knownAuthorities: [...on.knownAuthorities]
})

const msalSystem = (on: IdentityServer.RunningIdentityServer = server) => ({ networkClient: on.msalNetworkClient })

const githubAssertion = (subject = githubSubject) =>
  new Jose.SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: "gh-1", typ: "JWT" })
    .setIssuer(githubIssuer)
    .setSubject(subject)
    .setAudience("api://AzureADTokenExchange")
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(githubKey.privateKey)

const form = (fields: Record<string, string>) => ({
  headers: { "Content-Type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams(fields).toString()
})

beforeAll(async () => {
  identity = await Identity.make(tenantId)
  certificate = await makeSelfSignedCertificate("dataverse-jobs")
  certApp = { clientId: randomUUID(), certificatePem: certificate.certificatePem, objectId: randomUUID() }
  githubKey = await Jose.generateKeyPair("RS256")
  const githubJwk = await Jose.exportJWK(githubKey.publicKey)
  federatedApp = {
    clientId: randomUUID(),
    objectId: randomUUID(),
    federated: {
      issuer: githubIssuer,
      subject: githubSubject,
      key: { keys: [{ ...githubJwk, kid: "gh-1", alg: "RS256", use: "sig" }] }
    }
  }
  started = await start({
    identity,
    audience: () => audience,
    apps: [secretApp, certApp, federatedApp, publicApp],
    users: [ada, grace],
    managedIdentities: [systemIdentity, userIdentity]
  })
  server = started.server
})

afterAll(() => started?.close())

describe("discovery", () => {
  it("serves the OpenID configuration msal reads, with the issuer on the authority's origin", async () => {
    const response = await server.msalNetworkClient.sendGetRequestAsync<Record<string, string>>(
      `${server.authority}/v2.0/.well-known/openid-configuration`
    )
    expect(response.status).toBe(200)
    expect(server.authority).toBe(`${server.origin}/${tenantId}`)
    expect(server.knownAuthorities).toEqual([new URL(server.origin).host])
    expect(response.body).toMatchObject({
      issuer: `${server.authority}/v2.0`,
      token_endpoint: server.tokenEndpoint,
      device_authorization_endpoint: `${server.authority}/oauth2/v2.0/devicecode`,
      authorization_endpoint: `${server.authority}/oauth2/v2.0/authorize`,
      jwks_uri: `${server.authority}/discovery/v2.0/keys`
    })
    const keys = await server.msalNetworkClient.sendGetRequestAsync<Jose.JSONWebKeySet>(response.body.jwks_uri!)
    expect(keys.body.keys.map((key) => key.kid)).toEqual(identity.jwks.keys.map((key) => key.kid))
  })

  it("is asked only for the OpenID configuration and the token endpoint when the host is a known authority", async () => {
    const requests: Array<string> = []
    // Records msal's calls; refuses any other host, so that nothing leaves the machine.
    const recording: IdentityServer.MsalNetworkModule = {
      sendGetRequestAsync: (url, options, timeout) => {
        requests.push(`GET ${new URL(url).host}${new URL(url).pathname}`)
        return new URL(url).host === server.knownAuthorities[0]
          ? server.msalNetworkClient.sendGetRequestAsync(url, options, timeout)
          : Promise.reject(new Error(`no network in tests: ${url}`))
      },
      sendPostRequestAsync: (url, options) => {
        requests.push(`POST ${new URL(url).host}${new URL(url).pathname}`)
        return server.msalNetworkClient.sendPostRequestAsync(url, options)
      }
    }
    const known = new ConfidentialClientApplication({
      auth: { ...msalAuth(secretApp.clientId), clientSecret: secretApp.clientSecret },
      system: { networkClient: recording }
    })
    await known.acquireTokenByClientCredential({ scopes })
    const host = server.knownAuthorities[0]
    expect(requests).toEqual([
      `GET ${host}/${tenantId}/v2.0/.well-known/openid-configuration`,
      `POST ${host}/${tenantId}/oauth2/v2.0/token`
    ])
    requests.length = 0
    // Without knownAuthorities msal asks Entra itself whether the host is an authority.
    const unknown = new ConfidentialClientApplication({
      auth: { clientId: secretApp.clientId, clientSecret: secretApp.clientSecret, authority: server.authority },
      system: { networkClient: recording }
    })
    await expect(unknown.acquireTokenByClientCredential({ scopes })).rejects.toMatchObject({
      errorCode: "endpoints_resolution_error"
    })
    expect(requests).toEqual(["GET login.microsoftonline.com/common/discovery/instance"])
  })

  it("answers an unknown tenant with Entra's error", async () => {
    const response = await server.msalNetworkClient.sendPostRequestAsync<Record<string, unknown>>(
      `${server.origin}/${randomUUID()}/oauth2/v2.0/token`,
      form({ grant_type: "client_credentials", client_id: secretApp.clientId })
    )
    expect(response.status).toBe(400)
    expect(response.body).toMatchObject({ error: "invalid_tenant", error_codes: [90002] })
    expect(String(response.body.error_description)).toMatch(/^AADSTS90002: .*\r\nTrace ID: .*\r\nCorrelation ID: /s)
  })
})

describe("client credentials", () => {
  it("issues an app-only token for a client secret, then serves it from msal's cache", async () => {
    const before = server.counters.tokensIssued
    const app = new ConfidentialClientApplication({
      auth: { ...msalAuth(secretApp.clientId), clientSecret: secretApp.clientSecret },
      system: msalSystem()
    })
    const first = await app.acquireTokenByClientCredential({ scopes })
    expect(first?.fromCache).toBe(false)
    expect(await verified(first!.accessToken)).toMatchObject({
      objectId: secretApp.objectId,
      appId: secretApp.clientId
    })
    const second = await app.acquireTokenByClientCredential({ scopes })
    expect(second?.fromCache).toBe(true)
    expect(second?.accessToken).toBe(first?.accessToken)
    // `<org>//.default` is the form Dataverse's docs use for an org URL with a trailing slash.
    const slashed = await app.acquireTokenByClientCredential({ scopes: [`${audience}//.default`], skipCache: true })
    expect(await verified(slashed!.accessToken)).toMatchObject({ objectId: secretApp.objectId })
    expect(server.counters.tokensIssued - before).toBe(2)
  })

  it("refuses a wrong secret with AADSTS7000215, and a public client with AADSTS7000218", async () => {
    const before = server.counters.refused
    const wrong = new ConfidentialClientApplication({
      auth: { ...msalAuth(secretApp.clientId), clientSecret: "not-the-secret" },
      system: msalSystem()
    })
    await expect(wrong.acquireTokenByClientCredential({ scopes })).rejects.toMatchObject({
      errorCode: "invalid_client",
      errorNo: 7000215,
      errorMessage: expect.stringContaining("AADSTS7000215: Invalid client secret provided")
    })
    const response = await server.msalNetworkClient.sendPostRequestAsync<Record<string, unknown>>(
      server.tokenEndpoint,
      form({ grant_type: "client_credentials", client_id: publicApp.clientId, scope: scopes[0]! })
    )
    expect(response.status).toBe(401)
    expect(response.body).toMatchObject({ error: "invalid_client", error_codes: [7000218] })
    expect(server.counters.refused - before).toBe(2)
  })

  it("refuses an unknown client, another resource and a scope without /.default", async () => {
    const unknown = new ConfidentialClientApplication({
      auth: { ...msalAuth(randomUUID()), clientSecret: "x" },
      system: msalSystem()
    })
    await expect(unknown.acquireTokenByClientCredential({ scopes })).rejects.toMatchObject({
      errorCode: "unauthorized_client",
      errorMessage: expect.stringContaining("AADSTS700016")
    })
    const app = new ConfidentialClientApplication({
      auth: { ...msalAuth(secretApp.clientId), clientSecret: secretApp.clientSecret },
      system: msalSystem()
    })
    await expect(app.acquireTokenByClientCredential({ scopes: ["https://contoso.crm.dynamics.com/.default"] }))
      .rejects.toMatchObject({ errorCode: "invalid_resource", errorMessage: expect.stringContaining("AADSTS500011") })
    await expect(app.acquireTokenByClientCredential({ scopes: [`${audience}/user_impersonation`] }))
      .rejects.toMatchObject({ errorCode: "invalid_scope", errorMessage: expect.stringContaining("AADSTS1002012") })
  })

  it("accepts a certificate assertion signed with PS256 (SHA-256 thumbprint) and with RS256 (SHA-1)", async () => {
    for (
      const clientCertificate of [
        {
          thumbprintSha256: certificate.thumbprintSha256,
          privateKey: certificate.privateKeyPem,
          x5c: certApp.certificatePem
        },
        { thumbprint: certificate.thumbprint, privateKey: certificate.privateKeyPem }
      ]
    ) {
      const app = new ConfidentialClientApplication({
        auth: { ...msalAuth(certApp.clientId), clientCertificate },
        system: msalSystem()
      })
      const result = await app.acquireTokenByClientCredential({ scopes })
      expect(await verified(result!.accessToken)).toMatchObject({ objectId: certApp.objectId, appId: certApp.clientId })
    }
  })

  it("refuses a certificate assertion signed by another key, and an expired one", async () => {
    const other = await makeSelfSignedCertificate("impostor")
    const forged = new ConfidentialClientApplication({
      auth: {
        ...msalAuth(certApp.clientId),
        // The registered certificate's thumbprint, another private key.
        clientCertificate: { thumbprintSha256: certificate.thumbprintSha256, privateKey: other.privateKeyPem }
      },
      system: msalSystem()
    })
    await expect(forged.acquireTokenByClientCredential({ scopes })).rejects.toMatchObject({
      errorCode: "invalid_client",
      errorMessage: expect.stringContaining("AADSTS700027")
    })
    const now = Math.floor(Date.now() / 1000)
    const expired = await new Jose.SignJWT({})
      .setProtectedHeader({
        alg: "RS256",
        typ: "JWT",
        "x5t#S256": Buffer.from(certificate.thumbprintSha256, "hex").toString("base64url")
      })
      .setIssuer(certApp.clientId)
      .setSubject(certApp.clientId)
      .setAudience(server.tokenEndpoint)
      .setJti(randomUUID())
      .setIssuedAt(now - 7200)
      .setNotBefore(now - 7200)
      .setExpirationTime(now - 3600)
      .sign(createPrivateKey(certificate.privateKeyPem))
    const stale = new ConfidentialClientApplication({
      auth: { ...msalAuth(certApp.clientId), clientAssertion: expired },
      system: msalSystem()
    })
    await expect(stale.acquireTokenByClientCredential({ scopes })).rejects.toMatchObject({
      errorCode: "invalid_client",
      errorMessage: expect.stringContaining("AADSTS700024: Client assertion is not within its valid time range")
    })
  })

  it("exchanges an external token for workload identity federation, and refuses another subject", async () => {
    const app = new ConfidentialClientApplication({
      auth: { ...msalAuth(federatedApp.clientId), clientAssertion: () => githubAssertion() },
      system: msalSystem()
    })
    const result = await app.acquireTokenByClientCredential({ scopes })
    expect(await verified(result!.accessToken)).toMatchObject({
      objectId: federatedApp.objectId,
      appId: federatedApp.clientId
    })
    const pullRequest = new ConfidentialClientApplication({
      auth: {
        ...msalAuth(federatedApp.clientId),
        clientAssertion: () => githubAssertion("repo:contoso/dataverse-jobs:pull_request")
      },
      system: msalSystem()
    })
    await expect(pullRequest.acquireTokenByClientCredential({ scopes })).rejects.toMatchObject({
      errorCode: "invalid_client",
      errorMessage: expect.stringContaining("AADSTS70021: No matching federated identity record found")
    })
  })
})

describe("user flows", () => {
  it("signs a user in with username and password, and refreshes through the refresh token", async () => {
    const app = new PublicClientApplication({ auth: msalAuth(publicApp.clientId), system: msalSystem() })
    const result = await app.acquireTokenByUsernamePassword({
      scopes,
      username: grace.username,
      password: grace.password
    })
    expect(result).not.toBeNull()
    expect(await verified(result!.accessToken)).toMatchObject({ objectId: grace.objectId, appId: publicApp.clientId })
    expect(result!.account).toMatchObject({
      homeAccountId: `${grace.objectId}.${tenantId}`,
      tenantId,
      username: grace.username,
      name: "Grace",
      localAccountId: grace.objectId
    })
    expect(result!.idTokenClaims).toMatchObject({ aud: publicApp.clientId, iss: `${server.authority}/v2.0` })
    // The ID token is signed with the key the JWKS publishes.
    await Jose.jwtVerify(result!.idToken, Jose.createLocalJWKSet({ keys: [...identity.jwks.keys] }), {
      audience: publicApp.clientId
    })

    const cached = await app.acquireTokenSilent({ account: result!.account!, scopes })
    expect(cached.fromCache).toBe(true)
    expect(cached.accessToken).toBe(result!.accessToken)

    const before = server.counters.tokensIssued
    const refreshed = await app.acquireTokenSilent({ account: result!.account!, scopes, forceRefresh: true })
    expect(refreshed.fromCache).toBe(false)
    expect(refreshed.accessToken).not.toBe(result!.accessToken)
    expect(await verified(refreshed.accessToken)).toMatchObject({ objectId: grace.objectId })
    expect(server.counters.tokensIssued - before).toBe(1)
  })

  it("refuses a wrong password with AADSTS50126", async () => {
    const app = new PublicClientApplication({ auth: msalAuth(publicApp.clientId), system: msalSystem() })
    await expect(app.acquireTokenByUsernamePassword({ scopes, username: ada.username, password: "guess" }))
      .rejects.toMatchObject({ errorCode: "invalid_grant", errorMessage: expect.stringContaining("AADSTS50126") })
  })

  it("approves a device code at once for the first user (auto approval)", async () => {
    const app = new PublicClientApplication({ auth: msalAuth(publicApp.clientId), system: msalSystem() })
    let shown: Parameters<DeviceCodeRequest["deviceCodeCallback"]>[0] | undefined
    const pendingBefore = server.counters.pendingPolls
    const result = await app.acquireTokenByDeviceCode({ scopes, deviceCodeCallback: (response) => (shown = response) })
    expect(shown?.userCode).toMatch(/^[A-Z0-9]{9}$/)
    expect(shown?.verificationUri).toBe(`${server.authority}/oauth2/v2.0/devicecode/approve`)
    expect(shown?.message).toContain(shown!.userCode)
    expect(await verified(result!.accessToken)).toMatchObject({ objectId: ada.objectId, appId: publicApp.clientId })
    expect(result!.account?.username).toBe(ada.username)
    expect(server.counters.pendingPolls).toBe(pendingBefore)
  })
})

describe("device code with manual approval", () => {
  let manual: Started

  beforeAll(async () => {
    manual = await start({
      identity,
      audience: () => audience,
      apps: [publicApp],
      users: [ada, grace],
      deviceCodeApproval: "manual",
      deviceCodeIntervalSeconds: 0
    })
  })
  afterAll(() => manual?.close())

  it("answers authorization_pending until the code is approved over HTTP, then issues tokens once", async () => {
    const client = manual.server.msalNetworkClient
    const code = await client.sendPostRequestAsync<Record<string, string | number>>(
      `${manual.server.authority}/oauth2/v2.0/devicecode`,
      form({ client_id: publicApp.clientId, scope: `${scopes[0]} openid profile offline_access` })
    )
    expect(code.status).toBe(200)
    expect(code.body).toMatchObject({ interval: 0, expires_in: 900 })
    const poll = () =>
      client.sendPostRequestAsync<Record<string, unknown>>(
        manual.server.tokenEndpoint,
        form({
          grant_type: "urn:ietf:params:oauth:grant-type:device_code",
          client_id: publicApp.clientId,
          device_code: String(code.body.device_code),
          client_info: "1"
        })
      )
    const pending = await poll()
    expect(pending.status).toBe(400)
    expect(pending.body).toMatchObject({ error: "authorization_pending", error_codes: [70016] })

    const refused = await client.sendPostRequestAsync<Record<string, unknown>>(
      String(code.body.verification_uri),
      form({ user_code: String(code.body.user_code), username: grace.username, password: "wrong" })
    )
    expect(refused.status).toBe(400)
    const approved = await client.sendPostRequestAsync<Record<string, unknown>>(
      String(code.body.verification_uri),
      form({ user_code: String(code.body.user_code), username: grace.username, password: grace.password })
    )
    expect(approved.status).toBe(200)
    expect(approved.body).toMatchObject({ approved: true, username: grace.username })

    const issued = await poll()
    expect(issued.status).toBe(200)
    expect(issued.body).toMatchObject({ token_type: "Bearer", expires_in: 3600 })
    expect(typeof issued.body.refresh_token).toBe("string")
    expect(Jose.decodeJwt(String(issued.body.id_token))).toMatchObject({ oid: grace.objectId, tid: tenantId })
    expect(JSON.parse(Buffer.from(String(issued.body.client_info), "base64url").toString())).toEqual({
      uid: grace.objectId,
      utid: tenantId
    })
    expect(await verified(String(issued.body.access_token))).toMatchObject({ objectId: grace.objectId })
    const again = await poll()
    expect(again.body).toMatchObject({ error: "invalid_grant" })
  })

  it("lets msal wait for an approval given in process before its first poll", async () => {
    const app = new PublicClientApplication({
      auth: msalAuth(publicApp.clientId, manual.server),
      system: msalSystem(manual.server)
    })
    const pendingBefore = manual.server.counters.pendingPolls
    let approvedInCallback = false
    const result = await app.acquireTokenByDeviceCode({
      scopes,
      deviceCodeCallback: (response) => {
        approvedInCallback = manual.server.approveDeviceCode(response.userCode, grace.username)
      }
    })
    expect(approvedInCallback).toBe(true)
    expect(manual.server.counters.pendingPolls).toBe(pendingBefore)
    expect(await verified(result!.accessToken)).toMatchObject({ objectId: grace.objectId })
  })

  it("lets msal poll until a script approves the code through the endpoint", async () => {
    const app = new PublicClientApplication({
      auth: msalAuth(publicApp.clientId, manual.server),
      system: msalSystem(manual.server)
    })
    let approval: Promise<unknown> | undefined
    const result: AuthenticationResult | null = await app.acquireTokenByDeviceCode({
      scopes,
      deviceCodeCallback: (response) => {
        approval = manual.server.msalNetworkClient.sendPostRequestAsync(
          response.verificationUri,
          form({ user_code: response.userCode, username: ada.username })
        )
      }
    })
    await expect(approval).resolves.toMatchObject({ status: 200 })
    expect(await verified(result!.accessToken)).toMatchObject({ objectId: ada.objectId })
    expect(result!.account?.username).toBe(ada.username)
  })
})

describe("managed identity (App Service)", () => {
  it("issues tokens for the system-assigned and a user-assigned identity", async () => {
    const saved = { IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT, IDENTITY_HEADER: process.env.IDENTITY_HEADER }
    Object.assign(process.env, server.managedIdentityEnvironment)
    try {
      const system = new ManagedIdentityApplication({ system: msalSystem() })
      expect(system.getManagedIdentitySource()).toBe("AppService")
      const systemToken = await system.acquireToken({ resource: audience })
      expect(await verified(systemToken.accessToken)).toMatchObject({
        objectId: systemIdentity.objectId,
        appId: systemIdentity.clientId
      })
      const user = new ManagedIdentityApplication({
        managedIdentityIdParams: { userAssignedResourceId: userIdentity.resourceId },
        system: msalSystem()
      })
      const userToken = await user.acquireToken({ resource: `${audience}/.default`, forceRefresh: true })
      expect(await verified(userToken.accessToken)).toMatchObject({ objectId: userIdentity.objectId })
      const unknown = new ManagedIdentityApplication({
        managedIdentityIdParams: { userAssignedClientId: randomUUID() },
        system: msalSystem()
      })
      await expect(unknown.acquireToken({ resource: audience })).rejects.toMatchObject({
        errorMessage: expect.stringContaining("No managed identity found")
      })
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
    }
  })
})

describe("TLS trust", () => {
  it("is refused by msal's default network client when the CA is not trusted", async () => {
    const before = server.counters.tokensIssued
    const app = new ConfidentialClientApplication({
      auth: { ...msalAuth(secretApp.clientId), clientSecret: secretApp.clientSecret }
    })
    // The TLS failure surfaces as msal failing to discover the authority's endpoints.
    await expect(app.acquireTokenByClientCredential({ scopes })).rejects.toMatchObject({
      errorCode: "endpoints_resolution_error"
    })
    expect(server.counters.tokensIssued).toBe(before)
  })

  it("works with msal's default network client in a process started with NODE_EXTRA_CA_CERTS", async () => {
    const script = `
      import { ConfidentialClientApplication } from "@azure/msal-node"
      const app = new ConfidentialClientApplication({ auth: {
        clientId: process.env.CLIENT_ID, clientSecret: process.env.CLIENT_SECRET,
        authority: process.env.AUTHORITY, knownAuthorities: [process.env.KNOWN_AUTHORITY] } })
      const result = await app.acquireTokenByClientCredential({ scopes: [process.env.SCOPE] })
      process.stdout.write(result.accessToken)
    `
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: repoRoot,
      env: {
        ...process.env,
        NODE_EXTRA_CA_CERTS: server.caFile,
        CLIENT_ID: secretApp.clientId,
        CLIENT_SECRET: secretApp.clientSecret,
        AUTHORITY: server.authority,
        KNOWN_AUTHORITY: server.knownAuthorities[0],
        SCOPE: scopes[0]
      }
    })
    expect(await verified(stdout.trim())).toMatchObject({ objectId: secretApp.objectId })
  })
})

describe("lifecycle", () => {
  it("writes the CA file at start and removes it when the scope closes", async () => {
    const other = await start({ identity, audience: () => audience, apps: [], users: [] })
    expect(Fs.readFileSync(other.server.caFile, "utf8")).toBe(other.server.caPem)
    expect(other.server.caPem).toContain("-----BEGIN CERTIFICATE-----")
    await other.close()
    expect(Fs.existsSync(other.server.caFile)).toBe(false)
    await expect(
      other.server.msalNetworkClient.sendGetRequestAsync(
        `${other.server.authority}/v2.0/.well-known/openid-configuration`
      )
    ).rejects.toThrow(/ECONNREFUSED/)
  })

  it("removes at start the CA directories of emulators whose process is gone, and only those", async () => {
    // A process that ran and exited: its id names no process now.
    const gone = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ["-e", ""])
      child.on("exit", () => resolve(child.pid!))
    })
    const orphan = Fs.mkdtempSync(Path.join(Os.tmpdir(), `dv-effect-identity-${gone}-`))
    Fs.writeFileSync(Path.join(orphan, "ca.pem"), "x")
    // The parent of this process runs: its directory stays.
    const live = Fs.mkdtempSync(Path.join(Os.tmpdir(), `dv-effect-identity-${process.ppid}-`))
    try {
      const other = await start({ identity, audience: () => audience, apps: [], users: [] })
      expect(Fs.existsSync(orphan)).toBe(false)
      expect(Fs.existsSync(live)).toBe(true)
      expect(Path.basename(Path.dirname(other.server.caFile))).toMatch(
        new RegExp(`^dv-effect-identity-${process.pid}-`)
      )
      await other.close()
    } finally {
      Fs.rmSync(orphan, { recursive: true, force: true })
      Fs.rmSync(live, { recursive: true, force: true })
    }
  })
})

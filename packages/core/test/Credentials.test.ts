import * as Emulator from "@dv-effect/emulator/Emulator"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as forgeModule from "node-forge"
import { createSign, generateKeyPairSync, randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as ConnectionString from "../src/ConnectionString.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import { DataverseError } from "../src/DataverseError.js"

const forge: typeof forgeModule = (forgeModule as unknown as { default?: typeof forgeModule }).default ?? forgeModule

/** A self-signed certificate and its key, for the certificate flow. */
const selfSigned = () => {
  const keys = forge.pki.rsa.generateKeyPair(2048)
  const certificate = forge.pki.createCertificate()
  certificate.publicKey = keys.publicKey
  certificate.serialNumber = "01"
  certificate.validity.notBefore = new Date(Date.now() - 60_000)
  certificate.validity.notAfter = new Date(Date.now() + 24 * 3600_000)
  certificate.setSubject([{ name: "commonName", value: "dv-effect test app" }])
  certificate.setIssuer([{ name: "commonName", value: "dv-effect test app" }])
  certificate.sign(keys.privateKey, forge.md.sha256.create())
  return {
    certificatePem: forge.pki.certificateToPem(certificate),
    privateKeyPem: forge.pki.privateKeyToPem(keys.privateKey),
    keys
  }
}

/** An external OIDC token (as a Kubernetes service account token is), signed RS256 by hand. */
const federation = (() => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  const issuer = "https://oidc.dv-effect.test"
  const subject = "system:serviceaccount:loader:dv-effect"
  const assertion = () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
    const now = Math.floor(Date.now() / 1000)
    const unsigned = `${encode({ alg: "RS256", typ: "JWT" })}.${
      encode({
        iss: issuer,
        sub: subject,
        aud: "api://AzureADTokenExchange",
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: randomUUID()
      })
    }`
    const signature = createSign("RSA-SHA256").update(unsigned).sign(privateKey).toString("base64url")
    return `${unsigned}.${signature}`
  }
  return { issuer, subject, publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(), assertion }
})()

const certificate = selfSigned()
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-credentials-"))
const Live = Emulator.layer({
  appCredentials: {
    certificatePem: certificate.certificatePem,
    federated: { issuer: federation.issuer, subject: federation.subject, key: federation.publicKeyPem }
  }
})

/** WhoAmI through a connection with `credentials`: the system user the token maps to. */
const whoAmIWith = (credentials: Credentials.Credential) =>
  Effect.flatMap(Emulator.Emulator, ({ info }) =>
    DataverseClient.whoAmI.pipe(
      Effect.map((me) => me.UserId),
      Effect.provide(DataverseClient.layerNode({ url: info.url, credentials }))
    ))

const local = Effect.map(Emulator.Emulator, ({ info }) => ({
  tenantId: info.tenantId,
  authority: info.authority!,
  ca: Fs.readFileSync(info.caFile!, "utf8")
}))

describe("connection strings", () => {
  const parse = (text: string) => Effect.flip(ConnectionString.parse(Redacted.make(text)))
  it.effect("name what is missing or unsupported, in one line", () =>
    Effect.gen(function*() {
      expect((yield* parse("AuthType=ClientSecret;ClientId=x")).message).toBe("The connection string has no Url=.")
      expect((yield* parse("Url=https://x;ClientId=x")).message).toMatch(/no AuthType=/)
      expect((yield* parse("AuthType=AD;Url=https://x")).message).toMatch(/AuthType=AD is not supported/)
      expect((yield* parse("AuthType=Certificate;Url=https://x;ClientId=a;Thumbprint=ABC;TenantId=t")).message).toMatch(
        /Windows certificate store/
      )
      expect((yield* parse("AuthType=ClientSecret;Url=https://x;TenantId=t;ClientId=a")).message).toBe(
        "AuthType=ClientSecret needs ClientSecret= in the connection string."
      )
      expect((yield* parse("AuthType=ClientSecret;Colour=blue")).message).toBe(
        "The connection string key 'Colour' is not one dv-effect knows."
      )
      expect((yield* parse("AuthType=ClientSecret;Url='https://x")).message).toMatch(/no closing '/)
      expect((yield* parse("AuthType=ClientSecret;Url=https://x;ClientSecrte=s")).message).toBe(
        "The connection string key 'ClientSecrte' is not one dv-effect knows; did you mean 'ClientSecret'?"
      )
    }))

  it.effect("never shows a value, even one that a ';' cut in two", () =>
    Effect.gen(function*() {
      // An unquoted ';' in a secret leaves a part without '=' or a key that is a piece of it.
      for (
        const text of [
          "AuthType=OAuth;Url=https://x;Username=x@y;Password=Pa;ssW0rdXYZ;AppId=a",
          "AuthType=ClientSecret;Url=https://x;ClientSecret=SUPER;SECRET789",
          "AuthType=ClientSecret;Url=https://x;ClientSecret=SUPER;SECRET789;TenantId=t",
          "AuthType=ClientSecret;Url=https://x;ClientSecret=SUPER;SE-CRET=789",
          "AuthType=ClientSecret;Url=https://x;ClientSecret=SUPER;SECRET=789"
        ]
      ) {
        const message = (yield* parse(text)).message
        expect(message).not.toMatch(/ssW0rd|SECRET|CRET|789/)
        expect(message).toMatch(/after (Password|ClientSecret)=: a value that holds ';' must be quoted/)
      }
      expect((yield* parse("AuthType=ClientSecret;Url=https://x;ClientId=a;AppId=b")).message).toBe(
        "The connection string gives ClientId= and AppId=, two names of one key."
      )
      expect((yield* parse("SUPERSECRET")).message).toBe(
        "The connection string does not start with a key and '=' (Url=...;AuthType=...)."
      )
    }))

  it("reads keys case-insensitively, with spaces, aliases and quoted values holding ';'", () => {
    const fields = ConnectionString.parseFields(
      "authtype=ClientSecret; Service Uri = https://x ;AppId=a;Secret=\"p;w=d\";"
    )
    expect(fields).toEqual(
      new Map([["authtype", "ClientSecret"], ["url", "https://x"], ["clientid", "a"], ["clientsecret", "p;w=d"]])
    )
  })
})

describe("the token cache", () => {
  it.effect("acquires once for concurrent callers, and again five minutes before expiry or after invalidate", () =>
    Effect.gen(function*() {
      let acquisitions = 0
      const forced: Array<boolean> = []
      const provider = Credentials.cached((force) =>
        Effect.clockWith((clock) => clock.currentTimeMillis).pipe(
          Effect.tap(() => Effect.sleep("10 millis")),
          Effect.map((now) => {
            acquisitions++
            forced.push(force)
            return {
              token: Redacted.make(`token-${acquisitions}`),
              expiresOn: new Date(now + Duration.toMillis("10 minutes"))
            }
          })
        )
      )
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 10 }, () => provider.getToken), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("10 millis")
      const tokens = yield* Fiber.join(fiber)
      expect(new Set(tokens.map(Redacted.value))).toEqual(new Set(["token-1"]))
      yield* TestClock.adjust("4 minutes")
      expect(Redacted.value(yield* provider.getToken)).toBe("token-1")
      yield* TestClock.adjust("1 minute")
      const refreshing = yield* Effect.fork(provider.getToken)
      yield* TestClock.adjust("10 millis")
      expect(Redacted.value(yield* Fiber.join(refreshing))).toBe("token-2")
      yield* provider.invalidate
      const afterInvalidate = yield* Effect.fork(provider.getToken)
      yield* TestClock.adjust("10 millis")
      expect(Redacted.value(yield* Fiber.join(afterInvalidate))).toBe("token-3")
      expect(forced).toEqual([false, false, true])
    }))

  it.effect("passes a failed sign-in on without caching it", () =>
    Effect.gen(function*() {
      let calls = 0
      const provider = Credentials.cached(() =>
        Effect.suspend(() => {
          calls++
          return calls === 1
            ? Effect.fail(new DataverseError({ reason: "Unauthorized", message: "no" }))
            : Effect.succeed({ token: Redacted.make("ok"), expiresOn: undefined })
        })
      )
      expect((yield* Effect.flip(provider.getToken)).reason).toBe("Unauthorized")
      expect(Redacted.value(yield* provider.getToken)).toBe("ok")
    }))
})

// Last: @effect/vitest's layer() rebinds the shared `it`, which would take TestClock from later tests.
layer(Live, { excludeTestServices: true })("msal-node flows against the emulator's identity endpoint", (it) => {
  it.effect("a token callback, asked once for the org and cached", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const asked: Array<string> = []
      const credential = Credentials.fromCallback(async (resource) => {
        asked.push(resource)
        return { token: info.accessToken, expiresOn: new Date(Date.now() + 3_600_000) }
      })
      const twice = Effect.flatMap(Emulator.Emulator, ({ info }) =>
        Effect.zipRight(DataverseClient.whoAmI, DataverseClient.whoAmI).pipe(
          Effect.provide(DataverseClient.layerNode({ url: info.url, credentials: credential }))
        ))
      expect((yield* twice).UserId).toBe(info.userId)
      expect(asked).toEqual([info.url])
    }))

  it.effect("client secret: the application user", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const userId = yield* whoAmIWith(
        Credentials.clientSecret({
          ...(yield* local),
          clientId: info.clientId,
          clientSecret: Redacted.make(info.clientSecret!)
        })
      )
      expect(userId).toBe(info.userId)
    }))

  it.effect("client certificate, from a PEM file holding certificate and key", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const file = Path.join(dir, "app.pem")
      Fs.writeFileSync(file, `${certificate.certificatePem}\n${certificate.privateKeyPem}`)
      const read = yield* Credentials.readCertificateFile(file)
      expect(yield* whoAmIWith(Credentials.clientCertificate({ ...(yield* local), clientId: info.clientId, ...read })))
        .toBe(info.userId)
    }))

  it.effect("client certificate, from a PFX with its password; a wrong password is named", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const p12 = forge.pkcs12.toPkcs12Asn1(
        certificate.keys.privateKey,
        [forge.pki.certificateFromPem(certificate.certificatePem)],
        "s3cret",
        { algorithm: "3des" }
      )
      const file = Path.join(dir, "app.pfx")
      Fs.writeFileSync(file, Buffer.from(forge.asn1.toDer(p12).getBytes(), "binary"))
      const read = yield* Credentials.readCertificateFile(file, Redacted.make("s3cret"))
      expect(yield* whoAmIWith(Credentials.clientCertificate({ ...(yield* local), clientId: info.clientId, ...read })))
        .toBe(info.userId)
      const wrong = yield* Effect.flip(Credentials.readCertificateFile(file, Redacted.make("nope")))
      expect(wrong.message).toBe(`Cannot use the certificate ${file}: the PFX password is wrong (or missing)`)
    }))

  it.effect("workload identity federation, reading the assertion file on every sign-in", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const tokenFile = Path.join(dir, "federated-token")
      Fs.writeFileSync(tokenFile, federation.assertion())
      expect(yield* whoAmIWith(Credentials.workloadIdentity({ ...(yield* local), clientId: info.clientId, tokenFile })))
        .toBe(info.userId)
    }))

  it.effect("username and password: a user of the org, not the application user", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const userId = yield* whoAmIWith(
        Credentials.usernamePassword({
          ...(yield* local),
          clientId: info.publicClientId!,
          username: info.username!,
          password: Redacted.make(info.password!)
        })
      )
      expect(userId).not.toBe(info.userId)
      expect(userId).toMatch(/^[0-9a-f-]{36}$/)
    }))

  it.effect("username and password: the password is asked for only when the cache cannot sign in", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const cacheFile = Path.join(dir, "tokens", "user-cache.json")
      let asked = 0
      const settings = yield* local
      const flow = (password: Effect.Effect<Redacted.Redacted<string>, DataverseError>) =>
        Credentials.usernamePassword({
          ...settings,
          clientId: info.publicClientId!,
          username: info.username!,
          cacheFile,
          password: Effect.suspend(() => {
            asked++
            return password
          })
        })
      const refused = new DataverseError({ reason: "Unauthorized", message: "no password here" })
      const first = yield* Effect.flip(whoAmIWith(flow(Effect.fail(refused))))
      expect([first.message, asked]).toEqual(["no password here", 1])
      const signedIn = yield* whoAmIWith(flow(Effect.succeed(Redacted.make(info.password!))))
      expect(asked).toBe(2)
      // Now the cache signs in: the password effect does not run.
      expect(yield* whoAmIWith(flow(Effect.fail(refused)))).toBe(signedIn)
      expect(asked).toBe(2)
      // Another user in the same cache file does not sign in as the cached one.
      const other = Credentials.usernamePassword({
        ...settings,
        clientId: info.publicClientId!,
        username: "someone.else@example.com",
        cacheFile,
        password: Effect.fail(refused)
      })
      expect((yield* Effect.flip(whoAmIWith(other))).message).toBe("no password here")
    }))

  it.effect("device code: the prompt goes to the callback; the cache file (0600) lets the next run sign in silently", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const cacheFile = Path.join(dir, "tokens", "cache.json")
      const prompts: Array<string> = []
      const settings = yield* local
      const flow = (onPrompt: (message: string) => void) =>
        Credentials.deviceCode({ ...settings, clientId: info.publicClientId!, cacheFile, onPrompt })
      const first = yield* whoAmIWith(flow((message) => prompts.push(message)))
      expect(prompts).toHaveLength(1)
      expect(prompts[0]).toMatch(/enter the code/i)
      expect(Fs.statSync(cacheFile).mode & 0o777).toBe(0o600)
      const second = yield* whoAmIWith(flow(() => prompts.push("unexpected")))
      expect(second).toBe(first)
      expect(prompts).toHaveLength(1)
    }))

  it.effect("a wrong secret fails with reason Unauthorized and the Entra code, and never shows the secret", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const error = yield* Effect.flip(
        whoAmIWith(
          Credentials.clientSecret({
            ...(yield* local),
            clientId: info.clientId,
            clientSecret: Redacted.make("wrong-secret-4711")
          })
        )
      )
      expect(error.reason).toBe("Unauthorized")
      expect(error.message).toMatch(/^Sign-in with a client secret failed \(invalid_client\): AADSTS7000215/)
      expect(`${error.message} ${JSON.stringify(error)}`).not.toContain("wrong-secret-4711")
    }))

  it.effect("a ClientSecret connection string without TenantId discovers the tenant from the org's challenge", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const { ca } = yield* local
      const parsed = yield* ConnectionString.parse(
        Redacted.make(
          `AuthType=ClientSecret; Url=${info.url}; ClientId=${info.clientId}; ClientSecret='${info.clientSecret}'`
        ),
        { ca }
      )
      expect(parsed.url).toBe(info.url)
      expect(yield* whoAmIWith(parsed.credentials)).toBe(info.userId)
    }))

  it.effect("a connection string with a TenantId signs in at the authority the caller gives, unless it names one", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const { authority, ca, tenantId } = yield* local
      const text =
        `AuthType=ClientSecret;Url=${info.url};ClientId=${info.clientId};ClientSecret=${info.clientSecret};TenantId=${tenantId}`
      // Without the option the authority is login.microsoftonline.com, which this machine cannot reach.
      const parsed = yield* ConnectionString.parse(Redacted.make(text), { ca, authority })
      expect(yield* whoAmIWith(parsed.credentials)).toBe(info.userId)
      const named = yield* ConnectionString.parse(Redacted.make(`${text};Authority=${authority}`), {
        ca,
        authority: "https://nowhere.invalid/tenant"
      })
      expect(yield* whoAmIWith(named.credentials)).toBe(info.userId)
    }))

  it.effect("managed identity through the App Service endpoint", () =>
    Effect.gen(function*() {
      const { identity } = yield* Emulator.Emulator
      Object.assign(process.env, identity!.managedIdentityEnvironment)
      try {
        const userId = yield* whoAmIWith(Credentials.managedIdentity({ ca: (yield* local).ca }))
        expect(userId).toMatch(/^[0-9a-f-]{36}$/)
      } finally {
        delete process.env.IDENTITY_ENDPOINT
        delete process.env.IDENTITY_HEADER
      }
    }))
})

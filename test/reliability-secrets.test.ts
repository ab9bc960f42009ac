/**
 * Secrets never leak: every sign-in flow the CLI supports, run with `--verbose` against the
 * emulator's identity endpoint (client secret, certificate as PEM and as PFX, workload identity
 * federation, username and password, device code, managed identity, connection strings, an access
 * token, saved profiles), plus an import writing a journal and a rejects file, and failed sign-ins.
 * stdout, stderr and every file written are scanned for the secrets, passwords, assertions and
 * tokens: none may appear, except tokens in the token caches (mode 0600) and a secret in a profile
 * saved with --store-secret (mode 0600), which is what those files are for.
 */
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as forgeModule from "node-forge"
import { createSign, generateKeyPairSync, randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { run, type RunResult } from "./support/cli.js"

const forge: typeof forgeModule = (forgeModule as unknown as { default?: typeof forgeModule }).default ?? forgeModule

/** A self-signed certificate with its key, as PEM and as a PFX with a password. */
const certificate = (() => {
  const keys = forge.pki.rsa.generateKeyPair(2048)
  const cert = forge.pki.createCertificate()
  cert.publicKey = keys.publicKey
  cert.serialNumber = "01"
  cert.validity.notBefore = new Date(Date.now() - 60_000)
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000)
  cert.setSubject([{ name: "commonName", value: "dv-effect secrets test" }])
  cert.setIssuer([{ name: "commonName", value: "dv-effect secrets test" }])
  cert.sign(keys.privateKey, forge.md.sha256.create())
  const pfxPassword = `pfx-${randomUUID()}`
  const p12 = forge.pkcs12.toPkcs12Asn1(keys.privateKey, [cert], pfxPassword, { algorithm: "3des" })
  return {
    certificatePem: forge.pki.certificateToPem(cert),
    privateKeyPem: forge.pki.privateKeyToPem(keys.privateKey),
    pfx: Buffer.from(forge.asn1.toDer(p12).getBytes(), "binary"),
    pfxPassword
  }
})()

/** An external OIDC token (as a Kubernetes service account token is), for workload identity federation. */
const federation = (() => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  const issuer = "https://oidc.dv-effect.test"
  const subject = "system:serviceaccount:loader:dv-effect"
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
  const now = Math.floor(Date.now() / 1000)
  const unsigned = `${encode({ alg: "RS256", typ: "JWT" })}.${
    encode({ iss: issuer, sub: subject, aud: "api://AzureADTokenExchange", iat: now, nbf: now, exp: now + 3600 })
  }`
  const signature = createSign("RSA-SHA256").update(unsigned).sign(privateKey).toString("base64url")
  return {
    issuer,
    subject,
    key: publicKey.export({ type: "spki", format: "pem" }).toString(),
    assertion: `${unsigned}.${signature}`
  }
})()

let emulator: Awaited<ReturnType<typeof Emulator.start>>
let dir: string
let info: Record<string, string>
const results: Array<{ readonly label: string; readonly result: RunResult }> = []

beforeAll(async () => {
  emulator = await Emulator.start({
    appCredentials: {
      certificatePem: certificate.certificatePem,
      federated: { issuer: federation.issuer, subject: federation.subject, key: federation.key }
    }
  })
  info = emulator.info as unknown as Record<string, string>
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-secrets-"))
  Fs.writeFileSync(Path.join(dir, "app.pem"), `${certificate.certificatePem}\n${certificate.privateKeyPem}`, {
    mode: 0o600
  })
  Fs.writeFileSync(Path.join(dir, "app.pfx"), certificate.pfx, { mode: 0o600 })
  Fs.writeFileSync(Path.join(dir, "federated-token"), federation.assertion, { mode: 0o600 })
})
afterAll(async () => {
  await emulator.close()
  Fs.rmSync(dir, { recursive: true, force: true })
})

/** The values that must never be printed or written outside the files meant to hold them. */
const secrets = () =>
  [
    ["client secret", info.clientSecret!],
    ["password", info.password!],
    ["access token", info.accessToken!],
    ["PFX password", certificate.pfxPassword],
    ["federated assertion", federation.assertion],
    // A line from the middle of the private key.
    ["private key", certificate.privateKeyPem.split("\n")[5]!],
    ["managed identity header", emulator.identity!.managedIdentityEnvironment.IDENTITY_HEADER]
  ] as const

/** A JWT (header.payload.signature), as every access token the identity endpoint issues is. */
const jwt = /eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}/

const identity = () => ["--url", info.url!, "--authority", info.authority!, "--ca-file", info.caFile!]
const app = () => ["--tenant-id", info.tenantId!, "--client-id", info.clientId!]

/** A config directory of its own for each run group (the CLI creates it). */
const freshConfig = () => Path.join(Fs.mkdtempSync(Path.join(dir, "home-")), "dv-effect")

const cli = async (
  label: string,
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  expectedCode = 0
): Promise<RunResult> => {
  const result = await run([...args, "--verbose"], { env })
  results.push({ label, result })
  expect(result.code, `${label}: ${result.stderr}`).toBe(expectedCode)
  return result
}

const expectSignedIn = (result: RunResult, userId = info.userId!) => {
  expect(JSON.parse(result.stdout).UserId).toBe(userId)
}

/** Every file under `root`, with its mode. */
const filesUnder = (root: string): Array<{ path: string; mode: number; text: string }> =>
  Fs.readdirSync(root, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => {
    const path = Path.join((entry as { parentPath?: string; path?: string }).parentPath ?? entry.path, entry.name)
    return { path, mode: Fs.statSync(path).mode & 0o777, text: Fs.readFileSync(path, "latin1") }
  })

/** Files the test itself wrote as inputs (the credentials handed to the CLI). */
const inputs = new Set(["app.pem", "app.pfx", "federated-token"])

/**
 * No secret and no token in any output of this test's runs, and none in the files under `roots`
 * outside the files meant to hold them (token caches, mode 0600; a profile saved with
 * --store-secret, mode 0600). Returns the tokens the caches hold.
 */
const expectNoLeaks = (roots: ReadonlyArray<string>): Array<string> => {
  expect(results.length).toBeGreaterThan(0)
  for (const { label, result } of results) {
    for (const [name, value] of secrets()) {
      expect(result.stdout.includes(value), `${label}: ${name} on stdout`).toBe(false)
      expect(result.stderr.includes(value), `${label}: ${name} on stderr`).toBe(false)
    }
    expect(result.stdout, `${label}: a token on stdout`).not.toMatch(jwt)
    expect(result.stderr, `${label}: a token on stderr`).not.toMatch(jwt)
  }
  const cachedTokens: Array<string> = []
  for (const root of roots) {
    for (const file of filesUnder(root)) {
      if (inputs.has(Path.basename(file.path))) continue
      const where = file.path.slice(dir.length)
      const isCache = /\/tokens(\.json$|\/)/.test(where)
      const isProfiles = Path.basename(file.path) === "profiles.json"
      if (isCache || isProfiles) expect(file.mode, `${where} mode`).toBe(0o600)
      for (const [name, value] of secrets()) {
        // A profile saved with --store-secret holds that secret: that is what the flag is for.
        if (isProfiles && name === "client secret") continue
        expect(file.text.includes(value), `${where} holds the ${name}`).toBe(false)
      }
      if (isCache) { for (const match of file.text.matchAll(new RegExp(jwt, "g"))) cachedTokens.push(match[0]) }
      else expect(file.text, `${where} holds a token`).not.toMatch(jwt)
    }
  }
  for (const { label, result } of results) {
    for (const token of cachedTokens) expect(`${result.stdout}${result.stderr}`.includes(token), label).toBe(false)
  }
  return cachedTokens
}

describe("secrets in every sign-in flow", () => {
  beforeEach(() => {
    results.length = 0
  })

  it("app flows: access token, client secret, certificate (PEM and PFX), workload identity, managed identity", async () => {
    // The pattern the scan looks for does catch the tokens the identity endpoint issues.
    expect(info.accessToken).toMatch(jwt)
    const env = { DV_EFFECT_CONFIG_DIR: freshConfig() }
    expectSignedIn(await cli("access token", ["whoami", "--url", info.url!, "--access-token", info.accessToken!], env))
    expectSignedIn(
      await cli("access token from the environment", ["whoami"], {
        ...env,
        DATAVERSE_URL: info.url!,
        DATAVERSE_ACCESS_TOKEN: info.accessToken!
      })
    )
    expectSignedIn(
      await cli("client secret", ["whoami", ...identity(), ...app()], {
        ...env,
        AZURE_CLIENT_SECRET: info.clientSecret!
      })
    )
    expectSignedIn(
      await cli("certificate PEM", ["whoami", ...identity(), ...app(), "--certificate", Path.join(dir, "app.pem")], env)
    )
    expectSignedIn(
      await cli("certificate PFX", ["whoami", ...identity(), ...app(), "--certificate", Path.join(dir, "app.pfx")], {
        ...env,
        AZURE_CLIENT_CERTIFICATE_PASSWORD: certificate.pfxPassword
      })
    )
    expectSignedIn(
      await cli(
        "workload identity",
        ["whoami", ...identity(), ...app(), "--federated-token-file", Path.join(dir, "federated-token")],
        env
      )
    )
    const managed = await cli(
      "managed identity",
      ["whoami", "--url", info.url!, "--ca-file", info.caFile!, "--managed-identity"],
      { ...env, ...emulator.identity!.managedIdentityEnvironment }
    )
    expect(JSON.parse(managed.stdout).UserId).toMatch(/^[0-9a-f-]{36}$/)
    expect(results).toHaveLength(7)
    expectNoLeaks([Path.dirname(env.DV_EFFECT_CONFIG_DIR)])
  })

  it("user flows: username and password, device code", async () => {
    const env = { DV_EFFECT_CONFIG_DIR: freshConfig() }
    const user = await cli(
      "username and password",
      ["whoami", ...identity(), "--client-id", info.publicClientId!, "--username", info.username!],
      { ...env, DATAVERSE_PASSWORD: info.password! }
    )
    const userId = JSON.parse(user.stdout).UserId
    // A config directory of its own: the password sign-in above is cached and would be reused.
    const deviceEnv = { DV_EFFECT_CONFIG_DIR: freshConfig() }
    const device = await cli(
      "device code",
      ["whoami", ...identity(), "--client-id", info.publicClientId!, "--device-code"],
      deviceEnv
    )
    expect(device.stderr).toMatch(/enter the code/i)
    expectSignedIn(device, userId)
    // The device-code sign-in is cached (0600); the next run signs in silently from it.
    const again = await cli(
      "device code, cached",
      ["whoami", ...identity(), "--client-id", info.publicClientId!, "--device-code"],
      deviceEnv
    )
    expect(again.stderr).not.toMatch(/enter the code/i)
    expectSignedIn(again, userId)
    // The sign-ins are cached in tokens.json (0600), which holds tokens: that is its job.
    for (const config of [env.DV_EFFECT_CONFIG_DIR, deviceEnv.DV_EFFECT_CONFIG_DIR]) {
      expect(Fs.statSync(Path.join(config, "tokens.json")).mode & 0o777).toBe(0o600)
    }
    const roots = [env.DV_EFFECT_CONFIG_DIR, deviceEnv.DV_EFFECT_CONFIG_DIR].map((config) => Path.dirname(config))
    expect(expectNoLeaks(roots).length).toBeGreaterThan(0)
  })

  it("connection strings: ClientSecret, Certificate (PFX with its password) and OAuth with a password", async () => {
    const env = { DV_EFFECT_CONFIG_DIR: freshConfig() }
    const ca = ["--ca-file", info.caFile!]
    expectSignedIn(
      await cli("connection string, client secret", ["whoami", ...ca], {
        ...env,
        DATAVERSE_CONNECTION_STRING:
          `AuthType=ClientSecret;Url=${info.url};ClientId=${info.clientId};ClientSecret=${info.clientSecret}`
      })
    )
    expectSignedIn(
      await cli("connection string flag, certificate", [
        "whoami",
        ...ca,
        "--connection-string",
        `AuthType=Certificate;Url=${info.url};ClientId=${info.clientId};CertificateFile=${
          Path.join(dir, "app.pfx")
        };CertificatePassword=${certificate.pfxPassword}`
      ], env)
    )
    const oauth = await cli("connection string, OAuth password", ["whoami", ...ca], {
      ...env,
      DATAVERSE_CONNECTION_STRING:
        `AuthType=OAuth;Url=${info.url};ClientId=${info.publicClientId};Username=${info.username};Password=${info.password}`
    })
    expect(JSON.parse(oauth.stdout).UserId).toMatch(/^[0-9a-f-]{36}$/)
    expectNoLeaks([Path.dirname(env.DV_EFFECT_CONFIG_DIR)])
  })

  it("saved profiles: auth login for each kind of flow, then whoami and auth list with them", async () => {
    const config = freshConfig()
    const env = { DV_EFFECT_CONFIG_DIR: config }
    const login = (name: string, args: ReadonlyArray<string>, extra: Record<string, string> = {}) =>
      cli(`auth login ${name}`, ["auth", "login", "--name", name, ...args], { ...env, ...extra })
    await login("secret", [...identity(), ...app()], { AZURE_CLIENT_SECRET: info.clientSecret! })
    await login("stored", ["--store-secret", ...identity(), ...app()], { AZURE_CLIENT_SECRET: info.clientSecret! })
    await login("pfx", [...identity(), ...app(), "--certificate", Path.join(dir, "app.pfx")], {
      AZURE_CLIENT_CERTIFICATE_PASSWORD: certificate.pfxPassword
    })
    await login("federated", [...identity(), ...app(), "--federated-token-file", Path.join(dir, "federated-token")])
    await login("user", [...identity(), "--client-id", info.publicClientId!, "--username", info.username!], {
      DATAVERSE_PASSWORD: info.password!
    })
    await login("device", [...identity(), "--client-id", info.publicClientId!, "--device-code"])

    expectSignedIn(
      await cli("whoami --profile secret", ["whoami", "--profile", "secret"], {
        ...env,
        AZURE_CLIENT_SECRET: info.clientSecret!
      })
    )
    expectSignedIn(await cli("whoami --profile stored", ["whoami", "--profile", "stored"], env))
    expectSignedIn(
      await cli("whoami --profile pfx", ["whoami", "--profile", "pfx"], {
        ...env,
        AZURE_CLIENT_CERTIFICATE_PASSWORD: certificate.pfxPassword
      })
    )
    expectSignedIn(await cli("whoami --profile federated", ["whoami", "--profile", "federated"], env))
    const user = await cli("whoami --profile user", ["whoami", "--profile", "user"], {
      ...env,
      DATAVERSE_PASSWORD: info.password!
    })
    const device = await cli("whoami --profile device", ["whoami", "--profile", "device"], env)
    expect(JSON.parse(device.stdout).UserId).toBe(JSON.parse(user.stdout).UserId)
    await cli("auth list", ["auth", "list"], env)
    const listed = await cli("auth list json", ["auth", "list", "-o", "json"], env)
    for (const profile of JSON.parse(listed.stdout)) expect(profile.secret).toBeUndefined()

    // The files: the stored secret is only in profiles.json (0600) and only for the profile that asked.
    const profiles = JSON.parse(Fs.readFileSync(Path.join(config, "profiles.json"), "utf8"))
    expect(
      profiles.profiles.filter((p: { secret?: string }) => p.secret !== undefined).map((p: { name: string }) => p.name)
    ).toEqual(["stored"])
    expect(Fs.statSync(Path.join(config, "profiles.json")).mode & 0o777).toBe(0o600)
    // The device and user profiles cache their sign-ins under tokens/ (0600).
    expect(expectNoLeaks([Path.dirname(config)]).length).toBeGreaterThan(0)
  })

  it("an import with a journal and a rejects file, and failed sign-ins, with --verbose", async () => {
    const env = { DV_EFFECT_CONFIG_DIR: freshConfig() }
    const work = Fs.mkdtempSync(Path.join(dir, "work-"))
    const input = Path.join(work, "rows.jsonl")
    Fs.writeFileSync(input, `{"lastname":"Secret1"}\n{"lastname":"${"x".repeat(51)}"}\n{"lastname":"Secret3"}\n`)
    const imported = await cli(
      "create with a journal and rejects",
      [
        "create",
        "contact",
        ...identity(),
        ...app(),
        "-f",
        input,
        "--journal",
        Path.join(work, "load.journal"),
        "--rejects",
        Path.join(work, "rejects.jsonl")
      ],
      { ...env, AZURE_CLIENT_SECRET: info.clientSecret! },
      2
    )
    expect(imported.stderr).toContain("Created 2 of 3 contact rows")
    expect(Fs.readFileSync(Path.join(work, "rejects.jsonl"), "utf8")).toContain("line 2")

    const wrongSecret = await cli("wrong client secret", ["whoami", ...identity(), ...app()], {
      ...env,
      AZURE_CLIENT_SECRET: `${info.clientSecret}-wrong`
    }, 1)
    expect(wrongSecret.stderr).toMatch(/^dv-effect: Sign-in with a client secret failed/m)
    await cli("wrong password", [
      "whoami",
      ...identity(),
      "--client-id",
      info.publicClientId!,
      "--username",
      info.username!
    ], {
      ...env,
      DATAVERSE_PASSWORD: `${info.password}-wrong`
    }, 1)
    await cli("wrong PFX password", ["whoami", ...identity(), ...app(), "--certificate", Path.join(dir, "app.pfx")], {
      ...env,
      AZURE_CLIENT_CERTIFICATE_PASSWORD: `${certificate.pfxPassword}-wrong`
    }, 1)
    await cli("token refused", ["whoami", "--url", info.url!, "--access-token", `${info.accessToken}x`], env, 1)
    await cli("connection string with a wrong secret", ["whoami", "--ca-file", info.caFile!], {
      ...env,
      DATAVERSE_CONNECTION_STRING:
        `AuthType=ClientSecret;Url=${info.url};ClientId=${info.clientId};ClientSecret=${info.clientSecret}-wrong`
    }, 1)
    expectNoLeaks([Path.dirname(env.DV_EFFECT_CONFIG_DIR), work])
  })
})

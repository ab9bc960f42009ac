import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { binPath, run, type RunResult, type StartedEmulator, startEmulator } from "./support/cli.js"

let emulator: StartedEmulator
let dir: string

beforeAll(async () => {
  emulator = await startEmulator()
  dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "dv-effect-auth-"))
})
afterAll(async () => {
  await emulator?.stop()
  await Fs.rm(dir, { recursive: true, force: true })
})

const info = () => emulator.info as Record<string, string>
const identity = () => ["--authority", info().authority!, "--ca-file", info().caFile!]
const app = () => ["--tenant-id", info().tenantId!, "--client-id", info().clientId!]
const secrets = () => [info().clientSecret!, info().password!, info().accessToken!]

/** A config directory of its own (not created yet: the CLI creates it). */
const freshConfig = async () => Path.join(await Fs.mkdtemp(Path.join(dir, "home-")), "dv-effect")

/** Every file under a directory, with its mode and contents. */
const filesUnder = async (root: string): Promise<Array<{ path: string; mode: number; text: string }>> => {
  const out: Array<{ path: string; mode: number; text: string }> = []
  for (const entry of await Fs.readdir(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const path = Path.join((entry as { parentPath?: string; path?: string }).parentPath ?? entry.path, entry.name)
    out.push({ path, mode: (await Fs.stat(path)).mode & 0o777, text: await Fs.readFile(path, "utf8") })
  }
  return out
}

/** The access tokens the identity endpoint issued, as found in msal's cache files. */
const cachedTokens = (text: string): Array<string> => {
  const cache = JSON.parse(text) as { AccessToken?: Record<string, { secret: string }> }
  return Object.values(cache.AccessToken ?? {}).map((token) => token.secret)
}

const expectClean = (results: ReadonlyArray<RunResult>, extra: ReadonlyArray<string> = []) => {
  for (const result of results) {
    for (const value of [...secrets(), ...extra]) {
      expect(result.stdout).not.toContain(value)
      expect(result.stderr).not.toContain(value)
    }
  }
}

describe("dv-effect auth", () => {
  it("login with a client secret saves a profile without the secret, which whoami then uses", async () => {
    const config = await freshConfig()
    const env = { DV_EFFECT_CONFIG_DIR: config }
    const login = await run(["auth", "login", "--name", "app", "--url", emulator.info.url, ...app(), ...identity()], {
      env: { ...env, AZURE_CLIENT_SECRET: info().clientSecret! }
    })
    expect(login.stderr).not.toContain("dv-effect:")
    expect(login.code).toBe(0)
    expect(login.stderr).toContain(`Signed in to ${emulator.info.url} as user ${emulator.info.userId}.`)
    expect(login.stderr).toContain(`Profile 'app' saved in ${Path.join(config, "profiles.json")} and selected.`)
    expect(login.stderr).toContain(
      "The client secret is not stored: commands with this profile read it from AZURE_CLIENT_SECRET_APP, else " +
        "AZURE_CLIENT_SECRET, or prompt for it."
    )

    const saved = JSON.parse(await Fs.readFile(Path.join(config, "profiles.json"), "utf8"))
    expect(saved).toEqual({
      version: 1,
      selected: "app",
      profiles: [{
        name: "app",
        url: emulator.info.url,
        flow: "client-secret",
        tenantId: info().tenantId,
        clientId: info().clientId,
        authority: info().authority,
        caFile: info().caFile
      }]
    })
    expect((await Fs.stat(config)).mode & 0o777).toBe(0o700)

    // The selected profile is used when no connection flag is given; the secret comes from the environment.
    const whoami = await run(["whoami"], { env: { ...env, AZURE_CLIENT_SECRET: info().clientSecret! } })
    expect(whoami.code).toBe(0)
    expect(JSON.parse(whoami.stdout)).toMatchObject({ url: emulator.info.url, UserId: emulator.info.userId })
    // Without it, and without a terminal, one line says where the secret goes.
    const noSecret = await run(["whoami", "--profile", "app"], { env })
    expect(noSecret.code).toBe(1)
    expect(noSecret.stderr.trim()).toBe(
      "dv-effect: Profile 'app' needs the client secret in AZURE_CLIENT_SECRET_APP or AZURE_CLIENT_SECRET (it is not stored in the profile, and stdin is not a terminal to prompt on)."
    )
    for (const file of await filesUnder(config)) {
      expect(file.mode).toBe(0o600)
      for (const value of secrets()) expect(file.text).not.toContain(value)
    }
    expectClean([login, whoami, noSecret])
  })

  it("login with a device code prints the code on stderr and caches the sign-in (0600); later runs are silent", async () => {
    const config = await freshConfig()
    const env = { DV_EFFECT_CONFIG_DIR: config }
    const login = await run([
      "auth",
      "login",
      "--name",
      "me",
      "--url",
      emulator.info.url,
      "--device-code",
      "--client-id",
      info().publicClientId!,
      ...identity(),
      "-o",
      "json"
    ], { env })
    expect(login.stderr).not.toContain("dv-effect:")
    expect(login.code).toBe(0)
    expect(login.stderr).toMatch(/open the page https:\/\/127\.0\.0\.1:\d+\/.*devicecode.* and enter the code \w+/)
    const summary = JSON.parse(login.stdout)
    expect(summary.profile).toEqual({
      name: "me",
      url: emulator.info.url,
      flow: "device-code",
      clientId: info().publicClientId,
      authority: info().authority,
      caFile: info().caFile,
      selected: true,
      secretStored: false
    })
    expect(summary.UserId).toMatch(/^[0-9a-f-]{36}$/)
    expect(summary.UserId).not.toBe(emulator.info.userId)

    const cache = Path.join(config, "tokens", "me.json")
    expect((await Fs.stat(cache)).mode & 0o777).toBe(0o600)
    expect((await Fs.stat(Path.dirname(cache))).mode & 0o777).toBe(0o700)
    const tokens = cachedTokens(await Fs.readFile(cache, "utf8"))
    expect(tokens.length).toBeGreaterThan(0)

    const again = await run(["whoami", "--profile", "me"], { env })
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout).UserId).toBe(summary.UserId)
    expect(again.stderr).not.toMatch(/enter the code/)
    const viaEnv = await run(["whoami"], { env: { ...env, DATAVERSE_PROFILE: "me" } })
    expect(JSON.parse(viaEnv.stdout).UserId).toBe(summary.UserId)

    // Only the token cache holds tokens; the profile file never does.
    const profileText = await Fs.readFile(Path.join(config, "profiles.json"), "utf8")
    for (const token of tokens) expect(profileText).not.toContain(token)
    expectClean([login, again, viaEnv], tokens)
    // No temporary cache is left behind.
    expect((await Fs.readdir(Path.dirname(cache))).sort()).toEqual(["me.json"])
  })

  it("list marks the selected profile, select switches, logout removes a profile with its tokens", async () => {
    const config = await freshConfig()
    const env = { DV_EFFECT_CONFIG_DIR: config }
    const device = (name: string) =>
      run([
        "auth",
        "login",
        "--name",
        name,
        "--url",
        emulator.info.url,
        "--device-code",
        "--client-id",
        info().publicClientId!,
        ...identity()
      ], { env })
    expect((await device("one")).code).toBe(0)
    expect((await device("two")).code).toBe(0)

    const list = await run(["auth", "list"], { env })
    expect(list.code).toBe(0)
    const lines = list.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^\s+NAME\s+URL\s+FLOW\s+IDENTITY$/)
    expect(lines[1]).toMatch(
      new RegExp(`^\\s+one\\s+${emulator.info.url.replace(/\./g, "\\.")}\\s+device-code\\s+client `)
    )
    expect(lines[2]).toMatch(/^\*\s+two\s/)

    const select = await run(["auth", "select", "one"], { env })
    expect(select.code).toBe(0)
    expect(select.stderr).toBe(`Profile 'one' (${emulator.info.url}) selected.\n`)
    const json = JSON.parse((await run(["auth", "list", "-o", "json"], { env })).stdout)
    expect(json.map((p: { name: string; selected: boolean }) => [p.name, p.selected])).toEqual([["one", true], [
      "two",
      false
    ]])

    const unknown = await run(["auth", "select", "three"], { env })
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe("dv-effect: No profile 'three' (there are: one, two); see dv-effect auth list.")

    // A name with --all would remove more than was named: refused, nothing removed.
    const both = await run(["auth", "logout", "two", "--all"], { env })
    expect([both.code, both.stderr.trim()]).toEqual([
      1,
      "dv-effect: --all removes every profile: leave out 'two', or leave out --all to remove only that profile."
    ])
    const logout = await run(["auth", "logout"], { env })
    expect(logout.code).toBe(0)
    expect(logout.stderr).toBe("Profile 'one' removed, with its cached sign-in; no profile is selected now.\n")
    await expect(Fs.stat(Path.join(config, "tokens", "one.json"))).rejects.toThrow()
    expect((await Fs.stat(Path.join(config, "tokens", "two.json"))).mode & 0o777).toBe(0o600)

    const nothingSelected = await run(["auth", "logout"], { env })
    expect(nothingSelected.code).toBe(1)
    expect(nothingSelected.stderr.trim()).toBe(
      "dv-effect: No profile is selected: name the one to remove (dv-effect auth logout <name>), or pass --all."
    )
    // With no profile selected and no flag, commands say what is missing, and the profiles saved.
    const noUrl = await run(["whoami"], { env })
    expect([noUrl.code, noUrl.stderr.trim()]).toEqual([
      1,
      "dv-effect: No Dataverse URL: pass --url <org url> or set DATAVERSE_URL (or use --emulator or " +
      "--connection-string), or name a saved profile (two) with --profile <name> or select one with dv-effect " +
      "auth select <name>."
    ])

    expect((await run(["auth", "logout", "two"], { env })).code).toBe(0)
    expect(await Fs.readdir(Path.join(config, "tokens"))).toEqual([])
    const empty = await run(["auth", "list", "-o", "json"], { env })
    expect(JSON.parse(empty.stdout)).toEqual([])
  })

  it("--store-secret stores the secret and says so plainly; output never shows it", async () => {
    const config = await freshConfig()
    const env = { DV_EFFECT_CONFIG_DIR: config }
    const login = await run([
      "auth",
      "login",
      "--name",
      "ci",
      "--store-secret",
      "--url",
      emulator.info.url,
      ...app(),
      ...identity()
    ], { env: { ...env, AZURE_CLIENT_SECRET: info().clientSecret! } })
    expect(login.code).toBe(0)
    const file = Path.join(config, "profiles.json")
    expect(login.stderr).toContain(`Warning: the client secret is stored in clear text in ${file} (mode 0600)`)
    expect(JSON.parse(await Fs.readFile(file, "utf8")).profiles[0].secret).toBe(info().clientSecret)
    expect((await Fs.stat(file)).mode & 0o777).toBe(0o600)
    // No secret in the environment: the stored one is used.
    const whoami = await run(["whoami", "--verbose"], { env })
    expect(whoami.code).toBe(0)
    expect(JSON.parse(whoami.stdout).UserId).toBe(emulator.info.userId)
    const list = await run(["auth", "list", "-o", "json"], { env })
    expect(JSON.parse(list.stdout)[0]).toMatchObject({ name: "ci", secretStored: true })
    expect(JSON.parse(list.stdout)[0].secret).toBeUndefined()
    expectClean([login, whoami, list, await run(["auth", "list"], { env })])
  })

  it("a username/password profile signs in from its token cache; DATAVERSE_PASSWORD only when the cache cannot serve", async () => {
    const config = await freshConfig()
    const env = { DV_EFFECT_CONFIG_DIR: config }
    const user = [
      "--url",
      emulator.info.url,
      "--username",
      info().username!,
      "--client-id",
      info().publicClientId!,
      "--tenant-id",
      info().tenantId!,
      ...identity()
    ]
    const login = await run(["auth", "login", "--name", "user", ...user], {
      env: { ...env, DATAVERSE_PASSWORD: info().password! }
    })
    expect(login.stderr).not.toContain("dv-effect:")
    expect(login.code).toBe(0)
    const cache = Path.join(config, "tokens", "user.json")
    const signedIn = await Fs.readFile(cache, "utf8")

    // The selected profile, no password anywhere: the cached sign-in is used.
    const whoami = await run(["whoami"], { env })
    expect(whoami.stderr).toBe("")
    expect(whoami.code).toBe(0)
    expect(JSON.parse(whoami.stdout)).toMatchObject({ url: emulator.info.url })
    const userId = JSON.parse(whoami.stdout).UserId
    expect(userId).toMatch(/^[0-9a-f-]{36}$/)
    // Without a cached access token, the refresh token still signs in silently.
    const cached = JSON.parse(signedIn) as { AccessToken: Record<string, unknown> }
    await Fs.writeFile(cache, JSON.stringify({ ...cached, AccessToken: {} }), { mode: 0o600 })
    const refreshed = await run(["whoami", "--profile", "user"], { env })
    expect(refreshed.code).toBe(0)
    expect(JSON.parse(refreshed.stdout).UserId).toBe(userId)

    // A cache that cannot give a token: one line asking for the password, nothing sent without it.
    const expired = JSON.parse(signedIn) as { RefreshToken: Record<string, { secret: string }> }
    for (const token of Object.values(expired.RefreshToken)) token.secret = "revoked"
    await Fs.writeFile(cache, JSON.stringify({ ...expired, AccessToken: {} }), { mode: 0o600 })
    const needed =
      `dv-effect: Profile 'user' has no usable cached sign-in for ${info().username}: set DATAVERSE_PASSWORD to sign in again (the password is not stored in the profile, nor taken as a flag).`
    const stale = await run(["whoami"], { env })
    expect(stale.code).toBe(1)
    expect(stale.stderr.trim()).toBe(needed)
    expect(stale.stdout).toBe("")
    // With the password it signs in again and caches the new sign-in for the next run.
    const again = await run(["whoami"], { env: { ...env, DATAVERSE_PASSWORD: info().password! } })
    expect(again.code).toBe(0)
    expect(JSON.parse(again.stdout).UserId).toBe(userId)
    const after = await run(["whoami"], { env })
    expect(after.code).toBe(0)
    expect(JSON.parse(after.stdout).UserId).toBe(userId)

    // No cache at all: the same line.
    await Fs.rm(cache)
    const none = await run(["whoami"], { env })
    expect(none.code).toBe(1)
    expect(none.stderr.trim()).toBe(needed)
    // Without the profile, --username still needs the password up front.
    const flags = await run(["whoami", ...user], { env })
    expect(flags.code).toBe(1)
    expect(flags.stderr.trim()).toMatch(
      /^dv-effect: --username needs the password in DATAVERSE_PASSWORD \(it is never taken as a flag\) \(the selected profile 'user' is not used because --url, --tenant-id, --client-id and --username are given; pass --profile user to use it\)\.$/
    )
    expectClean([login, whoami, refreshed, stale, again, after, none, flags])
  })

  it("says when the selected profile is not used because connection variables or flags are set", async () => {
    const config = await freshConfig()
    const env = { DV_EFFECT_CONFIG_DIR: config }
    const login = await run([
      "auth",
      "login",
      "--name",
      "dev",
      "--url",
      emulator.info.url,
      "--device-code",
      "--client-id",
      info().publicClientId!,
      ...identity()
    ], { env })
    expect(login.code).toBe(0)

    const viaUrl = await run(["whoami"], { env: { ...env, DATAVERSE_URL: emulator.info.url } })
    expect(viaUrl.code).toBe(1)
    expect(viaUrl.stderr.trim()).toBe(
      "dv-effect: No credentials: pass --access-token, --connection-string, --device-code, --username, --managed-identity, --profile, or --tenant-id and --client-id with AZURE_CLIENT_SECRET, --certificate or --federated-token-file (the selected profile 'dev' is not used because DATAVERSE_URL is set; unset it or pass --profile dev)."
    )
    const withSecret = await run(["whoami"], {
      env: { ...env, DATAVERSE_URL: emulator.info.url, AZURE_CLIENT_SECRET: "not-the-secret-4242" }
    })
    expect(withSecret.code).toBe(1)
    expect(withSecret.stderr.trim()).toBe(
      "dv-effect: Client credentials need --tenant-id and --client-id (or AZURE_TENANT_ID and AZURE_CLIENT_ID) (the selected profile 'dev' is not used because DATAVERSE_URL is set; unset it or pass --profile dev)."
    )
    const twoVariables = await run(["whoami"], {
      env: { ...env, DATAVERSE_URL: emulator.info.url, AZURE_TENANT_ID: info().tenantId! }
    })
    expect(twoVariables.stderr.trim()).toMatch(
      /\(the selected profile 'dev' is not used because DATAVERSE_URL and AZURE_TENANT_ID are set; unset them or pass --profile dev\)\.$/
    )
    const flag = await run(["whoami", "--url", emulator.info.url], { env })
    expect(flag.code).toBe(1)
    expect(flag.stderr.trim()).toMatch(
      /\(the selected profile 'dev' is not used because --url is given; pass --profile dev to use it\)\.$/
    )
    // As the message says: with --profile the profile is used in spite of the variable.
    const chosen = await run(["whoami", "--profile", "dev"], { env: { ...env, DATAVERSE_URL: emulator.info.url } })
    expect(chosen.code).toBe(0)
    expect(JSON.parse(chosen.stdout).url).toBe(emulator.info.url)
    expectClean([viaUrl, withSecret, twoVariables, flag, chosen], ["not-the-secret-4242"])
  })

  it("refuses what it should, with one line naming the flag", async () => {
    const env = { DV_EFFECT_CONFIG_DIR: await freshConfig() }
    const token = await run(
      ["auth", "login", "--name", "x", "--url", emulator.info.url, "--access-token", emulator.info.accessToken],
      { env }
    )
    expect(token.code).toBe(1)
    expect(token.stderr).toMatch(/^dv-effect: auth login does not save --access-token/)
    // Beside another sign-in flag too: that is what the user needs to hear first.
    const tokenAndTenantLogin = await run([
      "auth",
      "login",
      "--name",
      "x",
      "--url",
      emulator.info.url,
      "--access-token",
      emulator.info.accessToken,
      "--tenant-id",
      "t"
    ], { env })
    expect(tokenAndTenantLogin.stderr).toMatch(/^dv-effect: auth login does not save --access-token/)
    const badName = await run(["auth", "login", "--name", "../x", "--url", emulator.info.url, "--device-code"], { env })
    expect(badName.stderr.trim()).toBe(
      "dv-effect: --name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; got '../x'."
    )
    const wrong = await run(["auth", "login", "--name", "bad", "--url", emulator.info.url, ...app(), ...identity()], {
      env: { ...env, AZURE_CLIENT_SECRET: "not-the-secret-4242" }
    })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toMatch(/^dv-effect: Sign-in with a client secret failed \(invalid_client\)/m)
    // A failed login saves nothing.
    await expect(Fs.stat(Path.join(env.DV_EFFECT_CONFIG_DIR, "profiles.json"))).rejects.toThrow()
    const noSecret = await run(["whoami", "--url", emulator.info.url, ...app()], { env })
    expect(noSecret.stderr.trim()).toBe(
      "dv-effect: --client-id needs the client secret in AZURE_CLIENT_SECRET (stdin is not a terminal to prompt on), or use --certificate or --federated-token-file."
    )
    const http = await run(["whoami", "--url", "http://dataverse.example.com", "--access-token", "t"], { env })
    expect(http.code).toBe(1)
    expect(http.stderr.trim()).toBe(
      "dv-effect: Refusing plain http to dataverse.example.com: tokens would cross the network unencrypted; use https://, or pass --allow-http."
    )
    // With --allow-http the check lets the URL through (here to a closed port).
    const allowed = await run(["whoami", "--url", "http://0.0.0.0:1", "--access-token", "t", "--allow-http"], { env })
    expect(allowed.code).toBe(1)
    expect(allowed.stderr).not.toContain("Refusing plain http")
    // A refused token with --verbose: its cause once (the runtime's own report of the failed fiber
    // would repeat it), then the one-line error, last.
    const refused = await run(["whoami", "--url", emulator.info.url, "--access-token", "not-a-token", "--verbose"], {
      env
    })
    expect(refused.code).toBe(1)
    expect(refused.stderr.trim().split("\n").at(-1)).toMatch(
      /^dv-effect: The user is not authenticated.*cannot be refreshed/
    )
    expect(refused.stderr.match(/^ *DataverseError: /gm)).toHaveLength(1)
    expect(refused.stderr).not.toContain("Fiber terminated")
    const unknownProfile = await run(["whoami", "--profile", "nope"], { env })
    expect(unknownProfile.stderr.trim()).toBe(
      "dv-effect: No profile 'nope': there are none yet; create one with dv-effect auth login --name nope ..."
    )
    // A token signs in by itself: a sign-in flag beside it would be dropped without a word.
    const tokenAndTenant = await run(
      ["whoami", "--url", emulator.info.url, "--access-token", emulator.info.accessToken, "--tenant-id", "other"],
      { env }
    )
    expect(tokenAndTenant.code).toBe(1)
    expect(tokenAndTenant.stderr.trim()).toBe(
      "dv-effect: --access-token signs in by itself, so --tenant-id would not be used: give one way to sign in."
    )
    const tokenInEnv = await run(["whoami", "--url", emulator.info.url, "--device-code", "--client-id=x"], {
      env: { ...env, DATAVERSE_ACCESS_TOKEN: emulator.info.accessToken }
    })
    expect(tokenInEnv.stderr.trim()).toBe(
      "dv-effect: DATAVERSE_ACCESS_TOKEN (set) signs in by itself, so --client-id and --device-code would not be used: give one way to sign in (unset DATAVERSE_ACCESS_TOKEN to use --client-id and --device-code)."
    )
    expect(tokenInEnv.code).toBe(1)
    // A connection string comes first: a token typed beside it would be dropped, in silence.
    const tokenAndString = await run(
      ["whoami", "--access-token", emulator.info.accessToken, "--connection-string", "AuthType=OAuth;Url=x"],
      { env }
    )
    expect(tokenAndString.stderr.trim()).toBe(
      "dv-effect: --connection-string signs in by itself, so --access-token would not be used: give one way to sign in."
    )
    const stringAndDeviceCode = await run(
      ["whoami", "--connection-string", "AuthType=OAuth;Url=x", "--device-code", "--tenant-id", "t"],
      { env }
    )
    expect(stringAndDeviceCode.stderr.trim()).toBe(
      "dv-effect: --connection-string signs in by itself, so --device-code would not be used: give one way to sign in."
    )
    const stringInEnv = await run(["whoami", "--url", emulator.info.url, "--access-token", emulator.info.accessToken], {
      env: { ...env, DATAVERSE_CONNECTION_STRING: "AuthType=OAuth;Url=x" }
    })
    expect(stringInEnv.stderr.trim()).toBe(
      "dv-effect: DATAVERSE_CONNECTION_STRING (set) signs in by itself, so --access-token would not be used: give one way to sign in (unset DATAVERSE_CONNECTION_STRING to use --access-token)."
    )
    // A flag given as off is not a way to sign in.
    const deviceCodeOff = await run(
      ["whoami", "--url", emulator.info.url, "--access-token", emulator.info.accessToken, "--device-code=false"],
      { env }
    )
    expect(deviceCodeOff.code).toBe(0)
    // A profile names the org and the sign-in: a flag typed beside it would be dropped.
    const profileAndUrl = await run(["whoami", "--profile", "dev", "--url", emulator.info.url], { env })
    expect(profileAndUrl.stderr.trim()).toBe(
      "dv-effect: --profile dev names the org and the sign-in, so --url would not be used: give one or the other."
    )
    const profileInEnv = await run(["whoami", "--device-code", "--url", emulator.info.url], {
      env: { ...env, DATAVERSE_PROFILE: "dev" }
    })
    expect(profileInEnv.stderr.trim()).toBe(
      "dv-effect: DATAVERSE_PROFILE=dev (set) names the org and the sign-in, so --url and --device-code would not be used: give one or the other (unset DATAVERSE_PROFILE to use the flags)."
    )
    const profilesInEnv = await run(["whoami", "--url", emulator.info.url], {
      env: { ...env, DATAVERSE_PROFILES: "dev" }
    })
    expect(profilesInEnv.stderr.trim()).toBe(
      "dv-effect: DATAVERSE_PROFILES=dev (set) names the org and the sign-in, so --url would not be used: give one or the other (unset DATAVERSE_PROFILES to use the flags)."
    )
    // What applies with a profile is not refused.
    const profileAndCa = await run(["whoami", "--profile", "nope", "--allow-http"], { env })
    expect(profileAndCa.stderr).toMatch(/^dv-effect: No profile 'nope'/)
    // A variable set for the whole machine is no reason to refuse.
    const tenantInEnv = await run(["whoami", "--url", emulator.info.url, "--access-token", emulator.info.accessToken], {
      env: { ...env, AZURE_TENANT_ID: "other" }
    })
    expect(tenantInEnv.code).toBe(0)
    expectClean([
      token,
      tokenAndTenantLogin,
      badName,
      wrong,
      noSecret,
      http,
      allowed,
      unknownProfile,
      tokenAndTenant,
      tokenInEnv,
      tenantInEnv
    ], [
      "not-the-secret-4242"
    ])
  })

  // util-linux `script` gives the CLI a terminal; without it (macOS, Windows) this test is skipped.
  const hasScript = process.platform === "linux" && spawnSync("script", ["--version"]).status === 0
  it.skipIf(!hasScript)("asks for the client secret on a terminal without echoing it", async () => {
    const config = await freshConfig()
    const quote = (arg: string) => `'${arg.replace(/'/g, "'\\''")}'`
    const command = [process.execPath, binPath, "whoami", "--url", emulator.info.url, ...app(), ...identity()]
      .map(quote).join(" ")
    const env: Record<string, string> = { DV_EFFECT_CONFIG_DIR: config }
    for (const [key, value] of Object.entries(process.env)) {
      if (value !== undefined && !key.startsWith("AZURE_") && !key.startsWith("DATAVERSE_")) env[key] = value
    }
    const child = spawn("script", ["-qec", command, "/dev/null"], { env, stdio: ["pipe", "pipe", "pipe"] })
    let output = ""
    let answered = false
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk
      if (!answered && output.includes("(not shown): ")) {
        answered = true
        child.stdin.write(`${info().clientSecret}\r`)
      }
    })
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve))
    expect(output).toContain(`Client secret for ${info().clientId} (not shown): `)
    expect(code).toBe(0)
    expect(output).toContain(`"UserId":"${emulator.info.userId}"`)
    expect(output).not.toContain(info().clientSecret)
  })
})

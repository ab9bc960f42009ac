/**
 * Several identities in one CLI run (issue 15, item 2): `--access-token` and `--profile` repeated,
 * `DATAVERSE_ACCESS_TOKEN` and `DATAVERSE_PROFILES` with several values. The rows are spread over
 * the identities, the summary and `-o json` say what each did, and the store's `createdby` agrees;
 * `whoami` checks each sign-in; mistakes get one clear line.
 */
import type * as Emulator from "@dv-effect/emulator/Emulator"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { run, startEmulatorFixture, writeFile } from "./support/cli.js"

const rowCount = 3000

let emulator: Emulator.RunningEmulator
let dir: string
let close: () => Promise<void>
let input: string

beforeAll(async () => {
  ;({ close, dir, emulator } = await startEmulatorFixture({ users: 3 }, "dv-identities-"))
  input = writeFile(
    dir,
    "rows.csv",
    "lastname\n" + Array.from({ length: rowCount }, (_, i) => `I${i}`).join("\n") + "\n"
  )
})
afterAll(() => close())
beforeEach(() => emulator.reset())

/** The environment of a run: state and config of the test's own, no connection variables. */
const env = (extra: Record<string, string> = {}) => ({
  XDG_STATE_HOME: Path.join(dir, "state"),
  DV_EFFECT_CONFIG_DIR: Path.join(dir, "config"),
  ...extra
})

/** The records created, by the systemuser that created them. */
const createdBy = () => {
  const byUser = new Map<string, number>()
  const names = new Set<string>()
  let records = 0
  for (const record of emulator.store.table("contact")?.scan() ?? []) {
    records++
    names.add(String(record.values.lastname))
    const by = (record.values.createdby as { id: string } | undefined)?.id ?? "nobody"
    byUser.set(by, (byUser.get(by) ?? 0) + 1)
  }
  return { records, distinct: names.size, byUser }
}

interface JsonSummary {
  readonly created: number
  readonly identities: ReadonlyArray<{ label: string; succeeded: number; requests: number; throttled: number }>
}

/** Every row once, and each identity's share as the store counts it. */
const expectSpread = (summary: JsonSummary, users: ReadonlyArray<Emulator.ApplicationUser>, labels: Array<string>) => {
  expect(summary.created).toBe(rowCount)
  const stored = createdBy()
  expect(stored.records).toBe(rowCount)
  expect(stored.distinct).toBe(rowCount)
  expect(summary.identities.map((identity) => identity.label)).toEqual(labels)
  users.forEach((user, i) => {
    expect(summary.identities[i]!.succeeded).toBeGreaterThan(0)
    expect(stored.byUser.get(user.userId)).toBe(summary.identities[i]!.succeeded)
  })
}

const load = ["create", "contact", "--file", "", "--chunk-size", "50", "--concurrency", "2", "--no-journal"]
const loadArgs = () => load.map((arg) => (arg === "" ? input : arg))

describe("dv-effect with several identities", () => {
  it("spreads a load over repeated --access-token flags; -o json and the summary say what each did", async () => {
    const users = emulator.info.users.slice(0, 2)
    // Both spellings of a flag's value.
    const tokens = ["--access-token", users[0]!.accessToken, `--access-token=${users[1]!.accessToken}`]
    const result = await run([...loadArgs(), "--url", emulator.info.url, ...tokens, "-o", "json"], { env: env() })
    expect(result.stderr).not.toContain("dv-effect:")
    expect(result.code).toBe(0)
    expectSpread(JSON.parse(result.stdout), users, ["token 1", "token 2"])
    // Without -o json the summary names each identity on a line of its own.
    emulator.reset()
    const plain = await run([...loadArgs(), "--url", emulator.info.url, ...tokens], { env: env() })
    expect(plain.code).toBe(0)
    expect(plain.stderr).toMatch(/^ {2}token 1: [\d,]+ rows, [\d,]+ requests, 0 throttled$/m)
    expect(plain.stderr).toMatch(/^ {2}token 2: [\d,]+ rows, [\d,]+ requests, 0 throttled$/m)
    // The progress lines too.
    expect(plain.stderr).toMatch(/; token 1: [\d,]+ rows, [\d,]+ requests?, 0 throttled; token 2: /)
    for (const user of users) expect(plain.stderr + plain.stdout).not.toContain(user.accessToken)
  })

  it("takes several tokens from DATAVERSE_ACCESS_TOKEN, comma-separated", async () => {
    const users = emulator.info.users
    const result = await run([...loadArgs(), "-o", "json"], {
      env: env({
        DATAVERSE_URL: emulator.info.url,
        DATAVERSE_ACCESS_TOKEN: users.map((user) => user.accessToken).join(",")
      })
    })
    expect(result.code).toBe(0)
    expectSpread(JSON.parse(result.stdout), users, ["token 1", "token 2", "token 3"])
  })

  it("loads as saved profiles: --profile repeated, or DATAVERSE_PROFILES", async () => {
    const info = emulator.info
    const users = info.users.slice(0, 2)
    for (const [i, user] of users.entries()) {
      const login = await run([
        "auth",
        "login",
        "--name",
        `app${i + 1}`,
        "--url",
        info.url,
        "--tenant-id",
        info.tenantId!,
        "--client-id",
        user.clientId,
        "--authority",
        info.authority!,
        "--ca-file",
        info.caFile!
      ], { env: env({ AZURE_CLIENT_SECRET: user.clientSecret! }) })
      expect(login.stderr).not.toContain("dv-effect:")
      expect(login.code).toBe(0)
    }
    // No secret is stored in the profiles: each reads its own variable.
    const secrets = {
      AZURE_CLIENT_SECRET_APP1: users[0]!.clientSecret!,
      AZURE_CLIENT_SECRET_APP2: users[1]!.clientSecret!
    }
    const byFlags = await run([...loadArgs(), "--profile", "app1", "--profile", "app2", "-o", "json"], {
      env: env(secrets)
    })
    expect(byFlags.stderr).not.toContain("dv-effect:")
    expect(byFlags.code).toBe(0)
    expectSpread(JSON.parse(byFlags.stdout), users, ["app1", "app2"])

    emulator.reset()
    const byVariable = await run([...loadArgs(), "-o", "json"], {
      env: env({ ...secrets, DATAVERSE_PROFILES: "app2, app1" })
    })
    expect(byVariable.code).toBe(0)
    expectSpread(JSON.parse(byVariable.stdout), [...users].reverse(), ["app2", "app1"])

    // whoami checks each sign-in, one line per identity.
    const whoami = await run(["whoami", "--profile", "app1,app2"], { env: env(secrets) })
    expect(whoami.code).toBe(0)
    const lines = whoami.stdout.trim().split("\n").map((line) => JSON.parse(line))
    expect(lines.map((line) => [line.identity, line.UserId])).toEqual([
      ["app1", users[0]!.userId],
      ["app2", users[1]!.userId]
    ])
    Fs.rmSync(Path.join(dir, "config"), { recursive: true, force: true })
  })

  it("names the identity whose sign-in fails, checks every identity before a row goes, and whoami reports each", async () => {
    const [first, second] = emulator.info.users
    const good = (user: Emulator.ApplicationUser) => ["--access-token", user.accessToken]
    // The first identity's token is refused: named, nothing written.
    const firstBad = await run([
      ...loadArgs(),
      "--url",
      emulator.info.url,
      "--access-token",
      "garbage",
      ...good(second!)
    ], {
      env: env()
    })
    expect(firstBad.code).toBe(1)
    expect(firstBad.stderr).toMatch(/^dv-effect: identity token 1: The user is not authenticated/)
    // With a fixed concurrency too, every identity signs in before a row goes.
    const secondBad = await run([
      ...loadArgs(),
      "--url",
      emulator.info.url,
      ...good(first!),
      "--access-token",
      "garbage"
    ], {
      env: env()
    })
    expect(secondBad.code).toBe(1)
    expect(secondBad.stderr).toMatch(/^dv-effect: identity token 2: The user is not authenticated/)
    expect(createdBy().records).toBe(0)
    // whoami checks them all: a line for each that works, one error line naming each that does not.
    const whoami = await run(
      ["whoami", "--url", emulator.info.url, "--access-token", `${first!.accessToken},garbage,${second!.accessToken}`],
      { env: env() }
    )
    expect(whoami.code).toBe(1)
    expect(whoami.stdout.trim().split("\n").map((line) => JSON.parse(line).UserId)).toEqual([
      first!.userId,
      second!.userId
    ])
    expect(whoami.stderr).toMatch(/^dv-effect: identity token 2: The user is not authenticated[^\n]*\n$/)
  })

  it("refuses two identities of one user, and --profile mixed with --access-token", async () => {
    const [first] = emulator.info.users
    const again = await emulator.issueToken({ user: 0 })
    const sameUser = await run(
      [...loadArgs(), "--url", emulator.info.url, "--access-token", first!.accessToken, "--access-token", again],
      { env: env() }
    )
    expect(sameUser.code).toBe(1)
    expect(sameUser.stderr.trim()).toBe(
      `dv-effect: identities token 1 and token 2 sign in as the same user (${
        first!.userId
      }); the service's limits are per user, so give each identity its own application user.`
    )
    const mixed = await run([...loadArgs(), "--profile", "app1", "--access-token", first!.accessToken], { env: env() })
    expect(mixed.code).toBe(1)
    expect(mixed.stderr.trim()).toBe(
      "dv-effect: --profile and --access-token both name identities: give them all one way (several --profile, or several --access-token with --url)."
    )
    expect(createdBy().records).toBe(0)
  })

  it("refuses an identity named twice or without a value, and identities of two orgs, in one line", async () => {
    const token = emulator.info.accessToken
    const twice = await run([
      ...loadArgs(),
      "--url",
      emulator.info.url,
      "--access-token",
      token,
      "--access-token",
      token
    ], {
      env: env()
    })
    expect(twice.code).toBe(1)
    expect(twice.stderr.trim()).toBe("dv-effect: The same --access-token is given twice: each identity once.")
    const missing = await run([...loadArgs(), "--profile", "a", "--profile"], { env: env() })
    expect(missing.code).toBe(1)
    expect(missing.stderr.trim()).toBe("dv-effect: --profile needs a value; see dv-effect create --help.")
    const profiles = await run([...loadArgs(), "--profile", "a", "--profile", "a"], { env: env() })
    expect(profiles.code).toBe(1)
    expect(profiles.stderr.trim()).toBe("dv-effect: --profile a is given twice: each identity once.")
    // Two saved profiles of two orgs (written as `auth login` writes them; nothing is sent).
    const config = Path.join(dir, "config-orgs")
    Fs.mkdirSync(config, { recursive: true })
    const profile = (name: string, url: string) => ({
      name,
      url,
      flow: "client-secret",
      tenantId: "t",
      clientId: "c",
      secret: "s"
    })
    Fs.writeFileSync(
      Path.join(config, "profiles.json"),
      JSON.stringify({
        version: 1,
        profiles: [profile("one", emulator.info.url), profile("other", "https://other.crm.dynamics.com")]
      })
    )
    const orgs = await run([...loadArgs(), "--profile", "one", "--profile", "other"], {
      env: env({ DV_EFFECT_CONFIG_DIR: config })
    })
    expect(orgs.code).toBe(1)
    expect(orgs.stderr.trim()).toBe(
      `dv-effect: Identity other is for https://other.crm.dynamics.com, not ${emulator.info.url}: the identities of a run must be of one org.`
    )
    expect(createdBy().records).toBe(0)
  })
})

import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { run, type StartedEmulator, startEmulator } from "./support/cli.js"

let emulator: StartedEmulator
let dir: string
let connection: Array<string>

beforeAll(async () => {
  emulator = await startEmulator()
  dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "dv-effect-cli-"))
  connection = ["--url", emulator.info.url, "--access-token", emulator.info.accessToken]
})
afterAll(async () => {
  await emulator?.stop()
  await Fs.rm(dir, { recursive: true, force: true })
})

const api = (path: string, token = emulator.info.accessToken) =>
  fetch(`${emulator.info.webApiUrl}${path}`, { headers: { Authorization: `Bearer ${token}` } })

/** Every row of a table, straight from the emulator (not through the CLI under test). */
const allRows = async (entitySet: string, select: string): Promise<Array<Record<string, unknown>>> => {
  const rows: Array<Record<string, unknown>> = []
  let url: string | undefined = `${emulator.info.webApiUrl}${entitySet}?$select=${select}`
  while (url !== undefined) {
    const response: Response = await fetch(url, { headers: { Authorization: `Bearer ${emulator.info.accessToken}` } })
    const body = (await response.json()) as { value: Array<Record<string, unknown>>; "@odata.nextLink"?: string }
    for (const row of body.value) rows.push(row)
    url = body["@odata.nextLink"]
  }
  return rows
}

const writeJsonl = async (name: string, lines: ReadonlyArray<string>) => {
  const file = Path.join(dir, name)
  await Fs.writeFile(file, lines.join("\n") + "\n")
  return file
}

describe("dv-effect emulator", () => {
  it("prints the start contract as its first stdout line", () => {
    const { info } = emulator
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(info.webApiUrl).toBe(`${info.url}/api/data/v9.2/`)
    expect(info.accessToken.split(".")).toHaveLength(3)
    expect(info.tenantId).toMatch(/^[0-9a-f-]{36}$/)
    expect(info.clientId).toMatch(/^[0-9a-f-]{36}$/)
    expect(info.authority).toBe(`${String(info.authority).split("/").slice(0, 3).join("/")}/${info.tenantId}`)
    expect(String(info.authority)).toMatch(/^https:\/\/127\.0\.0\.1:\d+\//)
    expect(typeof info.clientSecret).toBe("string")
    expect(typeof info.caFile).toBe("string")
    const claims = JSON.parse(Buffer.from(info.accessToken.split(".")[1]!, "base64url").toString())
    expect(claims.exp - Date.now() / 1000).toBeGreaterThan(12 * 3600)
    expect(claims.aud).toBe(info.url)
  })

  it("answers WhoAmI for that token and 401 in Dataverse's format for another", async () => {
    const ok = await api("WhoAmI")
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { UserId: string }).UserId).toBe(emulator.info.userId)
    const refused = await api("WhoAmI", "wrong")
    expect(refused.status).toBe(401)
    const body = (await refused.json()) as { error: Record<string, unknown> }
    expect(Object.keys(body.error).sort()).toEqual(["code", "message"])
  })

  it("exits 0 on SIGINT and on SIGTERM", async () => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      const other = await startEmulator()
      expect(await other.stop(signal)).toBe(0)
    }
  })

  it("registers --users n application users, listed in the start line, each token working with whoami", async () => {
    const several = await startEmulator(["--users", "3"])
    try {
      const users = several.info["users"] as ReadonlyArray<
        { userId: string; clientId: string; clientSecret: string; accessToken: string }
      >
      expect(users).toHaveLength(3)
      expect(users[0]).toEqual({
        userId: several.info.userId,
        clientId: several.info["clientId"],
        clientSecret: several.info["clientSecret"],
        accessToken: several.info.accessToken
      })
      for (const field of ["userId", "clientId", "clientSecret", "accessToken"] as const) {
        expect(new Set(users.map((user) => user[field])).size).toBe(3)
      }
      for (const user of users) {
        const result = await run(["whoami", "--url", several.info.url, "--access-token", user.accessToken])
        expect(result.code).toBe(0)
        expect(JSON.parse(result.stdout).UserId).toBe(user.userId)
      }
    } finally {
      await several.stop()
    }
    const none = await run(["emulator", "--users", "0"])
    expect(none.code).toBe(1)
    expect(none.stderr.trim()).toBe("dv-effect: --users must be a positive whole number, got 0.")
  })

  it("refuses a port out of range with one clear line", async () => {
    const result = await run(["emulator", "--port", "70000"])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe("dv-effect: --port must be from 0 to 65535, got 70000.")
    expect(result.stdout).toBe("")
  })
})

describe("dv-effect whoami", () => {
  it("works with flags and with environment variables, and never prints the token", async () => {
    const withFlags = await run(["whoami", ...connection, "--verbose"])
    expect(withFlags.code).toBe(0)
    expect(JSON.parse(withFlags.stdout)).toMatchObject({ url: emulator.info.url, UserId: emulator.info.userId })
    const withEnv = await run(["whoami"], {
      env: { DATAVERSE_URL: emulator.info.webApiUrl, DATAVERSE_ACCESS_TOKEN: emulator.info.accessToken }
    })
    expect(withEnv.code).toBe(0)
    expect(JSON.parse(withEnv.stdout).UserId).toBe(emulator.info.userId)
    for (const output of [withFlags.stdout, withFlags.stderr, withEnv.stdout, withEnv.stderr]) {
      expect(output).not.toContain(emulator.info.accessToken)
    }
  })

  it("fails with one line when the URL or the token is missing or refused", async () => {
    const noUrl = await run(["whoami"])
    expect(noUrl.code).toBe(1)
    expect(noUrl.stderr.trim()).toBe(
      "dv-effect: No Dataverse URL: pass --url <org url> or set DATAVERSE_URL (or use --emulator or --connection-string)."
    )
    // An empty variable (DATAVERSE_URL= in a shell or an .env file) is no URL, not a bad one.
    const emptyUrl = await run(["whoami"], { env: { DATAVERSE_URL: "" } })
    expect([emptyUrl.code, emptyUrl.stderr]).toEqual([1, noUrl.stderr])
    const noToken = await run(["whoami", "--url", emulator.info.url])
    expect(noToken.code).toBe(1)
    expect(noToken.stderr).toContain("--access-token")
    const refused = await run(["whoami", "--url", emulator.info.url, "--access-token", "forged-secret-4711"])
    expect(refused.code).toBe(1)
    expect(refused.stderr.trim().split("\n")).toHaveLength(1)
    expect(refused.stderr).toContain("not authenticated")
    // Even the full detail of a failure never shows the token.
    const verbose = await run([
      "whoami",
      "--url",
      emulator.info.url,
      "--access-token",
      "forged-secret-4711",
      "--verbose"
    ])
    expect(verbose.code).toBe(1)
    expect(verbose.stderr).toContain("DataverseError")
    expect(verbose.stdout + verbose.stderr).not.toContain("forged-secret-4711")
    const unreachable = await run(["whoami", "--url", "http://127.0.0.1:1", "--access-token", "t"])
    expect(unreachable.code).toBe(1)
    expect(unreachable.stderr.trim()).toBe("dv-effect: Cannot reach 127.0.0.1:1: connection refused (ECONNREFUSED).")
  })
})

describe("dv-effect whoami with every sign-in flow, against the emulator's identity endpoint", () => {
  const identity = () => [
    "--url",
    emulator.info.url,
    "--authority",
    String(emulator.info.authority),
    "--ca-file",
    String(emulator.info.caFile)
  ]
  const secrets = () => [emulator.info.accessToken, String(emulator.info.clientSecret), String(emulator.info.password)]
  const expectNoSecrets = (result: { stdout: string; stderr: string }) => {
    for (const value of secrets()) expect(result.stdout + result.stderr).not.toContain(value)
  }

  it("client secret from AZURE_CLIENT_SECRET with --tenant-id and --client-id", async () => {
    const result = await run(
      [
        "whoami",
        ...identity(),
        "--tenant-id",
        String(emulator.info.tenantId),
        "--client-id",
        String(emulator.info.clientId),
        "--verbose"
      ],
      { env: { AZURE_CLIENT_SECRET: String(emulator.info.clientSecret) } }
    )
    expect(result.stderr).not.toContain("dv-effect:")
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout).UserId).toBe(emulator.info.userId)
    expectNoSecrets(result)
  })

  it("username with the password from DATAVERSE_PASSWORD, and device code with its prompt on stderr", async () => {
    const config = await Fs.mkdtemp(Path.join(dir, "config-"))
    const user = await run([
      "whoami",
      ...identity(),
      "--client-id",
      String(emulator.info.publicClientId),
      "--username",
      String(emulator.info.username)
    ], {
      env: { DATAVERSE_PASSWORD: String(emulator.info.password), DV_EFFECT_CONFIG_DIR: Path.join(config, "dv-effect") }
    })
    expect(user.code).toBe(0)
    const userId = JSON.parse(user.stdout).UserId
    expect(userId).not.toBe(emulator.info.userId)
    await Fs.rm(Path.join(config, "dv-effect"), { recursive: true, force: true })
    const device = await run([
      "whoami",
      ...identity(),
      "--client-id",
      String(emulator.info.publicClientId),
      "--device-code"
    ], {
      env: { DV_EFFECT_CONFIG_DIR: Path.join(config, "dv-effect") }
    })
    expect(device.code).toBe(0)
    expect(device.stderr).toMatch(/enter the code/i)
    expect(JSON.parse(device.stdout).UserId).toBe(userId)
    expect((await Fs.stat(Path.join(config, "dv-effect", "tokens.json"))).mode & 0o777).toBe(0o600)
    expectNoSecrets(user)
    expectNoSecrets(device)
  })

  it("a connection string, with the tenant discovered from the org", async () => {
    const connectionString =
      `AuthType=ClientSecret;Url=${emulator.info.url};ClientId=${emulator.info.clientId};ClientSecret=${emulator.info.clientSecret}`
    const result = await run(["whoami", "--ca-file", String(emulator.info.caFile), "--verbose"], {
      env: { DATAVERSE_CONNECTION_STRING: connectionString }
    })
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout).UserId).toBe(emulator.info.userId)
    expectNoSecrets(result)
  })

  it("a wrong secret fails with one line naming the Entra error, without the secret", async () => {
    const result = await run(
      [
        "whoami",
        ...identity(),
        "--tenant-id",
        String(emulator.info.tenantId),
        "--client-id",
        String(emulator.info.clientId),
        "--verbose"
      ],
      { env: { AZURE_CLIENT_SECRET: "not-the-secret-0815" } }
    )
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^dv-effect: Sign-in with a client secret failed \(invalid_client\): AADSTS7000215/m)
    expect(result.stdout + result.stderr).not.toContain("not-the-secret-0815")
  })
})

describe("dv-effect create and query", () => {
  // The tests share one emulator process; each keeps its rows apart by an email domain of its own.
  it("creates 2,500 rows from a JSONL file and reads back the same ids and values", async () => {
    const rows = Array.from({ length: 2500 }, (_, i) => ({
      contactid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
      firstname: `First${i}`,
      lastname: `Last${i}`,
      emailaddress1: `person${i}@bulk.example.com`,
      creditlimit: i * 10,
      donotemail: i % 2 === 0
    }))
    const file = await writeJsonl("contacts.jsonl", rows.map((row) => JSON.stringify(row)))
    const created = await run([
      "create",
      "contact",
      "--file",
      file,
      "--chunk-size",
      "200",
      "--concurrency",
      "4",
      "-o",
      "json",
      ...connection
    ])
    expect(created.stderr).not.toContain("dv-effect:")
    expect(created.code).toBe(0)
    const summary = JSON.parse(created.stdout)
    // 13 CreateMultiple requests of up to 200 rows; the table's metadata is fetched before counting.
    expect(summary).toMatchObject({
      table: "contact",
      total: 2500,
      created: 2500,
      failed: 0,
      requests: 13,
      throttled: 0
    })

    const stored = (await allRows("contacts", "firstname,lastname,emailaddress1,creditlimit,donotemail"))
      .filter((row) => String(row.emailaddress1).endsWith("@bulk.example.com"))
    expect(stored).toHaveLength(2500)
    const byId = new Map(stored.map((row) => [row.contactid, row]))
    for (const row of rows) expect(byId.get(row.contactid)).toMatchObject(row)

    const queried = await run([
      "query",
      "contact",
      "--select",
      "contactid,firstname,lastname,emailaddress1,creditlimit,donotemail",
      "--page-size",
      "1000",
      ...connection
    ])
    expect(queried.code).toBe(0)
    const lines = queried.stdout.trim().split("\n").map((line) => JSON.parse(line))
    const mine = lines.filter((row) => String(row.emailaddress1).endsWith("@bulk.example.com"))
    // Chunks run concurrently, so the server's insertion order is not the file's.
    const byContactId = (a: { contactid: string }, b: { contactid: string }) => a.contactid.localeCompare(b.contactid)
    expect(mine.sort(byContactId)).toEqual(rows)
    expect(queried.stdout).not.toContain("@odata.etag")
  })

  it("writes a JSON array with -o json and honours --top", async () => {
    const result = await run(["query", "contact", "--select", "lastname", "--top", "7", "-o", "json", ...connection])
    expect(result.code).toBe(0)
    const rows = JSON.parse(result.stdout)
    expect(rows).toHaveLength(7)
    expect(Object.keys(rows[0]).sort()).toEqual(["contactid", "lastname"])
  })

  it("reads rows from stdin", async () => {
    const stdin = [
      "{\"lastname\":\"Piped1\",\"emailaddress1\":\"a@stdin.example.com\"}",
      "",
      "{\"lastname\":\"Piped2\",\"emailaddress1\":\"b@stdin.example.com\"}"
    ].join("\n")
    const result = await run(["create", "contact", ...connection], { stdin })
    expect(result.code).toBe(0)
    expect(result.stderr).toContain("Created 2 of 2 contact rows")
    const stored = (await allRows("contacts", "lastname,emailaddress1")).filter((row) =>
      String(row.emailaddress1).endsWith("@stdin.example.com")
    )
    expect(stored.map((row) => row.lastname).sort()).toEqual(["Piped1", "Piped2"])
  })

  it("names a malformed line, keeps going, lands every good row and exits 2", async () => {
    const file = await writeJsonl("broken.jsonl", [
      "{\"lastname\":\"Good1\",\"emailaddress1\":\"1@broken.example.com\"}",
      "",
      "{\"lastname\":\"Good2\",\"emailaddress1\":\"2@broken.example.com\"}",
      "{\"lastname\": \"Bad\", ",
      "[1,2,3]",
      "{\"lastname\":\"Good3\",\"emailaddress1\":\"3@broken.example.com\"}"
    ])
    const result = await run(["create", "contact", "--file", file, "--chunk-size", "1", ...connection])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^line 4: not valid JSON \(.+\)$/m)
    expect(result.stderr).toMatch(/^line 5: expected a JSON object, got an array$/m)
    expect(result.stderr).toContain("Created 3 of 5 contact rows")
    const stored = (await allRows("contacts", "lastname,emailaddress1")).filter((row) =>
      String(row.emailaddress1).endsWith("@broken.example.com")
    )
    expect(stored.map((row) => row.lastname).sort()).toEqual(["Good1", "Good2", "Good3"])
  })

  it("reports rows refused before sending and rows the service refuses, with their line and code", async () => {
    const taken = "00000000-0000-4000-8000-00000000abcd"
    const file = await writeJsonl("refused.jsonl", [
      `{"contactid":"${taken}","lastname":"Fine","emailaddress1":"1@refused.example.com"}`,
      `{"lastname":"${"x".repeat(51)}","emailaddress1":"2@refused.example.com"}`,
      `{"contactid":"${taken}","lastname":"Again","emailaddress1":"3@refused.example.com"}`
    ])
    const result = await run(["create", "contact", "--file", file, "--chunk-size", "5", ...connection])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^line 2: column 'lastname' is 51 characters long; the most is 50$/m)
    // The same id twice in one run goes in a later pass, where the service refuses it.
    expect(result.stderr).toMatch(
      new RegExp(`^line 3: .*already exists.* \\[0x80040237\\] \\(the row's key values: contactid=${taken}\\)$`, "m")
    )
    expect(result.stderr).toContain("Created 1 of 3 contact rows")
  })

  it("fails with one clear line for an unknown table, a missing file and bad flags", async () => {
    const file = await writeJsonl("one.jsonl", ["{\"name\":\"x\"}"])
    const table = await run(["create", "nosuchtable", "--file", file, ...connection])
    expect(table.code).toBe(1)
    expect(table.stderr.trim()).toBe(
      "dv-effect: Table 'nosuchtable' does not exist in this environment (tables are named by logical name, e.g. 'contact')."
    )
    const query = await run(["query", "nosuchtable", ...connection])
    expect(query.code).toBe(1)
    expect(query.stderr).toContain("Table 'nosuchtable' does not exist")
    const missing = await run(["create", "contact", "--file", Path.join(dir, "nope.jsonl"), ...connection])
    expect(missing.code).toBe(1)
    expect(missing.stderr.trim()).toBe(`dv-effect: Cannot read --file ${Path.join(dir, "nope.jsonl")}: no such file`)
    const concurrency = await run(["create", "contact", "--file", file, "--concurrency", "lots", ...connection])
    expect(concurrency.code).toBe(1)
    expect(concurrency.stderr).toContain("--concurrency must be 'auto' or a whole number")
    for (const result of [table, query, missing, concurrency]) expect(result.stderr).not.toContain("    at ")
  })
})

describe("dv-effect demo and help", () => {
  it("runs the demo on an in-process emulator and prints the summary", async () => {
    const result = await run(["demo", "--rows", "1500", "--accounts", "20"])
    expect(result.stderr).not.toContain("dv-effect:")
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/contacts created\s+1500 of 1500 \(0 failed\)/)
    expect(result.stdout).toMatch(/accounts created\s+20 of 20 \(0 failed\)/)
    expect(result.stdout).toMatch(/contacts read back\s+1500 in/)
    expect(result.stdout).toMatch(/contact rows\/s\s+\d+/)
    expect(result.stdout).toMatch(/throttled \(429\)\s+0/)
    expect(result.stdout.match(/^ {2}\S.*@example\.com/gm)).toHaveLength(5)
  })

  it("prints help with every command", async () => {
    const result = await run(["--help"])
    expect(result.code).toBe(0)
    const commands = [
      "emulator",
      "demo",
      "auth",
      "whoami",
      "tables",
      "metadata",
      "typegen",
      "query",
      "create",
      "update",
      "upsert",
      "delete"
    ]
    for (const command of commands) expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"))
    const bare = await run([])
    expect(bare.stdout).toBe(result.stdout)
    // Each command's own help has its flags and examples.
    const create = await run(["create", "--help"])
    expect(create.code).toBe(0)
    expect(create.stdout).toContain("--journal")
    expect(create.stdout).toContain("EXAMPLES")
  })
})

/**
 * Run failures through the CLI (issue 13): a failure of the run, not of a row, stops the import
 * within seconds with exit 1 and one last stderr line naming the cause and the resume command; no
 * row of it is in the rejects file or finished in the journal; and `--resume` (same input, same
 * --journal) lands every row exactly once. A row fails only for its own fault: all rows here are
 * valid, so any row in a rejects file is a run failure blamed on a row.
 *
 * 1. A static --access-token that expires midway: exit 1, then a resume with a fresh token.
 * 2. A client secret (msal, the emulator's identity endpoint) whose tokens expire midway: the
 *    credential refreshes and the run completes (exit 0).
 * 3. The identity endpoint down while a token must be refreshed: exit 1 naming the sign-in; with
 *    the endpoint back, the resume completes.
 * 4. The emulator (a child process with --data-dir) killed with SIGKILL and restarted on its port
 *    mid-run: the run rides through or stops with exit 1; one resume at most completes it. (The
 *    restarted emulator signs tokens with a new key, so the CLI's static token is refused: exit 1,
 *    and the resume runs with the new start contract's token.)
 * 5. The emulator killed and left down until the CLI exits: exit 1 naming the unreachable
 *    service; restarted with its data, the resume completes.
 * 6. Ctrl-C (SIGINT): exit 130 and "Stopped: N rows finished; M more were in requests without an
 *    answer and may have landed." (no second clause when M is 0); the store holds between N and
 *    N + M rows; with --journal the resume completes, and with --no-journal nothing more is
 *    promised.
 *
 * "Midway" is a condition, not a clock: the CLI is frozen (SIGSTOP) once rows have landed, the
 * token is left to expire (or the service to die) while it is frozen, and it goes on (SIGCONT)
 * from there, so a verdict never depends on how fast the machine is.
 *
 * The emulator journals its data once a second (README, "The emulator": a kill -9 loses at most the
 * last second of writes): it may forget writes it has already answered, which the service never
 * does and no client can make up for. So before killing it the test waits, with the CLI frozen,
 * until its data directory holds every record it stored; the CLI still meets a dead connection for
 * every request it had in flight, and the rows of those requests are committed but unanswered.
 *
 * Emulator test controls used: `identityTokenLifetimeSeconds` (short-lived tokens from the identity
 * endpoint) and `identity.setAvailable(false)` (the identity endpoint down, the Web API up).
 */
import * as Emulator from "@dv-effect/emulator/Emulator"
import * as Model from "@dv-effect/emulator/Model"
import * as Fs from "node:fs"
import * as Https from "node:https"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type Exit, type StartedEmulator, startEmulator } from "./support/cli.js"
import {
  type Cli,
  exitWithin,
  expectKilled,
  freeze,
  importArgs,
  interrupt,
  journalReaches,
  killAfterTest,
  readJournal,
  runCli,
  startCli,
  thaw,
  waitFor
} from "./support/reliability.js"

// -------------------------------------------------------------------------------------------------
// Inputs, outputs and the store

/** Everything this file writes: inputs, journals, rejects and data directories. */
const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-run-failures-"))
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

/** A fresh directory under `root`. */
const tempDir = (prefix: string) => Fs.mkdtempSync(Path.join(root, prefix))

/** `count` valid contacts named `<prefix><i>`, as a JSON lines file. */
const writeRows = (dir: string, prefix: string, count: number) => {
  const path = Path.join(dir, `${prefix}rows.jsonl`)
  const lines = Array.from(
    { length: count },
    (_, i) =>
      JSON.stringify({ lastname: `${prefix}${i}`, firstname: `F${i % 97}`, emailaddress1: `${prefix}${i}@x.example` })
  )
  Fs.writeFileSync(path, `${lines.join("\n")}\n`)
  return path
}

/** An import of `rowCount` rows named `<prefix><i>`, journalled to `<name>.journal`, rejecting to `<name>.rejects.jsonl`. */
interface Job {
  readonly prefix: string
  readonly rowCount: number
  readonly journal: string
  readonly rejects: string
  /** The command, without `--resume`. */
  readonly args: ReadonlyArray<string>
}

const newJob = (
  dir: string,
  name: string,
  prefix: string,
  rowCount: number,
  options: { readonly chunkSize?: number; readonly concurrency?: number; readonly extraArgs?: ReadonlyArray<string> } =
    {}
): Job => {
  const source = writeRows(dir, prefix, rowCount)
  const journal = Path.join(dir, `${name}.journal`)
  const rejects = Path.join(dir, `${name}.rejects.jsonl`)
  const args = importArgs(source, journal, rejects, options.chunkSize, options.concurrency)
  return { prefix, rowCount, journal, rejects, args: [...args, ...(options.extraArgs ?? [])] }
}

/** The connection to an emulator, as the CLI reads it from the environment. */
const connectionTo = (info: { readonly url: string; readonly accessToken: string }) => ({
  DATAVERSE_URL: info.url,
  DATAVERSE_ACCESS_TOKEN: info.accessToken
})

/** Every one of the `count` rows named `<prefix><i>` is stored exactly once, and no other row of the prefix. */
const expectEachOnce = (names: ReadonlyArray<string>, prefix: string, count: number) => {
  const seen = new Map<string, number>()
  for (const name of names) if (name.startsWith(prefix)) seen.set(name, (seen.get(name) ?? 0) + 1)
  const missing: Array<string> = []
  for (let i = 0; i < count; i++) if (!seen.has(`${prefix}${i}`)) missing.push(`${prefix}${i}`)
  const doubled = [...seen].filter(([, n]) => n > 1).map(([name, n]) => `${name} x${n}`)
  const unexpected = [...seen.keys()].filter((name) =>
    !/^\d+$/.test(name.slice(prefix.length)) ||
    Number(name.slice(prefix.length)) >= count
  )
  expect({ missing: missing.slice(0, 10), missingCount: missing.length, doubled, unexpected }).toEqual({
    missing: [],
    missingCount: 0,
    doubled: [],
    unexpected: []
  })
}

/** No row stored twice (a stopped run may have landed only part of them). */
const expectNoneTwice = (names: ReadonlyArray<string>, prefix: string) => {
  const mine = names.filter((name) => name.startsWith(prefix))
  expect(new Set(mine).size, "a row is stored twice").toBe(mine.length)
}

/** A run failure blames no row: the rejects file is absent or empty. */
const expectNoRejects = (path: string) => {
  const text = Fs.existsSync(path) ? Fs.readFileSync(path, "utf8").trim() : ""
  expect(text, "rows in the rejects file").toBe("")
}

const lastLine = (stderr: string) => stderr.trim().split("\n").at(-1) ?? ""

/**
 * How soon a run failure must stop the run once its cause is met. It takes a second or two here
 * (the old behaviour retried a 401 for about 150 s); 30 s leaves room for a loaded machine.
 */
const stopsWithinMs = 30_000

/**
 * The stop of a run failure: one last line that names the cause and says how to resume, and no
 * stack trace.
 */
const expectRunFailureLine = (stderr: string, journal: string, cause: RegExp) => {
  const last = lastLine(stderr)
  expect(last, stderr).toMatch(cause)
  // The line before it says what the run did.
  expect(stderr.trim().split("\n").at(-2), stderr).toMatch(/^Stopped: [\d,]+ rows? finished/)
  expect(last, stderr).toContain(`--journal ${journal} --resume`)
  expect(stderr.split("\n").filter((line) => line.includes("--resume")), stderr).toHaveLength(1)
  expect(stderr).not.toMatch(/\n\s+at /)
}

/**
 * A run failure whose cause was met at `since.at`: exit 1 within `stopsWithinMs`, its stop line
 * (`expectRunFailureLine`), and nothing in the rejects file.
 */
const expectRunFailureStop = (
  cli: Cli,
  exit: Exit,
  job: Job,
  cause: RegExp,
  since: { readonly at: number; readonly what: string }
) => {
  expect(exit.code, cli.stderr()).toBe(1)
  expect(Date.now() - since.at, `ms from ${since.what} to the stop`).toBeLessThan(stopsWithinMs)
  expectRunFailureLine(cli.stderr(), job.journal, cause)
  expectNoRejects(job.rejects)
}

/** After a run failure: nothing finished as failed, and every row finished as ok is stored. */
const expectJournalFinishedNoFailure = (journal: string, names: ReadonlyArray<string>, prefix: string) => {
  const view = readJournal(journal)
  expect([...view.failed], "rows journalled as failed by a run failure").toEqual([])
  const stored = new Set(names)
  const notStored = [...view.ok].filter((i) => !stored.has(`${prefix}${i}`))
  expect(notStored.slice(0, 10), "rows journalled as ok but not stored").toEqual([])
}

/** What a stopped run left (`landed`: the stored names): no row twice, and a journal as `expectJournalFinishedNoFailure` says. */
const expectStoppedPart = (landed: ReadonlyArray<string>, job: Job) => {
  expectNoneTwice(landed, job.prefix)
  expectJournalFinishedNoFailure(job.journal, landed, job.prefix)
}

/** `--resume` (with `env`): exit 0, nothing rejected, and then (`names`) every row stored once. */
const expectResumeLandsAll = async (
  job: Job,
  env: Record<string, string>,
  names: () => ReadonlyArray<string> | Promise<ReadonlyArray<string>>
) => {
  const resumed = await runCli([...job.args, "--resume"], env)
  expect(resumed.code, resumed.stderr).toBe(0)
  expectNoRejects(job.rejects)
  expectEachOnce(await names(), job.prefix, job.rowCount)
}

/** The `exp` of a JWT, in ms. */
const expiresAt = (token: string): number =>
  (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as { exp: number }).exp * 1000

/** Some latency, so that requests are in flight when the CLI is stopped and a run takes a while. */
const slow: Model.Profile = { ...Model.fast, latency: { baseMs: 20, perRecordMs: 0.3, perOperationMs: 0.3 } }

/** Stored `lastname`s of an in-process emulator. */
const namesIn = (emulator: Emulator.RunningEmulator) =>
  emulator.store.table("contact")!.scan().map((record) => String(record.values.lastname))

/** How many stored rows carry `prefix`. */
const countIn = (emulator: Emulator.RunningEmulator, prefix: string) => {
  let n = 0
  for (const record of emulator.store.table("contact")!.scan()) {
    if (String(record.values.lastname).startsWith(prefix)) n++
  }
  return n
}

/** Waits until the store stops changing: requests the CLI sent before it ended are all applied. */
const settled = async (emulator: Emulator.RunningEmulator) => {
  let previous = -1
  let same = 0
  await waitFor("the store to settle", () => {
    const now = emulator.store.table("contact")!.size
    same = now === previous ? same + 1 : 0
    previous = now
    return same >= 3
  }, { intervalMs: 50 })
}

/** After a stop, once the store has settled: fewer than all rows stored, as `expectStoppedPart` says. */
const expectStoppedIn = async (emulator: Emulator.RunningEmulator, job: Job) => {
  await settled(emulator)
  const landed = namesIn(emulator)
  expect(landed.length).toBeLessThan(job.rowCount)
  expectStoppedPart(landed, job)
}

/**
 * Freezes the CLI once rows of `prefix` have landed in `emulator`, runs `whileFrozen`, and lets it
 * go on once `done(frozenAt)` holds (`what`); returns when it went on, undefined when the run ended
 * before rows landed.
 */
const freezeMidway = async (
  cli: Cli,
  emulator: Emulator.RunningEmulator,
  prefix: string,
  what: string,
  done: (frozenAt: number) => boolean,
  whileFrozen: () => Promise<void> | void = () => {}
): Promise<number | undefined> => {
  const midway = await waitFor("rows to land", () => countIn(emulator, prefix) >= 100, { unless: cli.ended })
  if (!midway) return undefined
  freeze(cli)
  const frozenAt = Date.now()
  await whileFrozen()
  await waitFor(what, () => done(frozenAt), { intervalMs: 100 })
  return thaw(cli)
}

// -------------------------------------------------------------------------------------------------
// 1 and 6: a static token; Ctrl-C

describe("with a static token", () => {
  let emulator: Awaited<ReturnType<typeof Emulator.start>>
  let dir: string
  beforeAll(async () => {
    emulator = await Emulator.start({ identity: false, profile: slow })
    dir = tempDir("static-")
  })
  afterAll(() => emulator.close())
  beforeEach(() => emulator.reset())

  const rowCount = 3000

  it(
    "1. an --access-token that expires midway stops the run (exit 1, no rejects); a resume with a fresh token lands every row once",
    async () => {
      const job = newJob(dir, "expiry", "T1-", rowCount, { chunkSize: 50, concurrency: 2 })
      // Issued now, so that the CLI starts well within it: the run takes longer, since it is frozen
      // below until the token has expired.
      const token = await emulator.issueToken({ lifetimeSeconds: 5 })
      const connection = connectionTo({ url: emulator.info.url, accessToken: token })
      const cli = startCli(job.args, connection)
      // The token's `exp` is in whole seconds and the Web API allows no skew: a second past it.
      const continuedAt = await freezeMidway(
        cli,
        emulator,
        job.prefix,
        "the token to expire",
        () => Date.now() > expiresAt(token) + 1000
      ) ??
        // Else the token expired before the first rows landed (a loaded machine): the same failure, earlier.
        Date.now()
      const exit = await exitWithin(cli, 120_000, "the run with an expired token")
      expectRunFailureStop(cli, exit, job, /token|sign|401|unauthori[sz]ed|expired/i, {
        at: continuedAt,
        what: "the expiry"
      })
      await expectStoppedIn(emulator, job)

      const fresh = await emulator.issueToken()
      await expectResumeLandsAll(job, { ...connection, DATAVERSE_ACCESS_TOKEN: fresh }, () => namesIn(emulator))
    },
    240_000
  )

  /**
   * "Stopped: N rows finished; M more were in requests without an answer and may have landed."
   * (the second clause only when M > 0).
   */
  const stoppedCounts = (stderr: string) => {
    const match =
      /Stopped: ([\d,]+) rows? finished(?:; ([\d,]+) more were in requests without an answer and may have landed)?\./
        .exec(stderr)
    expect(match, stderr).not.toBeNull()
    const count = (text: string | undefined) => Number((text ?? "0").replace(/,/g, ""))
    return { finished: count(match![1]), inFlight: count(match![2]) }
  }

  /**
   * Ctrl-C once the stop point is `reached` (see `interrupt`; with the `journal`, if any): the store,
   * once settled, holds no row twice, and between the finished and the finished + in-flight rows of
   * the "Stopped:" line. Returns the stored names.
   */
  const interruptWithinCounts = async (cli: Cli, reached: boolean, prefix: string, journal?: string) => {
    expect(reached, `the run ended before the stop point: ${cli.stderr()}`).toBe(true)
    await interrupt(cli, { journal, timeoutMs: 60_000 })
    const { finished, inFlight } = stoppedCounts(cli.stderr())
    await settled(emulator)
    const landed = namesIn(emulator)
    expectNoneTwice(landed, prefix)
    expect(landed.length).toBeGreaterThanOrEqual(finished)
    expect(landed.length).toBeLessThanOrEqual(finished + inFlight)
    return landed
  }

  it(
    "6a. Ctrl-C with --journal: exit 130, the finished and in-flight rows bound the store, and the resume lands every row once",
    async () => {
      const job = newJob(dir, "int", "T6a-", rowCount)
      const connection = connectionTo(emulator.info)
      const cli = startCli(job.args, connection)
      const reached = await journalReaches(
        cli,
        job.journal,
        (view) => view.okLines >= 3 && view.inFlight,
        "3 finished chunks and a request in flight"
      )
      const landed = await interruptWithinCounts(cli, reached, job.prefix, job.journal)
      expect(landed.length).toBeLessThan(rowCount)
      expectJournalFinishedNoFailure(job.journal, landed, job.prefix)
      expectNoRejects(job.rejects)

      await expectResumeLandsAll(job, connection, () => namesIn(emulator))
    },
    240_000
  )

  it(
    "6b. Ctrl-C with --no-journal: exit 130, and the store holds between the finished and the finished + in-flight rows",
    async () => {
      const prefix = "T6b-"
      const source = writeRows(dir, prefix, rowCount)
      const cli = startCli(
        ["create", "contact", "-f", source, "--chunk-size", "100", "--concurrency", "4", "--no-journal"],
        connectionTo(emulator.info)
      )
      const reached = await waitFor("300 rows to land", () => countIn(emulator, prefix) >= 300, {
        unless: cli.ended,
        intervalMs: 2
      })
      await interruptWithinCounts(cli, reached, prefix)
    },
    240_000
  )
})

// -------------------------------------------------------------------------------------------------
// 2 and 3: a credential that refreshes

describe("with a client secret whose tokens live 2 seconds", () => {
  const lifetimeSeconds = 2
  let emulator: Awaited<ReturnType<typeof Emulator.start>>
  let dir: string
  beforeAll(async () => {
    emulator = await Emulator.start({ profile: slow, identityTokenLifetimeSeconds: lifetimeSeconds })
    dir = tempDir("secret-")
  })
  afterAll(() => emulator.close())
  beforeEach(() => {
    emulator.reset()
    emulator.identity!.setAvailable(true)
  })

  const rowCount = 2000
  const signIn = () => {
    const info = emulator.info
    return {
      args: [
        "--url",
        info.url,
        "--authority",
        info.authority!,
        "--ca-file",
        info.caFile!,
        "--tenant-id",
        info.tenantId,
        "--client-id",
        info.clientId
      ],
      env: { AZURE_CLIENT_SECRET: info.clientSecret! }
    }
  }

  /** The identity endpoint's answer to its OpenID configuration: a status, or "down" when the connection failed. */
  const probeIdentity = () =>
    new Promise<number | "down">((resolve) => {
      const request = Https.get(
        `${emulator.info.authority}/v2.0/.well-known/openid-configuration`,
        { ca: emulator.identity!.caPem, agent: false },
        (response) => {
          response.resume()
          resolve(response.statusCode ?? 0)
        }
      )
      request.on("error", () => resolve("down"))
    })

  /**
   * Freezes the CLI once rows have landed and until every token it holds has expired, running
   * `whileFrozen` meanwhile; returns when it let it go on (SIGCONT), undefined when the run ended
   * before rows landed.
   */
  const freezeUntilExpired = (cli: Cli, prefix: string, whileFrozen?: () => Promise<void> | void) =>
    // Every token it holds was issued before it was frozen.
    freezeMidway(
      cli,
      emulator,
      prefix,
      "its tokens to expire",
      (frozenAt) => Date.now() > frozenAt + (lifetimeSeconds + 1) * 1000,
      whileFrozen
    )

  it(
    "2. refreshes its token as it expires, and the run completes: exit 0, nothing rejected, every row once",
    async () => {
      const { args, env } = signIn()
      const job = newJob(dir, "refresh", "T2-", rowCount, { chunkSize: 50, concurrency: 2, extraArgs: args })
      const issuedBefore = emulator.identity!.counters.tokensIssued
      const cli = startCli(job.args, env)
      const continuedAt = await freezeUntilExpired(cli, job.prefix)
      const exit = await exitWithin(cli, 120_000, "the run with a refreshing credential")
      expect(exit.code, cli.stderr()).toBe(0)
      expect(continuedAt, "the run ended before its token expired").toBeDefined()
      expectNoRejects(job.rejects)
      expect(readJournal(job.journal).failed.size).toBe(0)
      // More than one token: it signed in again after the first one expired.
      expect(emulator.identity!.counters.tokensIssued - issuedBefore).toBeGreaterThan(1)
      expectEachOnce(namesIn(emulator), job.prefix, rowCount)
    },
    240_000
  )

  it(
    "3. the identity endpoint down when a token must be refreshed: exit 1 naming the sign-in; with it back, the resume lands every row once",
    async () => {
      const { args, env } = signIn()
      const job = newJob(dir, "down", "T3-", rowCount, { chunkSize: 50, concurrency: 2, extraArgs: args })
      expect(await probeIdentity()).toBe(200)
      const cli = startCli(job.args, env)
      const continuedAt = await freezeUntilExpired(cli, job.prefix, async () => {
        emulator.identity!.setAvailable(false)
        // The test control: the endpoint is down (the Web API is not).
        expect(await probeIdentity()).toBe("down")
      })
      if (continuedAt === undefined) expect.fail(`the run ended before rows landed: ${cli.stderr()}`)
      const exit = await exitWithin(cli, 150_000, "the run without its identity endpoint")
      expectRunFailureStop(cli, exit, job, /sign-in|sign in|signing in/i, { at: continuedAt, what: "the outage" })
      await expectStoppedIn(emulator, job)

      emulator.identity!.setAvailable(true)
      expect(await probeIdentity()).toBe(200)
      await expectResumeLandsAll(job, env, () => namesIn(emulator))
    },
    300_000
  )
})

// -------------------------------------------------------------------------------------------------
// 4 and 5: the emulator as a child process, killed

/** The `lastname`s a running emulator stores, read through its Web API. */
const namesVia = async (info: StartedEmulator["info"]): Promise<Array<string>> => {
  const names: Array<string> = []
  let url: string | undefined = `${info.webApiUrl}contacts?$select=lastname`
  while (url !== undefined) {
    const response = await fetch(url, {
      headers: {
        Authorization: `Bearer ${info.accessToken}`,
        Accept: "application/json",
        Prefer: "odata.maxpagesize=5000"
      }
    })
    expect(response.status).toBe(200)
    const page = (await response.json()) as { value: Array<{ lastname: string }>; "@odata.nextLink"?: string }
    for (const record of page.value) names.push(record.lastname)
    url = page["@odata.nextLink"]
  }
  return names
}

/** How many contacts the data directory holds (snapshot, then journal; a torn last line is skipped). */
const persistedContacts = (dataDir: string): number => {
  const ids = new Set<string>()
  for (const file of ["snapshot.jsonl", "journal.jsonl"]) {
    const path = Path.join(dataDir, file)
    if (!Fs.existsSync(path)) continue
    for (const line of Fs.readFileSync(path, "utf8").split("\n")) {
      let entry: { t?: string; op?: string; id?: string; r?: { id: string } }
      try {
        entry = JSON.parse(line)
      } catch {
        continue
      }
      if (entry.t !== "contact") continue
      if (entry.op === "delete") ids.delete(entry.id!)
      else ids.add(entry.r!.id)
    }
  }
  return ids.size
}

/**
 * Freezes the CLI mid-run, while the emulator holds a request it has applied and not answered yet
 * (a bulk request takes seconds there: see `profileFile`), and SIGKILLs the emulator once its data
 * directory holds every record it stored (the count held still across a poll: no request is being
 * applied). False when the run ended before the stop point.
 */
const freezeAndKill = async (cli: Cli, journal: string, running: StartedEmulator, dataDir: string) => {
  // The stored rows are read before the journal: rows stored beyond those it finished are in
  // requests without an answer (but for the moment between an answer and its journal line, which
  // `okLines >= 4`, past the first wave of four requests, makes unlikely to matter).
  const midway = await waitFor("stored rows whose request has no answer yet", async () => {
    const stored = (await namesVia(running.info)).length
    const view = readJournal(journal)
    return view.okLines >= 4 && stored > view.ok.size
  }, { unless: cli.ended, intervalMs: 50 })
  if (!midway) return false
  freeze(cli)
  let previous = -1
  await waitFor("the data directory to hold every stored record", async () => {
    const stored = (await namesVia(running.info)).length
    const steady = stored === previous && persistedContacts(dataDir) === stored
    previous = stored
    return steady
  }, { intervalMs: 100 })
  await expectKilled(running)
  return true
}

describe("the emulator killed mid-run (a child process with --data-dir)", () => {
  let dir: string
  let profileFile: string
  beforeAll(() => {
    dir = tempDir("killed-")
    profileFile = Path.join(dir, "profile.json")
    // A bulk request of 100 rows takes 4 s (applied when it arrives, answered at the end), other
    // requests 20 ms: the emulator is killed while it holds applied, unanswered requests.
    Fs.writeFileSync(
      profileFile,
      JSON.stringify({ extends: "fast", latency: { baseMs: 20, perRecordMs: 40, perOperationMs: 0.3 } })
    )
  })

  const rowCount = 1200

  /** Starts `dv-effect emulator --port <port> --data-dir <dataDir>` with `profileFile`. */
  const startEmulatorProcess = (port: number, dataDir: string) =>
    startEmulator(["--data-dir", dataDir, "--profile", profileFile], { port, spawned: killAfterTest })

  /**
   * Starts the emulator (its data in a fresh directory) and an import against it, and kills the
   * emulator midway (`freezeAndKill`): the CLI is left frozen. `restarted` starts the emulator
   * again on its port with its data, runs `body` against it, and stops it.
   */
  const importThenKill = async (name: string, prefix: string) => {
    const dataDir = tempDir("data-")
    const job = newJob(dir, name, prefix, rowCount)
    const first = await startEmulatorProcess(0, dataDir)
    const cli = startCli(job.args, connectionTo(first.info))
    expect(await freezeAndKill(cli, job.journal, first, dataDir), `the run ended first: ${cli.stderr()}`).toBe(true)
    const restarted = async (body: (second: StartedEmulator) => Promise<void>) => {
      const second = await startEmulatorProcess(first.port, dataDir)
      try {
        await body(second)
      } finally {
        await second.stop("SIGTERM")
      }
    }
    return { job, cli, restarted }
  }

  /** Against the restarted emulator: what the stop left, then a resume that lands every row once. */
  const expectStoppedThenResumed = async (job: Job, second: StartedEmulator) => {
    expectStoppedPart(await namesVia(second.info), job)
    await expectResumeLandsAll(job, connectionTo(second.info), () => namesVia(second.info))
  }

  it(
    "4. killed with SIGKILL and restarted on its port: the run rides through or stops with exit 1, and at most one resume lands every row once",
    async () => {
      const { cli, job, restarted } = await importThenKill("restart", "T4-")
      // Restarted on the same port, with its data, before the CLI goes on. Its tokens are signed with
      // a new key: the CLI's static token is refused now, and a stop with exit 1 is the expected end.
      await restarted(async (second) => {
        const continuedAt = thaw(cli)
        const exit = await exitWithin(cli, 180_000, "the run across the restart")
        expect([0, 1], cli.stderr()).toContain(exit.code)
        if (exit.code === 1) {
          expectRunFailureStop(cli, exit, job, /./, { at: continuedAt, what: "the restart" })
          await expectStoppedThenResumed(job, second)
        } else {
          // It rode through.
          expectNoRejects(job.rejects)
          expectEachOnce(await namesVia(second.info), job.prefix, rowCount)
        }
      })
    },
    300_000
  )

  it(
    "5. killed and left down: exit 1 naming the unreachable service and the resume; restarted with its data, the resume lands every row once",
    async () => {
      const { cli, job, restarted } = await importThenKill("down", "T5-")
      const continuedAt = thaw(cli)
      const exit = await exitWithin(cli, 240_000, "the run without its service")
      // Retries are spent first: a few seconds (an unreachable host gets a short retry budget).
      expectRunFailureStop(
        cli,
        exit,
        job,
        /unreachable|not reachable|cannot reach|could not reach|could not connect|cannot connect|refused/i,
        { at: continuedAt, what: "the outage" }
      )
      expect(readJournal(job.journal).failed.size, "rows journalled as failed by an outage").toBe(0)

      await restarted((second) => expectStoppedThenResumed(job, second))
    },
    300_000
  )
})

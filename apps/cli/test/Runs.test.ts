import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Runs from "../src/Runs.js"

const job: Runs.JobName = {
  url: "https://contoso.crm.dynamics.com",
  operation: "create",
  table: "contact",
  input: "/data/contacts.csv",
  key: undefined,
  partition: undefined
}

describe("the default journal", () => {
  it("lives in XDG_STATE_HOME when it is absolute, else in ~/.local/state", () => {
    expect(Runs.runsDir({ XDG_STATE_HOME: "/var/state" })).toBe("/var/state/dv-effect/runs")
    const home = Path.join(Os.homedir(), ".local", "state", "dv-effect", "runs")
    expect(Runs.runsDir({})).toBe(home)
    expect(Runs.runsDir({ XDG_STATE_HOME: "relative/state" })).toBe(home)
  })

  it("is named from the job: the same job finds it again, another job does not", () => {
    const name = Runs.journalName(job)
    expect(name).toMatch(/^create-contact-[0-9a-f]{12}\.journal$/)
    expect(Runs.journalName({ ...job, url: "https://CONTOSO.crm.dynamics.com/" })).toBe(name)
    const others = [
      { ...job, url: "https://fabrikam.crm.dynamics.com" },
      { ...job, operation: "upsert" },
      { ...job, table: "account" },
      { ...job, input: "-" },
      { ...job, key: ["emailaddress1"] },
      { ...job, partition: "1/2" }
    ].map(Runs.journalName)
    expect(new Set([name, ...others]).size).toBe(7)
  })

  it("tells what a journal file records: entries after the header, rows finished", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-runs-"))
    try {
      const path = Path.join(dir, "a.journal")
      expect(Effect.runSync(Runs.inspectJournal(path))).toEqual({ exists: false, entries: 0, finished: 0 })
      Fs.writeFileSync(
        path,
        "{\"journal\":\"dv-effect\",\"operation\":\"create\",\"table\":\"contact\"}\n{\"inputHead\":\"8:0a1b\"}\n"
      )
      const job = { operation: "create", table: "contact", input: undefined }
      // The input's fingerprint is no row's entry: a run that stopped there sent nothing.
      expect(Effect.runSync(Runs.inspectJournal(path))).toEqual({ exists: true, job, entries: 0, finished: 0 })
      Fs.appendFileSync(path, "{\"sent\":[[0,9]]}\n{\"ok\":[[0,6]],\"failed\":[[7,7],[9,9]]}\n{\"sent\":[[10,")
      expect(Effect.runSync(Runs.inspectJournal(path))).toEqual({ exists: true, job, entries: 3, finished: 9 })
      // A header torn by a kill, or another file, names no job.
      Fs.writeFileSync(path, "{\"journal\":\"dv-ef")
      expect(Effect.runSync(Runs.inspectJournal(path)).job).toBeUndefined()
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("the resume command", () => {
  it("is the user's command with --journal and --resume, quoted for a shell", () => {
    expect(
      Runs.resumeCommand(
        ["create", "contact", "-f", "my rows.csv", "--journal", "old.journal", "--chunk-size", "50"],
        "/s/j.journal"
      )
    ).toEqual({
      command: "dv-effect create contact -f 'my rows.csv' --chunk-size 50 --journal /s/j.journal --resume",
      secretsLeftOut: false
    })
    expect(Runs.resumeCommand(["delete", "contact", "--resume", "--journal=a b.journal"], "a b.journal").command).toBe(
      "dv-effect delete contact --journal 'a b.journal' --resume"
    )
  })

  it("never repeats a secret", () => {
    const { command, secretsLeftOut } = Runs.resumeCommand(
      [
        "create",
        "contact",
        "--access-token",
        "eyJsecret",
        "--connection-string=AuthType=ClientSecret;ClientSecret=s3cret",
        "--url",
        "https://contoso.crm.dynamics.com"
      ],
      "/j"
    )
    expect(command).toBe("dv-effect create contact --url https://contoso.crm.dynamics.com --journal /j --resume")
    expect(secretsLeftOut).toBe(true)
    expect(Runs.resumeHint({ journal: "/j", argv: ["create", "contact", "--access-token", "t"], stdin: true })).toBe(
      "Resume with: dv-effect create contact --journal /j --resume (with the same sign-in, with the same rows, in the same order, on stdin)"
    )
    expect(Runs.resumeHint({ journal: undefined, argv: [], stdin: false })).toBe(
      "Without a journal a new run sends every row again."
    )
  })

  it("quotes what a POSIX shell would change, on one line", () => {
    expect(Runs.shellQuote("plain/path-1.csv")).toBe("plain/path-1.csv")
    expect(Runs.shellQuote("")).toBe("''")
    expect(Runs.shellQuote("it's $HOME")).toBe("'it'\\''s $HOME'")
    expect(Runs.shellQuote("lastname eq 'x'")).toBe("'lastname eq '\\''x'\\'''")
    expect(Runs.shellQuote("a\nb")).toBe("$'a\\nb'")
    expect(Runs.withHint("The token expired.\nmore", "Resume with: x")).toBe("The token expired. Resume with: x")
    expect(Runs.withHint("No answer", "Resume with: x")).toBe("No answer. Resume with: x")
  })
})

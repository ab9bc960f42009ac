import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { binPath, run } from "./support/cli.js"

const escape = String.fromCharCode(27)

/** One line on stderr, prefixed `dv-effect:`, exit code 1, nothing on stdout. */
const expectUsageError = async (args: ReadonlyArray<string>, line: string) => {
  const result = await run(args)
  expect(result.stderr).toBe(`dv-effect: ${line}\n`)
  expect(result.stdout).toBe("")
  expect(result.code).toBe(1)
}

describe("dv-effect usage errors", () => {
  it("a value not among a flag's choices names the flag and its values", async () => {
    await expectUsageError(
      ["create", "contact", "--strategy", "fast"],
      "--strategy must be one of auto, multiple, batch, single, got 'fast'."
    )
    await expectUsageError(
      ["create", "contact", "--strategy=fast"],
      "--strategy must be one of auto, multiple, batch, single, got 'fast'."
    )
    await expectUsageError(["query", "contact", "-o", "xml"], "--output must be one of jsonl, json, csv, got 'xml'.")
    await expectUsageError(["query", "contact", "--top", "abc"], "--top must be a whole number, got 'abc'.")
    await expectUsageError(["--completions", "tcsh"], "--completions must be one of sh, bash, fish, zsh, got 'tcsh'.")
  })

  it("a choice in another case, begun or misspelt names the one meant", async () => {
    await expectUsageError(
      ["query", "contact", "-o", "CSV"],
      "--output must be one of jsonl, json, csv, got 'CSV'; did you mean 'csv'?"
    )
    await expectUsageError(
      ["create", "contact", "--strategy", "multi"],
      "--strategy must be one of auto, multiple, batch, single, got 'multi'; did you mean 'multiple'?"
    )
    await expectUsageError(
      ["query", "contact", "--output=jsnl"],
      "--output must be one of jsonl, json, csv, got 'jsnl'; did you mean 'jsonl'?"
    )
    await expectUsageError(
      ["create", "contact", "-f", "unread.csv", "--bypass", "snyc", "--emulator"],
      "--bypass takes sync, async or sync,async, got 'snyc'; did you mean 'sync'?"
    )
  })

  it("an unknown flag suggests the closest known one", async () => {
    await expectUsageError(
      ["create", "contact", "--concurency", "4"],
      "Unknown flag --concurency for create; did you mean --concurrency?"
    )
    await expectUsageError(
      ["auth", "login", "--name", "x", "--device-cod"],
      "Unknown flag --device-cod for auth login; did you mean --device-code?"
    )
    await expectUsageError(
      ["whoami", "--bogus-flag"],
      "Unknown flag --bogus-flag for whoami; see dv-effect whoami --help."
    )
    // Where a command takes a positional argument, a misspelt flag is not read as that argument.
    await expectUsageError(["auth", "logout", "--al"], "Unknown flag --al for auth logout; did you mean --all?")
    await expectUsageError(
      ["auth", "select", "--verbos"],
      "Unknown flag --verbos for auth select; did you mean --verbose?"
    )
    await expectUsageError(
      ["query", "--selct", "lastname", "contact"],
      "Unknown flag --selct for query; did you mean --select?"
    )
  })

  it("an unknown command suggests the closest known one, or lists them", async () => {
    await expectUsageError(["creat", "contact"], "Unknown command 'creat'; did you mean create?")
    await expectUsageError(["auth", "logn"], "Unknown command 'auth logn'; did you mean auth login?")
    await expectUsageError(
      ["frobnicate"],
      "Unknown command 'frobnicate'; the commands are: emulator, demo, auth, whoami, tables, metadata, query, create, update, upsert, delete, typegen, schema."
    )
  })

  it("a missing value, argument or flag, and an extra argument, name what is missing", async () => {
    await expectUsageError(
      ["create", "contact", "--strategy"],
      "--strategy needs a value: one of auto, multiple, batch, single."
    )
    await expectUsageError(["whoami", "--profile"], "--profile needs a value; see dv-effect whoami --help.")
    await expectUsageError(["auth", "select"], "auth select needs <name>; see dv-effect auth select --help.")
    await expectUsageError(["auth", "login"], "auth login needs --name; see dv-effect auth login --help.")
    await expectUsageError(
      ["create", "contact", "extra"],
      "Unexpected argument 'extra' for create (it takes <table>); see dv-effect create --help."
    )
    await expectUsageError(
      ["create", "contact", "--key", "a", "--key", "b"],
      "--key is given more than once; give it once."
    )
  })

  it("--help still works, as plain text when stdout is not a terminal", async () => {
    for (const args of [["create", "--help"], ["auth", "login", "--help"], ["query", "-h"]]) {
      const help = await run(args)
      expect(help.code).toBe(0)
      expect(help.stderr).toBe("")
      expect(help.stdout).toContain("USAGE")
      expect(help.stdout).toContain("EXAMPLES")
      expect(help.stdout).not.toContain(escape)
    }
    const overview = await run(["--help"])
    expect(overview.code).toBe(0)
    expect(overview.stdout).not.toContain(escape)
  })

  // util-linux `script` gives the CLI a terminal; without it (macOS, Windows) this test is skipped.
  const hasScript = process.platform === "linux" && spawnSync("script", ["--version"]).status === 0
  it.skipIf(!hasScript)("help on a terminal is in colour, unless NO_COLOR is set", () => {
    const onTerminal = (env: Record<string, string | undefined>) => {
      const command = `'${process.execPath}' '${binPath}' create --help`
      const result = spawnSync("script", ["-qec", command, "/dev/null"], {
        env: { ...process.env, ...env },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"]
      })
      expect(result.status).toBe(0)
      return result.stdout
    }
    expect(onTerminal({ NO_COLOR: undefined })).toContain(escape)
    const plain = onTerminal({ NO_COLOR: "1" })
    expect(plain).toContain("USAGE")
    expect(plain).not.toContain(escape)
  })
})

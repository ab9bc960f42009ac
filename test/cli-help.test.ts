/**
 * Each command's `--help`: real descriptions, a `dv-effect` usage line, every flag the command
 * accepts (as @effect/cli's own usage of its definition lists them), examples last; and
 * `--wizard`, which without a terminal refuses at once instead of waiting on a prompt.
 */
import * as Command from "@effect/cli/Command"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import type * as Usage from "@effect/cli/Usage"
import * as HashMap from "effect/HashMap"
import { spawn } from "node:child_process"
import { readFile } from "node:fs/promises"
import { describe, expect, it } from "vitest"
import { authCommand } from "../apps/cli/src/AuthCommand.js"
import { command } from "../apps/cli/src/Cli.js"
import { usageNames } from "../apps/cli/src/UsageErrors.js"
import { binPath, run, type RunResult } from "./support/cli.js"

/** The names a usage lists: `--file`, `-f`, `<table>`, and the command's own name first. */
const namesOf = (usage: Usage.Usage): Array<string> => usageNames(usage).flatMap((flag) => flag.names)

/** Every command, by its words after `dv-effect`, with the flags and arguments it accepts. */
const commands = (() => {
  const out: Array<{ readonly path: ReadonlyArray<string>; readonly names: ReadonlyArray<string> }> = []
  const add = (prefix: ReadonlyArray<string>, children: HashMap.HashMap<string, Descriptor.Command<unknown>>) => {
    for (const [name, child] of HashMap.toEntries(children)) {
      out.push({ path: [...prefix, name], names: namesOf(Descriptor.getUsage(child)).slice(1) })
    }
  }
  add([], Command.getSubcommands(command))
  add(["auth"], Command.getSubcommands(authCommand))
  return out.sort((a, b) => a.path.join(" ").localeCompare(b.path.join(" ")))
})()

const placeholders = [
  "A user-defined piece of text",
  "This setting is optional",
  "A true or false value",
  "One of the following",
  "--wizard",
  "--log-level"
]

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** What every help page has: usage first, real descriptions, 2 or 3 examples last. */
const checkPage = (path: ReadonlyArray<string>, result: RunResult) => {
  const where = `dv-effect ${path.join(" ")} --help`
  expect(result.code, where).toBe(0)
  expect(result.stderr, where).toBe("")
  for (const text of placeholders) expect(result.stdout, `${where}: ${text}`).not.toContain(text)
  const lines = result.stdout.trimEnd().split("\n")
  const usage = lines[lines.indexOf("USAGE") + 1]!.trim()
  expect(usage.startsWith(`dv-effect ${path.join(" ")}`), `${where}: ${usage}`).toBe(true)
  const examples = lines.slice(lines.indexOf("EXAMPLES") + 1)
  expect(lines.indexOf("EXAMPLES"), where).toBeGreaterThan(0)
  expect(examples.every((line) => /^ {2}[#$] /.test(line)), where).toBe(true)
  const commandLines = examples.filter((line) => line.startsWith("  $ "))
  expect(commandLines.length, where).toBeGreaterThanOrEqual(2)
  expect(commandLines.length, where).toBeLessThanOrEqual(3)
  for (const line of commandLines) expect(line, where).toContain("dv-effect ")
  return lines
}

describe("dv-effect <command> --help", () => {
  it("covers every command", () => {
    expect(commands.map((c) => c.path.join(" "))).toEqual([
      "auth",
      "auth list",
      "auth login",
      "auth logout",
      "auth select",
      "create",
      "delete",
      "demo",
      "emulator",
      "metadata",
      "query",
      "schema",
      "tables",
      "typegen",
      "update",
      "upsert",
      "whoami"
    ])
    const create = commands.find((c) => c.path.join(" ") === "create")!.names
    for (const name of ["<table>", "-f", "--file", "--journal", "--url", "--emulator"]) expect(create).toContain(name)
  })

  it("gives each command a usage line, a description for every flag and argument, and examples", async () => {
    const results = await Promise.all(commands.map((c) => run([...c.path, "--help"])))
    commands.forEach(({ names, path }, i) => {
      const lines = checkPage(path, results[i]!)
      const where = `dv-effect ${path.join(" ")} --help`
      // Flags delete has but refuses (smart mode) are left out of its help.
      const refused = path.join(" ") === "delete" ? ["--smart", "--no-create", "--no-update", "--all-columns"] : []
      for (const name of refused) expect(lines.some((line) => line.includes(name)), `${where}: ${name}`).toBe(false)
      for (const name of names.filter((name) => !refused.includes(name))) {
        // A row of the two-column table: the name (with its alias or value) and a description.
        const shown = escapeRegExp(name)
        const row = name.startsWith("<")
          ? new RegExp(`^ {2}\\[?${shown}(\\.\\.\\.)?\\]? {2,}\\S`)
          : new RegExp(`^ {2}(-\\w, )?(${shown})( <[^>]+>)? {2,}\\S`)
        const alias = /^-\w$/.test(name)
        const found = alias ? lines.some((line) => line.startsWith(`  ${name}, --`)) : lines.some((l) => row.test(l))
        expect(found, `${where}: ${name}`).toBe(true)
      }
    })
  })

  it("fits create on one screen, and -h is --help", async () => {
    const help = await run(["create", "--help"])
    const lines = help.stdout.trimEnd().split("\n")
    expect(lines.length).toBeLessThanOrEqual(90)
    expect(lines[0]).toMatch(/^dv-effect create: /)
    expect(help.stdout).toContain("  dv-effect create <table> [flags]\n")
    expect(help.stdout).toMatch(/^ {2}--journal <file> +Record finished rows/m)
    expect(help.stdout).toMatch(/^ {2}--chunk-size <n\|auto> +.*\(default: auto\)$/m)
    expect((await run(["create", "-h"])).stdout).toBe(help.stdout)
    expect((await run(["create", "contact", "--file", "x.csv", "--help"])).stdout).toBe(help.stdout)
  })

  it("shows a group's commands for the group alone, and required flags in the usage line", async () => {
    const [bare, group, typegen] = await Promise.all([
      run(["auth"]),
      run(["auth", "--help"]),
      run(["typegen", "--help"])
    ])
    expect(bare.code).toBe(0)
    expect(bare.stdout).toBe(group.stdout)
    for (const name of ["login", "list", "select", "logout"]) {
      expect(group.stdout).toMatch(new RegExp(`^ {2}${name} +\\S`, "m"))
    }
    expect(typegen.stdout).toContain("  dv-effect typegen <table>... --out <dir> [flags]\n")
  })

  it("answers help for a word that names no command with the usage error, in one line", async () => {
    const result = await run(["auth", "logn", "--help"])
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toBe("dv-effect: Unknown command 'auth logn'; did you mean auth login?\n")
  })
})

describe("dv-effect --version", () => {
  it("prints the package's version, one line", async () => {
    const { version } = JSON.parse(await readFile(new URL("../apps/cli/package.json", import.meta.url), "utf8"))
    const result = await run(["--version"])
    expect([result.code, result.stdout, result.stderr]).toEqual([0, `${version}\n`, ""])
  })
})

describe("dv-effect --wizard", () => {
  it("refuses with one line when stdin is not a terminal, instead of waiting on a prompt", async () => {
    const result = await new Promise<RunResult>((resolve, reject) => {
      const child = spawn(process.execPath, [binPath, "create", "contact", "--wizard"], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      // stdin stays open: a process waiting on a prompt would never exit, and is killed (code null).
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      child.on("error", reject)
      child.on("close", (code) => {
        clearTimeout(timer)
        resolve({ code, stdout, stderr })
      })
    })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr).toBe(
      "dv-effect: --wizard asks its questions on a terminal, and stdin is not one; see dv-effect create --help.\n"
    )
  })
})

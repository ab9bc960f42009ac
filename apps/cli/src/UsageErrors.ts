/**
 * Usage errors: @effect/cli's messages (often without the flag they are about) become one line
 * that names the flag, its allowed values, and the closest known flag or command.
 *
 * @since 0.1.0
 */
import * as Metadata from "@dv-effect/core/Metadata"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import * as HelpDoc from "@effect/cli/HelpDoc"
import type * as Usage from "@effect/cli/Usage"
import type * as ValidationError from "@effect/cli/ValidationError"
import * as Option from "effect/Option"
import { command } from "./Cli.js"

/**
 * A flag or argument of a usage: its names (`--file`, `-f`, `<table>`) and accepted values.
 *
 * @since 0.2.0
 */
export interface Flag {
  readonly names: ReadonlyArray<string>
  /** `text`, `integer`, `auto | multiple | batch`, ...; undefined for a switch. */
  readonly values: string | undefined
}

/** A command with its flags, positional arguments and subcommands. */
interface CommandNode {
  /** The words after `dv-effect`, e.g. `["auth", "login"]`. */
  readonly path: ReadonlyArray<string>
  readonly flags: ReadonlyArray<Flag>
  readonly args: ReadonlyArray<string>
  readonly children: ReadonlyArray<CommandNode>
}

/** The shape of @effect/cli's command descriptors (0.77), as far as the tree is concerned. */
type Instruction =
  | { readonly _tag: "Standard" | "GetUserInput"; readonly name: string }
  | { readonly _tag: "Map"; readonly command: Instruction }
  | { readonly _tag: "Subcommands"; readonly parent: Instruction; readonly children: ReadonlyArray<Instruction> }

/**
 * The flags and arguments a usage names, with the values a flag accepts.
 *
 * @since 0.2.0
 */
export const usageNames = (usage: Usage.Usage, out: Array<Flag> = []): Array<Flag> => {
  switch (usage._tag) {
    case "Named":
      out.push({ names: usage.names, values: Option.getOrUndefined(usage.acceptedValues) })
      break
    case "Optional":
    case "Repeated":
      usageNames(usage.usage, out)
      break
    case "Alternation":
    case "Concat":
      usageNames(usage.left, out)
      usageNames(usage.right, out)
      break
  }
  return out
}

const nodeOf = (instruction: Instruction, parentPath: ReadonlyArray<string> | undefined): CommandNode => {
  switch (instruction._tag) {
    case "Map":
      return nodeOf(instruction.command, parentPath)
    case "Subcommands": {
      const parent = nodeOf(instruction.parent, parentPath)
      return { ...parent, children: instruction.children.map((child) => nodeOf(child, parent.path)) }
    }
    default: {
      // The root (`dv-effect`) has no path; the first name of a command's usage is its own.
      const path = parentPath === undefined ? [] : [...parentPath, instruction.name]
      const named = usageNames(
        Descriptor.getUsage(instruction as unknown as Descriptor.Command<unknown>),
        []
      ).slice(1)
      return {
        path,
        flags: named.filter((flag) => flag.names.some((name) => name.startsWith("-"))),
        args: named.filter((flag) => flag.names.some((name) => name.startsWith("<"))).map((flag) => flag.names[0]!),
        children: []
      }
    }
  }
}

/**
 * The choice a value not among them meant: the one it names in another case or begins (`CSV`,
 * `multi`), else the closest by core's rule.
 */
const closestChoice = (value: string, choices: ReadonlyArray<string>): string | undefined => {
  const lower = value.toLowerCase()
  const begun = choices.filter((choice) => choice.toLowerCase().startsWith(lower))
  if (lower.length >= 2 && begun.length === 1) return begun[0]
  return Metadata.suggest(value, choices, 1)[0]
}

/**
 * The closest candidate (ignoring leading dashes), if any, by core's rule (`Metadata.suggest`).
 * One- and two-letter names (`-f`) are too short for a suggestion to mean anything.
 */
const closest = (word: string, candidates: ReadonlyArray<string>): string | undefined => {
  const bare = (name: string) => name.replace(/^-+/, "")
  const byBare = new Map<string, string>()
  for (const name of candidates) {
    if (bare(name).length >= 3 && !byBare.has(bare(name).toLowerCase())) byBare.set(bare(name).toLowerCase(), name)
  }
  const best = Metadata.suggest(bare(word), [...byBare.keys()], 1)[0]
  return best === undefined ? undefined : byBare.get(best)
}

const listed = (values: string) => values.split(" | ").join(", ")

const typeNames: Record<string, string> = {
  integer: "a whole number",
  float: "a number",
  date: "a date",
  boolean: "true or false"
}

/** What the arguments say: the command they reach, and the word that names no command. */
const resolve = (root: CommandNode, args: ReadonlyArray<string>) => {
  let node = root
  let index = 0
  while (node.children.length > 0 && index < args.length) {
    const child = node.children.find((c) => c.path[c.path.length - 1] === args[index])
    if (child === undefined) return { node, unknown: args[index], index }
    node = child
    index++
  }
  return { node, unknown: undefined, index }
}

/** The values given to each flag: `--flag value` and `--flag=value`. */
const flagValues = (node: CommandNode, args: ReadonlyArray<string>): Array<readonly [Flag, string]> => {
  const out: Array<readonly [Flag, string]> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const flag = node.flags.find((f) => f.names.includes(name))
    if (flag === undefined || flag.values === undefined) continue
    if (eq !== -1) out.push([flag, arg.slice(eq + 1)])
    else if (i + 1 < args.length) out.push([flag, args[++i]!])
  }
  return out
}

const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g")

/**
 * Text without ANSI colour codes.
 *
 * @since 0.1.0
 */
export const stripAnsi = (text: string): string => text.replace(ansi, "")

const longName = (flag: Flag) => flag.names.find((name) => name.startsWith("--")) ?? flag.names[0]!

/** The plain text of a help document, on one line. */
const plainText = (doc: HelpDoc.HelpDoc): string =>
  stripAnsi(HelpDoc.toAnsiText(doc)).split("\n").map((line) => line.trim()).filter((line) => line !== "").join(" ")

/** Flags a command takes more than once: one identity each. */
const repeatable: ReadonlyArray<string> = ["--profile", "--access-token"]

/**
 * The command line with each repeatable flag spelled `--flag value`, or the usage error of one
 * given without a value. @effect/cli 0.77 reads a repeated flag only in that spelling, and skips
 * one without a value silently (`--profile` alone would mean no profile at all).
 *
 * @since 0.2.0
 */
export const spellRepeatable = (
  args: ReadonlyArray<string>
): { readonly args: ReadonlyArray<string> } | { readonly error: string } => {
  const { index, node } = resolve(nodeOf(command.descriptor as unknown as Instruction, undefined), args)
  const takes = new Set(repeatable.filter((flag) => node.flags.some((known) => known.names.includes(flag))))
  if (takes.size === 0) return { args }
  let out: Array<string> = args.slice(0, index)
  for (let i = index; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") {
      out = out.concat(args.slice(i))
      break
    }
    const equals = arg.indexOf("=")
    const flag = arg.startsWith("--") && equals > 0 ? arg.slice(0, equals) : arg
    if (!takes.has(flag)) {
      out.push(arg)
      continue
    }
    const value = equals > 0 && flag !== arg ? arg.slice(equals + 1) : args[++i]
    if (value === undefined || value === "" || (flag === arg && value.startsWith("--"))) {
      return { error: `${flag} needs a value; see ${["dv-effect", ...node.path].join(" ")} --help.` }
    }
    out.push(flag, value)
  }
  return { args: out }
}

/** Flags @effect/cli adds to every command, and whether each takes a value. */
const builtIn: ReadonlyArray<readonly [string, boolean]> = [
  ["--help", false],
  ["-h", false],
  ["--version", false],
  ["--wizard", false],
  ["--completions", true],
  ["--log-level", true],
  // Read before @effect/cli parses (main.ts), on any command.
  ["--verbose", false]
]

/**
 * The usage error of a `--flag` the command does not take, with the closest one it does: without
 * this pass, a command with a positional argument takes the misspelt flag as that argument
 * (`auth logout --al` read as the profile `--al`; `query --selct x contact`, whose message was
 * about `x`).
 *
 * @since 0.2.0
 */
export const unknownFlag = (args: ReadonlyArray<string>): string | undefined => {
  const { index, node, unknown } = resolve(nodeOf(command.descriptor as unknown as Instruction, undefined), args)
  if (unknown !== undefined) return undefined
  // @effect/cli reads flags whatever their case (`--FILTER`).
  const takesValue = new Map<string, boolean>(builtIn)
  for (const flag of node.flags) {
    for (const name of flag.names) takesValue.set(name.toLowerCase(), flag.values !== undefined)
  }
  /** The long name of the command's flag of that (lower-cased) name or alias, if it has one. */
  const longOf = (name: string): string | undefined => {
    const flag = node.flags.find((candidate) => candidate.names.some((known) => known.toLowerCase() === name))
    return flag === undefined ? undefined : longName(flag)
  }
  const valueIsFlag = (flag: string, next: string | undefined, long: string = flag): string | undefined => {
    if (next === undefined || !next.startsWith("--")) return undefined
    const named = (next.includes("=") ? next.slice(0, next.indexOf("=")) : next).toLowerCase()
    return takesValue.has(named) && named !== "--"
      ? `${flag} needs a value, and '${next}' is a flag; a value that begins with -- goes as ${long}=<value>.`
      : undefined
  }
  for (let i = index; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") break
    if (!arg.startsWith("-")) continue
    const equals = arg.indexOf("=")
    const name = (equals > 0 ? arg.slice(0, equals) : arg).toLowerCase()
    if (!arg.startsWith("--")) {
      // A short alias joined to its value (`-o=csv`, `-ocsv`), which @effect/cli does not read.
      const alias = arg.slice(0, 2).toLowerCase()
      // A long flag written with one dash (`-file`): the flag it names, not `-f` joined to `ile`.
      const asLong = `-${name}`
      if (arg.length > 2 && takesValue.has(asLong)) return `${arg}: long flags take two dashes: ${asLong}.`
      if (arg.length > 2 && takesValue.get(alias) === true) {
        const value = arg.slice(2).replace(/^=/, "")
        const long = longOf(alias)
        return `${arg}: write ${alias} ${value}${long === undefined ? "" : ` or ${long}=${value}`}.`
      }
      // A short alias (`-f`): its value is skipped too (`-f --in.csv`); others are @effect/cli's.
      if (takesValue.get(name) === true && equals < 0) {
        // `-f=<value>` is not read: the long name says how to give such a value.
        const missing = valueIsFlag(arg, args[i + 1], longOf(name) ?? arg)
        if (missing !== undefined) return missing
        i++
      }
      continue
    }
    const takes = takesValue.get(name)
    if (takes === undefined) {
      const long = [...takesValue.keys()].filter((known) => known.startsWith("--"))
      // A flag cut short (`--al`) is the one it begins, if only one does.
      const begun = long.filter((known) => known.startsWith(name))
      const suggestion = begun.length === 1 && name.length >= 4 ? begun[0] : closest(name, long)
      const command = node.path.length === 0 ? "dv-effect" : node.path.join(" ")
      return suggestion === undefined
        ? `Unknown flag ${name} for ${command}; see ${["dv-effect", ...node.path].join(" ")} --help.`
        : `Unknown flag ${name} for ${command}; did you mean ${suggestion}?`
    }
    // A value given apart (`--filter "..."`) is not read as a flag, whatever it starts with, but
    // a flag of the command is: `--tag --dry-run` would take `--dry-run` as the tag and write.
    if (takes && equals < 0) {
      const missing = valueIsFlag(name, args[i + 1])
      if (missing !== undefined) return missing
      i++
    }
  }
  return undefined
}

/**
 * One line for a usage error, naming the flag or command it is about.
 *
 * @since 0.1.0
 */
export const usageMessage = (error: ValidationError.ValidationError, args: ReadonlyArray<string>): string => {
  const text = "error" in error ? plainText(error.error) : ""
  const root = nodeOf(command.descriptor as unknown as Instruction, undefined)
  const completions = args.findIndex((arg) => arg === "--completions" || arg.startsWith("--completions="))
  if (completions !== -1) {
    const value = args[completions]!.includes("=") ? args[completions]!.split("=")[1] : args[completions + 1]
    return `--completions must be one of sh, bash, fish, zsh, got '${value ?? ""}'.`
  }
  const { index, node, unknown } = resolve(root, args)
  // `create`, `auth login` (after the `dv-effect:` prefix), and the full command for --help.
  const name = node.path.length === 0 ? "dv-effect" : node.path.join(" ")
  const help = `see ${["dv-effect", ...node.path].join(" ")} --help`
  const rest = args.slice(index)

  if (unknown !== undefined) {
    const names = node.children.map((child) => child.path[child.path.length - 1]!)
    const prefix = node.path.length === 0 ? "" : `${node.path.join(" ")} `
    if (unknown.startsWith("-")) {
      return `${unknown} is not a flag of dv-effect: name a command first (${names.join(", ")}).`
    }
    const suggestion = closest(unknown, names)
    return suggestion === undefined
      ? `Unknown command '${prefix}${unknown}'; the commands are: ${names.map((n) => prefix + n).join(", ")}.`
      : `Unknown command '${prefix}${unknown}'; did you mean ${prefix}${suggestion}?`
  }

  // A flag's own message (`Flags.checked`) already names the flag and says what it takes.
  if (/^--[a-z][a-z-]* (must|takes) /.test(text)) return text

  const received = /^Received unknown argument: '(.*)'$/.exec(text)
  if (received !== null) {
    const arg = received[1]!
    if (!arg.startsWith("-") || /^-\d/.test(arg)) {
      return `Unexpected argument '${arg}' for ${name}${
        node.args.length === 0 ? " (it takes none)" : ` (it takes ${node.args.join(" ")})`
      }; ${help}.`
    }
    const flagName = arg.startsWith("--") && arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg
    const known = node.flags.find((flag) => flag.names.includes(flagName))
    if (known !== undefined) {
      const times = rest.filter((a) => a === flagName || a.startsWith(`${flagName}=`)).length
      if (times > 1) return `${longName(known)} is given more than once; give it once.`
      return known.values !== undefined && known.values.includes(" | ")
        ? `${longName(known)} needs a value: one of ${listed(known.values)}.`
        : `${longName(known)} needs a value; ${help}.`
    }
    const suggestion = closest(flagName, node.flags.flatMap((flag) => flag.names))
    return suggestion === undefined
      ? `Unknown flag ${flagName} for ${name}; ${help}.`
      : `Unknown flag ${flagName} for ${name}; did you mean ${suggestion}?`
  }

  const cases = /^Expected one of the following cases: (.*)$/.exec(text)
  if (cases !== null) {
    const choices = cases[1]!.split(", ")
    const bad = flagValues(node, rest).find(([flag, value]) =>
      flag.values !== undefined && flag.values === choices.join(" | ") && !choices.includes(value)
    )
    if (bad !== undefined) {
      const near = closestChoice(bad[1], choices)
      return `${longName(bad[0])} must be one of ${choices.join(", ")}, got '${bad[1]}'${
        near === undefined ? "." : `; did you mean '${near}'?`
      }`
    }
    return `Expected one of ${choices.join(", ")}; ${help}.`
  }

  const notA = /^'(.*)' is not a (\w+)$/.exec(text)
  if (notA !== null) {
    const [, value, type] = notA
    const what = typeNames[type!] ?? `a ${type}`
    const bad = flagValues(node, rest).find(([flag, given]) => flag.values === type && given === value)
    return bad !== undefined
      ? `${longName(bad[0])} must be ${what}, got '${value}'.`
      : `'${value}' is not ${what}; ${help}.`
  }

  const missingFlag = /^Expected to find option: '(.*)'$/.exec(text)
  if (missingFlag !== null) return `${name} needs ${missingFlag[1]}; ${help}.`
  const missingValue = /^Expected a value following option: '(.*)'$/.exec(text)
  if (missingValue !== null) {
    const known = node.flags.find((flag) => flag.names.includes(missingValue[1]!))
    return known?.values !== undefined && known.values.includes(" | ")
      ? `${missingValue[1]} needs a value: one of ${listed(known.values)}.`
      : `${missingValue[1]} needs a value; ${help}.`
  }
  const missingArg = /^Missing argument (<[^>]+>)/.exec(text)
  if (missingArg !== null) return `${name} needs ${missingArg[1]}; ${help}.`
  const corrected = /^The flag '(.*)' is not recognized\. Did you mean '(.*)'\?/.exec(text)
  if (corrected !== null) return `Unknown flag ${corrected[1]} for ${name}; did you mean ${corrected[2]}?`
  return `${text === "" ? "Invalid command line" : text.replace(/\.$/, "")}; ${help}.`
}

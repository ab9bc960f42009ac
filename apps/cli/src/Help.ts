/**
 * `dv-effect <command> --help`: one screen per command, rendered from the command's own
 * definition: the usage line, the summary, the arguments and flags in two columns (one line each,
 * grouped; the connection flags in one block every command shares), and two or three examples.
 * @effect/cli's own layout gives every flag a paragraph of placeholder text ("A user-defined piece
 * of text.", "This setting is optional."), which is why it is not used.
 *
 * @since 0.1.0
 */
import type * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Option from "effect/Option"
import * as Connection from "./Connection.js"

// ---------------------------------------------------------------------------------------------
// What a command says of itself

/**
 * An example: the command line and what it does.
 *
 * @since 0.1.0
 */
export type Example = readonly [command: string, comment: string]

/**
 * What a command's help shows beyond its flags.
 *
 * @since 0.1.0
 */
export interface Described {
  /** One line: what command listings show, and the first line of the command's help. */
  readonly summary: string
  /** Two or three, shown last. */
  readonly examples: ReadonlyArray<Example>
  /** Groups of flags by long name (without dashes), in order; the other flags go under FLAGS. */
  readonly sections?: ReadonlyArray<readonly [title: string, flags: ReadonlyArray<string>]>
  /** Lines shown before the examples, under NOTES. */
  readonly notes?: ReadonlyArray<string>
  /** Flags (long names without dashes) the command has but refuses, left out of its help. */
  readonly hidden?: ReadonlyArray<string>
}

const described = new WeakMap<object, Described>()

/**
 * A command description for `Command.withDescription`: the summary, with the examples (and the
 * grouping of the flags) kept for the command's own `--help`.
 *
 * @since 0.1.0
 */
export const withExamples = (
  summary: string,
  examples: ReadonlyArray<Example>,
  more: Pick<Described, "sections" | "notes" | "hidden"> = {}
): HelpDoc.HelpDoc => {
  const doc = HelpDoc.p(summary)
  described.set(doc, { summary, examples, ...more })
  return doc
}

// ---------------------------------------------------------------------------------------------
// The shape of @effect/cli's definitions (0.77), as far as help is concerned

interface Primitive {
  readonly _tag: string
  readonly alternatives?: ReadonlyArray<readonly [string, unknown]>
}

interface SingleOption {
  readonly _tag: "Single"
  readonly name: string
  readonly aliases: ReadonlyArray<string>
  readonly primitiveType: Primitive
  readonly description: HelpDoc.HelpDoc
  readonly pseudoName: Option.Option<string>
}

type OptionsNode =
  | { readonly _tag: "Empty" }
  | SingleOption
  | { readonly _tag: "KeyValueMap" | "Variadic"; readonly argumentOption: OptionsNode }
  | { readonly _tag: "Map" | "WithFallback"; readonly options: OptionsNode }
  | { readonly _tag: "WithDefault"; readonly options: OptionsNode; readonly fallback: unknown }
  | { readonly _tag: "Both" | "OrElse"; readonly left: OptionsNode; readonly right: OptionsNode }

type ArgsNode =
  | { readonly _tag: "Empty" }
  | {
    readonly _tag: "Single"
    readonly name: string
    readonly pseudoName: Option.Option<string>
    readonly description: HelpDoc.HelpDoc
  }
  | { readonly _tag: "Map" | "WithFallbackConfig"; readonly args: ArgsNode }
  | { readonly _tag: "Variadic"; readonly args: ArgsNode; readonly min: Option.Option<number> }
  | { readonly _tag: "WithDefault"; readonly args: ArgsNode; readonly fallback: unknown }
  | { readonly _tag: "Both"; readonly left: ArgsNode; readonly right: ArgsNode }

type Descriptor =
  | {
    readonly _tag: "Standard"
    readonly name: string
    readonly description: HelpDoc.HelpDoc
    readonly options: OptionsNode
    readonly args: ArgsNode
  }
  | { readonly _tag: "GetUserInput"; readonly name: string; readonly description: HelpDoc.HelpDoc }
  | { readonly _tag: "Map"; readonly command: Descriptor }
  | { readonly _tag: "Subcommands"; readonly parent: Descriptor; readonly children: ReadonlyArray<Descriptor> }

/** The plain text of a description, on one line. */
const docText = (doc: HelpDoc.HelpDoc): string =>
  HelpDoc.toAnsiText(doc).replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g"), "")
    .split("\n").map((line) => line.trim()).filter((line) => line !== "").join(" ")

/**
 * A flag as its help shows it.
 *
 * @since 0.1.0
 */
export interface Flag {
  /** Short names first: `-f`, `--file`. */
  readonly names: ReadonlyArray<string>
  /** `<path>`, `<csv|jsonl|json>`; undefined for a switch. */
  readonly value: string | undefined
  readonly description: string
  readonly defaultValue: string | undefined
  readonly required: boolean
  readonly connection: boolean
}

/** The connection flags, by identity: another command's `--profile` is not the connection's. */
const connectionSingles = (() => {
  const out = new Set<object>()
  const walk = (node: OptionsNode): void => {
    switch (node._tag) {
      case "Single":
        out.add(node)
        return
      case "KeyValueMap":
      case "Variadic":
        return walk(node.argumentOption)
      case "Map":
      case "WithFallback":
      case "WithDefault":
        return walk(node.options)
      case "Both":
      case "OrElse":
        walk(node.left)
        return walk(node.right)
    }
  }
  for (const option of Object.values(Connection.options)) walk(option as unknown as OptionsNode)
  return out
})()

const valueOf = (single: SingleOption): string | undefined => {
  const type = single.primitiveType
  if (type._tag === "Bool") return undefined
  if (Option.isSome(single.pseudoName)) return `<${single.pseudoName.value}>`
  switch (type._tag) {
    case "Choice":
      return `<${(type.alternatives ?? []).map(([choice]) => choice).join("|")}>`
    case "Integer":
    case "Float":
      return "<n>"
    case "Redacted":
    case "Secret":
      return "<secret>"
    default:
      return "<value>"
  }
}

const shownDefault = (fallback: unknown): string | undefined =>
  typeof fallback === "string" || typeof fallback === "number" ? String(fallback) : undefined

const flagsOf = (node: OptionsNode, fallback: { readonly value: unknown } | undefined, out: Array<Flag>) => {
  switch (node._tag) {
    case "Single":
      out.push({
        names: [
          ...node.aliases.map((alias) => (alias.length === 1 ? `-${alias}` : `--${alias}`)),
          `--${node.name}`
        ],
        value: valueOf(node),
        description: docText(node.description),
        defaultValue: fallback === undefined ? undefined : shownDefault(fallback.value),
        required: fallback === undefined,
        connection: connectionSingles.has(node)
      })
      return out
    case "KeyValueMap":
    case "Variadic":
      return flagsOf(node.argumentOption, fallback ?? { value: [] }, out)
    case "Map":
    case "WithFallback":
      return flagsOf(node.options, node._tag === "WithFallback" ? fallback ?? { value: undefined } : fallback, out)
    case "WithDefault":
      return flagsOf(node.options, { value: node.fallback }, out)
    case "Both":
    case "OrElse":
      flagsOf(node.left, fallback, out)
      return flagsOf(node.right, fallback, out)
  }
  return out
}

/**
 * A positional argument as its help shows it.
 *
 * @since 0.1.0
 */
export interface Argument {
  /** `<table>`, `<table>...`, `[<name>]`. */
  readonly usage: string
  readonly description: string
}

const argumentsOf = (node: ArgsNode, optional: boolean, repeated: boolean, out: Array<Argument>) => {
  switch (node._tag) {
    case "Single": {
      const name = `<${Option.getOrElse(node.pseudoName, () => node.name)}>${repeated ? "..." : ""}`
      out.push({ usage: optional ? `[${name}]` : name, description: docText(node.description) })
      return out
    }
    case "Map":
    case "WithFallbackConfig":
      return argumentsOf(node.args, optional, repeated, out)
    case "Variadic":
      return argumentsOf(node.args, optional || Option.getOrElse(node.min, () => 0) === 0, true, out)
    case "WithDefault":
      return argumentsOf(node.args, true, repeated, out)
    case "Both":
      argumentsOf(node.left, optional, repeated, out)
      return argumentsOf(node.right, optional, repeated, out)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// A command's page

/**
 * Everything one command's help shows.
 *
 * @since 0.1.0
 */
export interface Page {
  /** The words after `dv-effect`, e.g. `["auth", "login"]`. */
  readonly path: ReadonlyArray<string>
  readonly summary: string
  readonly arguments: ReadonlyArray<Argument>
  readonly flags: ReadonlyArray<Flag>
  /** Subcommands, with their summaries. */
  readonly commands: ReadonlyArray<readonly [name: string, summary: string]>
  readonly sections: ReadonlyArray<readonly [title: string, flags: ReadonlyArray<string>]>
  readonly notes: ReadonlyArray<string>
  readonly examples: ReadonlyArray<Example>
}

interface Node {
  readonly name: string
  readonly standard: Extract<Descriptor, { _tag: "Standard" | "GetUserInput" }>
  readonly children: ReadonlyArray<Node>
}

const nodeOf = (descriptor: Descriptor): Node => {
  switch (descriptor._tag) {
    case "Map":
      return nodeOf(descriptor.command)
    case "Subcommands": {
      const parent = nodeOf(descriptor.parent)
      return { ...parent, children: descriptor.children.map(nodeOf) }
    }
    default:
      return { name: descriptor.name, standard: descriptor, children: [] }
  }
}

const summaryOf = (node: Node) =>
  described.get(node.standard.description)?.summary ?? docText(node.standard.description)

/**
 * The command the arguments name (its words after `dv-effect`), whether it has subcommands, the
 * index of the first argument after its name, and the word that names no command, if any.
 *
 * @since 0.1.0
 */
export const resolve = (
  root: Command.Command<any, any, any, any>,
  args: ReadonlyArray<string>
): {
  readonly path: ReadonlyArray<string>
  readonly hasChildren: boolean
  readonly rest: number
  readonly unknown: string | undefined
} => {
  let node = nodeOf(root.descriptor as unknown as Descriptor)
  const path: Array<string> = []
  let index = 0
  while (node.children.length > 0 && index < args.length && !args[index]!.startsWith("-")) {
    const child = node.children.find((c) => c.name === args[index])
    if (child === undefined) return { path, hasChildren: true, rest: index, unknown: args[index] }
    node = child
    path.push(child.name)
    index++
  }
  return { path, hasChildren: node.children.length > 0, rest: index, unknown: undefined }
}

/**
 * The help page of the command at `path` (the words after `dv-effect`), if there is one.
 *
 * @since 0.1.0
 */
export const page = (
  root: Command.Command<any, any, any, any>,
  path: ReadonlyArray<string>
): Page | undefined => {
  let node = nodeOf(root.descriptor as unknown as Descriptor)
  for (const name of path) {
    const child = node.children.find((c) => c.name === name)
    if (child === undefined) return undefined
    node = child
  }
  const standard = node.standard
  const about = described.get(standard.description)
  return {
    path,
    summary: summaryOf(node),
    arguments: standard._tag === "Standard" ? argumentsOf(standard.args, false, false, []) : [],
    flags: standard._tag === "Standard"
      ? flagsOf(standard.options, undefined, []).filter((flag) =>
        !(about?.hidden ?? []).includes(longName(flag).replace(/^-+/, ""))
      )
      : [],
    commands: node.children.map((child) => [child.name, summaryOf(child)] as const),
    sections: about?.sections ?? [],
    notes: about?.notes ?? [],
    examples: about?.examples ?? []
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** The flags every command takes, outside its definition (see main.ts). */
const otherFlags: ReadonlyArray<readonly [string, string]> = [
  ["--verbose", "Stack traces and debug logs on stderr (never secrets)"],
  ["-h, --help", "This help"]
]

/** Under the connection flags: secrets are never flags. */
const secrets = [
  "  Sign-in secrets come from the environment, never from flags: AZURE_CLIENT_SECRET (a profile's own",
  "  AZURE_CLIENT_SECRET_<NAME> first; else a prompt), AZURE_CLIENT_CERTIFICATE_PASSWORD, DATAVERSE_PASSWORD."
]

const longName = (flag: Flag) => flag.names[flag.names.length - 1]!

const flagColumn = (flag: Flag) => `${flag.names.join(", ")}${flag.value === undefined ? "" : ` ${flag.value}`}`

const flagDescription = (flag: Flag) =>
  `${flag.description}${flag.defaultValue === undefined ? "" : ` (default: ${flag.defaultValue})`}${
    flag.required ? " (required)" : ""
  }`

/**
 * The usage line: `dv-effect create <table> [flags]`.
 *
 * @since 0.1.0
 */
export const usage = (help: Page): string =>
  [
    "dv-effect",
    ...help.path,
    ...(help.commands.length > 0 ? ["<command>"] : []),
    ...help.arguments.map((arg) => arg.usage),
    ...help.flags.filter((flag) => flag.required).map(flagColumn),
    ...(help.flags.some((flag) => !flag.required) || help.commands.length > 0 ? ["[flags]"] : [])
  ].join(" ")

/** Breaks a description into lines of at most `width` characters (a longer word stays whole). */
const wrap = (text: string, width: number | undefined): Array<string> => {
  if (width === undefined || text.length <= width) return [text]
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === "" ? word : `${line} ${word}`
  }
  if (line !== "") lines.push(line)
  return lines
}

/**
 * A command's help as text: plain, or with bold headings when `color`; descriptions wrap at
 * `width` when given (a terminal's width), else stay on one line each.
 *
 * @since 0.1.0
 */
export const render = (
  help: Page,
  options: { readonly color?: boolean; readonly width?: number | undefined } = {}
): string => {
  const heading = (title: string) => (options.color === true ? `\u001b[1m${title}\u001b[22m` : title)
  const byName = new Map(help.flags.map((flag) => [longName(flag).slice(2), flag]))
  const placed = new Set<string>()
  const groups: Array<
    readonly [title: string, rows: ReadonlyArray<readonly [string, string]>, after?: ReadonlyArray<string>]
  > = []
  if (help.commands.length > 0) groups.push(["COMMANDS", help.commands])
  if (help.arguments.length > 0) {
    groups.push(["ARGUMENTS", help.arguments.map((arg) => [arg.usage, arg.description] as const)])
  }
  for (const [title, names] of help.sections) {
    const flags = names.flatMap((name) => {
      const flag = byName.get(name)
      return flag === undefined || flag.connection ? [] : [flag]
    })
    for (const flag of flags) placed.add(longName(flag))
    if (flags.length > 0) groups.push([title, flags.map((flag) => [flagColumn(flag), flagDescription(flag)] as const)])
  }
  const rest = help.flags.filter((flag) => !flag.connection && !placed.has(longName(flag)))
  if (rest.length > 0) {
    groups.push([
      help.sections.length > 0 ? "OTHER FLAGS" : "FLAGS",
      rest.map((flag) => [flagColumn(flag), flagDescription(flag)] as const)
    ])
  }
  const connection = help.flags.filter((flag) => flag.connection)
  if (connection.length > 0) {
    groups.push([
      connection.some((flag) => longName(flag) === "--profile")
        ? "CONNECTION (with none of these: the profile 'dv-effect auth select' chose)"
        : "CONNECTION",
      connection.map((flag) => [flagColumn(flag), flagDescription(flag)] as const),
      connection.some((flag) => longName(flag) === "--client-id") ? secrets : []
    ])
  }
  groups.push([help.commands.length > 0 ? "FLAGS" : "GLOBAL FLAGS", otherFlags])

  const column = Math.max(...groups.flatMap(([, rows]) => rows.map(([left]) => left.length)))
  const descriptionWidth = options.width === undefined ? undefined : Math.max(30, options.width - column - 5)
  const table = (rows: ReadonlyArray<readonly [string, string]>) =>
    rows.flatMap(([left, description]) =>
      wrap(description, descriptionWidth).map((line, i) => `  ${(i === 0 ? left : "").padEnd(column)}  ${line}`)
    )
  const summary = help.summary.length > 1 && /^[A-Z][a-z]/.test(help.summary)
    ? help.summary[0]!.toLowerCase() + help.summary.slice(1)
    : help.summary
  const lines = [
    `dv-effect ${help.path.join(" ")}: ${summary}`,
    "",
    heading("USAGE"),
    `  ${usage(help)}`,
    ...groups.flatMap(([title, rows, after = []]) => ["", heading(title), ...table(rows), ...after]),
    ...(help.notes.length > 0 ? ["", heading("NOTES"), ...help.notes.map((note) => `  ${note}`)] : []),
    ...(help.examples.length > 0
      ? [
        "",
        heading("EXAMPLES"),
        ...help.examples.flatMap(([command, comment]) => [`  # ${comment}`, `  $ ${command}`])
      ]
      : []),
    ""
  ]
  return lines.join("\n")
}

/**
 * Entry point of the `dv-effect` command: runs the CLI, turns failures into one line on stderr
 * and the documented exit codes (`ExitCode`: 0 ok, 2 some rows rejected, 1 fatal, 130
 * interrupted, 143 terminated).
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { command } from "./Cli.js"
import * as ExitCode from "./ExitCode.js"
import * as Help from "./Help.js"
import * as Overview from "./Overview.js"
import { spellRepeatable, stripAnsi, unknownFlag, usageMessage } from "./UsageErrors.js"

/** package.json's version, put in by the bundler (apps/cli/bundle.mjs, esbuild `define`). */
declare const DV_EFFECT_VERSION: string | undefined
const version = typeof DV_EFFECT_VERSION === "string" ? DV_EFFECT_VERSION : "0.0.0-dev"

const verbose = process.argv.includes("--verbose") || process.env.DV_EFFECT_VERBOSE === "1"
const given = process.argv.filter((arg) => arg !== "--verbose")
const isHelpFlag = (arg: string) => arg === "--help" || arg === "-h"
/**
 * Help for a word that names no command (`dv-effect bogus --help`) is the usage error that word
 * gets without `--help`: @effect/cli would print its own help of the parent instead.
 */
const resolved = Help.resolve(command, given.slice(2)).unknown === undefined
  ? given
  : given.filter((a) => !isHelpFlag(a))
const spelled = spellRepeatable(resolved.slice(2))
const argv = "error" in spelled ? resolved : [...resolved.slice(0, 2), ...spelled.args]

// ---------------------------------------------------------------------------------------------
// Output

/** Help is plain text when stdout is not a terminal, or NO_COLOR is set (https://no-color.org). */
const plainHelp = process.stdout.isTTY !== true || (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "")

/**
 * The console @effect/cli prints through: its own usage errors are not printed (`report` prints
 * one line for them), and help is plain text when it does not go to a colour terminal. The
 * commands themselves write to process.stdout and process.stderr directly.
 */
const cliConsole = (current: Console.Console): Console.Console => ({
  ...current,
  log: (...args: ReadonlyArray<unknown>) =>
    current.log(...(plainHelp ? args.map((arg) => (typeof arg === "string" ? stripAnsi(arg) : arg)) : args)),
  error: () => Effect.void
})

/**
 * One line for a failure; with --verbose the full cause before it. The line is the last word
 * either way: it says what went wrong and, for a run that stopped, how to resume it.
 */
const report = (cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Effect.sync(() => {
    const error = Cause.squash(cause)
    if (ValidationError.isValidationError(error)) {
      if (verbose && "error" in error) process.stderr.write(`${stripAnsi(HelpDoc.toAnsiText(error.error))}\n`)
      process.stderr.write(`dv-effect: ${usageMessage(error, argv.slice(2))}\n`)
      return
    }
    const message =
      typeof error === "object" && error !== null && "message" in error && typeof error.message === "string"
        ? error.message
        : String(error)
    if (verbose) process.stderr.write(`${Cause.pretty(cause)}\n`)
    process.stderr.write(`dv-effect: ${message.split("\n")[0]}\n`)
  })

// `dv-effect query ... | head` closes stdout early: stop quietly, as Unix tools do.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0)
  throw error
})

const program = Console.consoleWith((current) =>
  Command.run(command, { name: "dv-effect", version })(argv).pipe(Effect.withConsole(cliConsole(current)))
).pipe(
  Effect.tapErrorCause((cause) => (ExitCode.needsReport(cause) ? report(cause) : Effect.void)),
  // The failure was reported (above, once): the runtime's own "Fiber terminated with an unhandled
  // error", a debug log that --verbose shows, would print the same cause again. Set as the main
  // fiber ends, so that fibers forked before keep theirs.
  Effect.ensuring(FiberRef.set(FiberRef.unhandledErrorLogLevel, Option.none())),
  Effect.provide(
    Layer.mergeAll(
      NodeContext.layer,
      Logger.replace(
        Logger.defaultLogger,
        Logger.prettyLogger({ stderr: true, colors: process.stderr.isTTY === true })
      ),
      Logger.minimumLogLevel(verbose ? LogLevel.Debug : LogLevel.Info)
    )
  )
)

/**
 * What the arguments ask of help: the overview, a command's page (`--help`/`-h` anywhere, or a
 * group such as `auth` alone), or nothing. @effect/cli's own help is never shown: it has a
 * paragraph of placeholder text per flag.
 */
const helpText = (args: ReadonlyArray<string>): string | undefined => {
  if (Overview.wanted(args)) return Overview.text(version)
  const target = Help.resolve(command, args)
  const asked = args.some(isHelpFlag) || (target.hasChildren && target.rest === args.length)
  if (target.unknown !== undefined || !asked) return undefined
  if (target.path.length === 0) return Overview.text(version)
  const page = Help.page(command, target.path)
  return page === undefined
    ? undefined
    : Help.render(page, {
      color: !plainHelp,
      width: process.stdout.isTTY === true ? process.stdout.columns : undefined
    })
}

/**
 * @effect/cli's `--wizard` asks its questions on the terminal: without one it would wait forever
 * on a prompt nobody sees.
 */
const wizardWithoutTerminal = argv.slice(2).includes("--wizard") && process.stdin.isTTY !== true

const help = helpText(argv.slice(2))
const misspelt = "error" in spelled || help !== undefined ? undefined : unknownFlag(argv.slice(2))
if ("error" in spelled) {
  process.stderr.write(`dv-effect: ${spelled.error}\n`)
  process.exitCode = 1
} else if (help !== undefined) {
  process.stdout.write(help)
} else if (argv.length === 3 && argv[2] === "--version") {
  // @effect/cli prints it as a paragraph, with a blank line after it.
  process.stdout.write(`${version}\n`)
} else if (misspelt !== undefined) {
  process.stderr.write(`dv-effect: ${misspelt}\n`)
  process.exitCode = 1
} else if (wizardWithoutTerminal) {
  const path = ["dv-effect", ...Help.resolve(command, argv.slice(2)).path].join(" ")
  process.stderr.write(
    `dv-effect: --wizard asks its questions on a terminal, and stdin is not one; see ${path} --help.\n`
  )
  process.exitCode = 1
} else {
  // runMain interrupts the program on either signal; the exit code says which it was.
  let stoppedBy: "SIGINT" | "SIGTERM" | undefined
  process.once("SIGINT", () => (stoppedBy ??= "SIGINT"))
  process.once("SIGTERM", () => (stoppedBy ??= "SIGTERM"))
  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(ExitCode.of(exit, argv[2], stoppedBy))
  })
}

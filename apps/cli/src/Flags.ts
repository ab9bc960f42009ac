/**
 * Flags shared by the commands, each checked where it is defined: a bad value is a usage error
 * with the flag's own one-line message, before any command runs.
 *
 * @since 0.1.0
 */
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { CliError } from "./CliError.js"

/**
 * A flag whose value `check` turns into what the command takes, or refuses with its message
 * (printed as it is: `UsageErrors` passes a flag's own message through).
 *
 * @since 0.1.0
 */
export const checked = <A, B>(
  option: Options.Options<A>,
  check: (value: A) => Effect.Effect<B, CliError>
): Options.Options<B> =>
  Options.mapEffect(
    option,
    (value) => Effect.mapError(check(value), (error) => ValidationError.invalidValue(HelpDoc.p(error.message)))
  )

/**
 * Splits a comma-separated flag value.
 *
 * @since 0.1.0
 */
export const list = (text: string) => text.split(",").map((s) => s.trim()).filter((s) => s !== "")

/**
 * Parses a flag that takes `auto` or a whole number from 1 to 1000 (`--concurrency`,
 * `--chunk-size`).
 *
 * @since 0.1.0
 */
export const autoOrWhole = (flag: string) => (text: string): Effect.Effect<number | "auto", CliError> => {
  if (text === "auto") return Effect.succeed("auto")
  const n = Number(text)
  return Number.isInteger(n) && n >= 1 && n <= 1000
    ? Effect.succeed(n)
    : Effect.fail(new CliError({ message: `${flag} must be 'auto' or a whole number from 1 to 1000, got '${text}'.` }))
}

/**
 * Parses a duration flag: `90s`, `30m`, `1h`, `1h30m`, `1.5m`, or a number of seconds; at least a
 * second.
 *
 * @since 0.1.0
 */
export const parseDuration = (flag: string, text: string): Effect.Effect<Duration.Duration, CliError> => {
  const trimmed = text.trim()
  const parts = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(trimmed)
  const total = /^\d+(?:\.\d+)?$/.test(trimmed)
    ? Number(trimmed)
    : parts === null || trimmed === ""
    ? 0
    : Number(parts[1] ?? 0) * 3600 + Number(parts[2] ?? 0) * 60 + Number(parts[3] ?? 0)
  return total >= 1
    ? Effect.succeed(Duration.seconds(total))
    : Effect.fail(new CliError({ message: `${flag} takes a duration such as 90s, 30m or 1h, got '${text}'.` }))
}

/**
 * A whole-number flag that must be positive (at most `max` when given).
 *
 * @since 0.1.0
 */
export const positiveInteger = (name: string, max?: number) => (option: Options.Options<number>) =>
  checked(option, (n) =>
    !Number.isInteger(n) || n < 1
      ? Effect.fail(new CliError({ message: `--${name} must be a positive whole number, got ${n}.` }))
      : max !== undefined && n > max
      ? Effect.fail(new CliError({ message: `--${name} must be at most ${max}, got ${n}.` }))
      : Effect.succeed(n))

/**
 * The `--chunk-size` flag with its default, for commands that take a fixed size.
 *
 * @since 0.1.0
 */
export const chunkSizeOption = (byDefault: number) =>
  Options.integer("chunk-size").pipe(
    Options.withDescription("Rows per CreateMultiple request"),
    Options.withDefault(byDefault),
    positiveInteger("chunk-size")
  )

/**
 * The `--concurrency` flag: `auto` (the default) or a whole number.
 *
 * @since 0.1.0
 */
export const concurrencyOption = checked(
  Options.text("concurrency").pipe(
    Options.withPseudoName("n|auto"),
    Options.withDescription("Requests in flight; auto: the service's x-ms-dop-hint"),
    Options.withDefault("auto")
  ),
  autoOrWhole("--concurrency")
)

/**
 * Formats milliseconds as seconds for humans.
 *
 * @since 0.1.0
 */
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

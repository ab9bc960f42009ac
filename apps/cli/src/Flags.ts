/**
 * Flag parsing shared by the commands, and the exit code they ask for.
 *
 * @since 0.1.0
 */
import * as Options from "@effect/cli/Options"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { CliError } from "./CliError.js"

/**
 * Splits a comma-separated flag value.
 *
 * @since 0.1.0
 */
export const list = (text: string) => text.split(",").map((s) => s.trim()).filter((s) => s !== "")

/**
 * Parses `--concurrency`: `auto` or a whole number.
 *
 * @since 0.1.0
 */
export const parseConcurrency = (text: string): Effect.Effect<number | "auto", CliError> => {
  if (text === "auto") return Effect.succeed("auto")
  const n = Number(text)
  return Number.isInteger(n) && n >= 1 && n <= 1000
    ? Effect.succeed(n)
    : Effect.fail(
      new CliError({ message: `--concurrency must be 'auto' or a whole number from 1 to 1000, got '${text}'.` })
    )
}

/**
 * Parses a duration flag: `90s`, `30m`, `1h`, `1h30m`, or a whole number of seconds.
 *
 * @since 0.1.0
 */
export const parseDuration = (flag: string, text: string): Effect.Effect<Duration.Duration, CliError> => {
  const trimmed = text.trim()
  const parts = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(trimmed)
  const total = /^\d+$/.test(trimmed)
    ? Number(trimmed)
    : parts === null || trimmed === ""
    ? 0
    : Number(parts[1] ?? 0) * 3600 + Number(parts[2] ?? 0) * 60 + Number(parts[3] ?? 0)
  return total >= 1
    ? Effect.succeed(Duration.seconds(total))
    : Effect.fail(new CliError({ message: `${flag} takes a duration such as 90s, 30m or 1h, got '${text}'.` }))
}

/**
 * Checks that a numeric flag is a positive whole number.
 *
 * @since 0.1.0
 */
export const positive = (flag: string, n: number): Effect.Effect<number, CliError> =>
  Number.isInteger(n) && n >= 1
    ? Effect.succeed(n)
    : Effect.fail(new CliError({ message: `${flag} must be a positive whole number, got ${n}.` }))

/**
 * The `--chunk-size` flag with its default.
 *
 * @since 0.1.0
 */
export const chunkSizeOption = (byDefault: number) =>
  Options.integer("chunk-size").pipe(
    Options.withDescription("Rows per CreateMultiple request"),
    Options.withDefault(byDefault)
  )
/**
 * The `--concurrency` flag.
 *
 * @since 0.1.0
 */
export const concurrencyOption = Options.text("concurrency").pipe(
  Options.withPseudoName("n|auto"),
  Options.withDescription("Requests in flight; auto: the service's x-ms-dop-hint"),
  Options.withDefault("auto")
)

/**
 * Formats milliseconds as seconds for humans.
 *
 * @since 0.1.0
 */
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

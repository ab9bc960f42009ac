/**
 * A problem with what the user asked for (a missing flag, an unreadable file), reported as one
 * line and exit code 1.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * A usage or input error of the command line.
 *
 * @since 0.1.0
 */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string; readonly cause?: unknown }> {}

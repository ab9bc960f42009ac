/**
 * The exit codes of `dv-effect`, decided in one place from how the command ended: 0 when it
 * succeeded, 2 when it finished but some rows were rejected (`RowsRejected`), 130 when it was
 * interrupted (Ctrl-C) and 143 when it was terminated (SIGTERM), as shells report 128 plus the
 * signal, 1 for any other failure. `dv-effect emulator` runs until it is stopped, so an interrupt
 * is its normal end: 0.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Exit from "effect/Exit"

/**
 * A load that ran to its end with rows rejected (this run's, or an earlier run's of the same
 * journal). Its summary has already said how many: nothing more is printed.
 *
 * @since 0.1.0
 */
export class RowsRejected extends Data.TaggedError("RowsRejected")<{ readonly rejected: number }> {
  override get message() {
    return `${this.rejected} row${this.rejected === 1 ? "" : "s"} rejected`
  }
}

const onlyRowsRejected = (cause: Cause.Cause<unknown>): boolean => {
  const failures = [...Cause.failures(cause)]
  return failures.length > 0 && failures.every((error) => error instanceof RowsRejected) &&
    Cause.isEmpty(Cause.stripFailures(cause))
}

/** Whether a failure still needs its one line on stderr (rejected rows were summarised already). */
export const needsReport = (cause: Cause.Cause<unknown>): boolean =>
  !Cause.isInterruptedOnly(cause) && !onlyRowsRejected(cause)

/**
 * The exit code of a command (`command`: its name, the first argument) that ended with `exit`;
 * `signal`: the signal that stopped it, if one did.
 */
export const of = (
  exit: Exit.Exit<unknown, unknown>,
  command: string | undefined,
  signal?: "SIGINT" | "SIGTERM"
): number => {
  if (Exit.isSuccess(exit)) return 0
  if (Cause.isInterruptedOnly(exit.cause)) return command === "emulator" ? 0 : signal === "SIGTERM" ? 143 : 130
  return onlyRowsRejected(exit.cause) ? 2 : 1
}

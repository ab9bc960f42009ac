/**
 * The `--rejects` file: one JSON line per failed row, written as outcomes arrive. A line that
 * cannot be written (a full disk) is a `RejectsError`, which stops the run: the row it was for is
 * not journalled as finished, so a resumed run reports it again.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import { CliError } from "./CliError.js"

/**
 * A failed row's line could not be written to the rejects file. A run failure: the run stops
 * (exit 1) and can be resumed.
 *
 * @since 0.2.0
 */
export class RejectsError extends Data.TaggedError("RejectsError")<{
  readonly path: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Writes one entry (a JSON line).
 *
 * @since 0.2.0
 */
export type WriteReject = (entry: unknown) => Effect.Effect<void, RejectsError>

/**
 * Opens the rejects file (mode 0600), truncated, or appended to when `append` (a resumed run);
 * closed with the scope. Failing to open it is a usage error.
 *
 * @since 0.2.0
 */
export const open = (path: string, append: boolean): Effect.Effect<WriteReject, CliError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => Fs.openSync(path, append ? "a" : "w", 0o600),
      catch: (error) => new CliError({ message: `Cannot write --rejects ${path}: ${(error as Error).message}` })
    }),
    (fd) => Effect.sync(() => Fs.closeSync(fd)).pipe(Effect.orElse(() => Effect.void))
  ).pipe(
    Effect.map((fd): WriteReject => (entry) =>
      Effect.try({
        try: () => {
          const bytes = Buffer.from(`${JSON.stringify(entry)}\n`)
          for (let written = 0; written < bytes.length;) written += Fs.writeSync(fd, bytes, written)
        },
        catch: (error) =>
          new RejectsError({
            path,
            message: `Cannot write --rejects ${path}: ${(error as Error).message}`,
            cause: error
          })
      })
    )
  )

/**
 * Whether a row read from an input is a line of a rejects file (`row`, `status` and an `input`
 * object): fed back as it is, every row would fail on its column `row`.
 *
 * @since 0.2.0
 */
export const isRejectsLine = (row: unknown): boolean =>
  typeof row === "object" && row !== null && "row" in row && "status" in row &&
  typeof (row as { readonly input?: unknown }).input === "object"

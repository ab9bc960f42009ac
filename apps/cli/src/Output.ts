/**
 * Writing to stdout (data only) and stderr (everything else), with back-pressure.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import * as StreamM from "effect/Stream"

const write = (stream: NodeJS.WriteStream, text: string): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (text === "" || stream.write(text)) resume(Effect.void)
    else stream.once("drain", () => resume(Effect.void))
  })

/**
 * Writes to stdout, waiting for it to drain when its buffer is full.
 *
 * @since 0.1.0
 */
export const stdout = (text: string): Effect.Effect<void> => write(process.stdout, text)

/**
 * Writes to stderr.
 *
 * @since 0.1.0
 */
export const stderr = (text: string): Effect.Effect<void> => write(process.stderr, text)

/**
 * Output formats of commands that print records.
 *
 * @since 0.1.0
 */
export type RecordFormat = "jsonl" | "json"

/**
 * Writes a stream of records to stdout as JSON lines or as one JSON array, a chunk at a time.
 *
 * @since 0.1.0
 */
export const writeRecords = <E, R>(
  records: Stream.Stream<Readonly<Record<string, unknown>>, E, R>,
  format: RecordFormat
): Effect.Effect<number, E, R> =>
  Effect.gen(function*() {
    let count = 0
    if (format === "json") yield* stdout("[")
    yield* StreamM.runForEachChunk(records, (chunk) => {
      let text = ""
      for (const record of chunk) {
        if (format === "json") text += `${count === 0 ? "\n" : ",\n"}  ${JSON.stringify(record)}`
        else text += `${JSON.stringify(record)}\n`
        count++
      }
      return stdout(text)
    })
    if (format === "json") yield* stdout(count === 0 ? "]\n" : "\n]\n")
    return count
  })

/**
 * Drops OData annotations (`@odata.etag`, `...@OData.Community.Display.V1.FormattedValue`) so
 * that output can be piped back into an import.
 *
 * @since 0.1.0
 */
export const withoutAnnotations = (record: Readonly<Record<string, unknown>>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const key in record) if (!key.includes("@")) out[key] = record[key]
  return out
}

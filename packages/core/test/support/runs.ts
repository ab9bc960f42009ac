import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Bulk from "../../src/Bulk.js"
import type * as DataverseClient from "../../src/DataverseClient.js"
import type * as Journal from "../../src/Journal.js"
import type * as Records from "../../src/Records.js"

/**
 * Runs a create of contacts into `journal` (10 rows per request, 2 in flight), collecting the rows
 * reported failed; answers the error that stopped the run.
 */
export const stoppedRun = <E>(
  rows: ReadonlyArray<Records.Row>,
  journal: Journal.Journal,
  layer: Layer.Layer<DataverseClient.DataverseClient, E>
) =>
  Effect.gen(function*() {
    const failed: Array<number> = []
    const error = yield* Effect.flip(
      Bulk.execute(
        "create",
        "contact",
        rows,
        { chunkSize: 10, concurrency: 2, journal },
        (outcome) => Effect.sync(() => outcome.status === "failed" && failed.push(outcome.index))
      ).pipe(Effect.provide(layer))
    )
    return { error, failed }
  })

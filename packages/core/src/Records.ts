/**
 * Single-record operations.
 *
 * @since 0.1.0
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import { DataverseClient } from "./DataverseClient.js"
import { DataverseError } from "./DataverseError.js"

/**
 * A record as JSON: column logical names to values, `<nav>@odata.bind` for lookups.
 *
 * @since 0.1.0
 */
export type Row = Readonly<Record<string, unknown>>

/**
 * Reads the record id out of an `OData-EntityId` (or `Location`) URL: `.../contacts(<id>)`.
 *
 * @since 0.1.0
 */
export const idFromEntityUrl = (url: string | undefined): string | undefined => {
  const match = url === undefined ? null : /\(([0-9a-fA-F-]{36})\)\s*$/.exec(url)
  return match === null ? undefined : match[1]!.toLowerCase()
}

/**
 * Creates one record and returns its id. A record that carries its own primary key is retried
 * safely after a timeout (a second attempt fails with `DuplicateKey` if the first landed);
 * one without is not.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * const id = Records.create("contact", { firstname: "Ada", lastname: "Lovelace" })
 * ```
 *
 * @since 0.1.0
 */
export const create = (table: string, row: Row): Effect.Effect<string, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const result = yield* client.executeJson(
      HttpClientRequest.post(metadata.entitySetName).pipe(HttpClientRequest.bodyUnsafeJson(row)),
      { idempotent: typeof row[metadata.primaryIdAttribute] === "string" }
    )
    const id = idFromEntityUrl(result.headers["odata-entityid"] ?? result.headers["location"])
    if (id === undefined) {
      return yield* new DataverseError({
        reason: "Decode",
        message: `The create of a ${table} answered ${result.status} without an OData-EntityId header.`
      })
    }
    return id
  })

/**
 * Reads one record by id, with the columns named in `select` (all when omitted).
 *
 * @since 0.1.0
 */
export const retrieve = (
  table: string,
  id: string,
  options: { readonly select?: ReadonlyArray<string> } = {}
): Effect.Effect<Row, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const result = yield* client.executeJson(
      HttpClientRequest.get(`${metadata.entitySetName}(${id})`, {
        urlParams: options.select === undefined ? {} : { $select: options.select.join(",") }
      })
    )
    return result.body as Row
  })

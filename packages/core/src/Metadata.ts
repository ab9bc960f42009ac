/**
 * Table definitions, fetched once per connection and cached.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { DataverseClient } from "./DataverseClient.js"
import type { DataverseError } from "./DataverseError.js"
import type { TableMetadata } from "./internal/metadata.js"

export type {
  /**
   * What the client knows of a table: entity set, primary key and name, table type.
   *
   * @since 0.1.0
   */
  TableMetadata
} from "./internal/metadata.js"

/**
 * The definition of a table by logical name (`contact`), from the connection's cache.
 * Fails with reason `NotFound` when the table does not exist.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * const entitySet = Metadata.table("contact").pipe(Effect.map((t) => t.entitySetName)) // "contacts"
 * ```
 *
 * @since 0.1.0
 */
export const table = (logicalName: string): Effect.Effect<TableMetadata, DataverseError, DataverseClient> =>
  Effect.flatMap(DataverseClient, (client) => client.table(logicalName))

/**
 * Forgets cached metadata: of one table, or of all.
 *
 * @since 0.1.0
 */
export const invalidate = (logicalName?: string): Effect.Effect<void, never, DataverseClient> =>
  Effect.flatMap(DataverseClient, (client) => client.invalidateMetadata(logicalName))

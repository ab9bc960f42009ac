/**
 * Single-record operations: create, retrieve, update, upsert and delete, by primary key or by
 * alternate key (elastic tables with their partition), and lookup bindings.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { DataverseClient } from "./DataverseClient.js"
import type { DataverseError } from "./DataverseError.js"
import * as annotations from "./internal/annotations.js"
import { normaliseDateTime, normaliseGuid } from "./internal/odata.js"
import * as internal from "./internal/records.js"
import type { TableMetadata } from "./Metadata.js"
import type { ExpandItem } from "./Query.js"

/**
 * A record as JSON: column logical names to values, `<nav>@odata.bind` for lookups.
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const row: Records.Row = { lastname: "Doe", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Row = Readonly<Record<string, unknown>>

/**
 * A value of an alternate-key column. Strings are quoted in the URL, numbers, booleans and dates
 * are bare; with the table's metadata the column's type decides (GUID columns bare).
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const value: Records.KeyValue = "A-1"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type KeyValue = string | number | bigint | boolean | Date

/**
 * What identifies a record: its primary key (a GUID string), or the values of an alternate key
 * by column, several for a multi-part key.
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const byId: Records.RecordRef = "5d1d2f3e-6a1b-4c8d-9e0f-112233445566"
 * const byKey: Records.RecordRef = { firstname: "Jo", emailaddress1: "jo@example.org" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type RecordRef = string | Readonly<Record<string, KeyValue>>

/**
 * The partition of a record of an elastic table. It goes into the key
 * (`readings(readingid=<id>,partitionid='p')`).
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const where: Records.Partition = { partitionId: "device-7" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Partition {
  readonly partitionId?: string
}

/**
 * Reads the record id out of an `OData-EntityId` (or `Location`) URL: `.../contacts(<id>)`.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * Records.idFromEntityUrl("https://x.crm.dynamics.com/api/data/v9.2/contacts(5d1d2f3e-6a1b-4c8d-9e0f-112233445566)")
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const idFromEntityUrl: (url: string | undefined) => string | undefined = internal.idFromEntityUrl

/**
 * The canonical form of a GUID (lower case, no braces, no surrounding spaces), or undefined when
 * `text` is not one.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * Records.parseGuid(" {5D1D2F3E-6A1B-4C8D-9E0F-112233445566} ") // "5d1d2f3e-6a1b-4c8d-9e0f-112233445566"
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const parseGuid: (text: string) => string | undefined = normaliseGuid

/**
 * A date (`2024-01-31`) or date-time (`2024-01-31T10:00:00Z`, seconds, fractions and the offset
 * optional; `+01:00` as an offset) in the form the Web API takes, seconds filled in; undefined
 * when `text` is not one or names no real date (`2024-02-30`, `06/01/2024`).
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * Records.parseDateTime("2024-01-31T10:00+01:00") // "2024-01-31T10:00:00+01:00"
 * Records.parseDateTime("2024-02-30") // undefined
 * ```
 *
 * @since 0.2.0
 * @category conversions
 */
export const parseDateTime: (text: string) => string | undefined = normaliseDateTime

/**
 * A row without the annotations it carried when read, so that a record read back can be written
 * again; the row itself when it has none. Every write of this package drops them.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * Records.withoutReadAnnotations({ name: "A", "@odata.etag": "W/\"1\"", "statuscode@OData.Community.Display.V1.FormattedValue": "Active" })
 * // { name: "A" }
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const withoutReadAnnotations: <A extends Readonly<Record<string, unknown>>>(row: A) => A =
  annotations.withoutReadAnnotations

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
 * @category accessors
 */
export const create: (table: string, row: Row) => Effect.Effect<string, DataverseError, DataverseClient> =
  internal.create

/**
 * Options of `retrieve`.
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const options: Records.RetrieveOptions = { select: ["fullname"], expand: [{ property: "parentcustomerid_account", select: ["name"] }] }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RetrieveOptions extends Partition {
  /** Columns to return (`$select`); all when omitted. The primary key always comes back. */
  readonly select?: ReadonlyArray<string>
  /** Single-valued navigation properties (lookups) to return the related record of. */
  readonly expand?: ReadonlyArray<ExpandItem>
}

/**
 * Reads one record by primary key or alternate key. The row carries `@odata.etag`, which
 * `update` takes for optimistic concurrency. Fails with reason `NotFound` when there is none.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * const account = Records.retrieve("account", { accountnumber: "A-1" }, { select: ["name"] })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const retrieve: (
  table: string,
  ref: RecordRef,
  options?: RetrieveOptions
) => Effect.Effect<Row, DataverseError, DataverseClient> = internal.retrieve

/**
 * Options of `update`.
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const options: Records.UpdateOptions = { etag: "W/\"1234\"" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface UpdateOptions extends Partition {
  /**
   * Update only if the record is still at this version (`@odata.etag` from `retrieve`); else fail
   * with reason `PreconditionFailed`. Default: any version (`If-Match: *`).
   */
  readonly etag?: string
}

/**
 * Updates an existing record (`PATCH` with `If-Match: *`, or the given ETag); never creates one.
 * Fails with reason `NotFound` when the record does not exist. Annotations read back with a
 * record (`@odata.etag`, formatted values) are dropped from the body.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Records } from "@dv-effect/core"
 * const rename = (id: string) =>
 *   Effect.gen(function*() {
 *     const row = yield* Records.retrieve("contact", id, { select: ["lastname"] })
 *     yield* Records.update("contact", id, { lastname: "Byron" }, { etag: row["@odata.etag"] as string })
 *   })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const update: (
  table: string,
  ref: RecordRef,
  row: Row,
  options?: UpdateOptions
) => Effect.Effect<void, DataverseError, DataverseClient> = internal.update

/**
 * How `upsert` treats an existing or missing record.
 *
 * - `upsert`: update it if it exists, else create it (`PATCH`);
 * - `createOnly`: create it, fail with reason `DuplicateKey` if it exists (`If-None-Match: *`);
 * - `updateOnly`: update it, fail with reason `NotFound` if it does not exist (`If-Match: *`).
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const mode: Records.UpsertMode = "createOnly"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type UpsertMode = "upsert" | "createOnly" | "updateOnly"

/**
 * Options of `upsert`.
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const options: Records.UpsertOptions = { mode: "createOnly" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface UpsertOptions extends Partition {
  /** Default `upsert`. */
  readonly mode?: UpsertMode
}

/**
 * Writes a record at an address (`PATCH <set>(<key>)`): updates it if it exists, creates it
 * there if not. A record created by alternate key gets the key's values. Returns the record's id
 * when the service reports it. Safe to retry after a timeout: the address is fixed, so a second
 * attempt cannot create a second record. On elastic tables an upsert replaces the whole record.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * const id = Records.upsert("account", { accountnumber: "A-1" }, { name: "Contoso" })
 * const created = Records.upsert("account", { accountnumber: "A-2" }, { name: "Fabrikam" }, { mode: "createOnly" })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const upsert: (
  table: string,
  ref: RecordRef,
  row: Row,
  options?: UpsertOptions
) => Effect.Effect<Option.Option<string>, DataverseError, DataverseClient> = internal.upsert

/**
 * Options of `remove`.
 *
 * @example
 * ```ts
 * import type { Records } from "@dv-effect/core"
 * const options: Records.DeleteOptions = { ifMissing: "ignore" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DeleteOptions extends Partition {
  /** What a record that does not exist means: `fail` (reason `NotFound`, the default) or `ignore` (done). */
  readonly ifMissing?: "fail" | "ignore"
  /** Delete only if the record is still at this version; else fail with reason `PreconditionFailed`. */
  readonly etag?: string
}

/**
 * Deletes one record (`DELETE <set>(<key>)`). Returns `true` when it was deleted, `false` when
 * it did not exist and `ifMissing: "ignore"` was asked for. Safe to retry: a retry after a delete
 * that landed finds nothing, which `ifMissing: "ignore"` counts as done.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * const gone = Records.delete("account", { accountnumber: "A-1" }, { ifMissing: "ignore" })
 * ```
 *
 * @since 0.2.0
 * @category accessors
 */
const deleteRecord: (
  table: string,
  ref: RecordRef,
  options?: DeleteOptions
) => Effect.Effect<boolean, DataverseError, DataverseClient> = internal.deleteRecord

export { deleteRecord as delete }

/**
 * The `@odata.bind` value that points a lookup at a record: `/accounts(<id>)`,
 * `/accounts(accountnumber='A-1')`. `target` is the entity set name (`accounts`) or the table's
 * metadata (then each key column is written as its type says, GUID columns bare). Key values are
 * percent-encoded. What cannot be a key (a primary key that is not a GUID, a key without columns)
 * is written as given, and the service refuses it when the row is sent; `lookup` checks first.
 *
 * @example
 * ```ts
 * import { Records } from "@dv-effect/core"
 * const row = {
 *   lastname: "Doe",
 *   "parentcustomerid_account@odata.bind": Records.bind("accounts", { accountnumber: "A-1" })
 * }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const bind: (target: string | TableMetadata, ref: RecordRef) => string = internal.bind

/**
 * The binding of lookup `column` of `table` to a record of `target`, as a one-property object to
 * spread into a row: `{ "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')" }`.
 * The navigation property and the entity set come from metadata.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Records } from "@dv-effect/core"
 * const program = Effect.gen(function*() {
 *   const parent = yield* Records.lookup("contact", "parentcustomerid", "account", { accountnumber: "A-1" })
 *   return yield* Records.create("contact", { lastname: "Doe", ...parent })
 * })
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const lookup: (
  table: string,
  column: string,
  target: string,
  ref: RecordRef
) => Effect.Effect<Readonly<Record<string, string>>, DataverseError, DataverseClient> = internal.lookup

/**
 * Table definitions (entity set, keys, columns with their types, lengths, ranges and choices,
 * lookup navigation properties, bulk-message support), fetched once per connection and cached.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Option from "effect/Option"
import type { DataverseClient } from "./DataverseClient.js"
import type { DataverseError } from "./DataverseError.js"
import * as internal from "./internal/metadataAccess.js"
import * as internalSuggest from "./internal/suggest.js"

/**
 * An alternate key. Only keys whose index is `Active` can address records.
 *
 * @example
 * ```ts
 * import type { Metadata } from "@dv-effect/core"
 * const usable = (keys: ReadonlyArray<Metadata.AlternateKeyMetadata>) => keys.filter((k) => k.status === "Active")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface AlternateKeyMetadata {
  readonly logicalName: string
  readonly keyAttributes: ReadonlyArray<string>
  /** `EntityKeyIndexStatus`: `Active`, `Pending`, `InProgress` or `Failed`. */
  readonly status: string
}

/**
 * A column's `AttributeType`, as the service reports it. The list is open: the service has more
 * (`Virtual`, `EntityName`, `PartyList`, ...).
 *
 * @example
 * ```ts
 * import type { Metadata } from "@dv-effect/core"
 * const isText = (type: Metadata.AttributeType) => type === "String" || type === "Memo"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type AttributeType =
  | "String"
  | "Memo"
  | "Integer"
  | "BigInt"
  | "Decimal"
  | "Double"
  | "Money"
  | "Boolean"
  | "DateTime"
  | "Picklist"
  | "State"
  | "Status"
  | "Lookup"
  | "Customer"
  | "Owner"
  | "Uniqueidentifier"
  | (string & {})

/**
 * Which bulk messages a table supports. CreateMultiple and UpdateMultiple come from
 * `sdkmessagefilters`; UpsertMultiple is supported where both are; DeleteMultiple only on elastic
 * tables. Where a message is missing, send the records through `$batch` instead.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * const viaBatch = Metadata.table("task").pipe(Effect.map((t) => !t.messages.createMultiple))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface BulkMessageSupport {
  readonly createMultiple: boolean
  readonly updateMultiple: boolean
  readonly upsertMultiple: boolean
  readonly deleteMultiple: boolean
}

/**
 * How a DateTime column stores its values (`DateTimeAttributeMetadata.DateTimeBehavior`):
 * `UserLocal` (UTC, shown in each user's time zone), `TimeZoneIndependent` (as written) or
 * `DateOnly` (a date without a time: learn.microsoft.com, behavior-format-date-time-field).
 *
 * @example
 * ```ts
 * import type { Metadata } from "@dv-effect/core"
 * const takesDateOnly = (column: Metadata.ColumnMetadata) => column.dateTimeBehavior === "DateOnly"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type DateTimeBehavior = "UserLocal" | "DateOnly" | "TimeZoneIndependent"

/**
 * What the client knows of a column.
 *
 * @example
 * ```ts
 * import type { Metadata } from "@dv-effect/core"
 * const tooLong = (column: Metadata.ColumnMetadata, value: string) =>
 *   column.maxLength !== undefined && value.length > column.maxLength
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ColumnMetadata {
  readonly logicalName: string
  readonly type: AttributeType
  /** `AttributeTypeName.Value`, e.g. `StringType`, `MultiSelectPicklistType` (a `Virtual` column). */
  readonly typeName: string | undefined
  readonly requiredLevel: RequiredLevel
  /** Strings and memos: the most characters a value may have. */
  readonly maxLength: number | undefined
  /** Numbers: the inclusive range. */
  readonly minValue: number | undefined
  readonly maxValue: number | undefined
  /** Picklist, State, Status (and multi-select) columns: the allowed values and their labels. */
  readonly options: ReadonlyArray<OptionMetadata> | undefined
  /** Lookup, Customer and Owner columns: the tables the column may point at. */
  readonly targets: ReadonlyArray<string> | undefined
  /**
   * DateTime columns: `DateTimeBehavior.Value`. A `DateOnly` column is an `Edm.Date` in the Web
   * API and takes a date (`"1990-05-01"`), never a date and time. Undefined when the metadata did
   * not say (the service's default is `UserLocal`).
   *
   * @since 0.2.0
   */
  readonly dateTimeBehavior?: DateTimeBehavior | undefined
  readonly isPrimaryId: boolean
  readonly isValidForCreate: boolean
  readonly isValidForUpdate: boolean
}

/**
 * A many-to-one relationship seen from the referencing table: lookup `column` pointing at
 * `target`, written as `<navigationProperty>@odata.bind`.
 *
 * @example
 * ```ts
 * import type { Metadata } from "@dv-effect/core"
 * const targets = (t: Metadata.TableMetadata, column: string) =>
 *   t.lookups.filter((l: Metadata.LookupNavigation) => l.column === column).map((l) => l.target)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LookupNavigation {
  /** `ReferencingAttribute`: the lookup column, e.g. `parentcustomerid`. */
  readonly column: string
  /** `ReferencedEntity`: the table pointed at, e.g. `account`. */
  readonly target: string
  /** `ReferencingEntityNavigationPropertyName`, e.g. `parentcustomerid_account`. */
  readonly navigationProperty: string
}

/**
 * One value of an option set (choice), with its label in the user's language.
 *
 * @example
 * ```ts
 * import type { Metadata } from "@dv-effect/core"
 * const byLabel = (options: ReadonlyArray<Metadata.OptionMetadata>, label: string) =>
 *   options.find((o) => o.label === label)?.value
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface OptionMetadata {
  readonly value: number
  readonly label: string | undefined
}

/**
 * `RequiredLevel.Value` of a column. Only `SystemRequired` is enforced by the Web API.
 *
 * @example
 * ```ts
 * import type { Metadata } from "@dv-effect/core"
 * const enforced = (level: Metadata.RequiredLevel) => level === "SystemRequired"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type RequiredLevel = "None" | "Recommended" | "ApplicationRequired" | "SystemRequired"

/**
 * What the client knows of a table.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * const keys = Metadata.table("account").pipe(Effect.map((t) => t.keys.map((k) => k.keyAttributes)))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TableMetadata {
  readonly logicalName: string
  readonly entitySetName: string
  readonly primaryIdAttribute: string
  readonly primaryNameAttribute: string | undefined
  readonly tableType: "Standard" | "Elastic"
  readonly objectTypeCode: number | undefined
  /** Every column, the primary key included, in the service's order. */
  readonly columns: ReadonlyArray<ColumnMetadata>
  /** One entry per lookup column and target table (polymorphic lookups have several). */
  readonly lookups: ReadonlyArray<LookupNavigation>
  readonly keys: ReadonlyArray<AlternateKeyMetadata>
  readonly messages: BulkMessageSupport
}

/**
 * The definition of a table by logical name (`contact`), from the connection's cache: fetched on
 * first use with one `EntityDefinitions` request (columns, keys and relationships expanded), the
 * two `sdkmessagefilters` queries and one option-set request per choice type the table has.
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
 * @category accessors
 */
export const table: (logicalName: string) => Effect.Effect<TableMetadata, DataverseError, DataverseClient> =
  internal.table

/**
 * Forgets cached metadata: of one table, or of all. The next use fetches it again (after a
 * column, key or relationship was added, for instance).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * const fresh = Effect.zipRight(Metadata.invalidate("account"), Metadata.table("account"))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const invalidate: (logicalName?: string) => Effect.Effect<void, never, DataverseClient> = internal.invalidate

/**
 * A column of a table by logical name.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * const maxLength = Metadata.table("contact").pipe(
 *   Effect.map((t) => Option.flatMap(Metadata.column(t, "lastname"), (c) => Option.fromNullable(c.maxLength)))
 * )
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const column: (metadata: TableMetadata, logicalName: string) => Option.Option<ColumnMetadata> = internal.column

/**
 * The candidates closest to a name that names nothing, best first, at most `limit` (3): the rule
 * behind every "did you mean" of the library and the CLI. Case does not count (a candidate that
 * differs only in case comes first); a candidate may be 2 edits away (insert, delete, replace, or
 * swap two neighbouring characters), or a third of the name's length for names of 9 characters or
 * more. A name or candidate shorter than 3 characters is suggested only when it differs in case alone.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * Metadata.suggest("Contact", ["account", "contact"]) // ["contact"]
 * const close = Metadata.table("contact").pipe(
 *   Effect.map((t) => Metadata.suggest("lastnmae", t.columns.map((c) => c.logicalName))) // ["lastname"]
 * )
 * ```
 *
 * @since 0.2.0
 * @category utils
 */
export const suggest: (name: string, candidates: Iterable<string>, limit?: number) => ReadonlyArray<string> =
  internalSuggest.suggest

/**
 * The phrase of every "did you mean" of the library and the CLI, for the candidates `suggest`
 * finds closest to `name`: `did you mean 'a'?`, `did you mean 'a' or 'b'?`, `did you mean 'a', 'b'
 * or 'c'?`, or undefined when none is close.
 *
 * @example
 * ```ts
 * import { Metadata } from "@dv-effect/core"
 * Metadata.didYouMean("prdo", ["prod", "test"]) // "did you mean 'prod'?"
 * Metadata.didYouMean("staging", ["prod", "test"]) // undefined
 * ```
 *
 * @since 0.2.0
 * @category utils
 */
export const didYouMean: (name: string, candidates: Iterable<string>) => string | undefined = internalSuggest.didYouMean

/**
 * The navigation property that sets lookup `column` to a record of table `target`:
 * `parentcustomerid` + `account` → `parentcustomerid_account`. The target may be left out when
 * the column points at one table only. Fails with reason `InvalidInput` when the table has no
 * such lookup or the target is not one of its targets.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * const name = Effect.gen(function*() {
 *   const contact = yield* Metadata.table("contact")
 *   return yield* Metadata.navigationProperty(contact, "parentcustomerid", "account") // "parentcustomerid_account"
 * })
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const navigationProperty: (
  metadata: TableMetadata,
  column: string,
  target?: string
) => Either.Either<string, DataverseError> = internal.navigationProperty

/**
 * The property name that binds lookup `column` to a record of `target`:
 * `parentcustomerid_account@odata.bind`. Put it in a row with a value from `Records.bind`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Metadata, Records } from "@dv-effect/core"
 * const row = (accountId: string) =>
 *   Effect.gen(function*() {
 *     const contact = yield* Metadata.table("contact")
 *     const property = yield* Metadata.bindName(contact, "parentcustomerid", "account")
 *     return { lastname: "Doe", [property]: Records.bind("accounts", accountId) }
 *   })
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const bindName: (
  metadata: TableMetadata,
  column: string,
  target?: string
) => Either.Either<string, DataverseError> = internal.bindName

/**
 * The navigation property a property name of the Web API's own form binds
 * (`parentcustomerid_account@odata.bind` → `parentcustomerid_account`), or why it binds none:
 * reason `InvalidInput`, with the message a row holding it fails with (the names that bind a
 * lookup given by its column's name, else the closest navigation properties). For checking a
 * file's header once rather than each row.
 *
 * @example
 * ```ts
 * import { Effect, Either } from "effect"
 * import { Metadata } from "@dv-effect/core"
 * const check = Effect.gen(function*() {
 *   const contact = yield* Metadata.table("contact")
 *   const bound = Metadata.checkBindName(contact, "parentcustomerid_acount@odata.bind")
 *   // Left: "'parentcustomerid_acount@odata.bind' names no navigation property of contact;
 *   //        did you mean 'parentcustomerid_account@odata.bind' or 'parentcustomerid_contact@odata.bind'?"
 *   return Either.isRight(bound)
 * })
 * ```
 *
 * @since 0.2.0
 * @category utils
 */
export const checkBindName: (metadata: TableMetadata, name: string) => Either.Either<string, DataverseError> =
  internal.checkBindName

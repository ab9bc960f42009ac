/**
 * `@dv-effect/core`: Microsoft Dataverse on Effect.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Batch from "./Batch.js"
/** @since 0.1.0 */
export * as Bulk from "./Bulk.js"
/** @since 0.1.0 */
export * as ConnectionString from "./ConnectionString.js"
/** @since 0.1.0 */
export * as Credentials from "./Credentials.js"
/** @since 0.1.0 */
export * as DataverseClient from "./DataverseClient.js"
/** @since 0.1.0 */
export * as DataverseError from "./DataverseError.js"

/**
 * Journals of bulk runs, for resuming a stopped run.
 *
 * @since 0.1.0
 */
export * as Journal from "./Journal.js"
/** @since 0.1.0 */
export * as Metadata from "./Metadata.js"
/** @since 0.1.0 */
export * as Query from "./Query.js"
/** @since 0.1.0 */
export * as Records from "./Records.js"
/** @since 0.1.0 */
export * as RetryPolicy from "./RetryPolicy.js"
/** @since 0.1.0 */
export * as Table from "./Table.js"

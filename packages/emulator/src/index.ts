/**
 * `@dv-effect/emulator`: a local Microsoft Dataverse Web API.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Emulator from "./Emulator.js"
/** @since 0.1.0 */
export * as Identity from "./Identity.js"
/** @since 0.1.0 */
export * as IdentityServer from "./IdentityServer.js"
/** @since 0.1.0 */
export * as Model from "./Model.js"
/** @since 0.1.0 */
export * as Optimum from "./Optimum.js"
/** @since 0.1.0 */
export * as Store from "./Store.js"
/** @since 0.1.0 */
export * as TableSchema from "./TableSchema.js"

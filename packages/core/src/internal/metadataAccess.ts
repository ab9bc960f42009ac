/**
 * Table metadata as callers use it: from the connection's cache, and within a definition (a
 * column, the navigation property of a lookup).
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { DataverseClient } from "../DataverseClient.js"
import type * as Metadata from "../Metadata.js"
import { invalid } from "./invalidInput.js"
import { withSuggestion } from "./suggest.js"
import { bindingProblem } from "./validate.js"

export const table: typeof Metadata.table = (logicalName) =>
  Effect.flatMap(DataverseClient, (client) => client.table(logicalName))

export const invalidate: typeof Metadata.invalidate = (logicalName) =>
  Effect.flatMap(DataverseClient, (client) => client.invalidateMetadata(logicalName))

export const column: typeof Metadata.column = (metadata, logicalName) =>
  Option.fromNullable(metadata.columns.find((c) => c.logicalName === logicalName))

export const navigationProperty: typeof Metadata.navigationProperty = (metadata, column, target) => {
  const candidates = metadata.lookups.filter((lookup) => lookup.column === column)
  const known = candidates.map((lookup) => lookup.target)
  if (candidates.length === 0) {
    const exists = metadata.columns.some((c) => c.logicalName === column)
    return Either.left(
      invalid(
        exists
          ? `The column '${column}' of '${metadata.logicalName}' is not a lookup with a navigation property.`
          : withSuggestion(
            `The table '${metadata.logicalName}' has no column '${column}'`,
            column,
            metadata.columns.map((c) => c.logicalName),
            "."
          )
      )
    )
  }
  const names = new Set(candidates.map((lookup) => lookup.navigationProperty))
  if (target === undefined) {
    return names.size === 1
      ? Either.right(candidates[0]!.navigationProperty)
      : Either.left(
        invalid(
          `The lookup '${column}' of '${metadata.logicalName}' points at several tables (${
            known.join(", ")
          }): name the target table.`
        )
      )
  }
  const exact: Metadata.LookupNavigation | undefined = candidates.find((lookup) => lookup.target === target)
  if (exact !== undefined) return Either.right(exact.navigationProperty)
  // An owner lookup has one relationship (to `owner`) and one navigation property for both targets.
  const targets = metadata.columns.find((c) => c.logicalName === column)?.targets ?? []
  if (names.size === 1 && targets.includes(target)) return Either.right(candidates[0]!.navigationProperty)
  return Either.left(
    invalid(
      `The lookup '${column}' of '${metadata.logicalName}' cannot point at '${target}' (targets: ${
        [...new Set([...targets, ...known])].join(", ")
      }).`
    )
  )
}

export const bindName: typeof Metadata.bindName = (metadata, column, target) =>
  Either.map(navigationProperty(metadata, column, target), (name) => `${name}@odata.bind`)

export const checkBindName: typeof Metadata.checkBindName = (metadata, name) => {
  const problem = name.endsWith("@odata.bind")
    ? bindingProblem(metadata, name)
    : `'${name}' is not a binding (a name that ends with @odata.bind)`
  return problem === undefined ? Either.right(name.slice(0, -"@odata.bind".length)) : Either.left(invalid(problem))
}

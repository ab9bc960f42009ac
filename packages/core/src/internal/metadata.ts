import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { DataverseError, isTransient } from "../DataverseError.js"
import { quote, withQuery } from "./odata.js"
import { didYouMean } from "./suggest.js"

import type {
  AlternateKeyMetadata,
  ColumnMetadata,
  DateTimeBehavior,
  LookupNavigation,
  OptionMetadata,
  RequiredLevel,
  TableMetadata
} from "../Metadata.js"

type ExecuteJson = (
  request: HttpClientRequest.HttpClientRequest,
  options?: { readonly retry?: boolean }
) => Effect.Effect<{ readonly body: unknown }, DataverseError>

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

const string = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

const number = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isFinite(value) ? value : undefined

const objects = (value: unknown): Array<Json> => (Array.isArray(value) ? value.filter(isObject) : [])

/** `Label.UserLocalizedLabel.Label`, else the first localized label. */
const labelText = (label: unknown): string | undefined => {
  if (!isObject(label)) return undefined
  const user = isObject(label.UserLocalizedLabel) ? string(label.UserLocalizedLabel.Label) : undefined
  return user ?? objects(label.LocalizedLabels).map((l) => string(l.Label)).find((l) => l !== undefined)
}

const requiredLevels: ReadonlyArray<RequiredLevel> = ["None", "Recommended", "ApplicationRequired", "SystemRequired"]
const dateTimeBehaviors: ReadonlyArray<DateTimeBehavior> = ["UserLocal", "DateOnly", "TimeZoneIndependent"]

const entityPath = (logicalName: string) => `EntityDefinitions(LogicalName=${encodeURIComponent(quote(logicalName))})`

/**
 * The one request for the table, its columns, keys and many-to-one relationships.
 *
 * `Attributes` is expanded without `$select`: the service only lets a `$select` name properties of
 * the base `AttributeMetadata` type, while `MaxLength`, `MinValue`/`MaxValue` and `Targets` belong
 * to derived types, which the service serialises in full when nothing is selected.
 */
const definitionRequest = (logicalName: string) =>
  HttpClientRequest.get(
    withQuery(entityPath(logicalName), [
      ["$select", "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,TableType,ObjectTypeCode"],
      [
        "$expand",
        "Attributes,Keys($select=LogicalName,KeyAttributes,EntityKeyIndexStatus)," +
        "ManyToOneRelationships($select=ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName)"
      ]
    ])
  )

/**
 * The option-set casts: `OptionSet` is a navigation property of `EnumAttributeMetadata`, which
 * cannot be cast to, so each derived type is asked for on its own (only for the types the table
 * has). `GlobalOptionSet` holds the options when the column uses a global choice.
 */
const optionSetCasts: ReadonlyArray<{ readonly cast: string; readonly has: (column: Json) => boolean }> = [
  { cast: "PicklistAttributeMetadata", has: (c) => c.AttributeType === "Picklist" },
  { cast: "StateAttributeMetadata", has: (c) => c.AttributeType === "State" },
  { cast: "StatusAttributeMetadata", has: (c) => c.AttributeType === "Status" },
  {
    cast: "MultiSelectPicklistAttributeMetadata",
    has: (c) => isObject(c.AttributeTypeName) && c.AttributeTypeName.Value === "MultiSelectPicklistType"
  }
]

/** The casts sent beside the definition: the choice types of statecode, statuscode and most tables' own choices. */
const speculativeCasts = optionSetCasts.filter(({ cast }) => cast !== "MultiSelectPicklistAttributeMetadata")

const optionSetRequest = (logicalName: string, cast: string) =>
  HttpClientRequest.get(
    withQuery(`${entityPath(logicalName)}/Attributes/Microsoft.Dynamics.CRM.${cast}`, [
      ["$select", "LogicalName"],
      ["$expand", "OptionSet($select=Options),GlobalOptionSet($select=Options)"]
    ])
  )

/** The bulk-message support query of the wire reference: one row = supported. */
const messageFilterRequest = (logicalName: string, message: string) =>
  HttpClientRequest.get(
    withQuery("sdkmessagefilters", [
      ["$select", "sdkmessagefilterid"],
      ["$filter", `sdkmessageid/name eq ${quote(message)} and primaryobjecttypecode eq ${quote(logicalName)}`]
    ])
  )

/**
 * The logical names of every table, for a "did you mean" when a table does not exist: one
 * request, asked only then; none when it fails (the not-found error is what matters).
 */
const tableNames = (executeJson: ExecuteJson): Effect.Effect<ReadonlyArray<string>> =>
  executeJson(HttpClientRequest.get(withQuery("EntityDefinitions", [["$select", "LogicalName"]]))).pipe(
    Effect.map(({ body }) =>
      isObject(body) ? objects(body.value).flatMap((entity) => string(entity.LogicalName) ?? []) : []
    ),
    Effect.orElseSucceed((): ReadonlyArray<string> => [])
  )

const decodeError = (logicalName: string, what: string) =>
  new DataverseError({ reason: "Decode", message: `The metadata of table '${logicalName}' ${what}.` })

const supportsMessage = (executeJson: ExecuteJson, logicalName: string, message: string) =>
  executeJson(messageFilterRequest(logicalName, message)).pipe(
    Effect.flatMap(({ body }) =>
      isObject(body) && Array.isArray(body.value)
        ? Effect.succeed(body.value.length > 0)
        : Effect.fail(decodeError(logicalName, `support query for ${message} answered without a 'value' array`))
    )
  )

/** A user who may not read sdkmessagefilters can still work: $batch serves every table. */
const unsupportedIfForbidden =
  (logicalName: string, message: string) =>
  <R>(support: Effect.Effect<boolean, DataverseError, R>): Effect.Effect<boolean, DataverseError, R> =>
    Effect.catchIf(
      support,
      (error) => error.reason === "Forbidden",
      (error) =>
        Effect.as(
          Effect.logWarning(
            `Cannot tell whether '${logicalName}' supports ${message} (${error.message}); assuming it does not.`
          ),
          false
        )
    )

const optionsOf = (optionSet: unknown): Array<OptionMetadata> | undefined =>
  isObject(optionSet) && Array.isArray(optionSet.Options)
    ? objects(optionSet.Options).flatMap((option) => {
      const value = number(option.Value)
      return value === undefined ? [] : [{ value, label: labelText(option.Label) }]
    })
    : undefined

const fetchOptionSets = (executeJson: ExecuteJson, logicalName: string, cast: string) =>
  executeJson(optionSetRequest(logicalName, cast)).pipe(
    Effect.flatMap(({ body }) => {
      if (!isObject(body) || !Array.isArray(body.value)) {
        return Effect.fail(decodeError(logicalName, `${cast} query answered without a 'value' array`))
      }
      const found: Array<readonly [string, Array<OptionMetadata>]> = []
      for (const attribute of objects(body.value)) {
        const name = string(attribute.LogicalName)
        const options = optionsOf(attribute.OptionSet) ?? optionsOf(attribute.GlobalOptionSet)
        if (name !== undefined && options !== undefined) found.push([name, options])
      }
      return Effect.succeed(found)
    })
  )

const decodeColumn = (
  attribute: Json,
  options: ReadonlyMap<string, ReadonlyArray<OptionMetadata>>,
  lookups: ReadonlyArray<LookupNavigation>
): ColumnMetadata | undefined => {
  const logicalName = string(attribute.LogicalName)
  if (logicalName === undefined) return undefined
  const level = isObject(attribute.RequiredLevel) ? attribute.RequiredLevel.Value : undefined
  const targets = Array.isArray(attribute.Targets)
    ? attribute.Targets.filter((t): t is string => typeof t === "string")
    : undefined
  const related = lookups.filter((lookup) => lookup.column === logicalName).map((lookup) => lookup.target)
  return {
    logicalName,
    type: string(attribute.AttributeType) ?? "Virtual",
    typeName: isObject(attribute.AttributeTypeName) ? string(attribute.AttributeTypeName.Value) : undefined,
    requiredLevel: requiredLevels.find((l) => l === level) ?? "None",
    maxLength: number(attribute.MaxLength),
    minValue: number(attribute.MinValue),
    maxValue: number(attribute.MaxValue),
    options: options.get(logicalName),
    targets: targets ?? (related.length > 0 ? [...new Set(related)] : undefined),
    dateTimeBehavior: dateTimeBehaviors.find((b) =>
      isObject(attribute.DateTimeBehavior) && b === attribute.DateTimeBehavior.Value
    ),
    isPrimaryId: attribute.IsPrimaryId === true,
    isValidForCreate: attribute.IsValidForCreate !== false,
    isValidForUpdate: attribute.IsValidForUpdate !== false
  }
}

/**
 * Everything the client needs of one table, in one round trip for most tables (each round trip to
 * a real org is 100 ms or more, and every command pays it per table):
 * - at once: `EntityDefinitions(LogicalName='x')` with `Attributes`, `Keys` and
 *   `ManyToOneRelationships` expanded; the two `sdkmessagefilters` queries (CreateMultiple,
 *   UpdateMultiple); and the option-set casts of the choice types standard tables have
 *   (`PicklistAttributeMetadata`, `StateAttributeMetadata`, `StatusAttributeMetadata`), sent before
 *   the definition says which choice types the table has. A cast of a type the table lacks answers
 *   an empty list; its failure matters only when the table has that type;
 * - then, only for a table with a multi-select choice column, its cast (a second round trip).
 *
 * A table with picklists costs six requests; one with multi-select choices, seven.
 */
export const fetchTableMetadata = (
  executeJson: ExecuteJson,
  logicalName: string
): Effect.Effect<TableMetadata, DataverseError> =>
  Effect.gen(function*() {
    const definition = executeJson(definitionRequest(logicalName)).pipe(
      Effect.catchIf(
        (error) => error.reason === "NotFound",
        (error) =>
          Effect.flatMap(tableNames(executeJson), (names) => {
            const hint = didYouMean(logicalName, names)
            return Effect.fail(
              new DataverseError({
                ...error,
                message: `Table '${logicalName}' does not exist in this environment${
                  hint === undefined ? " (tables are named by logical name, e.g. 'contact')." : `; ${hint}`
                }`
              })
            )
          })
      )
    )
    // Sent beside the definition, once each (no retries of their own: an outage is the
    // definition's to retry; a 429 is still waited out), their failures kept for later: a table
    // that does not exist fails with the definition's "did you mean", not with a cast's
    // not-found, and warns of nothing. None is interrupted when the definition fails.
    const once: ExecuteJson = (request) => executeJson(request, { retry: false })
    const [definitionSent, createMultipleSent, updateMultipleSent, ...castsSent] = yield* Effect.all([
      Effect.either(definition),
      Effect.either(supportsMessage(once, logicalName, "CreateMultiple")),
      Effect.either(supportsMessage(once, logicalName, "UpdateMultiple")),
      ...speculativeCasts.map(({ cast }) => Effect.either(fetchOptionSets(once, logicalName, cast)))
    ], { concurrency: "unbounded" })
    const { body } = yield* definitionSent
    if (!isObject(body) || typeof body.EntitySetName !== "string" || typeof body.PrimaryIdAttribute !== "string") {
      return yield* decodeError(logicalName, "lacks EntitySetName or PrimaryIdAttribute")
    }
    const name = string(body.LogicalName) ?? logicalName
    const tableType = body.TableType === "Elastic" ? "Elastic" : "Standard"
    const attributes = objects(body.Attributes)
    // An answer sent beside the definition serves unless it failed for a cause worth a retry
    // (not a wait past maxThrottleWait, which the definition's request met as well); then it is
    // asked again, with retries.
    const answer = <A>(sent: Either.Either<A, DataverseError>, again: () => Effect.Effect<A, DataverseError>) =>
      Either.isLeft(sent) && isTransient(sent.left) && sent.left.reason !== "Throttled" ? again() : sent
    const support = (sent: Either.Either<boolean, DataverseError>, message: string) =>
      answer(sent, () => supportsMessage(executeJson, name, message)).pipe(unsupportedIfForbidden(name, message))
    const [createMultiple, updateMultiple, optionSets] = yield* Effect.all([
      support(createMultipleSent, "CreateMultiple"),
      support(updateMultipleSent, "UpdateMultiple"),
      Effect.forEach(
        optionSetCasts.filter(({ has }) => attributes.some(has)),
        ({ cast }) => {
          const sent = castsSent[speculativeCasts.findIndex((c) => c.cast === cast)]
          const again = () => fetchOptionSets(executeJson, name, cast)
          return sent === undefined ? again() : answer(sent, again)
        },
        { concurrency: "unbounded" }
      )
    ], { concurrency: "unbounded" })

    const lookups: Array<LookupNavigation> = []
    for (const relationship of objects(body.ManyToOneRelationships)) {
      const column = string(relationship.ReferencingAttribute)
      const target = string(relationship.ReferencedEntity)
      const navigationProperty = string(relationship.ReferencingEntityNavigationPropertyName)
      if (column !== undefined && target !== undefined && navigationProperty !== undefined) {
        lookups.push({ column, target, navigationProperty })
      }
    }
    const options = new Map(optionSets.flat())
    const columns = attributes.flatMap((attribute) => decodeColumn(attribute, options, lookups) ?? [])
    const keys = objects(body.Keys).flatMap((key): Array<AlternateKeyMetadata> => {
      const keyName = string(key.LogicalName)
      const keyAttributes = Array.isArray(key.KeyAttributes)
        ? key.KeyAttributes.filter((a): a is string => typeof a === "string")
        : []
      return keyName === undefined || keyAttributes.length === 0
        ? []
        : [{ logicalName: keyName, keyAttributes, status: string(key.EntityKeyIndexStatus) ?? "Active" }]
    })
    return {
      logicalName: name,
      entitySetName: body.EntitySetName,
      primaryIdAttribute: body.PrimaryIdAttribute,
      primaryNameAttribute: string(body.PrimaryNameAttribute),
      tableType,
      objectTypeCode: number(body.ObjectTypeCode),
      columns,
      lookups,
      keys,
      messages: {
        createMultiple,
        updateMultiple,
        upsertMultiple: createMultiple && updateMultiple,
        deleteMultiple: tableType === "Elastic"
      }
    } satisfies TableMetadata
  })

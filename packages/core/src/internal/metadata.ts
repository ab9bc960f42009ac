import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import { DataverseError } from "../DataverseError.js"

/**
 * What the client knows of a table.
 */
export interface TableMetadata {
  readonly logicalName: string
  readonly entitySetName: string
  readonly primaryIdAttribute: string
  readonly primaryNameAttribute: string | undefined
  readonly tableType: "Standard" | "Elastic"
  readonly objectTypeCode: number | undefined
}

type ExecuteJson = (
  request: HttpClientRequest.HttpClientRequest
) => Effect.Effect<{ readonly body: unknown }, DataverseError>

const quote = (value: string) => `'${value.replace(/'/g, "''")}'`

/** `GET EntityDefinitions(LogicalName='x')` with only the properties the client uses. */
export const fetchTableMetadata = (executeJson: ExecuteJson, logicalName: string) =>
  executeJson(
    HttpClientRequest.get(
      `EntityDefinitions(LogicalName=${encodeURIComponent(quote(logicalName))})`,
      {
        urlParams: {
          $select: "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,TableType,ObjectTypeCode"
        }
      }
    )
  ).pipe(
    Effect.mapError((error) =>
      error.reason === "NotFound"
        ? new DataverseError({
          ...error,
          message:
            `Table '${logicalName}' does not exist in this environment (tables are named by logical name, e.g. 'contact').`
        })
        : error
    ),
    Effect.flatMap(({ body }) => {
      const b = body as Record<string, unknown> | undefined
      if (typeof b?.EntitySetName !== "string" || typeof b.PrimaryIdAttribute !== "string") {
        return Effect.fail(
          new DataverseError({
            reason: "Decode",
            message: `The metadata of table '${logicalName}' lacks EntitySetName or PrimaryIdAttribute.`
          })
        )
      }
      return Effect.succeed<TableMetadata>({
        logicalName: typeof b.LogicalName === "string" ? b.LogicalName : logicalName,
        entitySetName: b.EntitySetName,
        primaryIdAttribute: b.PrimaryIdAttribute,
        primaryNameAttribute: typeof b.PrimaryNameAttribute === "string" ? b.PrimaryNameAttribute : undefined,
        tableType: b.TableType === "Elastic" ? "Elastic" : "Standard",
        objectTypeCode: typeof b.ObjectTypeCode === "number" ? b.ObjectTypeCode : undefined
      })
    })
  )

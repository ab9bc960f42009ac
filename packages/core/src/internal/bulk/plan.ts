import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { BulkOptions, Operation, SmartOptions } from "../../Bulk.js"
import { DataverseClient, type DataverseClientService } from "../../DataverseClient.js"
import type { DataverseError } from "../../DataverseError.js"
import type { TableMetadata } from "../../Metadata.js"
import { invalid } from "../invalidInput.js"
import { withSuggestion } from "../suggest.js"
import type { ChunkSizer } from "./chunking.js"

/** How one run sends its rows, decided from the options and the table's metadata. */
export interface RunPlan {
  readonly client: DataverseClientService
  readonly metadata: TableMetadata
  readonly operation: Operation
  readonly elastic: boolean
  readonly strategy: "auto" | "multiple" | "batch" | "single"
  /**
   * Whether each operation goes through its `*Multiple` message; `auto` turns one off when the
   * service says the table lacks it after all.
   */
  readonly multiple: Record<Operation, boolean>
  readonly isolation: "batch" | "bisect"
  readonly key: ReadonlyArray<string> | undefined
  readonly smart: SmartOptions | undefined
  /** Headers of every write: bypass, and the annotations elastic partial failures need. */
  readonly headers: Readonly<Record<string, string>>
  /** `?tag=...` for the bulk messages, or "". */
  readonly tagQuery: string
  readonly chunkSize: number | "auto"
  readonly maxRequestBytes: number
  /** Milliseconds the adaptive chunk size aims under. */
  readonly targetLatencyMs: number
  /** The run's chunk sizer, once the run has one: a refused request's search tells it its figures. */
  readonly sizer?: ChunkSizer | undefined
}

export const messageOf: Record<Operation, "CreateMultiple" | "UpdateMultiple" | "UpsertMultiple" | "DeleteMultiple"> = {
  create: "CreateMultiple",
  update: "UpdateMultiple",
  upsert: "UpsertMultiple",
  delete: "DeleteMultiple"
}

const supportKey = {
  create: "createMultiple",
  update: "updateMultiple",
  upsert: "upsertMultiple",
  delete: "deleteMultiple"
} as const

/**
 * Checks the options against the table (chunk size, byte budget, strategy, key columns, smart
 * mode) and decides how the run sends: which message per operation, the headers, the isolation.
 */
export const planRun = (
  operation: Operation,
  table: string,
  options: BulkOptions
): Effect.Effect<RunPlan, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const chunkSize = options.chunkSize ?? "auto"
    if (chunkSize !== "auto" && (!Number.isInteger(chunkSize) || chunkSize < 1)) {
      return yield* invalid(`chunkSize must be a positive whole number or "auto", got ${chunkSize}.`)
    }
    const maxRequestBytes = options.maxRequestBytes ?? 16 * 1024 * 1024
    if (!(maxRequestBytes > 0)) return yield* invalid(`maxRequestBytes must be positive, got ${maxRequestBytes}.`)
    const client = yield* DataverseClient
    const metadata = yield* client.table(table)
    const elastic = metadata.tableType === "Elastic"
    /** Whether the table has the operation's `*Multiple` message (DeleteMultiple: elastic tables only). */
    const supports = (op: Operation) =>
      op === "delete" ? elastic && metadata.messages.deleteMultiple : metadata.messages[supportKey[op]]
    const key = options.key !== undefined && options.key.length > 0 ? options.key : undefined
    if (options.strategy === "multiple" && !supports(operation)) {
      return yield* invalid(
        `Table '${metadata.logicalName}' does not support ${
          messageOf[operation]
        }; use the strategy "batch" (--strategy batch in the CLI) or "auto".`
      )
    }
    const smart: SmartOptions | undefined = options.smart === true
      ? {}
      : options.smart === false || options.smart === undefined
      ? undefined
      : options.smart
    if (smart !== undefined && operation === "delete") return yield* invalid("smart mode does not apply to delete.")
    if (key !== undefined && operation === "create" && smart === undefined) {
      // Left unused, a key would let a re-run create every record again unnoticed.
      return yield* invalid(
        "The key option (--key in the CLI) names the records of an update, upsert or delete (with smart mode, those a create looks up first); a create does not use it: leave it out, or upsert by it to write each record once."
      )
    }
    if (key !== undefined) {
      const unknown = key.find((column) => !metadata.columns.some((c) => c.logicalName === column))
      if (unknown !== undefined) {
        return yield* invalid(
          withSuggestion(
            `The key column '${unknown}' does not exist in ${metadata.logicalName}`,
            unknown,
            metadata.columns.map((c) => c.logicalName),
            "."
          )
        )
      }
      // Smart mode looks records up by any columns; writes address them by an alternate key.
      const wanted = [...key].sort().join(",")
      const match = metadata.keys.find((k) => [...k.keyAttributes].sort().join(",") === wanted)
      if (smart === undefined && operation !== "create" && (match === undefined || match.status !== "Active")) {
        const keys = metadata.keys.map((k) => `${k.keyAttributes.join(",")} (${k.logicalName}, ${k.status})`)
        return yield* invalid(
          `${key.join(",")} is not an active alternate key of ${metadata.logicalName}; its keys: ${
            keys.length === 0 ? "none" : keys.join("; ")
          }.`
        )
      }
    }
    const strategy = options.strategy ?? "auto"
    const multiple: Record<Operation, boolean> = { create: false, update: false, upsert: false, delete: false }
    for (const op of ["create", "update", "upsert", "delete"] as const) {
      // UpdateMultiple and DeleteMultiple take primary keys only: by alternate key, $batch.
      multiple[op] = strategy === "multiple"
        ? supports(op)
        : strategy === "auto"
        ? supports(op) && !(key !== undefined && op === operation && (op === "update" || op === "delete"))
        : false
    }
    const headers: Record<string, string> = {}
    const bypass = [
      ...(options.bypass?.sync ? ["CustomSync"] : []),
      ...(options.bypass?.async ? ["CustomAsync"] : [])
    ]
    if (bypass.length > 0) headers["MSCRM.BypassBusinessLogicExecution"] = bypass.join(",")
    if (elastic) headers["Prefer"] = "odata.include-annotations=\"*\""
    return {
      client,
      metadata,
      operation,
      elastic,
      strategy,
      multiple,
      isolation: options.isolation ?? "batch",
      key,
      smart,
      headers,
      tagQuery: options.tag === undefined ? "" : `?tag=${encodeURIComponent(options.tag)}`,
      chunkSize,
      maxRequestBytes,
      targetLatencyMs: Duration.toMillis(Duration.decode(options.targetLatency ?? "10 seconds"))
    }
  })

/** The strategy a plan sends an operation with. */
export const sendsWith = (plan: RunPlan, op: Operation): "multiple" | "batch" | "single" =>
  plan.strategy === "single" ? "single" : plan.multiple[op] ? "multiple" : "batch"

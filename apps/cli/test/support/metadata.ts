/**
 * Column definitions for tests that work on metadata without a service.
 */
import type { AttributeType, ColumnMetadata } from "@dv-effect/core/Metadata"

/** A writable, optional column of `type`; `extra` overrides any field. */
export const column = (
  logicalName: string,
  type: AttributeType,
  extra: Partial<ColumnMetadata> = {}
): ColumnMetadata => ({
  logicalName,
  type,
  typeName: undefined,
  requiredLevel: "None",
  maxLength: undefined,
  minValue: undefined,
  maxValue: undefined,
  options: undefined,
  targets: undefined,
  isPrimaryId: false,
  isValidForCreate: true,
  isValidForUpdate: true,
  ...extra
})

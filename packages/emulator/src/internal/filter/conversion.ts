/**
 * Text conversion of query-builder values (FetchXML values, `PropertyValues` of query functions)
 * to a field's type, with the query builder's error codes.
 */
import type { TableDefinition } from "../../TableSchema.js"
import { Fault } from "../fault.js"
import { parseGuid } from "../records.js"
import type { Field, Scalar } from "./values.js"
/** The query builder's error codes (Microsoft.Crm `ErrorCodes`), hex as the Web API reports them. */
export const queryBuilderCodes = {
  /** InvalidXml */
  invalidXml: "0x80040201",
  /** InvalidArgument */
  invalidArgument: "0x80040203",
  /** QueryBuilderNoEntity */
  noEntity: "0x80041102",
  /** QueryBuilderNoAttribute */
  noAttribute: "0x80041103",
  /** QueryBuilderBad_Condition */
  badCondition: "0x80041106",
  /** QueryBuilderDeserializeInvalidDistinct */
  invalidDistinct: "0x80041115",
  /** QueryBuilderDeserializeInvalidDescending */
  invalidDescending: "0x80041119",
  /** QueryBuilderDeserializeInvalidNode */
  invalidNode: "0x8004111C",
  /** QueryBuilderInvalidConditionOperator */
  invalidConditionOperator: "0x80041120",
  /** QueryBuilderInvalidFilterType */
  invalidFilterType: "0x80041122",
  /** QueryBuilderTopCountGreaterThanZero */
  topCountGreaterThanZero: "0x80041127"
} as const

/** The query builder's answer to an attribute the table does not have. */
export const noAttribute = (table: TableDefinition, name: string): Fault =>
  new Fault(
    400,
    queryBuilderCodes.noAttribute,
    `'${table.schemaName}' entity doesn't contain attribute with Name = '${name}' and NameMapping = 'Logical'.`
  )

const clrTypeOf = (field: Field): string => {
  switch (field.column?.type) {
    case undefined:
      return "System.Guid"
    case "String":
    case "Memo":
      return "System.String"
    case "Integer":
    case "Picklist":
    case "State":
    case "Status":
      return "System.Int32"
    case "BigInt":
      return "System.Int64"
    case "Decimal":
    case "Money":
      return "System.Decimal"
    case "Double":
      return "System.Double"
    case "Boolean":
      return "System.Boolean"
    case "DateTime":
      return "System.DateTime"
    default:
      return "System.Guid"
  }
}

const integerText = /^\s*[+-]?\d+\s*$/
const decimalText = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/
const isoDateText = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/
const usDateText = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/

/** Parses an ISO date or datetime (no offset means UTC), or M/D/YYYY as Advanced Find writes it; NaN otherwise. */
export const parseDateText = (text: string): number => {
  const trimmed = text.trim()
  const us = usDateText.exec(trimmed)
  if (us !== null) {
    const [month, dayOfMonth, year] = [Number(us[1]), Number(us[2]), Number(us[3])]
    const ms = Date.UTC(year, month - 1, dayOfMonth)
    const date = new Date(ms)
    return date.getUTCMonth() === month - 1 && date.getUTCDate() === dayOfMonth ? ms : NaN
  }
  if (!isoDateText.test(trimmed)) return NaN
  let iso = trimmed.replace(" ", "T")
  // Without an offset the value is taken as UTC; the service would use the user's time zone.
  if (iso.length === 10) iso += "T00:00:00Z"
  else if (!/(?:Z|[+-]\d{2}:?\d{2})$/.test(iso)) iso += "Z"
  const ms = Date.parse(iso)
  // Date.parse rolls 2026-02-30 over to March: check the calendar date survived.
  if (Number.isNaN(ms) || (iso.endsWith("Z") && new Date(ms).toISOString().slice(0, 10) !== iso.slice(0, 10))) {
    return NaN
  }
  return ms
}

/**
 * Converts a value written as text (a FetchXML value, an item of `PropertyValues`) to the
 * field's type, failing as the service does when the text does not parse.
 */
export const convertText = (table: TableDefinition, field: Field, text: string): Scalar | Fault => {
  const fail = (detail: string) =>
    new Fault(
      400,
      queryBuilderCodes.invalidArgument,
      `An exception System.FormatException was thrown while trying to convert input value '${text}' to attribute '${table.logicalName}.${field.attribute}'. Expected type of attribute value: ${
        clrTypeOf(field)
      }. Exception raised: ${detail}`
    )
  switch (field.kind) {
    case "string":
      return text
    case "number": {
      const type = field.column?.type
      const integral = type === "Integer" || type === "BigInt" || type === "Picklist" || type === "State" ||
        type === "Status"
      if (!(integral ? integerText : decimalText).test(text)) return fail("Input string was not in a correct format.")
      return Number(text)
    }
    case "boolean": {
      const value = text.trim().toLowerCase()
      if (value === "true" || value === "1") return true
      if (value === "false" || value === "0") return false
      return fail("String was not recognized as a valid Boolean.")
    }
    case "datetime": {
      const ms = parseDateText(text)
      return Number.isNaN(ms) ? fail("String was not recognized as a valid DateTime.") : ms
    }
    case "guid":
      return parseGuid(text.trim()) ??
        fail("Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).")
  }
}

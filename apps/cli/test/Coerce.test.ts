import { InvalidRow } from "@dv-effect/core/Bulk"
import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import type * as Metadata from "@dv-effect/core/Metadata"
import * as Records from "@dv-effect/core/Records"
import * as Emulator from "@dv-effect/emulator/Emulator"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { CliError } from "../src/CliError.js"
import {
  type CoerceContext,
  coerceRow,
  coerceValue,
  isWritable,
  leftOutMessage,
  lookupKeys,
  make,
  omitted,
  parseDateTime,
  polymorphicLookups,
  show,
  targetsOf,
  toRowError
} from "../src/Coerce.js"
import { column } from "./support/metadata.js"

const table = (
  logicalName: string,
  entitySetName: string,
  columns: ReadonlyArray<Metadata.ColumnMetadata>,
  extra: Partial<Metadata.TableMetadata> = {}
): Metadata.TableMetadata => ({
  logicalName,
  entitySetName,
  primaryIdAttribute: `${logicalName}id`,
  primaryNameAttribute: undefined,
  tableType: "Standard",
  objectTypeCode: undefined,
  columns: [column(`${logicalName}id`, "Uniqueidentifier", { isPrimaryId: true }), ...columns],
  lookups: [],
  keys: [],
  messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false },
  ...extra
})

const gender = column("gendercode", "Picklist", {
  options: [{ value: 1, label: "Male" }, { value: 2, label: "Female" }, { value: 3, label: "Other" }, {
    value: 4,
    label: "other"
  }]
})
const hobbies = column("dve_hobbies", "Virtual", {
  typeName: "MultiSelectPicklistType",
  options: [{ value: 10, label: "Chess" }, { value: 20, label: "Go" }, { value: 30, label: "Running" }]
})

const contact = table("contact", "contacts", [
  column("lastname", "String", { maxLength: 50 }),
  column("description", "Memo"),
  column("numberofchildren", "Integer"),
  column("dve_bignumber", "BigInt"),
  column("creditlimit", "Money"),
  column("dve_ratio", "Decimal"),
  column("dve_weight", "Double"),
  column("donotemail", "Boolean"),
  column("birthdate", "DateTime"),
  column("anniversary", "DateTime", { dateTimeBehavior: "DateOnly" }),
  column("dve_token", "Uniqueidentifier"),
  gender,
  column("statecode", "State", { options: [{ value: 0, label: "Active" }, { value: 1, label: "Inactive" }] }),
  hobbies,
  column("parentcustomerid", "Customer", { targets: ["account", "contact"] }),
  column("ownerid", "Owner", { targets: ["systemuser", "team"] }),
  column("dve_managerid", "Lookup", { targets: ["systemuser"] }),
  column("dve_unbound", "Lookup", { targets: ["account"] }),
  column("fullname", "String", { isValidForCreate: false, isValidForUpdate: false }),
  column("createdon", "DateTime", { isValidForCreate: false, isValidForUpdate: false }),
  column("createdby", "Lookup", { targets: ["systemuser"], isValidForCreate: false, isValidForUpdate: false }),
  column("dve_createonly", "String", { isValidForUpdate: false }),
  column("dve_updateonly", "String", { isValidForCreate: false })
], {
  lookups: [
    { column: "parentcustomerid", target: "account", navigationProperty: "parentcustomerid_account" },
    { column: "parentcustomerid", target: "contact", navigationProperty: "parentcustomerid_contact" },
    { column: "ownerid", target: "owner", navigationProperty: "ownerid" },
    { column: "dve_managerid", target: "systemuser", navigationProperty: "dve_managerid" }
  ]
})

const account = table("account", "accounts", [
  column("name", "String"),
  column("accountnumber", "String"),
  column("dve_code", "Integer"),
  column("dve_pending", "String")
], {
  keys: [
    { logicalName: "accountnumber_key", keyAttributes: ["accountnumber"], status: "Active" },
    { logicalName: "dve_code_key", keyAttributes: ["dve_code"], status: "Active" },
    { logicalName: "dve_pending_key", keyAttributes: ["dve_pending"], status: "Pending" },
    { logicalName: "pair_key", keyAttributes: ["name", "accountnumber"], status: "Active" }
  ]
})
const systemuser = table("systemuser", "systemusers", [column("domainname", "String")])
const team = table("team", "teams", [column("name", "String")])

const targets = new Map([["account", account], ["contact", contact], ["systemuser", systemuser], ["team", team]])
const context: CoerceContext = { table: contact, target: (name) => targets.get(name) }

const id = "5D1D2F3E-6A1B-4C8D-9E0F-112233445566"
const lowerId = id.toLowerCase()

const ok = (row: Record<string, unknown>) => {
  const result = coerceRow(context, row)
  if (Either.isLeft(result)) throw new Error(`expected success, got: ${result.left.message}`)
  return result.right
}
const problem = (row: Record<string, unknown>) => {
  const result = coerceRow(context, row)
  if (Either.isRight(result)) throw new Error(`expected a problem, got ${JSON.stringify(result.right)}`)
  return { kind: result.left.kind, column: result.left.column, message: result.left.message }
}

describe("coerceValue", () => {
  const of = (name: string) => contact.columns.find((c) => c.logicalName === name)!
  const value = (name: string, input: unknown) => Either.getOrThrowWith(coerceValue(of(name), input), (e) => e)
  const message = (name: string, input: unknown) =>
    Either.match(coerceValue(of(name), input), { onLeft: (e) => e.message, onRight: (v) => `no problem: ${String(v)}` })

  it("reads numbers by the column's type", () => {
    expect(value("numberofchildren", " 42 ")).toBe(42)
    expect(value("numberofchildren", "-7")).toBe(-7)
    expect(value("dve_bignumber", "9007199254740991")).toBe(9007199254740991)
    expect(value("creditlimit", "1500.50")).toBe(1500.5)
    expect(value("dve_ratio", "-.5")).toBe(-0.5)
    expect(value("dve_weight", "1e3")).toBe(1000)
    expect(value("numberofchildren", 3)).toBe(3)
    expect(message("numberofchildren", "4.5")).toBe("column 'numberofchildren': '4.5' is not a whole number")
    expect(message("numberofchildren", "12abc")).toBe("column 'numberofchildren': '12abc' is not a whole number")
    expect(message("dve_bignumber", "9007199254740993")).toBe(
      "column 'dve_bignumber': '9007199254740993' is too large to send exactly"
    )
    expect(message("creditlimit", "1,500")).toBe("column 'creditlimit': '1,500' is not a number")
    expect(message("creditlimit", "Infinity")).toBe("column 'creditlimit': 'Infinity' is not a number")
  })

  it("reads booleans as true/false, 1/0 or yes/no in any case", () => {
    expect(["true", "TRUE", "1", "Yes", " yes "].map((v) => value("donotemail", v))).toEqual([
      true,
      true,
      true,
      true,
      true
    ])
    expect(["false", "False", "0", "NO"].map((v) => value("donotemail", v))).toEqual([false, false, false, false])
    expect(value("donotemail", 1)).toBe(true)
    expect(value("donotemail", false)).toBe(false)
    expect(message("donotemail", "maybe")).toBe("column 'donotemail': 'maybe' is not true or false (or 1/0, yes/no)")
  })

  it("reads ISO dates and date-times, and refuses dates that do not exist", () => {
    expect(value("birthdate", "1990-02-28")).toBe("1990-02-28")
    expect(value("birthdate", "2024-02-29T10:30")).toBe("2024-02-29T10:30:00")
    expect(value("birthdate", "2024-01-31 23:59:59.123Z")).toBe("2024-01-31T23:59:59.123Z")
    expect(value("birthdate", "2024-01-31T10:00:00+0130")).toBe("2024-01-31T10:00:00+01:30")
    for (const bad of ["2023-02-29", "2024-13-01", "2024-01-31T24:00", "31/01/2024", "2024-1-5", "yesterday"]) {
      expect(parseDateTime(bad)).toBeUndefined()
    }
    expect(message("birthdate", "31/01/2024")).toBe(
      "column 'birthdate': '31/01/2024' is not an ISO date (2024-01-31) or date-time (2024-01-31T10:00:00Z)"
    )
  })

  it("gives a date-only column its date: a midnight as databases export it, never another time cut off", () => {
    expect(value("anniversary", "2010-06-12")).toBe("2010-06-12")
    expect(value("anniversary", "2010-06-12 00:00:00.000")).toBe("2010-06-12")
    expect(value("anniversary", "2010-06-12T00:00:00Z")).toBe("2010-06-12")
    // The day as written: a midnight with an offset is still that day.
    expect(value("anniversary", "2010-06-12T00:00+02:00")).toBe("2010-06-12")
    expect(message("anniversary", "2010-06-12T09:30:00Z")).toBe(
      "column 'anniversary': '2010-06-12T09:30:00Z' has a time of day, but 'anniversary' holds a date only (2010-06-12)"
    )
    expect(message("anniversary", "2010-06-31")).toBe(
      "column 'anniversary': '2010-06-31' is not an ISO date (2024-01-31)"
    )
  })

  it("reads GUIDs with or without braces, in any case", () => {
    expect(value("dve_token", `{${id}}`)).toBe(lowerId)
    expect(Records.parseGuid("not-a-guid")).toBeUndefined()
    expect(message("dve_token", "1234")).toBe("column 'dve_token': '1234' is not a GUID")
  })

  it("reads choices by value or by label in any case, and says when a label is unknown or ambiguous", () => {
    expect(value("gendercode", "2")).toBe(2)
    expect(value("gendercode", "female")).toBe(2)
    expect(value("gendercode", " MALE ")).toBe(1)
    expect(value("statecode", "Inactive")).toBe(1)
    expect(value("gendercode", 1)).toBe(1)
    expect(message("gendercode", "Unknown")).toBe(
      "column 'gendercode': 'Unknown' is not an option (Male = 1, Female = 2, Other = 3, other = 4)"
    )
    expect(message("gendercode", "femal")).toBe(
      "column 'gendercode': 'femal' is not an option (Male = 1, Female = 2, Other = 3, other = 4); did you mean 'Female'?"
    )
    expect(message("gendercode", "OTHER")).toBe(
      "column 'gendercode': 'OTHER' is the label of several options (3, 4): write the value"
    )
  })

  it("reads multi-select choices as labels or values separated by semicolons, into the Web API's form", () => {
    expect(value("dve_hobbies", "Chess;running")).toBe("10,30")
    expect(value("dve_hobbies", "10;20")).toBe("10,20")
    expect(value("dve_hobbies", "10,20")).toBe("10,20")
    expect(value("dve_hobbies", ["Go", 10])).toBe("20,10")
    expect(value("dve_hobbies", "Chess; ;Chess")).toBe("10")
    expect(message("dve_hobbies", "Chess;Poker")).toBe(
      "column 'dve_hobbies': 'Poker' is not an option (Chess = 10, Go = 20, Running = 30)"
    )
    expect(message("dve_hobbies", "Chess;Runing")).toBe(
      "column 'dve_hobbies': 'Runing' is not an option (Chess = 10, Go = 20, Running = 30); did you mean 'Running'?"
    )
  })

  it("passes text, turns JSON numbers into text for text columns, and leaves blank non-text values out", () => {
    expect(value("lastname", "  Doe ")).toBe("  Doe ")
    expect(value("lastname", 12)).toBe("12")
    expect(value("lastname", "")).toBe("")
    expect(value("numberofchildren", "  ")).toBe(omitted)
    expect(value("numberofchildren", null)).toBeNull()
  })

  it("cuts long values in messages", () => {
    const long = "x".repeat(100)
    expect(show(long)).toBe(`'${"x".repeat(39)}…'`)
    expect(message("numberofchildren", long)).toBe(
      `column 'numberofchildren': '${"x".repeat(39)}…' is not a whole number`
    )
  })
})

describe("coerceRow", () => {
  it("coerces every column and keeps Web API annotations as they are", () => {
    expect(ok({
      lastname: "Doe",
      numberofchildren: "2",
      donotemail: "no",
      gendercode: "Female",
      "parentcustomerid_account@odata.bind": "/accounts(1)",
      "@odata.type": "Microsoft.Dynamics.CRM.contact",
      "lastname@OData.Community.Display.V1.FormattedValue": "Doe"
    })).toEqual({
      lastname: "Doe",
      numberofchildren: 2,
      donotemail: false,
      gendercode: 2,
      "parentcustomerid_account@odata.bind": "/accounts(1)",
      "@odata.type": "Microsoft.Dynamics.CRM.contact",
      "lastname@OData.Community.Display.V1.FormattedValue": "Doe"
    })
  })

  it("names an unknown column, as a problem of the column", () => {
    expect(problem({ lastname: "Doe", lastnmae: "x" })).toEqual({
      kind: "column",
      column: "lastnmae",
      message: "column 'lastnmae' does not exist in contact; did you mean 'lastname'?"
    })
    expect(problem({ "parentcustomerd@account": "x" }).message).toBe(
      "column 'parentcustomerd' does not exist in contact; did you mean 'parentcustomerid'?"
    )
    // The Web API's own form of a lookup, misspelt: the column's problem too (a header's, once).
    expect(problem({ "parentcustomerid_acount@odata.bind": "/accounts(1)" })).toEqual({
      kind: "column",
      column: "parentcustomerid_acount@odata.bind",
      message:
        "'parentcustomerid_acount@odata.bind' names no navigation property of contact; did you mean 'parentcustomerid_account@odata.bind' or 'parentcustomerid_contact@odata.bind'?"
    })
    expect(problem({ numberofchildren: "many" })).toEqual({
      kind: "value",
      column: "numberofchildren",
      message: "column 'numberofchildren': 'many' is not a whole number"
    })
  })

  it("names every value of a row that does not convert, in one message, so that the row is fixed in one go", () => {
    expect(problem({ lastname: "Doe", birthdate: "2001-02-30", creditlimit: "abc", donotemail: "maybe" })).toEqual({
      kind: "value",
      column: "birthdate",
      message: [
        "column 'birthdate': '2001-02-30' is not an ISO date (2024-01-31) or date-time (2024-01-31T10:00:00Z)",
        "column 'creditlimit': 'abc' is not a number",
        "column 'donotemail': 'maybe' is not true or false (or 1/0, yes/no)"
      ].join("; ")
    })
    // A column the table lacks is said alone: for a CSV it stops the run.
    expect(problem({ creditlimit: "abc", lastnmae: "x" }).kind).toBe("column")
  })

  it("binds a single-target lookup written with a GUID", () => {
    expect(ok({ dve_managerid: id })).toEqual({ "dve_managerid@odata.bind": `/systemusers(${lowerId})` })
    expect(ok({ dve_managerid: null })).toEqual({ "dve_managerid@odata.bind": null })
    expect(ok({ dve_managerid: "" })).toEqual({})
    expect(problem({ dve_managerid: "jdoe" })).toEqual({
      kind: "value",
      column: "dve_managerid",
      message:
        "column 'dve_managerid': 'jdoe' is not a GUID; to find the systemuser by an alternate key, name the column dve_managerid@systemuser.<key column>"
    })
  })

  it("binds a polymorphic lookup written table:GUID or column@table", () => {
    expect(ok({ parentcustomerid: `account:${id}` })).toEqual({
      "parentcustomerid_account@odata.bind": `/accounts(${lowerId})`
    })
    expect(ok({ parentcustomerid: `Contact:{${id}}` })).toEqual({
      "parentcustomerid_contact@odata.bind": `/contacts(${lowerId})`
    })
    expect(ok({ "parentcustomerid@account": id })).toEqual({
      "parentcustomerid_account@odata.bind": `/accounts(${lowerId})`
    })
    expect(ok({ "parentcustomerid@contact": null })).toEqual({ "parentcustomerid_contact@odata.bind": null })
    expect(ok({ ownerid: `team:${id}` })).toEqual({ "ownerid@odata.bind": `/teams(${lowerId})` })
    expect(ok({ "ownerid@systemuser": id })).toEqual({ "ownerid@odata.bind": `/systemusers(${lowerId})` })
    expect(problem({ parentcustomerid: id })).toEqual({
      kind: "value",
      column: "parentcustomerid",
      message:
        "column 'parentcustomerid': the lookup points at several tables (account, contact): write values as account:<GUID>, or name the column parentcustomerid@account"
    })
    expect(problem({ parentcustomerid: `lead:${id}` })).toEqual({
      kind: "value",
      column: "parentcustomerid",
      message:
        "column 'parentcustomerid': the lookup 'parentcustomerid' cannot point at 'lead' (targets: account, contact)"
    })
    expect(problem({ "parentcustomerid@lead": id })).toEqual({
      kind: "column",
      column: "parentcustomerid@lead",
      message:
        "column 'parentcustomerid@lead': the lookup 'parentcustomerid' cannot point at 'lead' (targets: account, contact)"
    })
    // A misspelt target names the one meant.
    expect(problem({ parentcustomerid: `acount:${id}` }).message).toBe(
      "column 'parentcustomerid': the lookup 'parentcustomerid' cannot point at 'acount' (targets: account, contact); did you mean 'account'?"
    )
    expect(problem({ "parentcustomerid@acount.accountnumber": "A-1" }).message).toBe(
      "column 'parentcustomerid@acount.accountnumber': the lookup 'parentcustomerid' cannot point at 'acount' (targets: account, contact); did you mean 'account'?"
    )
    expect(problem({ "parentcustomerid@account.acountnumber": "A-1" }).message).toBe(
      "column 'parentcustomerid@account.acountnumber': the table 'account' has no column 'acountnumber'; did you mean 'accountnumber'?"
    )
    expect(problem({ "parentcustomerid@account": "A-1" }).message).toBe(
      "column 'parentcustomerid@account': 'A-1' is not a GUID"
    )
  })

  it("binds a lookup by alternate key, each key value written as its column's type says", () => {
    expect(ok({ "parentcustomerid@account.accountnumber": "A-1 O'Neil" })).toEqual({
      "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1%20O''Neil')"
    })
    expect(ok({ "parentcustomerid@account.dve_code": " 42 " })).toEqual({
      "parentcustomerid_account@odata.bind": "/accounts(dve_code=42)"
    })
    expect(ok({ "parentcustomerid@account.accountid": id })).toEqual({
      "parentcustomerid_account@odata.bind": `/accounts(${lowerId})`
    })
    expect(problem({ "parentcustomerid@account.dve_code": "A-1" })).toEqual({
      kind: "value",
      column: "parentcustomerid@account.dve_code",
      message: "column 'parentcustomerid@account.dve_code': 'A-1' is not a whole number"
    })
    expect(problem({ "parentcustomerid@account.name": "Contoso" })).toEqual({
      kind: "column",
      column: "parentcustomerid@account.name",
      message:
        "column 'parentcustomerid@account.name': 'name' is not an alternate key of account (keys: accountnumber, dve_code, dve_pending, name+accountnumber)"
    })
    expect(problem({ "parentcustomerid@account.nope": "x" }).message).toBe(
      "column 'parentcustomerid@account.nope': the table 'account' has no column 'nope'"
    )
    expect(problem({ "parentcustomerid@account.dve_pending": "x" }).message).toBe(
      "column 'parentcustomerid@account.dve_pending': the key 'dve_pending_key' of account is Pending, not Active"
    )
  })

  it("reads lookups written as query writes them (_x_value)", () => {
    expect(ok({ _dve_managerid_value: id })).toEqual({ "dve_managerid@odata.bind": `/systemusers(${lowerId})` })
    expect(problem({ _lastname_value: "x" }).message).toBe("column '_lastname_value' does not exist in contact")
  })

  it("names what is wrong with a lookup column", () => {
    expect(problem({ "lastname@account": id }).message).toBe(
      "column 'lastname@account': 'lastname' is a String column, not a lookup, so it takes no @table"
    )
    expect(problem({ "nothere@account": id }).message).toBe("column 'nothere' does not exist in contact")
    expect(problem({ dve_unbound: id }).message).toBe(
      "column 'dve_unbound': The column 'dve_unbound' of 'contact' is not a lookup with a navigation property."
    )
    expect(problem({ "parentcustomerid@account": id, parentcustomerid: `account:${"1".repeat(32)}` }).message)
      .toMatch(/is not a GUID/)
    const other = "00000000-0000-0000-0000-000000000001"
    expect(problem({ "parentcustomerid@account": id, parentcustomerid: `account:${other}` })).toEqual({
      kind: "column",
      column: "parentcustomerid",
      message: "column 'parentcustomerid' sets the same lookup as another column of the row"
    })
  })

  it("says which target tables a row needs, and only those the lookups can point at", () => {
    expect(targetsOf(contact, {
      lastname: "x",
      dve_managerid: id,
      parentcustomerid: `contact:${id}`,
      "parentcustomerid@account.accountnumber": "A-1",
      "ownerid@lead": id,
      ownerid: id
    })).toEqual(["systemuser", "contact", "account"])
  })

  it("names a target table whose metadata is missing", () => {
    const result = coerceRow({ table: contact, target: () => undefined }, { dve_managerid: id })
    expect(Either.isLeft(result) && result.left.message).toBe(
      "column 'dve_managerid': the table 'systemuser' is not known to this connection"
    )
  })

  it("clears a polymorphic lookup written null, through any of its navigation properties", () => {
    // As `query` writes a lookup that is not set: the Web API clears it through any of them.
    expect(ok({ _parentcustomerid_value: null })).toEqual({ "parentcustomerid_account@odata.bind": null })
    expect(ok({ parentcustomerid: null })).toEqual({ "parentcustomerid_account@odata.bind": null })
    expect(ok({ _parentcustomerid_value: `account:${id}` })).toEqual({
      "parentcustomerid_account@odata.bind": `/accounts(${lowerId})`
    })
    expect(ok({ _parentcustomerid_value: "" })).toEqual({})
  })

  it("reads the text null as null for a lookup by GUID, never as a lookup that needs its table", () => {
    expect(ok({ parentcustomerid: "null" })).toEqual({ "parentcustomerid_account@odata.bind": null })
    expect(ok({ _parentcustomerid_value: " NULL " })).toEqual({ "parentcustomerid_account@odata.bind": null })
    expect(ok({ ownerid: "null" })).toEqual({ "ownerid@odata.bind": null })
    expect(ok({ dve_managerid: "null" })).toEqual({ "dve_managerid@odata.bind": null })
    expect(ok({ "parentcustomerid@contact": "null" })).toEqual({ "parentcustomerid_contact@odata.bind": null })
    // A blank lookup is left out, as any blank value of a column that is not text.
    expect(ok({ parentcustomerid: "" })).toEqual({})
    expect(ok({ parentcustomerid: "  " })).toEqual({})
    // For an alternate key, the text null is a key value like any other.
    expect(ok({ "parentcustomerid@account.accountnumber": "null" })).toEqual({
      "parentcustomerid_account@odata.bind": "/accounts(accountnumber='null')"
    })
    expect(problem({ "parentcustomerid@account.dve_code": "null" }).message).toBe(
      "column 'parentcustomerid@account.dve_code': 'null' is not a whole number"
    )
  })

  it("leaves a lookup cleared with null out of a create (a new record has nothing to clear)", () => {
    const create = (row: Record<string, unknown>) =>
      Either.getOrThrowWith(coerceRow(context, row, { operation: "create" }), (e) => e)
    expect(create({ lastname: "Doe", parentcustomerid: null, dve_managerid: "null", "ownerid@team": null })).toEqual({
      lastname: "Doe"
    })
    expect(create({ parentcustomerid: `account:${id}` })).toEqual({
      "parentcustomerid_account@odata.bind": `/accounts(${lowerId})`
    })
    const update = Either.getOrThrowWith(
      coerceRow(context, { parentcustomerid: null }, { operation: "update" }),
      (e) => e
    )
    expect(update).toEqual({ "parentcustomerid_account@odata.bind": null })
  })

  it("refuses the keys a rejects file keeps for records that were not rows, as problems of the column", () => {
    expect(problem({ lastname: "Doe", "@dv-effect.extra": ["x", "y"] })).toEqual({
      kind: "column",
      column: "@dv-effect.extra",
      message:
        "'@dv-effect.extra' holds fields past the end of the CSV header ([\"x\",\"y\"]): move them to their columns, or remove the key"
    })
    expect(problem({ "@dv-effect.text": "3,\"open" })).toEqual({
      kind: "column",
      column: "@dv-effect.text",
      message:
        "'@dv-effect.text' holds a record that could not be read ('3,\"open'): write it as the row's columns, or remove the key"
    })
    expect(problem({ "@dv-effect.other": 1 }).message).toBe(
      "'@dv-effect.other' is a key reserved by dv-effect, not a column: remove it"
    )
    // Other annotations still pass as given.
    expect(ok({ "@odata.type": "Microsoft.Dynamics.CRM.contact" })).toEqual({
      "@odata.type": "Microsoft.Dynamics.CRM.contact"
    })
  })

  it("leaves out read-only columns (as a query returns them), keeps the primary key, and says which", () => {
    const row = {
      contactid: id,
      lastname: "Doe",
      fullname: "Jane Doe",
      createdon: "2024-01-31T10:00:00Z",
      _createdby_value: id,
      "createdby@systemuser": id,
      dve_createonly: "c",
      dve_updateonly: "u"
    }
    const run = (operation?: "create" | "update" | "upsert" | "delete") => {
      const left: Array<string> = []
      const result = coerceRow(context, row, { operation, leftOut: (key) => left.push(key) })
      if (Either.isLeft(result)) throw new Error(result.left.message)
      return { body: result.right, left }
    }
    const neither = ["fullname", "createdon", "_createdby_value", "createdby@systemuser"]
    expect(run()).toEqual({
      body: { contactid: lowerId, lastname: "Doe", dve_createonly: "c", dve_updateonly: "u" },
      left: neither
    })
    expect(run("upsert")).toEqual(run())
    expect(run("update")).toEqual({
      body: { contactid: lowerId, lastname: "Doe", dve_updateonly: "u" },
      left: [...neither.slice(0, 4), "dve_createonly"]
    })
    expect(run("create")).toEqual({
      body: { contactid: lowerId, lastname: "Doe", dve_createonly: "c" },
      left: [...neither, "dve_updateonly"]
    })
    expect(run("delete")).toEqual(run())
    // Without a listener, the columns are left out all the same.
    expect(ok({ lastname: "Doe", fullname: "x" })).toEqual({ lastname: "Doe" })
    const of = (name: string) => contact.columns.find((c) => c.logicalName === name)!
    expect(isWritable(of("contactid"), "update")).toBe(true)
    expect(isWritable(of("fullname"))).toBe(false)
    expect(leftOutMessage("contact", ["fullname", "createdon"])).toBe(
      "Left out of the rows (read-only in contact): fullname, createdon."
    )
    expect(leftOutMessage("contact", ["dve_createonly"], "update")).toBe(
      "Left out of the rows (not valid for update in contact): dve_createonly."
    )
  })

  it("leaves out the records an --expand brought along, never a misspelt column's values", () => {
    const left: Array<[string, string]> = []
    const result = coerceRow(context, {
      lastname: "Doe",
      "parentcustomerid_account.name": "Contoso",
      parentcustomerid_contact: null,
      dve_managerid: { fullname: "Boss" },
      contact_customer_contacts: [{ lastname: "Kid" }],
      contact_tasks: "[]"
    }, { operation: "update", leftOut: (key, why) => left.push([key, why]) })
    expect(result).toEqual(Either.right({ lastname: "Doe" }))
    expect(left).toEqual([
      ["parentcustomerid_account.name", "expanded"],
      ["parentcustomerid_contact", "expanded"],
      ["dve_managerid", "expanded"],
      ["contact_customer_contacts", "expanded"],
      ["contact_tasks", "expanded"]
    ])
    // A multi-select choice's array, or text, under a misspelt name is an unknown column.
    for (const value of [["Engineer"], [1, 2], "[1,2]"]) {
      const misspelt = coerceRow(context, { lastname: "Doe", lastnme: value })
      expect(Either.isLeft(misspelt) && misspelt.left.message).toBe(
        "column 'lastnme' does not exist in contact; did you mean 'lastname'?"
      )
    }
    // A FetchXML link-entity's column (`<alias>.<column>`) or a dotted name is refused, not left
    // out: left out, a header of dotted names would create empty records.
    const linked = coerceRow(context, { lastname: "Doe", "a.name": "Contoso" })
    expect(Either.isLeft(linked) && linked.left.message).toBe(
      "column 'a.name' does not exist in contact (a related table's column, as a FetchXML link-entity's: take it out of the input)"
    )
    const dotted = coerceRow(context, { "Contact.LastName": "Doe" })
    expect(Either.isLeft(dotted) && dotted.left.message).toMatch(/^column 'Contact.LastName' does not exist in contact/)
    // A lookup column written null still clears it.
    expect(coerceRow(context, { dve_managerid: null }, { operation: "update" })).toEqual(
      Either.right({ "dve_managerid@odata.bind": null })
    )
  })

  it("names the keys of a row that set a lookup, whichever syntax sets it", () => {
    expect(lookupKeys(contact, {
      lastname: "Doe",
      "parentcustomerid@account.accountnumber": "A-1",
      dve_managerid: "11111111-2222-4333-8444-555555555555",
      _ownerid_value: "systemuser:11111111-2222-4333-8444-555555555555",
      "parentcustomerid_contact@odata.bind": "/contacts(11111111-2222-4333-8444-555555555555)",
      "lastname@OData.Community.Display.V1.FormattedValue": "Doe"
    })).toEqual([
      "parentcustomerid@account.accountnumber",
      "dve_managerid",
      "_ownerid_value",
      "parentcustomerid_contact@odata.bind"
    ])
  })

  it("lists the lookups to several tables", () => {
    expect(polymorphicLookups(contact)).toEqual(["parentcustomerid", "ownerid"])
  })

  it("turns a problem into the row failure the engine reports", () => {
    const result = coerceRow(context, { nope: 1 })
    const error = Either.isLeft(result) ? toRowError(result.left) : undefined
    expect(error).toBeInstanceOf(InvalidRow)
    expect(error?.message).toBe("column 'nope' does not exist in contact")
  })
})

const Live = Layer.unwrapEffect(
  Effect.map(
    Emulator.Emulator,
    ({ info }) =>
      DataverseClient.layerNode({ url: info.webApiUrl, credentials: Credentials.staticToken(info.accessToken) })
  )
).pipe(Layer.provide(Emulator.layer({ identity: false })))

layer(Live, { excludeTestServices: true })("make, against the emulator", (it) => {
  it.effect("fetches the table and the lookup targets a row names, and coerces by their metadata", () =>
    Effect.gen(function*() {
      const coercer = yield* make("contact")
      expect(coercer.table.entitySetName).toBe("contacts")
      const row = yield* coercer.coerce({
        lastname: "Doe",
        gendercode: "female",
        donotemail: "yes",
        creditlimit: "1500.50",
        birthdate: "1990-02-28",
        "parentcustomerid@account.accountnumber": "A-1"
      })
      expect(row).toEqual({
        lastname: "Doe",
        gendercode: 2,
        donotemail: true,
        creditlimit: 1500.5,
        birthdate: "1990-02-28",
        "parentcustomerid_account@odata.bind": "/accounts(accountnumber='A-1')"
      })
      const product = yield* make("dve_product")
      expect(yield* product.coerce({ dve_name: "P", dve_supplierid: id, dve_category: "Software" })).toEqual({
        dve_name: "P",
        "dve_supplierid@odata.bind": `/accounts(${lowerId})`,
        dve_category: 100000001
      })
    }))

  it.effect("fails the row, or with columnProblems 'fail' the run, on a problem of a column", () =>
    Effect.gen(function*() {
      const bad = new InvalidRow({ message: "not valid JSON" })
      const rows = yield* make("contact")
      expect(yield* rows.coerce(bad)).toBe(bad)
      const failed = yield* rows.coerce({ lastname: "Doe", nickname: "D" })
      expect(failed).toBeInstanceOf(InvalidRow)
      expect((failed as InvalidRow).message).toBe("column 'nickname' does not exist in contact")
      const strict = yield* make("contact", { columnProblems: "fail" })
      const error = yield* Effect.flip(strict.coerce({ lastname: "Doe", nickname: "D" }))
      expect(error).toBeInstanceOf(CliError)
      expect(error.message).toBe("column 'nickname' does not exist in contact")
      // A bad value is still a problem of the row alone.
      const value = yield* strict.coerce({ lastname: "Doe", gendercode: "Unknown" })
      expect((value as InvalidRow).message).toBe(
        "column 'gendercode': 'Unknown' is not an option (Male = 1, Female = 2)"
      )
      const notes: Array<string> = []
      const noting = yield* make("contact", { note: (message) => Effect.sync(() => notes.push(message)) })
      const exported = { contactid: id, lastname: "Doe", fullname: "Doe", createdon: "2024-01-31T10:00:00Z" }
      expect(yield* noting.coerce(exported)).toEqual({ contactid: lowerId, lastname: "Doe" })
      yield* noting.coerce(exported)
      yield* noting.coerce({ ...exported, modifiedon: "2024-01-31T10:00:00Z" })
      expect(notes).toEqual([
        "Left out of the rows (read-only in contact): fullname, createdon.",
        "Left out of the rows (read-only in contact): modifiedon."
      ])
      const missing = yield* Effect.flip(make("nosuchtable"))
      expect(missing.reason).toBe("NotFound")
    }))
})

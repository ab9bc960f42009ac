import * as Emulator from "@dv-effect/emulator/Emulator"
import { defaultSchema, type TableDefinition } from "@dv-effect/emulator/TableSchema"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import { DataverseError } from "../src/DataverseError.js"
import { fetchTableMetadata } from "../src/internal/metadata.js"
import type { TableMetadata } from "../src/Metadata.js"
import * as Metadata from "../src/Metadata.js"

/** A standard table with every kind of choice column, a multi-part key and a lookup whose navigation property is not its name. */
const ticket: TableDefinition = {
  logicalName: "dve_ticket",
  entitySetName: "dve_tickets",
  schemaName: "dve_Ticket",
  objectTypeCode: 10010,
  primaryIdAttribute: "dve_ticketid",
  primaryNameAttribute: "dve_name",
  tableType: "Standard",
  columns: [
    { logicalName: "dve_name", type: "String", maxLength: 100, requiredLevel: "SystemRequired" },
    { logicalName: "dve_region", type: "String", maxLength: 20 },
    { logicalName: "dve_number", type: "Integer", minValue: 0, maxValue: 1_000_000 },
    {
      logicalName: "statecode",
      type: "State",
      options: [{ value: 0, label: "Active" }, { value: 1, label: "Inactive" }]
    },
    {
      logicalName: "statuscode",
      type: "Status",
      options: [{ value: 1, label: "Open" }, { value: 2, label: "Closed" }]
    },
    {
      logicalName: "dve_priority",
      type: "Picklist",
      options: [{ value: 1, label: "Low" }, { value: 2, label: "High" }]
    },
    {
      logicalName: "dve_accountid",
      type: "Lookup",
      targets: [{ table: "account", navigationProperty: "dve_AccountId" }]
    }
  ],
  keys: [{ logicalName: "dve_region_number", keyAttributes: ["dve_region", "dve_number"] }],
  messages: { createMultiple: true, updateMultiple: false, upsertMultiple: false, deleteMultiple: false }
}

const Live = Layer.unwrapEffect(
  Effect.map(
    Emulator.Emulator,
    ({ info }) =>
      DataverseClient.layerNode({ url: info.webApiUrl, credentials: Credentials.staticToken(info.accessToken) })
  )
).pipe(Layer.provideMerge(Emulator.layer({ identity: false, schema: { tables: [...defaultSchema.tables, ticket] } })))

/** Fetches a table's metadata afresh and counts the requests it took. */
const fresh = (table: string) =>
  Effect.gen(function*() {
    const emulator = yield* Emulator.Emulator
    yield* Metadata.invalidate(table)
    const before = emulator.counters.requests
    const metadata = yield* Metadata.table(table)
    return { metadata, requests: emulator.counters.requests - before }
  })

const columnOf = (metadata: TableMetadata, name: string) => Option.getOrThrow(Metadata.column(metadata, name))

layer(Live, { excludeTestServices: true })("Metadata against the emulator", (it) => {
  it.effect("reads columns, choices, lookups, keys and bulk support of account in one round trip", () =>
    Effect.gen(function*() {
      const { metadata, requests } = yield* fresh("account")
      // EntityDefinitions with Attributes/Keys/ManyToOneRelationships, two sdkmessagefilters and the
      // Picklist, State and Status casts, all at once.
      expect(requests).toBe(6)
      expect(metadata).toMatchObject({
        logicalName: "account",
        entitySetName: "accounts",
        primaryIdAttribute: "accountid",
        primaryNameAttribute: "name",
        tableType: "Standard",
        objectTypeCode: 1,
        keys: [{ logicalName: "accountnumber_key", keyAttributes: ["accountnumber"], status: "Active" }],
        lookups: [{ column: "primarycontactid", target: "contact", navigationProperty: "primarycontactid" }],
        messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
      })
      expect(columnOf(metadata, "accountid")).toMatchObject({ type: "Uniqueidentifier", isPrimaryId: true })
      expect(columnOf(metadata, "name")).toMatchObject({
        type: "String",
        typeName: "StringType",
        maxLength: 160,
        requiredLevel: "ApplicationRequired",
        options: undefined
      })
      expect(columnOf(metadata, "description")).toMatchObject({ type: "Memo", maxLength: 2000 })
      expect(columnOf(metadata, "numberofemployees")).toMatchObject({
        type: "Integer",
        minValue: 0,
        maxValue: 1_000_000_000,
        requiredLevel: "None"
      })
      expect(columnOf(metadata, "industrycode").options).toContainEqual({ value: 25, label: "Transportation" })
      expect(columnOf(metadata, "industrycode").options).toHaveLength(6)
      expect(columnOf(metadata, "primarycontactid")).toMatchObject({ type: "Lookup", targets: ["contact"] })
      expect(columnOf(metadata, "createdon")).toMatchObject({ type: "DateTime", isValidForCreate: false })
      expect(Metadata.column(metadata, "nosuchcolumn")).toEqual(Option.none())
    }))

  it.effect("caches per connection until invalidated", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const { metadata } = yield* fresh("contact")
      const before = emulator.counters.requests
      expect(yield* Metadata.table("contact")).toBe(metadata)
      expect(emulator.counters.requests).toBe(before)
      yield* Metadata.invalidate()
      const again = yield* Metadata.table("contact")
      expect(again).not.toBe(metadata)
      expect(again).toEqual(metadata)
      expect(emulator.counters.requests - before).toBe(6)
    }))

  it.effect("names the navigation property of each target of a polymorphic lookup", () =>
    Effect.gen(function*() {
      const { metadata } = yield* fresh("contact")
      expect(columnOf(metadata, "parentcustomerid")).toMatchObject({
        type: "Customer",
        targets: ["account", "contact"]
      })
      expect(yield* Metadata.navigationProperty(metadata, "parentcustomerid", "account")).toBe(
        "parentcustomerid_account"
      )
      expect(yield* Metadata.bindName(metadata, "parentcustomerid", "contact")).toBe(
        "parentcustomerid_contact@odata.bind"
      )
      const noTarget = yield* Effect.flip(Metadata.bindName(metadata, "parentcustomerid"))
      expect(noTarget.reason).toBe("InvalidInput")
      expect(noTarget.message).toContain("several tables (account, contact)")
      const wrongTarget = yield* Effect.flip(Metadata.bindName(metadata, "parentcustomerid", "task"))
      expect(wrongTarget.message).toContain("cannot point at 'task'")
      const notLookup = yield* Effect.flip(Metadata.bindName(metadata, "lastname"))
      expect(notLookup.message).toContain("not a lookup")
      const missing = yield* Effect.flip(Metadata.bindName(metadata, "nosuchcolumn"))
      expect(missing.message).toContain("has no column 'nosuchcolumn'")
      expect(columnOf(metadata, "gendercode").options).toEqual([{ value: 1, label: "Male" }, {
        value: 2,
        label: "Female"
      }])
    }))

  it.effect("reads State, Status and Picklist options with one request per type, and partial bulk support", () =>
    Effect.gen(function*() {
      const { metadata, requests } = yield* fresh("dve_ticket")
      expect(requests).toBe(6)
      expect(columnOf(metadata, "statecode")).toMatchObject({
        type: "State",
        options: [{ value: 0, label: "Active" }, { value: 1, label: "Inactive" }]
      })
      expect(columnOf(metadata, "statuscode").options).toEqual([{ value: 1, label: "Open" }, {
        value: 2,
        label: "Closed"
      }])
      expect(columnOf(metadata, "dve_priority").options).toEqual([{ value: 1, label: "Low" }, {
        value: 2,
        label: "High"
      }])
      expect(columnOf(metadata, "dve_name").requiredLevel).toBe("SystemRequired")
      expect(metadata.keys).toEqual([
        { logicalName: "dve_region_number", keyAttributes: ["dve_region", "dve_number"], status: "Active" }
      ])
      // The navigation property is not the column name: always ask metadata.
      expect(yield* Metadata.bindName(metadata, "dve_accountid")).toBe("dve_AccountId@odata.bind")
      expect(metadata.messages).toEqual({
        createMultiple: true,
        updateMultiple: false,
        upsertMultiple: false,
        deleteMultiple: false
      })
    }))

  it.effect("knows elastic tables, DeleteMultiple on them, and tables without the bulk messages", () =>
    Effect.gen(function*() {
      const reading = yield* fresh("dve_reading")
      // No choice columns: the casts sent beside the definition answer empty lists.
      expect(reading.requests).toBe(6)
      expect(reading.metadata.tableType).toBe("Elastic")
      expect(reading.metadata.messages).toEqual({
        createMultiple: true,
        updateMultiple: true,
        upsertMultiple: true,
        deleteMultiple: true
      })
      const task = yield* fresh("task")
      expect(task.metadata.messages).toEqual({
        createMultiple: false,
        updateMultiple: false,
        upsertMultiple: false,
        deleteMultiple: false
      })
      expect(task.metadata.lookups.map((l) => l.navigationProperty)).toEqual([
        "regardingobjectid_account_task",
        "regardingobjectid_contact_task"
      ])
    }))

  it.effect("fails with reason NotFound for a table that does not exist, whatever the casts sent beside answered", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Metadata.table("nosuchtable"))
      expect(error.reason).toBe("NotFound")
      expect(error.status).toBe(404)
      expect(error.message).toBe(
        "Table 'nosuchtable' does not exist in this environment (tables are named by logical name, e.g. 'contact')."
      )
      // A name close to one: the "did you mean" of the definition's not-found.
      const close = yield* Effect.flip(Metadata.table("contacts"))
      expect(close.reason).toBe("NotFound")
      expect(close.message).toContain("'contact'")
    }))
})

// ---------------------------------------------------------------------------------------------
// The real service's shapes, through a stubbed executeJson

const label = (text: string) => ({
  LocalizedLabels: [{ Label: text, LanguageCode: 1033 }],
  UserLocalizedLabel: { Label: text, LanguageCode: 1033 }
})

/** What the service answers for account, abridged: derived-type properties, an owner lookup, a global choice. */
const accountDefinition = {
  LogicalName: "account",
  EntitySetName: "accounts",
  PrimaryIdAttribute: "accountid",
  PrimaryNameAttribute: "name",
  TableType: "Standard",
  ObjectTypeCode: 1,
  MetadataId: "70816501-edb9-4740-a16c-6a5efbc05d84",
  Attributes: [
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.UniqueIdentifierAttributeMetadata",
      LogicalName: "accountid",
      AttributeType: "Uniqueidentifier",
      AttributeTypeName: { Value: "UniqueidentifierType" },
      RequiredLevel: {
        Value: "SystemRequired",
        CanBeChanged: false,
        ManagedPropertyLogicalName: "canmodifyrequirementlevelsettings"
      },
      IsPrimaryId: true,
      IsValidForCreate: true,
      IsValidForUpdate: false
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.StringAttributeMetadata",
      LogicalName: "name",
      AttributeType: "String",
      AttributeTypeName: { Value: "StringType" },
      RequiredLevel: { Value: "ApplicationRequired", CanBeChanged: true },
      MaxLength: 160,
      DatabaseLength: 320,
      DisplayName: label("Account Name"),
      IsPrimaryId: false
    },
    // As the service serialises a date-only column (DateTimeAttributeMetadata).
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
      LogicalName: "dve_foundedon",
      AttributeType: "DateTime",
      AttributeTypeName: { Value: "DateTimeType" },
      RequiredLevel: { Value: "None", CanBeChanged: true },
      Format: "DateOnly",
      DateTimeBehavior: { Value: "DateOnly" },
      MinSupportedValue: "1753-01-01T00:00:00Z",
      IsPrimaryId: false
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
      LogicalName: "dve_lastcallon",
      AttributeType: "DateTime",
      AttributeTypeName: { Value: "DateTimeType" },
      RequiredLevel: { Value: "None", CanBeChanged: true },
      Format: "DateOnly",
      DateTimeBehavior: { Value: "UserLocal" },
      IsPrimaryId: false
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.LookupAttributeMetadata",
      LogicalName: "ownerid",
      AttributeType: "Owner",
      AttributeTypeName: { Value: "OwnerType" },
      RequiredLevel: { Value: "SystemRequired" },
      Targets: ["systemuser", "team"]
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.LookupAttributeMetadata",
      LogicalName: "parentaccountid",
      AttributeType: "Lookup",
      AttributeTypeName: { Value: "LookupType" },
      RequiredLevel: { Value: "None" }
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
      LogicalName: "industrycode",
      AttributeType: "Picklist",
      AttributeTypeName: { Value: "PicklistType" },
      RequiredLevel: { Value: "None" }
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.StatusAttributeMetadata",
      LogicalName: "statuscode",
      AttributeType: "Status",
      AttributeTypeName: { Value: "StatusType" },
      RequiredLevel: { Value: "None" }
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.MultiSelectPicklistAttributeMetadata",
      LogicalName: "dve_tags",
      AttributeType: "Virtual",
      AttributeTypeName: { Value: "MultiSelectPicklistType" },
      RequiredLevel: { Value: "None" }
    },
    {
      "@odata.type": "#Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
      LogicalName: "revenue",
      AttributeType: "Money",
      AttributeTypeName: { Value: "MoneyType" },
      RequiredLevel: { Value: "None" },
      MinValue: 0,
      MaxValue: 100000000000000,
      Precision: 2
    }
  ],
  Keys: [{ LogicalName: "dve_accountnumber", KeyAttributes: ["accountnumber"], EntityKeyIndexStatus: "Pending" }],
  ManyToOneRelationships: [
    { ReferencingAttribute: "ownerid", ReferencedEntity: "owner", ReferencingEntityNavigationPropertyName: "ownerid" },
    {
      ReferencingAttribute: "parentaccountid",
      ReferencedEntity: "account",
      ReferencingEntityNavigationPropertyName: "parentaccountid"
    }
  ]
}

const options = (name: string, values: ReadonlyArray<readonly [number, string]>, global = false) => {
  const set = { Options: values.map(([Value, text]) => ({ Value, Label: label(text) })) }
  return { LogicalName: name, OptionSet: global ? null : set, GlobalOptionSet: global ? set : null }
}

const stubbed = (answer: (url: string) => Effect.Effect<unknown, DataverseError>) => {
  const urls: Array<string> = []
  const executeJson = (request: HttpClientRequest.HttpClientRequest) => {
    urls.push(decodeURIComponent(request.url))
    return Effect.map(answer(decodeURIComponent(request.url)), (body) => ({ body }))
  }
  return { urls, executeJson }
}

describe("fetchTableMetadata with the service's answers", () => {
  layer(Layer.empty)((it) => {
    it.effect("asks what the wire reference documents and reads derived properties, global choices and owners", () =>
      Effect.gen(function*() {
        const { executeJson, urls } = stubbed((url) => {
          if (url.startsWith("EntityDefinitions(LogicalName='account')?")) return Effect.succeed(accountDefinition)
          if (url.includes(".PicklistAttributeMetadata")) {
            return Effect.succeed({
              value: [options("industrycode", [[1, "Accounting"], [2, "Agriculture"]], true)]
            })
          }
          if (url.includes("StatusAttributeMetadata")) {
            return Effect.succeed({ value: [options("statuscode", [[1, "Active"], [2, "Inactive"]])] })
          }
          // This account has no state column: the cast sent before that was known fails, unread.
          if (url.includes(".StateAttributeMetadata")) {
            return Effect.fail(new DataverseError({ reason: "ServiceUnavailable", status: 503, message: "not read" }))
          }
          if (url.includes("MultiSelectPicklistAttributeMetadata")) {
            return Effect.succeed({ value: [options("dve_tags", [[7, "Red"]])] })
          }
          if (url.includes("'CreateMultiple'")) return Effect.succeed({ value: [{ sdkmessagefilterid: "x" }] })
          if (url.includes("'UpdateMultiple'")) {
            return Effect.fail(
              new DataverseError({ reason: "Forbidden", status: 403, code: "0x80040220", message: "no privilege" })
            )
          }
          return Effect.die(`unexpected ${url}`)
        })
        const metadata = yield* fetchTableMetadata(executeJson, "account")
        expect(urls[0]).toBe(
          "EntityDefinitions(LogicalName='account')" +
            "?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,TableType,ObjectTypeCode" +
            "&$expand=Attributes,Keys($select=LogicalName,KeyAttributes,EntityKeyIndexStatus)," +
            "ManyToOneRelationships($select=ReferencingAttribute,ReferencedEntity,ReferencingEntityNavigationPropertyName)"
        )
        // The multi-select cast only once the definition showed such a column: after the others.
        expect(urls[6]).toBe(
          "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.MultiSelectPicklistAttributeMetadata" +
            "?$select=LogicalName&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)"
        )
        expect(urls.slice(1, 6).sort()).toEqual([
          "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata" +
          "?$select=LogicalName&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)",
          "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StateAttributeMetadata" +
          "?$select=LogicalName&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)",
          "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata" +
          "?$select=LogicalName&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)",
          "sdkmessagefilters?$select=sdkmessagefilterid" +
          "&$filter=sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'account'",
          "sdkmessagefilters?$select=sdkmessagefilterid" +
          "&$filter=sdkmessageid/name eq 'UpdateMultiple' and primaryobjecttypecode eq 'account'"
        ])
        expect(columnOf(metadata, "name")).toMatchObject({ maxLength: 160, requiredLevel: "ApplicationRequired" })
        expect(columnOf(metadata, "revenue")).toMatchObject({ minValue: 0, maxValue: 100000000000000 })
        expect(columnOf(metadata, "industrycode").options).toEqual([
          { value: 1, label: "Accounting" },
          { value: 2, label: "Agriculture" }
        ])
        expect(columnOf(metadata, "statuscode").options).toHaveLength(2)
        // The behaviour decides the wire type (DateOnly: Edm.Date); the display format does not.
        expect(columnOf(metadata, "dve_foundedon").dateTimeBehavior).toBe("DateOnly")
        expect(columnOf(metadata, "dve_lastcallon").dateTimeBehavior).toBe("UserLocal")
        expect(columnOf(metadata, "name").dateTimeBehavior).toBeUndefined()
        expect(columnOf(metadata, "dve_tags")).toMatchObject({ type: "Virtual", options: [{ value: 7, label: "Red" }] })
        // Targets from the attribute, or from the relationships when the attribute has none.
        expect(columnOf(metadata, "ownerid").targets).toEqual(["systemuser", "team"])
        expect(columnOf(metadata, "parentaccountid").targets).toEqual(["account"])
        // One relationship (to `owner`) serves both owner targets.
        expect(yield* Metadata.bindName(metadata, "ownerid", "team")).toBe("ownerid@odata.bind")
        expect(yield* Metadata.bindName(metadata, "ownerid", "systemuser")).toBe("ownerid@odata.bind")
        expect(metadata.keys).toEqual([
          { logicalName: "dve_accountnumber", keyAttributes: ["accountnumber"], status: "Pending" }
        ])
        // A user who may not read sdkmessagefilters gets "not supported", not a failure.
        expect(metadata.messages).toEqual({
          createMultiple: true,
          updateMultiple: false,
          upsertMultiple: false,
          deleteMultiple: false
        })
      }))

    it.effect("sends the requests beside the definition once, and asks again one that failed for a transient cause", () =>
      Effect.gen(function*() {
        let picklistAsked = 0
        const retried: Array<boolean> = []
        const urls: Array<string> = []
        const executeJson = (request: HttpClientRequest.HttpClientRequest, asked?: { readonly retry?: boolean }) => {
          const url = decodeURIComponent(request.url)
          urls.push(url)
          if (url.includes(".PicklistAttributeMetadata")) retried.push(asked?.retry !== false)
          const body: Effect.Effect<unknown, DataverseError> =
            url.startsWith("EntityDefinitions(LogicalName='account')?")
              ? Effect.succeed(accountDefinition)
              : url.includes(".PicklistAttributeMetadata") && picklistAsked++ === 0
              ? Effect.fail(new DataverseError({ reason: "ServiceUnavailable", status: 503, message: "busy" }))
              : url.includes(".PicklistAttributeMetadata")
              ? Effect.succeed({ value: [options("industrycode", [[1, "Accounting"]])] })
              : Effect.succeed({ value: [] })
          return Effect.map(body, (answer) => ({ body: answer }))
        }
        const metadata = yield* fetchTableMetadata(executeJson, "account")
        expect(columnOf(metadata, "industrycode").options).toEqual([{ value: 1, label: "Accounting" }])
        // Beside the definition without retries of its own; asked again with them.
        expect(retried).toEqual([false, true])
        expect(urls).toHaveLength(8)
      }))

    it.effect("quotes the table name and fails with Decode on an answer without the essentials", () =>
      Effect.gen(function*() {
        const { executeJson, urls } = stubbed(() => Effect.succeed({ LogicalName: "o'x" }))
        const error = yield* Effect.flip(fetchTableMetadata(executeJson, "o'x"))
        expect(urls[0]).toMatch(/^EntityDefinitions\(LogicalName='o''x'\)\?/)
        expect(error.reason).toBe("Decode")
        expect(error.message).toContain("lacks EntitySetName or PrimaryIdAttribute")
      }))
  })
})

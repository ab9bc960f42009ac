/**
 * The tables an emulator serves: logical names, entity sets, keys, columns and which bulk
 * messages each table supports. The same shape is the documented `--schema` file format.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as S from "effect/Schema"
import { isCsdl, readCsdl, writeCsdl } from "./internal/csdl.js"
import { firstIssue } from "./internal/decode.js"

/**
 * Dataverse attribute types, as `AttributeType` reports them in metadata.
 *
 * @since 0.1.0
 * @category models
 */
export type ColumnType =
  | "String"
  | "Memo"
  | "Integer"
  | "BigInt"
  | "Decimal"
  | "Double"
  | "Money"
  | "Boolean"
  | "DateTime"
  | "Picklist"
  | "State"
  | "Status"
  | "Lookup"
  | "Customer"
  | "Owner"
  | "Uniqueidentifier"

/**
 * `RequiredLevel` of a column. Only `SystemRequired` is enforced by the Web API; the other
 * levels are hints for forms, as on the real service.
 *
 * @since 0.1.0
 * @category models
 */
export type RequiredLevel = "None" | "Recommended" | "ApplicationRequired" | "SystemRequired"

/**
 * The behavior of a DateTime column (`DateTimeAttributeMetadata.DateTimeBehavior.Value`), as
 * Microsoft documents it (learn.microsoft.com/power-apps/maker/data-platform/
 * behavior-format-date-time-field):
 * - `UserLocal` (the default): the value is stored in UTC and shown in each user's time zone;
 * - `TimeZoneIndependent`: no time zone conversion;
 * - `DateOnly`: no time zone conversion, and "the time portion isn't stored" (2023-10-15). In the
 *   Web API such a column is an `Edm.Date`: it takes and returns `"2023-10-15"`, and refuses a
 *   date and time.
 *
 * The emulator stores `UserLocal` and `TimeZoneIndependent` values alike, as UTC ISO text: a
 * modelling choice, since it has no users' time zones to tell them apart.
 *
 * @since 0.2.0
 * @category models
 */
export type DateTimeBehavior = "UserLocal" | "DateOnly" | "TimeZoneIndependent"

/**
 * One target of a lookup column: the table it points at and the single-valued navigation
 * property used to bind it (`parentcustomerid_account@odata.bind`).
 *
 * @since 0.1.0
 * @category models
 */
export interface LookupTarget {
  readonly table: string
  readonly navigationProperty: string
  /**
   * The relationship's schema name, which also names the collection-valued navigation property
   * on the target table (`contact_customer_accounts` on account, as the service names it).
   * Default: `<table>_<navigationProperty>`.
   */
  readonly relationship?: string | undefined
}

/**
 * The schema name of the relationship behind a lookup target of `table`: also the name of the
 * collection-valued navigation property on the target table.
 *
 * @since 0.2.0
 * @category utils
 */
export const relationshipName = (table: string, target: LookupTarget): string =>
  target.relationship ?? `${table}_${target.navigationProperty}`

/**
 * A column definition.
 *
 * @since 0.1.0
 * @category models
 */
export interface ColumnDefinition {
  readonly logicalName: string
  readonly type: ColumnType
  readonly requiredLevel?: RequiredLevel
  /** Strings and memos: maximum number of characters. */
  readonly maxLength?: number
  /** Numbers: inclusive range. */
  readonly minValue?: number
  readonly maxValue?: number
  /** Picklist, State and Status: allowed option values with their labels. */
  readonly options?: ReadonlyArray<{ readonly value: number; readonly label: string }>
  /** Lookup, Customer and Owner: the tables it may point at (several for polymorphic lookups). */
  readonly targets?: ReadonlyArray<LookupTarget>
  /**
   * DateTime only: how the column stores its values (`UserLocal` when absent). A `DateOnly` column
   * is an `Edm.Date` in the Web API and `$metadata`: it takes a date (`"1990-05-01"`), stores and
   * returns it as that text, and refuses a date and time with 400.
   *
   * @since 0.2.0
   */
  readonly dateTimeBehavior?: DateTimeBehavior | undefined
}

/**
 * An alternate key: a name and the columns whose values identify a record.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyDefinition {
  readonly logicalName: string
  readonly keyAttributes: ReadonlyArray<string>
}

/**
 * Which of the `*Multiple` bulk messages a table supports.
 *
 * @since 0.1.0
 * @category models
 */
export interface BulkMessages {
  readonly createMultiple: boolean
  readonly updateMultiple: boolean
  readonly upsertMultiple: boolean
  /** Only ever true on elastic tables, as on the real service. */
  readonly deleteMultiple: boolean
}

/**
 * A table definition.
 *
 * @since 0.1.0
 * @category models
 */
export interface TableDefinition {
  readonly logicalName: string
  readonly entitySetName: string
  readonly schemaName: string
  readonly objectTypeCode: number
  readonly primaryIdAttribute: string
  readonly primaryNameAttribute: string
  readonly tableType: "Standard" | "Elastic"
  /** Every column except the primary key, which is implied. */
  readonly columns: ReadonlyArray<ColumnDefinition>
  readonly keys: ReadonlyArray<KeyDefinition>
  readonly messages: BulkMessages
}

/**
 * A whole schema: the tables an emulator serves.
 *
 * @since 0.1.0
 * @category models
 */
export interface SchemaDefinition {
  readonly tables: ReadonlyArray<TableDefinition>
}

const allStandardMessages: BulkMessages = {
  createMultiple: true,
  updateMultiple: true,
  upsertMultiple: true,
  deleteMultiple: false
}

/**
 * The schema the emulator serves unless told otherwise:
 * - `account` (alternate key `accountnumber`) and `contact` (polymorphic `parentcustomerid`);
 * - `dve_product`: a custom standard table with an alternate key (`dve_sku`);
 * - `dve_reading`: a custom elastic table (`partitionid`, `ttlinseconds`, DeleteMultiple);
 * - `task`: a standard table without the `*Multiple` messages.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultSchema: SchemaDefinition = {
  tables: [
    {
      logicalName: "account",
      entitySetName: "accounts",
      schemaName: "Account",
      objectTypeCode: 1,
      primaryIdAttribute: "accountid",
      primaryNameAttribute: "name",
      tableType: "Standard",
      columns: [
        { logicalName: "name", type: "String", maxLength: 160, requiredLevel: "ApplicationRequired" },
        { logicalName: "accountnumber", type: "String", maxLength: 20 },
        { logicalName: "emailaddress1", type: "String", maxLength: 100 },
        { logicalName: "telephone1", type: "String", maxLength: 50 },
        { logicalName: "websiteurl", type: "String", maxLength: 200 },
        { logicalName: "address1_city", type: "String", maxLength: 80 },
        { logicalName: "description", type: "Memo", maxLength: 2000 },
        { logicalName: "numberofemployees", type: "Integer", minValue: 0, maxValue: 1_000_000_000 },
        { logicalName: "revenue", type: "Money", minValue: 0, maxValue: 100_000_000_000_000 },
        {
          logicalName: "industrycode",
          type: "Picklist",
          options: [
            { value: 1, label: "Accounting" },
            { value: 2, label: "Agriculture and Non-petrol Natural Resource Extraction" },
            { value: 3, label: "Broadcasting Printing and Publishing" },
            { value: 6, label: "Consulting" },
            { value: 7, label: "Consumer Services" },
            { value: 25, label: "Transportation" }
          ]
        },
        {
          logicalName: "primarycontactid",
          type: "Lookup",
          targets: [{
            table: "contact",
            navigationProperty: "primarycontactid",
            relationship: "account_primary_contact"
          }]
        },
        { logicalName: "createdon", type: "DateTime" },
        { logicalName: "modifiedon", type: "DateTime" }
      ],
      keys: [{ logicalName: "accountnumber_key", keyAttributes: ["accountnumber"] }],
      messages: allStandardMessages
    },
    {
      logicalName: "contact",
      entitySetName: "contacts",
      schemaName: "Contact",
      objectTypeCode: 2,
      primaryIdAttribute: "contactid",
      primaryNameAttribute: "fullname",
      tableType: "Standard",
      columns: [
        { logicalName: "firstname", type: "String", maxLength: 50 },
        { logicalName: "lastname", type: "String", maxLength: 50, requiredLevel: "ApplicationRequired" },
        { logicalName: "fullname", type: "String", maxLength: 160 },
        { logicalName: "emailaddress1", type: "String", maxLength: 100 },
        { logicalName: "telephone1", type: "String", maxLength: 50 },
        { logicalName: "mobilephone", type: "String", maxLength: 50 },
        { logicalName: "jobtitle", type: "String", maxLength: 100 },
        { logicalName: "address1_city", type: "String", maxLength: 80 },
        // Documented: contact.birthdate is DateOnly on the service (behavior-format-date-time-
        // attribute lists it), so it takes "1990-05-01", never a date and time.
        { logicalName: "birthdate", type: "DateTime", dateTimeBehavior: "DateOnly" },
        { logicalName: "creditlimit", type: "Money", minValue: 0, maxValue: 100_000_000_000_000 },
        { logicalName: "donotemail", type: "Boolean" },
        {
          logicalName: "gendercode",
          type: "Picklist",
          options: [
            { value: 1, label: "Male" },
            { value: 2, label: "Female" }
          ]
        },
        {
          logicalName: "parentcustomerid",
          type: "Customer",
          targets: [
            {
              table: "account",
              navigationProperty: "parentcustomerid_account",
              relationship: "contact_customer_accounts"
            },
            {
              table: "contact",
              navigationProperty: "parentcustomerid_contact",
              relationship: "contact_customer_contacts"
            }
          ]
        },
        { logicalName: "createdon", type: "DateTime" },
        { logicalName: "modifiedon", type: "DateTime" }
      ],
      keys: [],
      messages: allStandardMessages
    },
    {
      // A custom standard table with an alternate key: what most bulk loads target.
      logicalName: "dve_product",
      entitySetName: "dve_products",
      schemaName: "dve_Product",
      objectTypeCode: 10001,
      primaryIdAttribute: "dve_productid",
      primaryNameAttribute: "dve_name",
      tableType: "Standard",
      columns: [
        { logicalName: "dve_name", type: "String", maxLength: 100, requiredLevel: "SystemRequired" },
        { logicalName: "dve_sku", type: "String", maxLength: 40 },
        { logicalName: "dve_description", type: "Memo", maxLength: 4000 },
        { logicalName: "dve_price", type: "Money", minValue: 0, maxValue: 1_000_000_000 },
        { logicalName: "dve_quantity", type: "Integer", minValue: 0, maxValue: 1_000_000 },
        { logicalName: "dve_weight", type: "Double", minValue: 0, maxValue: 100_000 },
        { logicalName: "dve_discontinued", type: "Boolean" },
        { logicalName: "dve_launchedon", type: "DateTime" },
        {
          logicalName: "dve_category",
          type: "Picklist",
          options: [
            { value: 100000000, label: "Hardware" },
            { value: 100000001, label: "Software" },
            { value: 100000002, label: "Service" }
          ]
        },
        {
          logicalName: "dve_supplierid",
          type: "Lookup",
          targets: [{ table: "account", navigationProperty: "dve_supplierid" }]
        },
        { logicalName: "createdon", type: "DateTime" },
        { logicalName: "modifiedon", type: "DateTime" }
      ],
      keys: [{ logicalName: "dve_sku_key", keyAttributes: ["dve_sku"] }],
      messages: allStandardMessages
    },
    {
      // A custom elastic table: partial success, upsert replaces, DeleteMultiple, partitions and TTL.
      logicalName: "dve_reading",
      entitySetName: "dve_readings",
      schemaName: "dve_Reading",
      objectTypeCode: 10002,
      primaryIdAttribute: "dve_readingid",
      primaryNameAttribute: "dve_name",
      tableType: "Elastic",
      columns: [
        { logicalName: "dve_name", type: "String", maxLength: 100 },
        { logicalName: "partitionid", type: "String", maxLength: 100 },
        { logicalName: "ttlinseconds", type: "Integer", minValue: -1, maxValue: 2_147_483_647 },
        { logicalName: "dve_sensor", type: "String", maxLength: 50 },
        { logicalName: "dve_value", type: "Double", minValue: -1_000_000_000, maxValue: 1_000_000_000 },
        { logicalName: "dve_takenon", type: "DateTime" },
        { logicalName: "createdon", type: "DateTime" },
        { logicalName: "modifiedon", type: "DateTime" }
      ],
      keys: [],
      messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: true }
    },
    {
      // A standard table without the *Multiple messages: clients must fall back to $batch.
      logicalName: "task",
      entitySetName: "tasks",
      schemaName: "Task",
      objectTypeCode: 4212,
      primaryIdAttribute: "activityid",
      primaryNameAttribute: "subject",
      tableType: "Standard",
      columns: [
        { logicalName: "subject", type: "String", maxLength: 200 },
        { logicalName: "description", type: "Memo", maxLength: 2000 },
        { logicalName: "scheduledend", type: "DateTime" },
        {
          logicalName: "prioritycode",
          type: "Picklist",
          options: [
            { value: 0, label: "Low" },
            { value: 1, label: "Normal" },
            { value: 2, label: "High" }
          ]
        },
        {
          logicalName: "regardingobjectid",
          type: "Lookup",
          targets: [
            { table: "account", navigationProperty: "regardingobjectid_account_task", relationship: "Account_Tasks" },
            { table: "contact", navigationProperty: "regardingobjectid_contact_task", relationship: "Contact_Tasks" }
          ]
        },
        { logicalName: "createdon", type: "DateTime" },
        { logicalName: "modifiedon", type: "DateTime" }
      ],
      keys: [],
      messages: { createMultiple: false, updateMultiple: false, upsertMultiple: false, deleteMultiple: false }
    }
  ]
}

// ---------------------------------------------------------------------------------------------
// The schema file format (`--schema file.json`)

/** An optional field that, when present, is never `undefined` (for `exactOptionalPropertyTypes`). */
const optional = <A extends S.Schema.Any>(schema: A) => S.optionalWith(schema, { exact: true })

/**
 * Every `ColumnType`, for callers that need the list at run time (e.g. to leave out columns of
 * other types when writing a schema file).
 *
 * @since 0.2.0
 * @category utils
 */
export const columnTypes: ReadonlyArray<ColumnType> = [
  "String",
  "Memo",
  "Integer",
  "BigInt",
  "Decimal",
  "Double",
  "Money",
  "Boolean",
  "DateTime",
  "Picklist",
  "State",
  "Status",
  "Lookup",
  "Customer",
  "Owner",
  "Uniqueidentifier"
]

const ColumnTypeSchema = S.Literal(...columnTypes)

/**
 * Every `DateTimeBehavior`, for callers that need the list at run time (e.g. to read
 * `DateTimeBehavior.Value` from metadata).
 *
 * @since 0.2.0
 * @category utils
 */
export const dateTimeBehaviors: ReadonlyArray<DateTimeBehavior> = ["UserLocal", "DateOnly", "TimeZoneIndependent"]

const ColumnFile = S.Struct({
  logicalName: S.String,
  type: ColumnTypeSchema,
  requiredLevel: optional(S.Literal("None", "Recommended", "ApplicationRequired", "SystemRequired")),
  maxLength: optional(S.Int.pipe(S.positive())),
  minValue: optional(S.Number),
  maxValue: optional(S.Number),
  options: optional(S.Array(S.Struct({ value: S.Int, label: S.String }))),
  targets: optional(
    S.Array(S.Struct({ table: S.String, navigationProperty: S.String, relationship: optional(S.String) }))
  ),
  dateTimeBehavior: optional(S.Literal(...dateTimeBehaviors))
})

const TableFile = S.Struct({
  logicalName: S.String,
  entitySetName: S.String,
  schemaName: optional(S.String),
  objectTypeCode: optional(S.Int),
  primaryIdAttribute: S.String,
  primaryNameAttribute: optional(S.String),
  tableType: optional(S.Literal("Standard", "Elastic")),
  columns: S.Array(ColumnFile),
  keys: optional(S.Array(S.Struct({ logicalName: S.String, keyAttributes: S.NonEmptyArray(S.String) }))),
  messages: optional(S.Struct({
    createMultiple: optional(S.Boolean),
    updateMultiple: optional(S.Boolean),
    upsertMultiple: optional(S.Boolean),
    deleteMultiple: optional(S.Boolean)
  }))
})

const SchemaFile = S.Struct({ tables: S.NonEmptyArray(TableFile) })

/**
 * The primary name of a table whose file does not name one (a CSDL document never does): the
 * first String column of `name`, `<prefix>_name` (the name a custom table's primary name column
 * gets, prefix of the table's own), `fullname`, `subject`, `title` (the primary names of the
 * system tables: account, contact, activities, cases); else the first String column; else the
 * first column. A modelling choice: nothing but `EntityDefinitions` says which column it is.
 */
const defaultPrimaryName = (
  logicalName: string,
  columns: ReadonlyArray<{ readonly logicalName: string; readonly type: ColumnType }>
): string | undefined => {
  const strings = columns.filter((column) => column.type === "String").map((column) => column.logicalName)
  const prefix = logicalName.includes("_") ? logicalName.slice(0, logicalName.indexOf("_")) : undefined
  const preferred = ["name", ...(prefix === undefined ? [] : [`${prefix}_name`]), "fullname", "subject", "title"]
  return preferred.find((name) => strings.includes(name)) ?? strings[0] ?? columns[0]?.logicalName
}

/**
 * Reads a schema from the JSON of a schema file: `{"tables":[...]}`, each table as
 * `TableDefinition` with these fields optional: `schemaName` (default: the logical name),
 * `objectTypeCode` (default: 10000 + position), `primaryNameAttribute` (default: the first String
 * column of `name`, `<prefix>_name`, `fullname`, `subject`, `title`, else the first String
 * column, else the first column), `tableType` (`Standard`), `keys` (none) and `messages`
 * (Create/Update/UpsertMultiple on; DeleteMultiple on elastic tables only); a DateTime column's
 * `dateTimeBehavior` (`UserLocal`), which no other column type may have.
 * Returns the schema, or a message naming what is wrong.
 *
 * @since 0.1.0
 * @category conversions
 */
export const decode = (json: unknown): SchemaDefinition | string => {
  const decoded = S.decodeUnknownEither(SchemaFile, { errors: "first", onExcessProperty: "error" })(json)
  if (Either.isLeft(decoded)) return `Invalid schema: ${firstIssue(decoded.left)}`
  const unnamed = decoded.right.tables.find((table) =>
    table.primaryNameAttribute === undefined && table.columns.length === 0
  )
  if (unnamed !== undefined) {
    return `Invalid schema: table '${unnamed.logicalName}' has no column to be its primary name`
  }
  const tables: Array<TableDefinition> = decoded.right.tables.map((table, i) => {
    const tableType = table.tableType ?? "Standard"
    const elastic = tableType === "Elastic"
    return {
      logicalName: table.logicalName,
      entitySetName: table.entitySetName,
      schemaName: table.schemaName ?? table.logicalName,
      objectTypeCode: table.objectTypeCode ?? 10000 + i,
      primaryIdAttribute: table.primaryIdAttribute,
      primaryNameAttribute: table.primaryNameAttribute ?? defaultPrimaryName(table.logicalName, table.columns)!,
      tableType,
      columns: table.columns,
      keys: table.keys ?? [],
      messages: {
        createMultiple: table.messages?.createMultiple ?? true,
        updateMultiple: table.messages?.updateMultiple ?? true,
        upsertMultiple: table.messages?.upsertMultiple ?? true,
        deleteMultiple: table.messages?.deleteMultiple ?? elastic
      }
    }
  })
  const problem = check(tables)
  return problem === undefined ? { tables } : `Invalid schema: ${problem}`
}

/**
 * Reads a schema from the text of a schema file, telling the two formats apart by content: a CSDL
 * `$metadata` document as an org serves it (XML whose root is `edmx:Edmx`), or the JSON schema
 * file (`decode`). From CSDL, every entity type with an entity set becomes a table (but the
 * metadata API's own types); what CSDL does not carry (lengths, option-set values, required
 * levels, the primary name, bulk messages) takes the defaults the README lists. Returns the
 * schema, or a message naming what is wrong.
 *
 * @example
 * ```ts
 * import { Emulator, TableSchema } from "@dv-effect/emulator"
 * import * as Fs from "node:fs"
 * const schema = TableSchema.parse(Fs.readFileSync("metadata.xml", "utf8"))
 * if (typeof schema === "string") throw new Error(schema)
 * const emulator = await Emulator.start({ schema })
 * ```
 *
 * @since 0.2.0
 * @category conversions
 */
export const parse = (text: string): SchemaDefinition | string => {
  if (isCsdl(text)) {
    const read = readCsdl(text)
    return typeof read === "string" ? `Invalid schema: ${read}` : decode(read)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return `Invalid schema: neither a CSDL $metadata document (<edmx:Edmx>) nor JSON: ${(error as Error).message}`
  }
  return decode(json)
}

/**
 * The CSDL `$metadata` document of a schema, as the emulator serves it at `<webApiUrl>$metadata`:
 * entity types with their keys, properties (Edm types), lookup and navigation properties,
 * alternate keys, and the entity sets. `parse` reads it back, without what CSDL does not carry.
 *
 * @since 0.2.0
 * @category conversions
 */
export const toCsdl = (schema: SchemaDefinition): string => writeCsdl(schema.tables)

/** The rules a schema must keep across tables, which the structure alone cannot say. */
const check = (tables: ReadonlyArray<TableDefinition>): string | undefined => {
  const logicalNames = new Set<string>()
  const entitySets = new Set<string>()
  for (const table of tables) {
    const where = `table '${table.logicalName}'`
    if (logicalNames.has(table.logicalName)) return `${where} is defined twice`
    if (entitySets.has(table.entitySetName)) return `${where}: entity set '${table.entitySetName}' is used twice`
    logicalNames.add(table.logicalName)
    entitySets.add(table.entitySetName)
    const columns = new Map(table.columns.map((column) => [column.logicalName, column]))
    if (columns.size !== table.columns.length) return `${where} defines a column twice`
    if (columns.has(table.primaryIdAttribute)) {
      return `${where}: the primary key '${table.primaryIdAttribute}' is implied and must not be listed in columns`
    }
    if (!columns.has(table.primaryNameAttribute)) {
      return `${where}: primary name '${table.primaryNameAttribute}' is not a column`
    }
    if (table.tableType === "Elastic" && columns.get("partitionid")?.type !== "String") {
      return `${where} is elastic and needs a String column 'partitionid'`
    }
    if (table.tableType === "Standard" && table.messages.deleteMultiple) {
      return `${where}: DeleteMultiple exists only on elastic tables`
    }
    for (const key of table.keys) {
      const missing = key.keyAttributes.find((attribute) => !columns.has(attribute))
      if (missing !== undefined) return `${where}: key '${key.logicalName}' names unknown column '${missing}'`
    }
    for (const column of table.columns) {
      const isLookup = column.type === "Lookup" || column.type === "Customer" || column.type === "Owner"
      if (isLookup && (column.targets === undefined || column.targets.length === 0)) {
        return `${where}: lookup '${column.logicalName}' needs targets`
      }
      if (
        (column.type === "Picklist" || column.type === "State" || column.type === "Status") &&
        column.options === undefined
      ) {
        return `${where}: option set column '${column.logicalName}' needs options`
      }
      if (column.dateTimeBehavior !== undefined && column.type !== "DateTime") {
        return `${where}: column '${column.logicalName}' is ${column.type}; only a DateTime column has a dateTimeBehavior`
      }
    }
  }
  for (const table of tables) {
    for (const column of table.columns) {
      const unknown = column.targets?.find((target) => !logicalNames.has(target.table))
      if (unknown !== undefined) {
        return `table '${table.logicalName}': lookup '${column.logicalName}' targets unknown table '${unknown.table}'`
      }
    }
  }
  return undefined
}

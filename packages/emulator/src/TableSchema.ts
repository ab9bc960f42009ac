/**
 * The tables an emulator serves: logical names, entity sets, keys, columns and which bulk
 * messages each table supports. The same shape is the documented `--schema` file format.
 *
 * @since 0.1.0
 */

/**
 * Dataverse attribute types, as `AttributeType` reports them in metadata.
 *
 * @since 0.1.0
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
 */
export type RequiredLevel = "None" | "Recommended" | "ApplicationRequired" | "SystemRequired"

/**
 * One target of a lookup column: the table it points at and the single-valued navigation
 * property used to bind it (`parentcustomerid_account@odata.bind`).
 *
 * @since 0.1.0
 */
export interface LookupTarget {
  readonly table: string
  readonly navigationProperty: string
}

/**
 * A column definition.
 *
 * @since 0.1.0
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
}

/**
 * An alternate key: a name and the columns whose values identify a record.
 *
 * @since 0.1.0
 */
export interface KeyDefinition {
  readonly logicalName: string
  readonly keyAttributes: ReadonlyArray<string>
}

/**
 * Which of the `*Multiple` bulk messages a table supports.
 *
 * @since 0.1.0
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
 */
export interface Schema {
  readonly tables: ReadonlyArray<TableDefinition>
}

const allStandardMessages: BulkMessages = {
  createMultiple: true,
  updateMultiple: true,
  upsertMultiple: true,
  deleteMultiple: false
}

/**
 * The schema the emulator serves unless told otherwise: `account` and `contact` with the
 * columns bulk loads touch most, linked by the polymorphic `parentcustomerid` lookup.
 *
 * @since 0.1.0
 */
export const defaultSchema: Schema = {
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
          targets: [{ table: "contact", navigationProperty: "primarycontactid" }]
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
        { logicalName: "birthdate", type: "DateTime" },
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
            { table: "account", navigationProperty: "parentcustomerid_account" },
            { table: "contact", navigationProperty: "parentcustomerid_contact" }
          ]
        },
        { logicalName: "createdon", type: "DateTime" },
        { logicalName: "modifiedon", type: "DateTime" }
      ],
      keys: [],
      messages: allStandardMessages
    }
  ]
}

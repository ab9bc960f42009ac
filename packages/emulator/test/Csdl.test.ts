/**
 * An org's own schema from its CSDL `$metadata` document, and the `$metadata` the emulator serves
 * (issue 16, item 3).
 *
 * The document below is put together from the excerpts Microsoft Learn gives of the service's
 * `$metadata` (Web API Service Documents, EntityTypes, Properties, Navigation Properties): the
 * header and service namespace, `account` with its description annotation, `name` (Unicode
 * facet), `openrevenue` (read-only decimal), the `createdby` lookup and the `accountnumber`
 * alternate key annotation, `Account_Tasks`, the multi-table `customerid` lookup of
 * `socialprofile`, the `teammembership` intersect table, `principal` and the special types
 * `crmbaseentity`, `expando` and `crmmodelbaseentity`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import * as TableSchema from "../src/TableSchema.js"

const orgCsdl = `<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:Reference Uri="http://vocabularies.odata.org/OData.Community.Keys.V1.xml">
    <edmx:Include Namespace="OData.Community.Keys.V1" Alias="Keys" />
    <edmx:IncludeAnnotations TermNamespace="OData.Community.Keys.V1" />
  </edmx:Reference>
  <edmx:Reference Uri="http://vocabularies.odata.org/OData.Community.Display.V1.xml">
    <edmx:Include Namespace="OData.Community.Display.V1" Alias="Display" />
    <edmx:IncludeAnnotations TermNamespace="OData.Community.Display.V1" />
  </edmx:Reference>
  <edmx:DataServices>
    <Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="crmbaseentity" Abstract="true" />
      <EntityType Name="expando" BaseType="mscrm.crmbaseentity" OpenType="true" />
      <EntityType Name="principal" BaseType="mscrm.crmbaseentity" Abstract="true">
        <Key>
          <PropertyRef Name="ownerid" />
        </Key>
        <Property Name="ownerid" Type="Edm.Guid" />
      </EntityType>
      <EntityType Name="account" BaseType="mscrm.crmbaseentity">
        <Key>
          <PropertyRef Name="accountid" />
        </Key>
        <Property Name="accountid" Type="Edm.Guid" />
        <Property Name="name" Type="Edm.String" Unicode="false">
          <Annotation Term="Org.OData.Core.V1.Description" String="Type the company or business name." />
        </Property>
        <Property Name="accountnumber" Type="Edm.String" Unicode="false" />
        <Property Name="openrevenue" Type="Edm.Decimal" Scale="Variable">
          <Annotation Term="Org.OData.Core.V1.Description" String="Sum of open revenue against an account and its child accounts." />
          <Annotation Term="Org.OData.Core.V1.Computed" Bool="true" />
          <Annotation Term="Org.OData.Core.V1.Permissions">
            <EnumMember>Org.OData.Core.V1.PermissionType/Read</EnumMember>
          </Annotation>
        </Property>
        <Property Name="numberofemployees" Type="Edm.Int32" />
        <Property Name="industrycode" Type="Edm.Int32" />
        <Property Name="creditonhold" Type="Edm.Boolean" />
        <Property Name="createdon" Type="Edm.DateTimeOffset" />
        <Property Name="versionnumber" Type="Edm.Int64" />
        <Property Name="entityimage" Type="Edm.Binary" />
        <Property Name="_createdby_value" Type="Edm.Guid" />
        <Property Name="_ownerid_value" Type="Edm.Guid" />
        <NavigationProperty Name="createdby" Type="mscrm.systemuser" Nullable="false" Partner="lk_accountbase_createdby">
          <ReferentialConstraint Property="_createdby_value" ReferencedProperty="systemuserid" />
        </NavigationProperty>
        <NavigationProperty Name="ownerid" Type="mscrm.principal" Nullable="false" Partner="account_owner">
          <ReferentialConstraint Property="_ownerid_value" ReferencedProperty="ownerid" />
        </NavigationProperty>
        <NavigationProperty Name="Account_Tasks" Type="Collection(mscrm.task)" Partner="regardingobjectid_account_task" />
        <Annotation Term="OData.Community.Keys.V1.AlternateKeys">
          <Collection>
            <Record Type="OData.Community.Keys.V1.AlternateKey">
              <PropertyValue Property="Key">
                <Collection>
                  <Record Type="OData.Community.Keys.V1.PropertyRef">
                    <PropertyValue Property="Alias" String="accountnumber" />
                    <PropertyValue Property="Name" PropertyPath="accountnumber" />
                  </Record>
                </Collection>
              </PropertyValue>
            </Record>
          </Collection>
        </Annotation>
        <Annotation Term="Org.OData.Core.V1.Description" String="Business that represents a customer or potential customer. The company that is billed in business transactions." />
      </EntityType>
      <EntityType Name="contact" BaseType="mscrm.crmbaseentity">
        <Key>
          <PropertyRef Name="contactid" />
        </Key>
        <Property Name="contactid" Type="Edm.Guid" />
        <Property Name="fullname" Type="Edm.String" />
        <Property Name="lastname" Type="Edm.String" />
        <Property Name="birthdate" Type="Edm.Date" />
        <Property Name="_parentcustomerid_value" Type="Edm.Guid" />
        <NavigationProperty Name="parentcustomerid_account" Type="mscrm.account" Nullable="false" Partner="contact_customer_accounts">
          <ReferentialConstraint Property="_parentcustomerid_value" ReferencedProperty="accountid" />
        </NavigationProperty>
        <NavigationProperty Name="parentcustomerid_contact" Type="mscrm.contact" Nullable="false" Partner="contact_customer_contacts">
          <ReferentialConstraint Property="_parentcustomerid_value" ReferencedProperty="contactid" />
        </NavigationProperty>
      </EntityType>
      <EntityType Name="socialprofile" BaseType="mscrm.crmbaseentity">
        <Key>
          <PropertyRef Name="socialprofileid" />
        </Key>
        <Property Name="socialprofileid" Type="Edm.Guid" />
        <Property Name="profilename" Type="Edm.String" />
        <Property Name="influencescore" Type="Edm.Double" />
        <Property Name="blocked" Type="Edm.Boolean" />
        <Property Name="_customerid_value" Type="Edm.Guid">
          <Annotation Term="Org.OData.Core.V1.Description" String="Shows the customer that this social profile belongs to." />
        </Property>
        <NavigationProperty Name="customerid_contact" Type="mscrm.contact" Nullable="false" Partner="Socialprofile_customer_contacts">
          <ReferentialConstraint Property="_customerid_value" ReferencedProperty="contactid" />
        </NavigationProperty>
        <NavigationProperty Name="customerid_account" Type="mscrm.account" Nullable="false" Partner="Socialprofile_customer_accounts">
          <ReferentialConstraint Property="_customerid_value" ReferencedProperty="accountid" />
        </NavigationProperty>
      </EntityType>
      <EntityType Name="systemuser" BaseType="mscrm.principal">
        <Property Name="systemuserid" Type="Edm.Guid" />
        <Property Name="fullname" Type="Edm.String" />
        <NavigationProperty Name="lk_accountbase_createdby" Type="Collection(mscrm.account)" Partner="createdby" />
        <NavigationProperty Name="teammembership_association" Type="Collection(mscrm.team)" Partner="teammembership_association" />
      </EntityType>
      <EntityType Name="team" BaseType="mscrm.principal">
        <Property Name="teamid" Type="Edm.Guid" />
        <Property Name="name" Type="Edm.String" />
        <NavigationProperty Name="teammembership_association" Type="Collection(mscrm.systemuser)" Partner="teammembership_association" />
      </EntityType>
      <EntityType Name="teammembership" BaseType="mscrm.crmbaseentity">
        <Key>
          <PropertyRef Name="teammembershipid" />
        </Key>
        <Property Name="systemuserid" Type="Edm.Guid" />
        <Property Name="versionnumber" Type="Edm.Int64" />
        <Property Name="teammembershipid" Type="Edm.Guid" />
        <Property Name="teamid" Type="Edm.Guid" />
      </EntityType>
      <EntityType Name="crmmodelbaseentity" Abstract="true" />
      <EntityType Name="MetadataBase" BaseType="mscrm.crmmodelbaseentity" Abstract="true">
        <Key>
          <PropertyRef Name="MetadataId" />
        </Key>
        <Property Name="MetadataId" Type="Edm.Guid" Nullable="false" />
        <Property Name="HasChanged" Type="Edm.Boolean" />
      </EntityType>
      <EntityType Name="EntityMetadata" BaseType="mscrm.MetadataBase">
        <Property Name="LogicalName" Type="Edm.String" />
      </EntityType>
      <EntityContainer Name="System">
        <EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account">
          <NavigationPropertyBinding Path="createdby" Target="systemusers" />
        </EntitySet>
        <EntitySet Name="contacts" EntityType="Microsoft.Dynamics.CRM.contact" />
        <EntitySet Name="socialprofiles" EntityType="Microsoft.Dynamics.CRM.socialprofile" />
        <EntitySet Name="systemusers" EntityType="Microsoft.Dynamics.CRM.systemuser" />
        <EntitySet Name="teams" EntityType="Microsoft.Dynamics.CRM.team" />
        <EntitySet Name="teammemberships" EntityType="Microsoft.Dynamics.CRM.teammembership" />
        <EntitySet Name="EntityDefinitions" EntityType="Microsoft.Dynamics.CRM.EntityMetadata" />
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`

const parsed = (text: string): TableSchema.SchemaDefinition => {
  const schema = TableSchema.parse(text)
  if (typeof schema === "string") throw new Error(schema)
  return schema
}

const tableOf = (schema: TableSchema.SchemaDefinition, name: string) =>
  schema.tables.find((t) => t.logicalName === name)!

describe("TableSchema.parse of a CSDL $metadata document", () => {
  const schema = parsed(orgCsdl)

  it("keeps the entity types that have an entity set, but the metadata API's", () => {
    expect(schema.tables.map((t) => [t.logicalName, t.entitySetName, t.primaryIdAttribute])).toEqual([
      ["account", "accounts", "accountid"],
      ["contact", "contacts", "contactid"],
      ["socialprofile", "socialprofiles", "socialprofileid"],
      // The key of principal (ownerid) stands for the table's own id column.
      ["systemuser", "systemusers", "systemuserid"],
      ["team", "teams", "teamid"],
      ["teammembership", "teammemberships", "teammembershipid"]
    ])
  })

  it("maps Edm types to column types, lookups from _x_value and navigation properties, and alternate keys", () => {
    const account = tableOf(schema, "account")
    expect(account.columns).toEqual([
      { logicalName: "name", type: "String" },
      { logicalName: "accountnumber", type: "String" },
      { logicalName: "openrevenue", type: "Decimal" },
      { logicalName: "numberofemployees", type: "Integer" },
      { logicalName: "industrycode", type: "Integer" },
      { logicalName: "creditonhold", type: "Boolean" },
      { logicalName: "createdon", type: "DateTime" },
      { logicalName: "versionnumber", type: "BigInt" },
      // entityimage (Edm.Binary) is not emulated.
      {
        logicalName: "createdby",
        type: "Lookup",
        targets: [{ table: "systemuser", navigationProperty: "createdby", relationship: "lk_accountbase_createdby" }]
      },
      // A navigation property to principal stands for every table derived from it.
      {
        logicalName: "ownerid",
        type: "Owner",
        targets: [
          { table: "systemuser", navigationProperty: "ownerid", relationship: "account_owner" },
          { table: "team", navigationProperty: "ownerid", relationship: "account_owner" }
        ]
      }
    ])
    expect(account.keys).toEqual([{ logicalName: "accountnumber_key", keyAttributes: ["accountnumber"] }])
    expect(account).toMatchObject({
      primaryNameAttribute: "name",
      schemaName: "account",
      tableType: "Standard",
      messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
    })
    const contact = tableOf(schema, "contact")
    expect(contact.primaryNameAttribute).toBe("fullname")
    // Edm.Date is a date-only column; Edm.DateTimeOffset one of the default behavior.
    expect(contact.columns.find((c) => c.logicalName === "birthdate")).toEqual({
      logicalName: "birthdate",
      type: "DateTime",
      dateTimeBehavior: "DateOnly"
    })
    expect(account.columns.find((c) => c.logicalName === "createdon")).toEqual({
      logicalName: "createdon",
      type: "DateTime"
    })
    expect(tableOf(schema, "socialprofile")).toMatchObject({
      primaryNameAttribute: "profilename",
      columns: [
        { logicalName: "profilename", type: "String" },
        { logicalName: "influencescore", type: "Double" },
        { logicalName: "blocked", type: "Boolean" },
        {
          logicalName: "customerid",
          // CSDL cannot tell a Customer column from a Lookup.
          type: "Lookup",
          targets: [
            { table: "contact", navigationProperty: "customerid_contact" },
            { table: "account", navigationProperty: "customerid_account" }
          ]
        }
      ]
    })
    // No ownerid column on the tables whose id it stands for; a table without text is named by its first column.
    expect(tableOf(schema, "systemuser").columns).toEqual([{ logicalName: "fullname", type: "String" }])
    expect(tableOf(schema, "teammembership")).toMatchObject({
      primaryNameAttribute: "systemuserid",
      columns: [
        { logicalName: "systemuserid", type: "Uniqueidentifier" },
        { logicalName: "versionnumber", type: "BigInt" },
        { logicalName: "teamid", type: "Uniqueidentifier" }
      ]
    })
  })

  it("names what is wrong with a document, and still reads the JSON schema file", () => {
    expect(TableSchema.parse("<edmx:Edmx Version=\"4.0\"><edmx:DataServices>")).toMatch(
      /^Invalid schema: the CSDL document is not well-formed XML: /
    )
    expect(TableSchema.parse("<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" />"))
      .toBe(
        "Invalid schema: the CSDL document has no edmx:Edmx/edmx:DataServices/Schema element"
      )
    expect(TableSchema.parse("<tables/>")).toMatch(/^Invalid schema: neither a CSDL \$metadata document/)
    const json = TableSchema.parse(JSON.stringify({
      tables: [{
        logicalName: "new_item",
        entitySetName: "new_items",
        primaryIdAttribute: "new_itemid",
        columns: [{ logicalName: "new_code", type: "String" }, { logicalName: "new_name", type: "String" }]
      }]
    }))
    expect(typeof json !== "string" && json.tables[0]!.primaryNameAttribute).toBe("new_name")
    // A value outside a set (a misspelt column type) is told with every value the field takes.
    const misspelt = TableSchema.parse(JSON.stringify({
      tables: [{
        logicalName: "new_item",
        entitySetName: "new_items",
        primaryIdAttribute: "new_itemid",
        columns: [{ logicalName: "new_name", type: "Strng" }]
      }]
    }))
    expect(misspelt).toMatch(
      /^Invalid schema: tables\[0\]\.columns\[0\]\.type: expected one of "String", "Memo", .*"Uniqueidentifier", got "Strng"$/
    )
  })
})

describe("an emulator of an org's CSDL", () => {
  let emulator: Awaited<ReturnType<typeof Emulator.start>>
  beforeAll(async () => {
    emulator = await Emulator.start({ schema: parsed(orgCsdl), identity: false })
  })
  afterAll(() => emulator.close())

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${emulator.info.webApiUrl}${path}`, {
      ...init,
      headers: {
        Authorization: `Bearer ${emulator.info.accessToken}`,
        "Content-Type": "application/json",
        ...init.headers
      }
    })

  it("creates and queries a record of a table that only that CSDL has, over HTTP", async () => {
    const account = await api("accounts", {
      method: "POST",
      body: JSON.stringify({ name: "Contoso", accountnumber: "A-1" })
    })
    expect(account.status).toBe(204)
    const accountId = /accounts\((.+)\)$/.exec(account.headers.get("OData-EntityId")!)![1]
    const created = await api("socialprofiles", {
      method: "POST",
      body: JSON.stringify({
        profilename: "@contoso",
        influencescore: 7.5,
        blocked: false,
        // The alternate key of the CSDL's annotation addresses the account.
        "customerid_account@odata.bind": "/accounts(accountnumber='A-1')"
      })
    })
    expect(created.status).toBe(204)
    const query = await api(
      "socialprofiles?$select=profilename,influencescore,_customerid_value&$filter=blocked eq false"
    )
    expect(query.status).toBe(200)
    const body = (await query.json()) as { value: Array<Record<string, unknown>> }
    expect(body.value).toHaveLength(1)
    expect(body.value[0]).toMatchObject({ profilename: "@contoso", influencescore: 7.5, _customerid_value: accountId })
    // A column CSDL does not carry is refused as on the service.
    const unknown = await api("socialprofiles", { method: "POST", body: JSON.stringify({ nosuchcolumn: 1 }) })
    expect(unknown.status).toBe(400)
  })
})

describe("GET $metadata", () => {
  let emulator: Awaited<ReturnType<typeof Emulator.start>>
  beforeAll(async () => {
    emulator = await Emulator.start({ identity: false })
  })
  afterAll(() => emulator.close())

  it("serves the schema as CSDL that reads back to the same tables, as far as CSDL carries them", async () => {
    const response = await fetch(`${emulator.info.webApiUrl}$metadata`, {
      headers: { Authorization: `Bearer ${emulator.info.accessToken}` }
    })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^application\/xml/)
    expect(response.headers.get("odata-version")).toBe("4.0")
    const text = await response.text()
    expect(text).toContain("<Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\"")
    expect(text).toContain("<EntitySet Name=\"dve_products\" EntityType=\"Microsoft.Dynamics.CRM.dve_product\" />")
    expect(text).toContain(
      "<ReferentialConstraint Property=\"_parentcustomerid_value\" ReferencedProperty=\"accountid\" />"
    )

    // What CSDL carries of a column type: its Edm type.
    const collapse = (type: TableSchema.ColumnType) =>
      ({
        Memo: "String",
        Money: "Decimal",
        Picklist: "Integer",
        State: "Integer",
        Status: "Integer",
        Customer: "Lookup"
      } as Record<string, string>)[type] ?? type
    const carried = (schema: TableSchema.SchemaDefinition) =>
      schema.tables.map((t) => ({
        logicalName: t.logicalName,
        entitySetName: t.entitySetName,
        primaryIdAttribute: t.primaryIdAttribute,
        primaryNameAttribute: t.primaryNameAttribute,
        tableType: t.tableType,
        keys: t.keys,
        // Of the date-time behaviors, CSDL carries Date only (Edm.Date).
        columns: t.columns.map((c) => ({
          logicalName: c.logicalName,
          type: collapse(c.type),
          targets: c.targets,
          dateOnly: c.dateTimeBehavior === "DateOnly"
        }))
      }))
    expect(carried(parsed(text))).toEqual(carried(TableSchema.defaultSchema))
    expect(text).toContain("<Property Name=\"birthdate\" Type=\"Edm.Date\" />")
    expect(text).toBe(TableSchema.toCsdl(TableSchema.defaultSchema))
  })

  it("needs a token, and answers only GET", async () => {
    expect((await fetch(`${emulator.info.webApiUrl}$metadata`)).status).toBe(401)
    const post = await fetch(`${emulator.info.webApiUrl}$metadata`, {
      method: "POST",
      headers: { Authorization: `Bearer ${emulator.info.accessToken}` }
    })
    expect(post.status).toBe(405)
  })
})

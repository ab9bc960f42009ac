import { describe, expect, it } from "vitest"
import { Fault } from "../src/internal/fault.js"
import type { FetchPlan } from "../src/internal/fetchxml.js"
import {
  parseFetchXml,
  readFetchPagingCookie,
  writeFetchInnerCookie,
  writeFetchPagingCookie
} from "../src/internal/fetchxml.js"
import type { LookupValue, StoredRecord } from "../src/Store.js"
import { defaultSchema } from "../src/TableSchema.js"

const tables = new Map(defaultSchema.tables.map((table) => [table.logicalName, table]))
const resolveTable = (name: string) => tables.get(name)

const guid = (n: number) => `49b0be2e-d01c-4d11-b83e-${n.toString(16).padStart(12, "0")}`

let nextSeq = 100
const contact = (n: number, values: Record<string, unknown>): StoredRecord => ({
  id: guid(n),
  seq: ++nextSeq,
  version: 1,
  values
})
const account = (n: number): LookupValue => ({ table: "account", id: guid(n) })

const contacts: ReadonlyArray<StoredRecord> = [
  contact(1, {
    firstname: "Yvonne",
    lastname: "McKay",
    fullname: "Yvonne McKay (sample)",
    emailaddress1: "yvonne@contoso.com",
    jobtitle: "Coffee Master",
    creditlimit: 45000,
    donotemail: false,
    gendercode: 2,
    birthdate: "1980-05-17",
    createdon: "2026-01-31T10:00:00Z",
    parentcustomerid: account(900)
  }),
  contact(2, {
    firstname: "Thomas",
    lastname: "Andersen",
    fullname: "Thomas Andersen (sample)",
    emailaddress1: "thomas@fabrikam.com",
    jobtitle: "Purchasing Manager",
    creditlimit: 1200.5,
    donotemail: true,
    gendercode: 1,
    createdon: "2026-01-30T08:00:00Z",
    parentcustomerid: account(901)
  }),
  contact(3, {
    firstname: "Susanna",
    lastname: "Stubberod",
    fullname: "Susanna Stubberod (sample)",
    emailaddress1: "susanna@contoso.com",
    jobtitle: null,
    donotemail: false,
    createdon: "2025-12-24T12:00:00Z",
    parentcustomerid: account(900)
  }),
  contact(4, { lastname: "100%_Real", fullname: "100%_Real", createdon: "2026-02-01T00:00:00Z" })
]

const plan = (xml: string, options?: Parameters<typeof parseFetchXml>[2]): FetchPlan => {
  const result = parseFetchXml(xml, resolveTable, options)
  if (result instanceof Fault) throw new Error(`unexpected fault: ${result.code} ${result.message}`)
  return result
}

const fault = (xml: string) => {
  const result = parseFetchXml(xml, resolveTable)
  if (!(result instanceof Fault)) throw new Error(`expected a fault for ${xml}`)
  return { status: result.status, code: result.code, message: result.message }
}

/** The last names of the contacts a filter keeps. */
const where = (filter: string, options?: Parameters<typeof parseFetchXml>[2]): Array<unknown> => {
  const compiled = plan(`<fetch><entity name="contact">${filter}</entity></fetch>`, options)
  return contacts.filter(compiled.predicate).map((record) => record.values["lastname"])
}

const condition = (attribute: string, operator: string, value?: string) =>
  `<filter><condition attribute="${attribute}" operator="${operator}"${
    value === undefined ? "" : ` value="${value}"`
  } /></filter>`

describe("parseFetchXml: the query", () => {
  it("reads the entity, the attributes in order and the fetch attributes", () => {
    const result = plan(
      `<fetch top="50" distinct="true" returntotalrecordcount="true">
        <entity name="contact">
          <attribute name="fullname" />
          <attribute name="emailaddress1" />
          <attribute name="fullname" />
          <attribute name="parentcustomerid" />
        </entity>
      </fetch>`
    )
    expect(result.entity).toBe("contact")
    expect(result.attributes).toEqual(["fullname", "emailaddress1", "parentcustomerid"])
    expect(result.top).toBe(50)
    expect(result.count).toBeUndefined()
    expect(result.page).toBeUndefined()
    expect(result.pagingCookie).toBeUndefined()
    expect(result.distinct).toBe(true)
    expect(result.returnTotalRecordCount).toBe(true)
    expect(result.compare).toBeUndefined()
    expect(contacts.filter(result.predicate)).toHaveLength(4)
  })

  it("all-attributes, no attribute element (all columns, as documented) and no-attrs", () => {
    expect(plan(`<fetch><entity name="account"><all-attributes /></entity></fetch>`).attributes).toBe("all")
    expect(plan(`<fetch><entity name="account" /></fetch>`).attributes).toBe("all")
    expect(
      plan(`<fetch><entity name="account"><attribute name="name" /><all-attributes /></entity></fetch>`).attributes
    )
      .toBe("all")
    expect(plan(`<fetch><entity name="account"><no-attrs /></entity></fetch>`).attributes).toEqual([])
  })

  it("reads count, page and the paging cookie XML-unescaped, single or double quoted", () => {
    // The request of the documented paging example (fetchxml/page-results), before URL encoding.
    const result = plan(
      `<fetch count='3' page='2' paging-cookie='&lt;cookie page="1"&gt;&lt;fullname last="Susanna Stubberod (sample)" first="Yvonne McKay (sample)" /&gt;&lt;contactid last="{70BF4D48-34CB-ED11-B596-0022481D68CD}" first="{49B0BE2E-D01C-ED11-B83E-000D3A572421}" /&gt;&lt;/cookie&gt;'>
  <entity name='contact'>
    <attribute name='fullname' />
    <attribute name='jobtitle' />
    <order descending='true' attribute='fullname' />
  </entity>
</fetch>`
    )
    expect(result.count).toBe(3)
    expect(result.page).toBe(2)
    expect(result.pagingCookie).toBe(
      `<cookie page="1"><fullname last="Susanna Stubberod (sample)" first="Yvonne McKay (sample)" /><contactid last="{70BF4D48-34CB-ED11-B596-0022481D68CD}" first="{49B0BE2E-D01C-ED11-B83E-000D3A572421}" /></cookie>`
    )
    expect(
      plan(`<fetch paging-cookie="&lt;cookie page=&quot;1&quot;&gt;&lt;/cookie&gt;"><entity name="contact"/></fetch>`)
        .pagingCookie
    ).toBe(`<cookie page="1"></cookie>`)
  })

  it("accepts an XML declaration, comments, CDATA and character references", () => {
    const result = plan(
      `<?xml version="1.0" encoding="utf-8"?>
      <!-- all Contoso contacts -->
      <fetch version="1.0" output-format="xml-platform" mapping="logical" no-lock="true">
        <entity name="contact">
          <filter>
            <condition attribute="emailaddress1" operator="like"><value><![CDATA[%@contoso.com]]></value></condition>
            <condition attribute="lastname" operator="ne" value="&#77;cKay" />
          </filter>
        </entity>
      </fetch>`
    )
    expect(contacts.filter(result.predicate).map((r) => r.values["lastname"])).toEqual(["Stubberod"])
  })
})

describe("parseFetchXml: condition operators", () => {
  it("eq and ne/neq on strings: case-insensitive; ne leaves out nulls", () => {
    expect(where(condition("lastname", "eq", "mckay"))).toEqual(["McKay"])
    expect(where(condition("fullname", "eq", "THOMAS ANDERSEN (SAMPLE)"))).toEqual(["Andersen"])
    expect(where(condition("jobtitle", "ne", "coffee master"))).toEqual(["Andersen"])
    expect(where(condition("jobtitle", "neq", "Coffee Master"))).toEqual(["Andersen"])
  })

  it("gt, ge, lt, le on money, dates and strings", () => {
    expect(where(condition("creditlimit", "gt", "1200.5"))).toEqual(["McKay"])
    expect(where(condition("creditlimit", "ge", "1200.5"))).toEqual(["McKay", "Andersen"])
    expect(where(condition("creditlimit", "lt", "45000"))).toEqual(["Andersen"])
    expect(where(condition("creditlimit", "le", "45000"))).toEqual(["McKay", "Andersen"])
    expect(where(condition("createdon", "ge", "2026-01-31"))).toEqual(["McKay", "100%_Real"])
    expect(where(condition("createdon", "lt", "2026-01-30T09:00:00Z"))).toEqual(["Andersen", "Stubberod"])
    expect(where(condition("createdon", "gt", "1/31/2026"))).toEqual(["McKay", "100%_Real"])
    expect(where(condition("lastname", "lt", "b"))).toEqual(["Andersen", "100%_Real"])
  })

  it("Booleans as true/false or 1/0, choices as numbers", () => {
    expect(where(condition("donotemail", "eq", "1"))).toEqual(["Andersen"])
    expect(where(condition("donotemail", "eq", "false"))).toEqual(["McKay", "Stubberod"])
    expect(where(condition("gendercode", "eq", "2"))).toEqual(["McKay"])
  })

  it("like and not-like with %, _ and [] wildcards, case-insensitive", () => {
    expect(where(condition("emailaddress1", "like", "%@CONTOSO.com"))).toEqual(["McKay", "Stubberod"])
    expect(where(condition("firstname", "like", "_homas"))).toEqual(["Andersen"])
    expect(where(condition("firstname", "like", "[st]%"))).toEqual(["Andersen", "Stubberod"])
    expect(where(condition("firstname", "like", "yvonne"))).toEqual(["McKay"])
    expect(where(condition("lastname", "like", "100[%][_]%"))).toEqual(["100%_Real"])
    expect(where(condition("emailaddress1", "not-like", "%@contoso.com"))).toEqual(["Andersen"])
  })

  it("begins-with, not-begin-with, ends-with, not-end-with", () => {
    expect(where(condition("fullname", "begins-with", "s"))).toEqual(["Stubberod"])
    expect(where(condition("fullname", "not-begin-with", "s"))).toEqual(["McKay", "Andersen", "100%_Real"])
    expect(where(condition("fullname", "ends-with", "(SAMPLE)"))).toEqual(["McKay", "Andersen", "Stubberod"])
    expect(where(condition("fullname", "not-end-with", "(sample)"))).toEqual(["100%_Real"])
    expect(where(condition("jobtitle", "not-begin-with", "c"))).toEqual(["Andersen"])
  })

  it("in and not-in with <value> elements, on strings, numbers and lookups", () => {
    expect(
      where(
        `<filter><condition attribute="lastname" operator="in"><value>mckay</value><value>STUBBEROD</value><value>nobody</value></condition></filter>`
      )
    ).toEqual(["McKay", "Stubberod"])
    expect(
      where(
        `<filter><condition attribute="gendercode" operator="not-in"><value>1</value><value>3</value></condition></filter>`
      )
    ).toEqual(["McKay"])
    const many = Array.from({ length: 500 }, (_, i) => `<value>{${guid(2000 + i).toUpperCase()}}</value>`).join("")
    expect(
      where(
        `<filter><condition attribute="contactid" operator="in">${many}<value>${guid(3)}</value></condition></filter>`
      )
    ).toEqual(["Stubberod"])
    // A stray value="" next to <value> elements (as some tools write) is ignored.
    expect(
      where(
        `<filter><condition attribute="parentcustomerid" operator="in" value=""><value>${
          guid(901)
        }</value></condition></filter>`
      )
    ).toEqual(["Andersen"])
  })

  it("null and not-null", () => {
    expect(where(condition("jobtitle", "null"))).toEqual(["Stubberod", "100%_Real"])
    expect(where(condition("jobtitle", "not-null"))).toEqual(["McKay", "Andersen"])
    expect(where(condition("parentcustomerid", "null"))).toEqual(["100%_Real"])
  })

  it("between and not-between, inclusive; not-between leaves out nulls", () => {
    const between = (operator: string, low: string, high: string, attribute = "creditlimit") =>
      where(
        `<filter><condition attribute="${attribute}" operator="${operator}"><value>${low}</value><value>${high}</value></condition></filter>`
      )
    expect(between("between", "1200.5", "45000")).toEqual(["McKay", "Andersen"])
    expect(between("between", "0", "1200.5")).toEqual(["Andersen"])
    expect(between("not-between", "0", "1200.5")).toEqual(["McKay"])
    expect(between("between", "2026-01-30", "2026-01-31", "createdon")).toEqual(["Andersen"])
    expect(between("between", "2026-01-30", "2026-01-31T23:59:59Z", "createdon")).toEqual(["McKay", "Andersen"])
  })

  it("conditions on a lookup compare its id, with or without braces, any case", () => {
    expect(where(condition("parentcustomerid", "eq", guid(900)))).toEqual(["McKay", "Stubberod"])
    expect(where(condition("parentcustomerid", "eq", `{${guid(900).toUpperCase()}}`))).toEqual([
      "McKay",
      "Stubberod"
    ])
    expect(where(condition("parentcustomerid", "ne", guid(900)))).toEqual(["Andersen"])
    expect(where(condition("contactid", "eq", guid(2)))).toEqual(["Andersen"])
  })

  it("date operators, in UTC relative to now", () => {
    const now = Date.parse("2026-01-31T12:00:00Z")
    const at = (operator: string, value?: string) => where(condition("createdon", operator, value), { now })
    expect(at("today")).toEqual(["McKay"])
    expect(at("yesterday")).toEqual(["Andersen"])
    expect(at("tomorrow")).toEqual(["100%_Real"])
    expect(at("last-seven-days")).toEqual(["McKay", "Andersen"])
    expect(at("next-seven-days")).toEqual(["100%_Real"])
    expect(at("last-x-hours", "2")).toEqual(["McKay"])
    expect(at("last-x-days", "1")).toEqual(["McKay", "Andersen"])
    expect(at("last-x-months", "1")).toEqual(["McKay", "Andersen"])
    expect(at("last-x-months", "2")).toEqual(["McKay", "Andersen", "Stubberod"])
    expect(at("olderthan-x-days", "7")).toEqual(["Stubberod"])
    expect(at("this-month")).toEqual(["McKay", "Andersen"])
    expect(at("last-month")).toEqual(["Stubberod"])
    expect(at("next-month")).toEqual(["100%_Real"])
    expect(at("last-year")).toEqual(["Stubberod"])
    expect(at("on", "2026-01-30")).toEqual(["Andersen"])
    expect(at("on-or-after", "2026-01-31")).toEqual(["McKay", "100%_Real"])
    expect(at("on-or-before", "2026-01-30")).toEqual(["Andersen", "Stubberod"])
  })

  it("valueof compares two columns of the row", () => {
    const result = plan(
      `<fetch><entity name="contact"><filter><condition attribute="fullname" operator="ne" valueof="lastname" /></filter></entity></fetch>`
    )
    expect(contacts.filter(result.predicate).map((r) => r.values["lastname"])).toEqual([
      "McKay",
      "Andersen",
      "Stubberod"
    ])
  })
})

describe("parseFetchXml: filters", () => {
  it("nests and/or filters; and is the default type", () => {
    expect(
      where(
        `<filter type="or">
          <condition attribute="lastname" operator="eq" value="McKay" />
          <filter>
            <condition attribute="donotemail" operator="eq" value="0" />
            <condition attribute="emailaddress1" operator="like" value="%contoso%" />
          </filter>
        </filter>`
      )
    ).toEqual(["McKay", "Stubberod"])
    expect(
      where(
        `<filter type="and">
          <filter type="or">
            <condition attribute="firstname" operator="eq" value="thomas" />
            <condition attribute="firstname" operator="eq" value="susanna" />
          </filter>
          <filter type="or">
            <condition attribute="jobtitle" operator="null" />
            <condition attribute="creditlimit" operator="gt" value="100000" />
          </filter>
        </filter>`
      )
    ).toEqual(["Stubberod"])
  })

  it("ands several filters of the entity; an empty filter adds nothing", () => {
    expect(where(condition("donotemail", "eq", "0") + condition("firstname", "begins-with", "S"))).toEqual([
      "Stubberod"
    ])
    expect(where(`<filter type="or" />`)).toHaveLength(4)
    expect(where(`<filter />`)).toHaveLength(4)
  })
})

describe("parseFetchXml: order", () => {
  const sorted = (orders: string, fetchAttributes = "", options?: Parameters<typeof parseFetchXml>[2]) => {
    const { compare } = plan(`<fetch ${fetchAttributes}><entity name="contact">${orders}</entity></fetch>`, options)
    return [...contacts].sort(compare).map((record) => record.values["lastname"])
  }

  it("orders ascending by default, descending when asked; nulls first ascending", () => {
    expect(sorted(`<order attribute="fullname" />`)).toEqual(["100%_Real", "Stubberod", "Andersen", "McKay"])
    expect(sorted(`<order attribute="fullname" descending="true" />`)).toEqual([
      "McKay",
      "Andersen",
      "Stubberod",
      "100%_Real"
    ])
    expect(sorted(`<order attribute="fullname" descending="false" />`)).toEqual([
      "100%_Real",
      "Stubberod",
      "Andersen",
      "McKay"
    ])
    expect(sorted(`<order attribute="creditlimit" />`)).toEqual(["Stubberod", "100%_Real", "Andersen", "McKay"])
  })

  it("applies order elements in document order, ties by insertion order", () => {
    expect(sorted(`<order attribute="donotemail" descending="true" /><order attribute="lastname" />`)).toEqual([
      "Andersen",
      "McKay",
      "Stubberod",
      "100%_Real"
    ])
    expect(sorted(`<order attribute="parentcustomerid" />`)).toEqual(["100%_Real", "McKay", "Stubberod", "Andersen"])
  })

  it("sorts choices by label, by value with useraworderby", () => {
    // gendercode: 1 Male, 2 Female; labels sort Female before Male.
    expect(sorted(`<order attribute="gendercode" />`)).toEqual(["Stubberod", "100%_Real", "McKay", "Andersen"])
    expect(sorted(`<order attribute="gendercode" />`, `useraworderby="true"`)).toEqual([
      "Stubberod",
      "100%_Real",
      "Andersen",
      "McKay"
    ])
  })

  it("sorts lookups by the target's name when the caller resolves it", () => {
    const lookupName = (lookup: LookupValue) => lookup.id === guid(900) ? "Zeta Corp" : "Acme"
    expect(sorted(`<order attribute="parentcustomerid" />`, "", { lookupName })).toEqual([
      "100%_Real",
      "Andersen",
      "McKay",
      "Stubberod"
    ])
  })
})

describe("parseFetchXml: errors", () => {
  it("malformed XML", () => {
    expect(fault(`<fetch><entity name="contact"></fetch>`)).toEqual({
      status: 400,
      code: "0x80040201",
      message:
        "Invalid XML: Expected closing tag 'entity' (opened in line 1, col 8) instead of closing tag 'fetch'. (line 1, column 31)."
    })
    expect(fault(`fetch`).code).toBe("0x80040201")
    expect(fault(`<fetch><entity name="contact"/></fetch><fetch/>`).code).toBe("0x80040201")
    expect(fault(`<!DOCTYPE x [<!ENTITY a "b">]><fetch><entity name="contact"/></fetch>`).code).toBe("0x80040201")
    expect(fault(`   `)).toEqual({ status: 400, code: "0x80040203", message: "Expected non-empty string." })
  })

  it("a missing or unknown entity", () => {
    expect(fault(`<fetch />`)).toEqual({
      status: 400,
      code: "0x80041102",
      message: "Entity Name was not specified in FetchXml String."
    })
    expect(fault(`<fetch><entity /></fetch>`).code).toBe("0x80041102")
    expect(fault(`<fetch><entity name="nope" /></fetch>`)).toEqual({
      status: 400,
      code: "0x80041102",
      message: "The entity with a name = 'nope' with namemapping = 'Logical' was not found in the MetadataCache."
    })
    expect(fault(`<entity name="contact" />`).code).toBe("0x8004111C")
  })

  it("an unknown attribute, in attribute, condition and order", () => {
    const expected = {
      status: 400,
      code: "0x80041103",
      message: "'Contact' entity doesn't contain attribute with Name = 'nope' and NameMapping = 'Logical'."
    }
    expect(fault(`<fetch><entity name="contact"><attribute name="nope" /></entity></fetch>`)).toEqual(expected)
    expect(fault(`<fetch><entity name="contact">${condition("nope", "eq", "1")}</entity></fetch>`)).toEqual(expected)
    expect(fault(`<fetch><entity name="contact"><order attribute="nope" /></entity></fetch>`)).toEqual(expected)
    // The Web API's _<column>_value names are not attributes.
    expect(fault(`<fetch><entity name="contact">${condition("_parentcustomerid_value", "null")}</entity></fetch>`).code)
      .toBe("0x80041103")
  })

  it("an unknown operator, and operators the emulator does not support", () => {
    expect(fault(`<fetch><entity name="contact">${condition("lastname", "sounds-like", "x")}</entity></fetch>`))
      .toEqual({
        status: 400,
        code: "0x80041120",
        message: "The condition operator 'sounds-like' is not valid (attribute 'contact.lastname')."
      })
    expect(fault(`<fetch><entity name="contact">${condition("contactid", "eq-userid")}</entity></fetch>`)).toEqual({
      status: 400,
      code: "0x8004111C",
      message: "The condition operator 'eq-userid' is not supported by the emulator."
    })
    expect(fault(`<fetch><entity name="contact">${condition("lastname", "today")}</entity></fetch>`).message)
      .toContain("applies to date and time columns")
    expect(fault(`<fetch><entity name="contact">${condition("lastname", "")}</entity></fetch>`).code).toBe(
      "0x80041120"
    )
  })

  it("link-entity is refused, wherever it appears", () => {
    const linked = fault(
      `<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid"><attribute name="name" /></link-entity></entity></fetch>`
    )
    expect(linked).toEqual({
      status: 400,
      code: "0x8004111C",
      message: "link-entity (joining tables) is not supported by the emulator."
    })
    expect(
      fault(
        `<fetch><entity name="contact"><filter><link-entity name="account" from="accountid" to="parentcustomerid" link-type="any" /></filter></entity></fetch>`
      ).message
    ).toBe("link-entity (a filter on related records) is not supported by the emulator.")
    expect(
      fault(
        `<fetch><entity name="contact"><filter><condition entityname="a" attribute="name" operator="eq" value="x" /></filter></entity></fetch>`
      ).code
    ).toBe("0x8004111C")
    expect(fault(`<fetch><entity name="contact"><order entityname="a" attribute="name" /></entity></fetch>`).code)
      .toBe("0x8004111C")
  })

  it("unknown elements, with the service's message", () => {
    expect(fault(`<fetch><entity name="contact"><attributes name="x" /></entity></fetch>`)).toEqual({
      status: 400,
      code: "0x8004111C",
      message:
        `Invalid Child Node, valid nodes are filter, order, link-entity, attribute, all-attributes, no-attrs. NodeName = attributes NodeXml = <attributes name="x" />`
    })
    expect(fault(`<fetch><entity name="contact"><filter><conditions /></filter></entity></fetch>`).code).toBe(
      "0x8004111C"
    )
    expect(fault(`<fetch><fetch /></fetch>`).code).toBe("0x8004111C")
  })

  it("invalid attribute values of fetch, filter and order", () => {
    expect(fault(`<fetch><entity name="contact"><filter type="xor" /></entity></fetch>`).code).toBe("0x80041122")
    expect(fault(`<fetch distinct="maybe"><entity name="contact" /></fetch>`).code).toBe("0x80041115")
    expect(fault(`<fetch><entity name="contact"><order attribute="lastname" descending="yes" /></entity></fetch>`).code)
      .toBe("0x80041119")
    expect(fault(`<fetch count="0"><entity name="contact" /></fetch>`).code).toBe("0x80041127")
    expect(fault(`<fetch count="ten"><entity name="contact" /></fetch>`).code).toBe("0x80040203")
    expect(fault(`<fetch top="5001"><entity name="contact" /></fetch>`).message).toBe(
      "The 'top' attribute value can't exceed 5000."
    )
    expect(fault(`<fetch top="10" page="2"><entity name="contact" /></fetch>`).message).toBe(
      "The top attribute can't be specified with paging attribute page."
    )
  })

  it("values that do not convert to the column's type", () => {
    expect(fault(`<fetch><entity name="contact">${condition("creditlimit", "gt", "lots")}</entity></fetch>`)).toEqual({
      status: 400,
      code: "0x80040203",
      message:
        "An exception System.FormatException was thrown while trying to convert input value 'lots' to attribute 'contact.creditlimit'. Expected type of attribute value: System.Decimal. Exception raised: Input string was not in a correct format."
    })
    expect(
      fault(`<fetch><entity name="contact">${condition("parentcustomerid", "like", "a%")}</entity></fetch>`).message
    )
      .toBe(
        "An exception System.FormatException was thrown while trying to convert input value 'a%' to attribute 'contact.parentcustomerid'. Expected type of attribute value: System.Guid. Exception raised: Guid should contain 32 digits with 4 dashes (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."
      )
    expect(fault(`<fetch><entity name="contact">${condition("gendercode", "eq", "1.5")}</entity></fetch>`).code).toBe(
      "0x80040203"
    )
    expect(fault(`<fetch><entity name="contact">${condition("createdon", "on", "someday")}</entity></fetch>`).message)
      .toContain("String was not recognized as a valid DateTime.")
    expect(fault(`<fetch><entity name="contact">${condition("donotemail", "eq", "yes")}</entity></fetch>`).message)
      .toContain("String was not recognized as a valid Boolean.")
  })

  it("wrong numbers of values", () => {
    expect(fault(`<fetch><entity name="contact">${condition("lastname", "eq")}</entity></fetch>`).code).toBe(
      "0x80041106"
    )
    expect(
      fault(
        `<fetch><entity name="contact"><filter><condition attribute="creditlimit" operator="between"><value>1</value></condition></filter></entity></fetch>`
      ).message
    ).toBe(
      "The condition on 'contact.creditlimit' with operator 'between' expects 2 value(s) but has 1."
    )
    expect(fault(`<fetch><entity name="contact">${condition("lastname", "in")}</entity></fetch>`).code).toBe(
      "0x80041106"
    )
    expect(fault(`<fetch><entity name="contact"><filter><condition operator="null" /></filter></entity></fetch>`).code)
      .toBe("0x80041106")
  })

  it("aggregates and column aliases are refused", () => {
    expect(fault(`<fetch aggregate="true"><entity name="contact" /></fetch>`).code).toBe("0x8004111C")
    expect(fault(`<fetch><entity name="contact"><attribute name="fullname" alias="n" /></entity></fetch>`).message)
      .toBe("The attribute setting 'alias' (on 'fullname') is not supported by the emulator.")
  })
})

describe("paging cookies", () => {
  it("encodes the inner cookie twice exactly as the service does (documented example)", () => {
    const inner =
      `<cookie page="1"><fullname last="Susanna Stubberod (sample)" first="Yvonne McKay (sample)" /><contactid last="{70BF4D48-34CB-ED11-B596-0022481D68CD}" first="{49B0BE2E-D01C-ED11-B83E-000D3A572421}" /></cookie>`
    expect(writeFetchPagingCookie(2, inner)).toBe(
      `<cookie pagenumber="2" pagingcookie="%253ccookie%2520page%253d%25221%2522%253e%253cfullname%2520last%253d%2522Susanna%2520Stubberod%2520%2528sample%2529%2522%2520first%253d%2522Yvonne%2520McKay%2520%2528sample%2529%2522%2520%252f%253e%253ccontactid%2520last%253d%2522%257b70BF4D48-34CB-ED11-B596-0022481D68CD%257d%2522%2520first%253d%2522%257b49B0BE2E-D01C-ED11-B83E-000D3A572421%257d%2522%2520%252f%253e%253c%252fcookie%253e" istracking="False" />`
    )
  })

  it("round-trips: written, decoded twice and XML-escaped by a client, parsed, read back", () => {
    const first = contacts[0]!
    const last = contacts[2]!
    const inner = writeFetchInnerCookie(1, "contactid", first, last)
    expect(inner).toBe(
      `<cookie page="1" lastseq="${last.seq}"><contactid last="{${last.id.toUpperCase()}}" first="{${first.id.toUpperCase()}}" /></cookie>`
    )
    const annotation = writeFetchPagingCookie(2, inner)

    // What a client does (fetchxml/page-results): take pagingcookie, URL-decode it twice,
    // XML-escape it into paging-cookie, and ask for the next page.
    const encoded = /pagingcookie="([^"]*)"/.exec(annotation)![1]!
    const decoded = decodeURIComponent(decodeURIComponent(encoded))
    expect(decoded).toBe(inner)
    const escaped = decoded.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
    const next = plan(`<fetch count="2" page="2" paging-cookie="${escaped}"><entity name="contact" /></fetch>`)
    expect(next.page).toBe(2)
    expect(next.pagingCookie).toBe(inner)
    expect(readFetchPagingCookie(next.pagingCookie!)).toEqual({
      page: 1,
      lastSeq: last.seq,
      firstId: first.id,
      lastId: last.id
    })
  })

  it("reads the cookie whatever clients got wrong: still escaped, still URL-encoded, or the whole annotation", () => {
    const inner = writeFetchInnerCookie(3, "contactid", contacts[0]!, contacts[1]!)
    const expected = { page: 3, lastSeq: contacts[1]!.seq, firstId: contacts[0]!.id, lastId: contacts[1]!.id }
    const annotation = writeFetchPagingCookie(4, inner)
    const once = decodeURIComponent(/pagingcookie="([^"]*)"/.exec(annotation)![1]!)
    expect(readFetchPagingCookie(inner)).toEqual(expected)
    expect(readFetchPagingCookie(inner.replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;"))).toEqual(
      expected
    )
    expect(readFetchPagingCookie(once)).toEqual(expected)
    expect(readFetchPagingCookie(encodeURIComponent(once))).toEqual(expected)
    expect(readFetchPagingCookie(annotation)).toEqual(expected)
    expect(readFetchPagingCookie(encodeURIComponent(annotation))).toEqual(expected)
  })

  it("reads a real service's cookie (no lastseq) and refuses what is not a cookie", () => {
    expect(
      readFetchPagingCookie(
        `<cookie page="1"><fullname last="Susanna Stubberod (sample)" first="Yvonne McKay (sample)" /><contactid last="{70BF4D48-34CB-ED11-B596-0022481D68CD}" first="{49B0BE2E-D01C-ED11-B83E-000D3A572421}" /></cookie>`
      )
    ).toEqual({
      page: 1,
      lastSeq: undefined,
      firstId: "49b0be2e-d01c-ed11-b83e-000d3a572421",
      lastId: "70bf4d48-34cb-ed11-b596-0022481d68cd"
    })
    expect(readFetchPagingCookie("")).toBeUndefined()
    expect(readFetchPagingCookie("garbage")).toBeUndefined()
    expect(readFetchPagingCookie("<cookie>")).toBeUndefined()
    expect(readFetchPagingCookie(`<other page="1" />`)).toBeUndefined()
    expect(readFetchPagingCookie(`<cookie page="zero" />`)).toBeUndefined()
    expect(readFetchPagingCookie("%E0%A4%A")).toBeUndefined()
  })
})

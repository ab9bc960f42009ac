import { describe, expect, it } from "vitest"
import { Fault } from "../src/internal/fault.js"
import {
  compareStrings,
  compileFilter,
  compileOrderBy,
  likePattern,
  primaryKeyCandidates
} from "../src/internal/filter.js"
import type { LookupValue, StoredRecord } from "../src/Store.js"
import type { TableDefinition } from "../src/TableSchema.js"

// A table with one column of every type the evaluators distinguish.
const widget: TableDefinition = {
  logicalName: "widget",
  entitySetName: "widgets",
  schemaName: "Widget",
  objectTypeCode: 10001,
  primaryIdAttribute: "widgetid",
  primaryNameAttribute: "name",
  tableType: "Standard",
  columns: [
    { logicalName: "name", type: "String", maxLength: 100 },
    { logicalName: "nickname", type: "String", maxLength: 100 },
    { logicalName: "description", type: "Memo", maxLength: 2000 },
    { logicalName: "quantity", type: "Integer" },
    { logicalName: "big", type: "BigInt" },
    { logicalName: "price", type: "Decimal" },
    { logicalName: "ratio", type: "Double" },
    { logicalName: "amount", type: "Money" },
    { logicalName: "active", type: "Boolean" },
    { logicalName: "due", type: "DateTime" },
    {
      logicalName: "colour",
      type: "Picklist",
      options: [{ value: 1, label: "Red" }, { value: 2, label: "Green" }, { value: 3, label: "Blue" }]
    },
    {
      logicalName: "statecode",
      type: "State",
      options: [{ value: 0, label: "Active" }, { value: 1, label: "Inactive" }]
    },
    { logicalName: "parentid", type: "Lookup", targets: [{ table: "widget", navigationProperty: "parentid" }] },
    {
      logicalName: "customerid",
      type: "Customer",
      targets: [
        { table: "account", navigationProperty: "customerid_account" },
        { table: "contact", navigationProperty: "customerid_contact" }
      ]
    },
    { logicalName: "externalid", type: "Uniqueidentifier" }
  ],
  keys: [],
  messages: { createMultiple: true, updateMultiple: true, upsertMultiple: true, deleteMultiple: false }
}

const guid = (n: number) => `6f1e1c1e-0000-4000-8000-${n.toString(16).padStart(12, "0")}`

let nextSeq = 0
const record = (n: number, values: Record<string, unknown>): StoredRecord => ({
  id: guid(n),
  seq: ++nextSeq,
  version: 1,
  values
})

const lookup = (table: string, n: number): LookupValue => ({ table, id: guid(n) })

const records: ReadonlyArray<StoredRecord> = [
  record(1, {
    name: "Alpha",
    nickname: "alpha",
    description: "The first (sample)",
    quantity: 10,
    big: 9007199254740991,
    price: 2.5,
    ratio: 0.25,
    amount: 1000,
    active: true,
    due: "2026-01-31T10:00:00Z",
    colour: 3,
    statecode: 0,
    externalid: guid(101)
  }),
  record(2, {
    name: "beta",
    nickname: "Gamma",
    description: "Second 100% done",
    quantity: -5,
    price: 10,
    ratio: 1.5,
    amount: 0,
    active: false,
    due: "2026-02-01T00:00:00Z",
    colour: 1,
    statecode: 1,
    parentid: lookup("widget", 1),
    customerid: lookup("account", 50)
  }),
  record(3, {
    name: "Gamma ",
    nickname: null,
    description: null,
    quantity: 20,
    price: 7.75,
    active: true,
    due: "2026-01-31T23:59:59.500Z",
    colour: 2,
    statecode: 0,
    parentid: lookup("widget", 1),
    customerid: lookup("contact", 60)
  }),
  record(4, { name: "O'Neil", quantity: 0, active: null, parentid: lookup("widget", 2) }),
  record(5, {})
]

const names = (text: string, options?: Parameters<typeof compileFilter>[2]): Array<unknown> => {
  const predicate = compileFilter(text, widget, options)
  if (predicate instanceof Fault) throw new Error(`unexpected fault: ${predicate.code} ${predicate.message}`)
  return records.filter(predicate).map((r) => r.values["name"] ?? `#${r.id.slice(-1)}`)
}

const fault = (text: string, options?: Parameters<typeof compileFilter>[2]) => {
  const result = compileFilter(text, widget, options)
  if (!(result instanceof Fault)) throw new Error(`expected a fault for ${text}`)
  return { status: result.status, code: result.code, message: result.message }
}

describe("compileFilter: comparisons", () => {
  it("compares strings case-insensitively, ignoring trailing spaces (SQL Server's = and default collation)", () => {
    expect(names("name eq 'alpha'")).toEqual(["Alpha"])
    expect(names("name eq 'ALPHA'")).toEqual(["Alpha"])
    expect(names("name eq 'gamma'")).toEqual(["Gamma "])
    expect(names("name eq 'Gamma  '")).toEqual(["Gamma "])
    expect(names("name eq 'alph'")).toEqual([])
    expect(names("description eq 'the FIRST (sample)'")).toEqual(["Alpha"])
  })

  it("reads doubled quotes in strings", () => {
    expect(names("name eq 'O''Neil'")).toEqual(["O'Neil"])
    expect(names("name eq 'o''neil'")).toEqual(["O'Neil"])
  })

  it("orders strings case-insensitively for gt/ge/lt/le", () => {
    expect(names("name gt 'b'")).toEqual(["beta", "Gamma ", "O'Neil"])
    expect(names("name lt 'BETA'")).toEqual(["Alpha"])
    expect(names("name le 'BETA'")).toEqual(["Alpha", "beta"])
    expect(names("name ge 'gamma'")).toEqual(["Gamma ", "O'Neil"])
  })

  it("compares numbers of every numeric type, negative and decimal literals included", () => {
    expect(names("quantity eq 10")).toEqual(["Alpha"])
    expect(names("quantity gt 0")).toEqual(["Alpha", "Gamma "])
    expect(names("quantity ge 0")).toEqual(["Alpha", "Gamma ", "O'Neil"])
    expect(names("quantity lt 0")).toEqual(["beta"])
    expect(names("quantity eq -5")).toEqual(["beta"])
    expect(names("quantity le -5")).toEqual(["beta"])
    expect(names("price gt 2.5")).toEqual(["beta", "Gamma "])
    expect(names("price eq 7.75")).toEqual(["Gamma "])
    expect(names("price lt 7.75M")).toEqual(["Alpha"])
    expect(names("ratio ge 0.25")).toEqual(["Alpha", "beta"])
    expect(names("amount eq 0")).toEqual(["beta"])
    expect(names("amount ge 1000")).toEqual(["Alpha"])
    expect(names("big eq 9007199254740991")).toEqual(["Alpha"])
    expect(names("colour eq 2")).toEqual(["Gamma "])
    expect(names("statecode eq 0")).toEqual(["Alpha", "Gamma "])
  })

  it("compares Booleans", () => {
    expect(names("active eq true")).toEqual(["Alpha", "Gamma "])
    expect(names("active eq false")).toEqual(["beta"])
    expect(names("active ne true")).toEqual(["beta"])
  })

  it("compares datetimes with bare date and datetime literals", () => {
    expect(names("due eq 2026-01-31T10:00:00Z")).toEqual(["Alpha"])
    expect(names("due eq 2026-01-31T11:00:00+01:00")).toEqual(["Alpha"])
    expect(names("due gt 2026-01-31")).toEqual(["Alpha", "beta", "Gamma "])
    expect(names("due ge 2026-02-01")).toEqual(["beta"])
    expect(names("due lt 2026-02-01T00:00:00Z")).toEqual(["Alpha", "Gamma "])
    expect(names("due gt 2026-01-31T23:59:59Z")).toEqual(["beta", "Gamma "])
    expect(names("due le 2026-01-31T23:59:59.5Z")).toEqual(["Alpha", "Gamma "])
    expect(names("due ge 2026-01-31T10:00Z and due lt 2026-01-31T10:00:01Z")).toEqual(["Alpha"])
    expect(names("due gt 2026-01-31T23:59:59.4Z")).toEqual(["beta", "Gamma "])
    expect(names("due gt 2026-01-31T23:59:59.5Z")).toEqual(["beta"])
    expect(names("due eq 2026-01-31T23:59:59.500Z")).toEqual(["Gamma "])
  })

  it("reads the primary key, Uniqueidentifier columns and lookups (as _<column>_value) by GUID, bare or quoted", () => {
    expect(names(`widgetid eq ${guid(3)}`)).toEqual(["Gamma "])
    expect(names(`widgetid eq ${guid(3).toUpperCase()}`)).toEqual(["Gamma "])
    expect(names(`widgetid eq '${guid(3)}'`)).toEqual(["Gamma "])
    expect(names(`widgetid ne ${guid(3)}`)).toEqual(["Alpha", "beta", "O'Neil", "#5"])
    expect(names(`externalid eq ${guid(101)}`)).toEqual(["Alpha"])
    expect(names(`_parentid_value eq ${guid(1)}`)).toEqual(["beta", "Gamma "])
    expect(names(`_parentid_value eq '${guid(2)}'`)).toEqual(["O'Neil"])
    expect(names(`_customerid_value eq ${guid(60)}`)).toEqual(["Gamma "])
    expect(names("_parentid_value eq null")).toEqual(["Alpha", "#5"])
  })

  it("compares two columns of the same row", () => {
    expect(names("name eq nickname")).toEqual(["Alpha"])
    expect(names("name ne nickname")).toEqual(["beta"])
    expect(names("price gt quantity")).toEqual(["beta"])
  })

  it("accepts the literal on the left", () => {
    expect(names("5 lt quantity")).toEqual(["Alpha", "Gamma "])
    expect(names("'beta' eq name")).toEqual(["beta"])
  })
})

describe("compileFilter: null semantics", () => {
  it("tests null with eq null and ne null", () => {
    expect(names("description eq null")).toEqual(["Gamma ", "O'Neil", "#5"])
    expect(names("description ne null")).toEqual(["Alpha", "beta"])
    expect(names("active eq null")).toEqual(["O'Neil", "#5"])
  })

  it("never matches a null column in a comparison, negated or not (SQL's unknown)", () => {
    expect(names("quantity ne 10")).toEqual(["beta", "Gamma ", "O'Neil"])
    expect(names("not (quantity eq 10)")).toEqual(["beta", "Gamma ", "O'Neil"])
    expect(names("not (nickname eq 'x')")).toEqual(["Alpha", "beta"])
    expect(names("not contains(description,'first')")).toEqual(["beta"])
    expect(names("quantity gt null")).toEqual([])
    expect(names("not (quantity gt null)")).toEqual([])
  })

  it("keeps null tests exact under negation", () => {
    expect(names("not (description eq null)")).toEqual(["Alpha", "beta"])
    expect(names("not (description ne null)")).toEqual(["Gamma ", "O'Neil", "#5"])
    expect(names("not (nickname eq 'alpha' or nickname eq null)")).toEqual(["beta"])
  })
})

describe("compileFilter: logical operators and precedence", () => {
  it("binds and tighter than or", () => {
    expect(names("name eq 'alpha' or quantity gt 0 and active eq false")).toEqual(["Alpha"])
    expect(names("(name eq 'alpha' or quantity gt 0) and active eq true")).toEqual(["Alpha", "Gamma "])
    expect(names("quantity gt 0 and active eq true or name eq 'beta'")).toEqual(["Alpha", "beta", "Gamma "])
  })

  it("applies not to the following primary expression, as Microsoft.OData.Core does", () => {
    expect(names("not contains(name,'a') or quantity eq 0")).toEqual(["O'Neil"])
    expect(names("not (name eq 'alpha' or name eq 'beta')")).toEqual(["Gamma ", "O'Neil"])
    expect(names("not not (name eq 'alpha')")).toEqual(["Alpha"])
    expect(fault("not name eq 'alpha'")).toEqual({
      status: 400,
      code: "0x80060888",
      message:
        "A unary operator with an incompatible type was detected. Found operand type 'Edm.String' for operator kind 'Not'."
    })
  })

  it("takes a condition compared with a Boolean literal", () => {
    expect(names("contains(name,'mm') eq true")).toEqual(["Gamma "])
    expect(names("startswith(name,'a') eq false")).toEqual(["beta", "Gamma ", "O'Neil"])
    expect(names("startswith(name,'a') ne true")).toEqual(["beta", "Gamma ", "O'Neil"])
  })

  it("tolerates whitespace, including none around parentheses", () => {
    expect(names("(name eq 'alpha')or(name eq 'beta')")).toEqual(["Alpha", "beta"])
    expect(names("  quantity   eq\t10  ")).toEqual(["Alpha"])
  })
})

describe("compileFilter: string functions", () => {
  it("contains, startswith and endswith ignore case", () => {
    expect(names("contains(name,'MM')")).toEqual(["Gamma "])
    expect(names("startswith(name,'AL')")).toEqual(["Alpha"])
    expect(names("endswith(name,'TA')")).toEqual(["beta"])
    expect(names("endswith(name,'a ')")).toEqual(["Gamma "])
    expect(names("contains(description,'(sample)')")).toEqual(["Alpha"])
    expect(names("startswith(name,'o''n')")).toEqual(["O'Neil"])
  })

  it("treats %, _ and [] in the value as T-SQL LIKE wildcards, [%] as a literal percent", () => {
    expect(names("startswith(name,'%a')")).toEqual(["Alpha", "beta", "Gamma "])
    expect(names("startswith(name,'_e')")).toEqual(["beta"])
    expect(names("startswith(name,'[a-c]')")).toEqual(["Alpha", "beta"])
    expect(names("startswith(name,'[^a-c]')")).toEqual(["Gamma ", "O'Neil"])
    expect(names("contains(description,'100[%]')")).toEqual(["beta"])
    expect(names("contains(description,'0%d')")).toEqual(["beta"])
  })

  it("compiles LIKE patterns with regex metacharacters escaped", () => {
    expect(likePattern("a.b").test("a.b")).toBe(true)
    expect(likePattern("a.b").test("axb")).toBe(false)
    expect(likePattern("(x)+").test("(X)+")).toBe(true)
    expect(likePattern("[[]x]").test("[x]")).toBe(true)
    expect(likePattern("a[b").test("a[b")).toBe(true)
    expect(likePattern("line%").test("line1\nline2")).toBe(true)
    // Unicode-mode expressions refuse `\-` outside a set: hyphens are common in values.
    expect(likePattern("updated-%").test("updated-1@example.com")).toBe(true)
    expect(likePattern("%-%").test("A-1")).toBe(true)
    expect(likePattern("[a-]x").test("-x")).toBe(true)
    expect(likePattern("a/b{1}").test("a/b{1}")).toBe(true)
  })
})

describe("compileFilter: Dataverse query functions", () => {
  it("In and NotIn over GUIDs, many values", () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `'${guid(1000 + i)}'`)
    ids.push(`'${guid(2)}'`, `'${guid(4).toUpperCase()}'`)
    expect(names(`Microsoft.Dynamics.CRM.In(PropertyName='widgetid',PropertyValues=[${ids.join(",")}])`)).toEqual([
      "beta",
      "O'Neil"
    ])
    expect(names(`Microsoft.Dynamics.CRM.NotIn(PropertyName='widgetid',PropertyValues=[${ids.join(",")}])`)).toEqual(
      ["Alpha", "Gamma ", "#5"]
    )
  })

  it("In on a lookup by its logical name, strings case-insensitively, numbers from strings", () => {
    expect(names(`Microsoft.Dynamics.CRM.In(PropertyName='parentid',PropertyValues=['${guid(2)}'])`)).toEqual([
      "O'Neil"
    ])
    expect(names(`Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=["ALPHA","o'neil"])`)).toEqual([
      "Alpha",
      "O'Neil"
    ])
    expect(names(`Microsoft.Dynamics.CRM.In(PropertyName='quantity',PropertyValues=["10","20"])`)).toEqual([
      "Alpha",
      "Gamma "
    ])
    expect(names(`Microsoft.Dynamics.CRM.In(PropertyName='quantity',PropertyValues=[0,-5])`)).toEqual([
      "beta",
      "O'Neil"
    ])
    // NotIn leaves out nulls, as SQL's NOT IN does.
    expect(names(`Microsoft.Dynamics.CRM.NotIn(PropertyName='quantity',PropertyValues=["10"])`)).toEqual([
      "beta",
      "Gamma ",
      "O'Neil"
    ])
  })

  it("Between and NotBetween, inclusive, on numbers and dates", () => {
    expect(names(`Microsoft.Dynamics.CRM.Between(PropertyName='quantity',PropertyValues=["0","10"])`)).toEqual([
      "Alpha",
      "O'Neil"
    ])
    expect(names(`Microsoft.Dynamics.CRM.NotBetween(PropertyName='quantity',PropertyValues=["0","10"])`)).toEqual([
      "beta",
      "Gamma "
    ])
    expect(
      names(`Microsoft.Dynamics.CRM.Between(PropertyName='due',PropertyValues=["2026-01-31","2026-01-31T12:00:00Z"])`)
    ).toEqual(["Alpha"])
    expect(names(`not Microsoft.Dynamics.CRM.Between(PropertyName='quantity',PropertyValues=["0","10"])`)).toEqual([
      "beta",
      "Gamma "
    ])
  })

  it("date functions relative to now, in UTC", () => {
    const now = Date.parse("2026-01-31T12:00:00Z") // a Saturday
    const at = (text: string) => names(text, { now })
    expect(at("Microsoft.Dynamics.CRM.Today(PropertyName='due')")).toEqual(["Alpha", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.Tomorrow(PropertyName='due')")).toEqual(["beta"])
    expect(at("Microsoft.Dynamics.CRM.Yesterday(PropertyName='due')")).toEqual([])
    expect(at("Microsoft.Dynamics.CRM.LastXHours(PropertyName='due',PropertyValue=1)")).toEqual([])
    expect(at("Microsoft.Dynamics.CRM.LastXHours(PropertyName='due',PropertyValue=2)")).toEqual(["Alpha"])
    expect(at("Microsoft.Dynamics.CRM.NextXHours(PropertyName='due',PropertyValue=12)")).toEqual(["beta", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.LastXDays(PropertyName='due',PropertyValue=1)")).toEqual(["Alpha"])
    expect(at("Microsoft.Dynamics.CRM.NextXDays(PropertyName='due',PropertyValue=1)")).toEqual(["beta", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.Next7Days(PropertyName='due')")).toEqual(["beta", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.OlderThanXHours(PropertyName='due',PropertyValue=1)")).toEqual(["Alpha"])
    expect(at("Microsoft.Dynamics.CRM.ThisWeek(PropertyName='due')")).toEqual(["Alpha", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.NextWeek(PropertyName='due')")).toEqual(["beta"])
    expect(at("Microsoft.Dynamics.CRM.ThisMonth(PropertyName='due')")).toEqual(["Alpha", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.NextMonth(PropertyName='due')")).toEqual(["beta"])
    expect(at("Microsoft.Dynamics.CRM.ThisYear(PropertyName='due')")).toEqual(["Alpha", "beta", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.LastYear(PropertyName='due')")).toEqual([])
    expect(at("Microsoft.Dynamics.CRM.On(PropertyName='due',PropertyValue='2026-02-01')")).toEqual(["beta"])
    expect(at("Microsoft.Dynamics.CRM.On(PropertyName='due',PropertyValue=2026-01-31)")).toEqual(["Alpha", "Gamma "])
    expect(at("Microsoft.Dynamics.CRM.OnOrAfter(PropertyName='due',PropertyValue='2026-02-01')")).toEqual(["beta"])
    expect(at("Microsoft.Dynamics.CRM.OnOrBefore(PropertyName='due',PropertyValue='2026-01-31')")).toEqual([
      "Alpha",
      "Gamma "
    ])
    // Negated: still never a null column.
    expect(at("not Microsoft.Dynamics.CRM.Today(PropertyName='due')")).toEqual(["beta"])
  })

  it("reads parameter aliases, with double-quoted strings for values holding quotes", () => {
    const parameters = { "@p1": "'name'", "@p2": `["O'Neil","beta"]`, "@p3": "'alpha'", "@p4": "10" }
    expect(names("Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)", { parameters })).toEqual([
      "beta",
      "O'Neil"
    ])
    expect(names("name eq @p3 or quantity eq @p4", { parameters })).toEqual(["Alpha"])
    // An alias without a value is null (OData).
    expect(names("description eq @missing", { parameters })).toEqual(["Gamma ", "O'Neil", "#5"])
  })
})

describe("compileFilter: errors", () => {
  it("an unknown property", () => {
    expect(fault("nope eq 1")).toEqual({
      status: 400,
      code: "0x80060888",
      message: "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.widget'."
    })
    // Lookups are only properties as _<column>_value; names are case-sensitive.
    expect(fault(`parentid eq ${guid(1)}`).message).toBe(
      "Could not find a property named 'parentid' on type 'Microsoft.Dynamics.CRM.widget'."
    )
    expect(fault("Name eq 'x'").message).toBe(
      "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.widget'."
    )
    expect(fault("_name_value eq null").code).toBe("0x80060888")
  })

  it("an unterminated string, with the service's message", () => {
    expect(fault("name eq 'O'Neil'")).toEqual({
      status: 400,
      code: "0x80060888",
      message: "There is an unterminated literal at position 16 in 'name eq 'O'Neil''."
    })
  })

  it("syntax errors, with positions", () => {
    expect(fault("name eq 'a' 'b'").message).toBe("Syntax error at position 12 in 'name eq 'a' 'b''.")
    expect(fault("name eq").message).toBe("Expression expected at position 7 in 'name eq'.")
    expect(fault("").message).toBe("Expression expected at position 0 in ''.")
    expect(fault("(name eq 'a'").message).toBe("')' or operator expected at position 12 in '(name eq 'a''.")
    expect(fault("contains(name,'a' 'b')").message).toBe(
      "')' or ',' expected at position 18 in 'contains(name,'a' 'b')'."
    )
    expect(fault("name eq $x").message).toBe("Syntax error: character '$' is not valid at position 8 in 'name eq $x'.")
    expect(fault("due eq 2026-02-30").message).toBe(
      "Unrecognized 'Edm.Date' literal '2026-02-30' at '7' in 'due eq 2026-02-30'."
    )
    for (const text of ["name eq 'a' and", "quantity eq 1 or or", "name eq eq"]) {
      expect(fault(text).code).toBe("0x80060888")
    }
  })

  it("incompatible types", () => {
    expect(fault("quantity eq 'ten'")).toEqual({
      status: 400,
      code: "0x80060888",
      message:
        "A binary operator with incompatible types was detected. Found operand types 'Edm.Int32' and 'Edm.String' for operator kind 'Equal'."
    })
    expect(fault("name gt 5").message).toBe(
      "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and 'Edm.Int32' for operator kind 'GreaterThan'."
    )
    expect(fault("widgetid eq 'not-a-guid'").message).toContain("'Edm.Guid' and 'Edm.String'")
    expect(fault("active eq 1").message).toContain("'Edm.Boolean' and 'Edm.Int32'")
    expect(fault("due lt 'yesterday'").message).toContain("'Edm.DateTimeOffset' and 'Edm.String'")
    expect(fault("name eq quantity").message).toContain("'Edm.String' and 'Edm.Int32'")
  })

  it("functions: unknown, unsupported, wrong arguments", () => {
    expect(fault("tolower(name) eq 'a'").message).toBe(
      "The function 'tolower' is not supported in a Dataverse $filter; use contains, startswith or endswith."
    )
    expect(fault("frobnicate(name)").message).toBe(
      "An unknown function with name 'frobnicate' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed."
    )
    expect(fault("contains(quantity,'1')").message).toBe(
      "No function signature for the function with name 'contains' matches the specified arguments. The function signatures considered are: contains(Edm.String Nullable=true, Edm.String Nullable=true)."
    )
    expect(fault("contains(name)").message).toContain("No function signature")
    expect(fault("Microsoft.Dynamics.CRM.EqualUserId(PropertyName='ownerid')").message).toBe(
      "The query function 'Microsoft.Dynamics.CRM.EqualUserId' is not supported by the emulator."
    )
    expect(fault("Microsoft.Dynamics.CRM.Frob(PropertyName='name')").message).toContain("An unknown function")
    expect(fault("Microsoft.Dynamics.CRM.In(PropertyName='name')").message).toContain("'PropertyValues'")
    expect(fault("Microsoft.Dynamics.CRM.Between(PropertyName='quantity',PropertyValues=['1'])").message).toContain(
      "exactly two values"
    )
    expect(fault("Microsoft.Dynamics.CRM.Today(PropertyName='name')").message).toContain("date and time columns")
    expect(fault("Microsoft.Dynamics.CRM.LastXDays(PropertyName='due',PropertyValue='x')").message).toContain(
      "not valid"
    )
  })

  it("query functions name columns by logical name and convert values as the query builder does", () => {
    expect(fault("Microsoft.Dynamics.CRM.In(PropertyName='nope',PropertyValues=['a'])")).toEqual({
      status: 400,
      code: "0x80041103",
      message: "'Widget' entity doesn't contain attribute with Name = 'nope' and NameMapping = 'Logical'."
    })
    expect(fault("Microsoft.Dynamics.CRM.In(PropertyName='quantity',PropertyValues=['ten'])")).toEqual({
      status: 400,
      code: "0x80040203",
      message:
        "An exception System.FormatException was thrown while trying to convert input value 'ten' to attribute 'widget.quantity'. Expected type of attribute value: System.Int32. Exception raised: Input string was not in a correct format."
    })
    expect(fault("Microsoft.Dynamics.CRM.In(PropertyName='parentid',PropertyValues=['a%'])").message).toContain(
      "Expected type of attribute value: System.Guid. Exception raised: Guid should contain 32 digits"
    )
  })

  it("what the emulator does not support is refused, never ignored", () => {
    expect(fault("quantity add 1 eq 2").message).toContain("The operator 'add'")
    expect(fault("name in ('a','b')").message).toContain("The operator 'in'")
    expect(fault("parentid/name eq 'x'").message).toContain("navigates to related records")
    expect(fault("active").message).toContain("is not a condition")
    expect(fault("1 eq 1").message).toContain("compares two values")
  })
})

describe("compileOrderBy", () => {
  const order = (text: string, input: ReadonlyArray<StoredRecord> = records, options?: { lookupName?: any }) => {
    const compare = compileOrderBy(text, widget, options)
    if (compare instanceof Fault) throw new Error(`unexpected fault: ${compare.message}`)
    return [...input].sort(compare).map((r) => r.values["name"] ?? `#${r.id.slice(-1)}`)
  }

  it("orders ascending by default, nulls first; descending puts nulls last", () => {
    expect(order("quantity")).toEqual(["#5", "beta", "O'Neil", "Alpha", "Gamma "])
    expect(order("quantity asc")).toEqual(["#5", "beta", "O'Neil", "Alpha", "Gamma "])
    expect(order("quantity desc")).toEqual(["Gamma ", "Alpha", "O'Neil", "beta", "#5"])
  })

  it("orders strings case-insensitively", () => {
    expect(order("name")).toEqual(["#5", "Alpha", "beta", "Gamma ", "O'Neil"])
    expect(order("name desc")).toEqual(["O'Neil", "Gamma ", "beta", "Alpha", "#5"])
  })

  it("uses several keys, then insertion order: stable whatever the input order", () => {
    expect(order("active desc,quantity")).toEqual(["Alpha", "Gamma ", "beta", "#5", "O'Neil"])
    expect(order("statecode,colour desc")).toEqual(["O'Neil", "#5", "Alpha", "Gamma ", "beta"])
    const shuffled = [records[4]!, records[2]!, records[0]!, records[3]!, records[1]!]
    expect(order("statecode", shuffled)).toEqual(["O'Neil", "#5", "Alpha", "Gamma ", "beta"])
  })

  it("orders dates, decimals, Booleans, the primary key and lookups", () => {
    expect(order("due")).toEqual(["O'Neil", "#5", "Alpha", "Gamma ", "beta"])
    expect(order("price desc")).toEqual(["beta", "Gamma ", "Alpha", "O'Neil", "#5"])
    expect(order("active")).toEqual(["O'Neil", "#5", "beta", "Alpha", "Gamma "])
    expect(order("widgetid desc")).toEqual(["#5", "O'Neil", "Gamma ", "beta", "Alpha"])
    expect(order("_parentid_value desc, name")).toEqual(["O'Neil", "beta", "Gamma ", "#5", "Alpha"])
  })

  it("orders lookups by the target's primary name when it can be resolved", () => {
    const lookupName = (value: LookupValue) =>
      value.id === guid(1) ? "Zulu" : value.id === guid(2) ? "Alpha" : undefined
    expect(order("_parentid_value", records, { lookupName })).toEqual(["Alpha", "#5", "O'Neil", "beta", "Gamma "])
  })

  it("errors: unknown property, syntax, expressions", () => {
    const failure = (text: string) => {
      const result = compileOrderBy(text, widget)
      if (!(result instanceof Fault)) throw new Error("expected a fault")
      return result
    }
    expect(failure("nope desc").message).toBe(
      "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.widget'."
    )
    expect(failure("nope desc").code).toBe("0x80060888")
    expect(failure("parentid").message).toContain("Could not find a property named 'parentid'")
    expect(failure("name up").message).toBe("Syntax error at position 5 in 'name up'.")
    expect(failure("name,").message).toBe("Expression expected at position 5 in 'name,'.")
    expect(failure("tolower(name)").message).toContain("not supported")
  })
})

describe("compareStrings", () => {
  it("agrees with the case-insensitive collator, trailing spaces aside", () => {
    const collator = new Intl.Collator("en-US", { sensitivity: "accent" })
    const alphabet = ["a", "B", "c", "Z", "0", "9", " ", "-", "'", "é", "E", "_", "ß"]
    // A fixed linear congruential generator: the same strings on every run.
    let state = 42
    const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648
    const word = () =>
      Array.from({ length: 1 + Math.floor(random() * 6) }, () => alphabet[Math.floor(random() * alphabet.length)]).join(
        ""
      )
    for (let i = 0; i < 5000; i++) {
      const a = word()
      const b = word()
      const expected = Math.sign(collator.compare(a.replace(/ +$/, ""), b.replace(/ +$/, "")))
      expect([a, b, Math.sign(compareStrings(a, b))]).toEqual([a, b, expected])
    }
    expect(compareStrings("Gamma ", "gamma")).toBe(0)
    expect(compareStrings("abc", "ABD")).toBeLessThan(0)
  })
})

describe("performance", () => {
  it("compiles once and evaluates 200,000 records as the hand-written predicate does", () => {
    const many = Array.from(
      { length: 200_000 },
      (_, i) =>
        record(i, { name: `Name ${i}`, quantity: i % 100, due: "2026-01-31T10:00:00Z", parentid: lookup("widget", i) })
    )
    const predicate = compileFilter(
      "(startswith(name,'name 1') or quantity eq 5) and due ge 2026-01-01 and _parentid_value ne null",
      widget
    )
    if (predicate instanceof Fault) throw new Error(predicate.message)
    // Its speed is measured in bench/emulator.mjs, never here (a timed assertion fails on a loaded machine).
    const count = many.filter(predicate).length
    const expected = many.filter((r) => {
      const name = (r.values["name"] as string).toLowerCase()
      return name.startsWith("name 1") || r.values["quantity"] === 5
    }).length
    expect(count).toBe(expected)
  })
})

describe("primaryKeyCandidates", () => {
  const a = "00000000-0000-4000-8000-00000000000a"
  const b = "00000000-0000-4000-8000-00000000000b"
  const candidates = (text: string) => {
    const found = primaryKeyCandidates(text, widget)
    return found === undefined ? undefined : [...found].sort()
  }

  it("finds the ids an In or an eq on the primary key names, alone or in an and", () => {
    const key = widget.primaryIdAttribute
    expect(candidates(`Microsoft.Dynamics.CRM.In(PropertyName='${key}',PropertyValues=['${b.toUpperCase()}','${a}'])`))
      .toEqual([a, b])
    expect(candidates(`${key} eq ${a} and name eq 'x'`)).toEqual([a])
    expect(candidates(`name eq 'x' and Microsoft.Dynamics.CRM.In(PropertyName='${key}',PropertyValues=['${a}'])`))
      .toEqual([a])
    expect(candidates(`${key} eq ${a} and ${key} eq ${b}`)).toEqual([])
  })

  it("finds none where the filter does not restrict the key", () => {
    const key = widget.primaryIdAttribute
    expect(candidates(`${key} eq ${a} or name eq 'x'`)).toBeUndefined()
    expect(candidates("name eq 'x'")).toBeUndefined()
    expect(candidates(`not (${key} eq ${a})`)).toBeUndefined()
    expect(candidates(`${key} ne ${a}`)).toBeUndefined()
    expect(candidates("name eq")).toBeUndefined()
  })
})

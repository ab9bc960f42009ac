import { describe, expect, it } from "vitest"
import { Fault } from "../src/internal/fault.js"
import { parsePath } from "../src/internal/odataPath.js"

describe("parsePath", () => {
  it("splits entity sets, keys and bound actions", () => {
    expect(parsePath("contacts")).toEqual([{ name: "contacts", key: undefined }])
    expect(parsePath("contacts(6f1e1c1e-0000-4000-8000-000000000001)")).toEqual([
      {
        name: "contacts",
        key: { _tag: "Single", value: { _tag: "Bare", value: "6f1e1c1e-0000-4000-8000-000000000001" } }
      }
    ])
    expect(parsePath("contacts/Microsoft.Dynamics.CRM.CreateMultiple")).toEqual([
      { name: "contacts", key: undefined },
      { name: "Microsoft.Dynamics.CRM.CreateMultiple", key: undefined }
    ])
  })

  it("reads named and multi-part keys with quoted strings, doubled quotes, commas and slashes", () => {
    expect(parsePath("EntityDefinitions(LogicalName='contact')/Attributes")).toEqual([
      {
        name: "EntityDefinitions",
        key: { _tag: "Named", parts: [["LogicalName", { _tag: "String", value: "contact" }]] }
      },
      { name: "Attributes", key: undefined }
    ])
    expect(parsePath("contacts(firstname='O''Neil, Jo',emailaddress1='a/b)@x.org',age=42)")).toEqual([
      {
        name: "contacts",
        key: {
          _tag: "Named",
          parts: [
            ["firstname", { _tag: "String", value: "O'Neil, Jo" }],
            ["emailaddress1", { _tag: "String", value: "a/b)@x.org" }],
            ["age", { _tag: "Bare", value: "42" }]
          ]
        }
      }
    ])
  })

  it("refuses unterminated keys and strings", () => {
    expect(parsePath("contacts(name='x")).toBeInstanceOf(Fault)
    expect(parsePath("contacts(name='x)")).toBeInstanceOf(Fault)
    expect(parsePath("contacts(x)y")).toBeInstanceOf(Fault)
  })
})

import * as Emulator from "@dv-effect/emulator/Emulator"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import * as Metadata from "../src/Metadata.js"

describe("Metadata.suggest", () => {
  const tables = ["account", "contact", "task", "dve_product", "dve_reading"]

  it("puts a name that differs only in case first", () => {
    expect(Metadata.suggest("Contact", tables)).toEqual(["contact"])
    expect(Metadata.suggest("CONTACT", ["contacts", "contact"])).toEqual(["contact", "contacts"])
  })

  it("finds a name one typo away, a swap of two letters counting one", () => {
    expect(Metadata.suggest("contcat", tables)).toEqual(["contact"])
    expect(Metadata.suggest("acount", tables)).toEqual(["account"])
    expect(Metadata.suggest("lastnmae", ["firstname", "lastname", "fullname"])).toEqual(["lastname"])
  })

  it("finds a name two typos away, and more for long names", () => {
    expect(Metadata.suggest("acont", tables)).toEqual(["account"])
    expect(Metadata.suggest("emailadres1", ["emailaddress1", "telephone1"])).toEqual(["emailaddress1"])
    // 11 characters and more allow 3 edits; 4 is too many.
    expect(Metadata.suggest("dve_prodcutxy", ["dve_product"])).toEqual(["dve_product"])
    expect(Metadata.suggest("dve_prodcutxyz", ["dve_product"])).toEqual([])
    expect(Metadata.suggest("acnt", tables)).toEqual([])
  })

  it("didYouMean phrases the closest names, or says nothing", () => {
    expect(Metadata.didYouMean("prdo", ["prod", "test"])).toBe("did you mean 'prod'?")
    expect(Metadata.didYouMean("nmae", ["name", "names"])).toBe("did you mean 'name' or 'names'?")
    expect(Metadata.didYouMean("name", ["name1", "nam", "names"])).toBe("did you mean 'name1', 'nam' or 'names'?")
    expect(Metadata.didYouMean("staging", ["prod", "test"])).toBeUndefined()
  })

  it("orders by distance and gives at most three (or the limit)", () => {
    const columns = ["name1", "name12", "name", "names", "nam", "other"]
    expect(Metadata.suggest("name", columns)).toEqual(["name", "name1", "names"])
    expect(Metadata.suggest("nmae", columns, 1)).toEqual(["name"])
    expect(Metadata.suggest("nam", ["name", "name", "NAME"])).toEqual(["name", "NAME"])
  })

  it("suggests nothing when nothing is close", () => {
    expect(Metadata.suggest("frobnicate", tables)).toEqual([])
    expect(Metadata.suggest("nosuchtable", tables)).toEqual([])
    expect(Metadata.suggest("x", [])).toEqual([])
  })

  it("matches short names only when they differ in case", () => {
    expect(Metadata.suggest("ab", ["ax", "abc", "a"])).toEqual([])
    expect(Metadata.suggest("Ab", ["ax", "ab"])).toEqual(["ab"])
    expect(Metadata.suggest("abc", ["ab", "abd"])).toEqual(["abd"])
  })
})

const Live = Layer.unwrapEffect(
  Effect.map(
    Emulator.Emulator,
    ({ info }) => DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken) })
  )
).pipe(Layer.provideMerge(Emulator.layer({ identity: false })))

const collect = <E, R>(stream: Stream.Stream<Bulk.RowOutcome, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.toReadonlyArray(chunk))

layer(Live, { excludeTestServices: true })("did you mean, in core's messages", (it) => {
  it.effect("a table named in the wrong case names the table, after one more request for the names", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      const before = emulator.counters.requests
      const error = yield* Effect.flip(Metadata.table("Contact"))
      expect(error.reason).toBe("NotFound")
      expect(error.status).toBe(404)
      expect(error.message).toBe("Table 'Contact' does not exist in this environment; did you mean 'contact'?")
      // The definition and the five requests sent beside it, then the names.
      expect(emulator.counters.requests - before).toBe(7)
    }))

  it.effect("a typo in a table's name names the closest tables", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Metadata.table("dve_prodcut"))
      expect(error.message).toBe("Table 'dve_prodcut' does not exist in this environment; did you mean 'dve_product'?")
    }))

  it.effect("an unknown column in bulk validation names the closest columns", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const outcomes = yield* collect(
        Bulk.createMany("contact", [
          { lastnmae: "Doe" },
          { lastname: "Doe", emailadress1: "a@example.com" },
          { lastname: "Doe", "parentcustomerid_acount@odata.bind": "/accounts(00000000-0000-4000-8000-000000000001)" },
          { lastname: "Doe", zzzzzz: 1 }
        ])
      )
      const messages = outcomes.map((o) => (o.status === "failed" ? o.error.message : o.status))
      expect(messages).toEqual([
        "column 'lastnmae' does not exist in contact; did you mean 'lastname'?",
        "column 'emailadress1' does not exist in contact; did you mean 'emailaddress1'?",
        "'parentcustomerid_acount@odata.bind' names no navigation property of contact; did you mean 'parentcustomerid_account@odata.bind' or 'parentcustomerid_contact@odata.bind'?",
        "column 'zzzzzz' does not exist in contact"
      ])
    }))

  it.effect("an unknown key column names the closest columns", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        collect(Bulk.upsertMany("account", [{ accountnumber: "A-1", name: "x" }], { key: ["acountnumber"] }))
      )
      expect(error.message).toBe(
        "The key column 'acountnumber' does not exist in account; did you mean 'accountnumber'?"
      )
    }))

  it.effect("asking for the navigation property of an unknown column names the closest columns", () =>
    Effect.gen(function*() {
      const contact = yield* Metadata.table("contact")
      const error = yield* Effect.flip(Metadata.navigationProperty(contact, "parentcustomerd", "account"))
      expect(error.message).toBe(
        "The table 'contact' has no column 'parentcustomerd'; did you mean 'parentcustomerid'?"
      )
      const none = yield* Effect.flip(Metadata.navigationProperty(contact, "zzzzzz"))
      expect(none.message).toBe("The table 'contact' has no column 'zzzzzz'.")
    }))

  it.effect("checkBindName gives a binding's navigation property, or the message a row holding it fails with", () =>
    Effect.gen(function*() {
      const contact = yield* Metadata.table("contact")
      expect(Metadata.checkBindName(contact, "parentcustomerid_account@odata.bind")).toEqual(
        Either.right("parentcustomerid_account")
      )
      const misspelt = Metadata.checkBindName(contact, "parentcustomerid_acount@odata.bind")
      expect(Either.isLeft(misspelt) && [misspelt.left.reason, misspelt.left.message]).toEqual([
        "InvalidInput",
        "'parentcustomerid_acount@odata.bind' names no navigation property of contact; did you mean 'parentcustomerid_account@odata.bind' or 'parentcustomerid_contact@odata.bind'?"
      ])
      const column = Metadata.checkBindName(contact, "parentcustomerid@odata.bind")
      expect(Either.isLeft(column) && column.left.message).toBe(
        "'parentcustomerid@odata.bind' names no navigation property of contact; the lookup 'parentcustomerid' is bound through parentcustomerid_account@odata.bind or parentcustomerid_contact@odata.bind"
      )
      const plain = Metadata.checkBindName(contact, "lastname")
      expect(Either.isLeft(plain) && plain.left.message).toBe(
        "'lastname' is not a binding (a name that ends with @odata.bind)"
      )
    }))
})

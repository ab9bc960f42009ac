import * as Emulator from "@dv-effect/emulator/Emulator"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import type { DataverseError } from "../src/DataverseError.js"
import { fetchAttributes, readPagingCookie, setFetchAttributes } from "../src/internal/fetchXml.js"
import { queryString, quote } from "../src/internal/odata.js"
import {
  and,
  eq,
  filterBudget,
  filterBudgetBeside,
  groupsForFilter,
  isIn,
  maxInValues
} from "../src/internal/queryFilter.js"
import * as Metadata from "../src/Metadata.js"
import * as Query from "../src/Query.js"

type Answer = (
  url: string,
  headers: Readonly<Record<string, string>>
) => Effect.Effect<unknown, DataverseError> | undefined

/** Requests sent through `executeJson`; `answer` may stand in for the emulator (to serve other cookie formats). */
const sent: Array<{ readonly url: string; readonly headers: Readonly<Record<string, string>> }> = []
let answer: Answer = () => undefined

const Client = Layer.unwrapEffect(
  Effect.map(
    Emulator.Emulator,
    ({ info }) =>
      DataverseClient.layerNode({ url: info.webApiUrl, credentials: Credentials.staticToken(info.accessToken) })
  )
)

const Stubbable = Layer.effect(
  DataverseClient.DataverseClient,
  Effect.map(DataverseClient.DataverseClient, (client) => ({
    ...client,
    executeJson: (request: HttpClientRequest.HttpClientRequest, options?: { readonly idempotent?: boolean }) => {
      sent.push({ url: request.url, headers: request.headers })
      const stubbed = answer(request.url, request.headers)
      return stubbed === undefined
        ? client.executeJson(request, options)
        : Effect.map(stubbed, (body) => ({ status: 200, headers: {}, body }))
    }
  }))
)

const Live = Stubbable.pipe(Layer.provide(Client), Layer.provideMerge(Emulator.layer({ identity: false })))

const seedContacts = (lastnames: ReadonlyArray<string>) =>
  Effect.map(Emulator.Emulator, (emulator) => {
    emulator.reset()
    return emulator.seed(
      "contact",
      lastnames.map((lastname, i) => ({ lastname, address1_city: i % 2 ? "Lyon" : "Paris" }))
    )
  })

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.toReadonlyArray(chunk))

/** Requests the emulator saw while `effect` ran (metadata fetched beforehand). */
const counting = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const emulator = yield* Emulator.Emulator
    yield* Metadata.table("contact")
    const before = emulator.counters.requests
    const result = yield* effect
    return [result, emulator.counters.requests - before] as const
  })

const fetchParam = (url: string) => new URL(url, "http://x/").searchParams.get("fetchXml")!

layer(Live, { excludeTestServices: true })("Query against the emulator", (it) => {
  it.effect("filters with the helpers, quoting what needs quoting", () =>
    Effect.gen(function*() {
      yield* seedContacts(["O'Hara", "Lovelace", "Hopper", "Lamarr"])
      const rows = yield* collect(Query.stream("contact", {
        select: ["lastname"],
        filter: Query.or(Query.eq("lastname", "O'Hara"), Query.startsWith("lastname", "La")),
        orderBy: "lastname desc"
      }))
      expect(rows.map((row) => row.lastname)).toEqual(["O'Hara", "Lamarr"])
      expect(sent.at(-1)!.url).toBe(
        "contacts?$select=lastname&$filter=(lastname%20eq%20'O''Hara')%20or%20(startswith(lastname,'La'))" +
          "&$orderby=lastname%20desc"
      )
      const inParis = yield* collect(Query.stream("contact", {
        select: ["lastname"],
        filter: Query.and(Query.eq("address1_city", "Paris"), Query.not(Query.contains("lastname", "'"))),
        top: 5
      }))
      expect(inParis.map((row) => row.lastname)).toEqual(["Hopper"])
    }))

  it.effect("a misspelt column of $select or $orderby fails before any request, with the closest names", () =>
    Effect.gen(function*() {
      yield* seedContacts(["Lovelace"])
      const failure = (options: Query.QueryOptions | string) =>
        counting(Effect.flip(collect(Query.stream("contact", options))))
      const [select, selectRequests] = yield* failure({ select: ["lastname", "firstnme"] })
      expect(select.reason).toBe("InvalidInput")
      expect(select.message).toBe("$select: column 'firstnme' does not exist in contact; did you mean 'firstname'?")
      expect(selectRequests).toBe(0)
      const [orderBy] = yield* failure({ select: ["lastname"], orderBy: "lastname asc, FirstName desc" })
      expect(orderBy.message).toBe("$orderby: column 'FirstName' does not exist in contact; did you mean 'firstname'?")
      const [raw, rawRequests] = yield* failure("$select=lastname,zzzz&$top=1")
      expect(raw.message).toBe("$select: column 'zzzz' does not exist in contact.")
      expect(rawRequests).toBe(0)
      // A lookup by its name, and any `_<name>_value` (the emulator's implied audit columns too).
      const rows = yield* collect(Query.stream("contact", {
        select: ["lastname", "parentcustomerid", "_parentcustomerid_value", "_createdby_value"],
        orderBy: "_parentcustomerid_value asc, lastname"
      }))
      expect(rows.map((row) => row.lastname)).toEqual(["Lovelace"])
    }))

  it.effect("takes a raw OData query string, encoded or not, and enforces its $top", () =>
    Effect.gen(function*() {
      yield* seedContacts(["L1", "L2", "L3", "M1", "L4"])
      const plain = yield* collect(Query.stream("contact", "$select=lastname&$filter=startswith(lastname,'L')&$top=3"))
      expect(plain.map((row) => row.lastname)).toEqual(["L1", "L2", "L3"])
      const encoded = yield* collect(
        Query.stream("contact", {
          query: "?$select=lastname&$filter=startswith(lastname%2C'L')&$orderby=lastname%20desc&$top=2",
          pageSize: 1
        })
      )
      expect(encoded.map((row) => row.lastname)).toEqual(["L4", "L3"])
      const mixed = yield* Effect.flip(Stream.runCollect(Query.stream("contact", { query: "$top=1", top: 2 })))
      expect(mixed.reason).toBe("InvalidInput")
      const refused = yield* Effect.flip(Stream.runCollect(Query.stream("contact", "$filter=nosuchcolumn eq 1")))
      expect(refused.reason).toBe("Validation")
    }))

  it.effect("pages FetchXML with the service's paging cookie, lazily, in order", () =>
    Effect.gen(function*() {
      const ids = yield* seedContacts(Array.from({ length: 25 }, (_, i) => `F${String(i).padStart(2, "0")}`))
      const xml = `<fetch><entity name="contact"><attribute name="lastname" /></entity></fetch>`
      const [rows, requests] = yield* counting(collect(Query.fetchXml("contact", xml, { pageSize: 10 })))
      expect(rows.map((row) => row.lastname)).toEqual(
        Array.from({ length: 25 }, (_, i) => `F${String(i).padStart(2, "0")}`)
      )
      expect(rows.map((row) => row.contactid)).toEqual(ids)
      expect(requests).toBe(3)
      const pages = sent.slice(-3)
      expect(pages.every((page) => page.headers["prefer"]?.includes("Microsoft.Dynamics.CRM.fetchxmlpagingcookie")))
        .toBe(
          true
        )
      const second = fetchParam(pages[1]!.url)
      expect(second).toMatch(/^<fetch count="10" page="2" paging-cookie="&lt;cookie page=&quot;1&quot;/)
      const attributes = fetchAttributes(second) as ReadonlyMap<string, string>
      expect(attributes.get("paging-cookie")).toMatch(/^<cookie page="1"[^>]*><contactid last="\{[0-9A-F-]{36}\}"/)

      const [taken, lazily] = yield* counting(collect(Stream.take(Query.fetchXml("contact", xml, { pageSize: 2 }), 5)))
      expect(taken).toHaveLength(5)
      expect(lazily).toBe(3)
    }))

  it.effect("pages an ordered, filtered FetchXML query, and sends a query with top once", () =>
    Effect.gen(function*() {
      yield* seedContacts(Array.from({ length: 12 }, (_, i) => `G${String(i).padStart(2, "0")}`))
      const ordered = yield* collect(Query.fetchXml(
        "contact",
        `<?xml version="1.0"?>
        <fetch version="1.0" mapping='logical'>
          <entity name="contact">
            <attribute name="lastname" />
            <filter><condition attribute="address1_city" operator="eq" value="Paris" /></filter>
            <order attribute="lastname" descending="true" />
          </entity>
        </fetch>`,
        { pageSize: 4 }
      ))
      expect(ordered.map((row) => row.lastname)).toEqual(["G10", "G08", "G06", "G04", "G02", "G00"])
      const [top, requests] = yield* counting(collect(Query.fetchXml(
        "contact",
        `<fetch top="3"><entity name="contact"><attribute name="lastname" /></entity></fetch>`
      )))
      expect(top).toHaveLength(3)
      expect(requests).toBe(1)
      const both = yield* Effect.flip(
        Stream.runCollect(Query.fetchXml("contact", `<fetch top="3" />`, { pageSize: 2 }))
      )
      expect(both.reason).toBe("InvalidInput")
      const notXml = yield* Effect.flip(Stream.runCollect(Query.fetchXml("contact", `<entity name="contact" />`)))
      expect(notXml.reason).toBe("InvalidInput")
      expect(notXml.message).toContain("<fetch>")
    }))

  it.effect("reads a paging cookie whose whole element is URL-encoded (older services)", () =>
    Effect.gen(function*() {
      yield* Metadata.table("contact")
      const inner =
        `<cookie page="1"><contactid last="{0000000A-0000-0000-0000-000000000000}" first="{00000001-0000-0000-0000-000000000000}" /></cookie>`
      const element = `<cookie pagenumber="2" pagingcookie="${encodeURIComponent(inner)}" istracking="False" />`
      const pages: Array<string> = []
      answer = (url) => {
        if (!url.includes("fetchXml=")) return undefined
        const xml = fetchParam(url)
        pages.push(xml)
        return Effect.succeed(
          pages.length === 1
            ? {
              value: [{ lastname: "a" }, { lastname: "b" }],
              "@Microsoft.Dynamics.CRM.morerecords": true,
              "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie": encodeURIComponent(element)
            }
            : { value: [{ lastname: "c" }] }
        )
      }
      const rows = yield* collect(Query.fetchXml("contact", `<fetch count="2"><entity name="contact" /></fetch>`)).pipe(
        Effect.ensuring(Effect.sync(() => {
          answer = () => undefined
        }))
      )
      expect(rows.map((row) => row.lastname)).toEqual(["a", "b", "c"])
      expect(pages).toHaveLength(2)
      expect((fetchAttributes(pages[1]!) as ReadonlyMap<string, string>).get("paging-cookie")).toBe(inner)
      expect((fetchAttributes(pages[1]!) as ReadonlyMap<string, string>).get("page")).toBe("2")
    }))

  it.effect("expands a lookup's record and a collection of related records, with nested options", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const [contoso, fabrikam] = emulator.seed("account", [{ name: "Contoso" }, { name: "Fabrikam" }])
      emulator.seed("contact", [
        { lastname: "Ames", "parentcustomerid_account@odata.bind": `/accounts(${contoso})` },
        { lastname: "Berg", "parentcustomerid_account@odata.bind": `/accounts(${contoso})` },
        { lastname: "Cole", "parentcustomerid_account@odata.bind": `/accounts(${contoso})` },
        { lastname: "Dunn" }
      ])
      const contacts = yield* collect(Query.stream("contact", {
        select: ["lastname"],
        orderBy: "lastname asc",
        expand: [{ property: "parentcustomerid_account", select: ["name"] }]
      }))
      expect(contacts.map((row) => [row.lastname, row.parentcustomerid_account])).toEqual([
        ["Ames", { name: "Contoso", accountid: contoso }],
        ["Berg", { name: "Contoso", accountid: contoso }],
        ["Cole", { name: "Contoso", accountid: contoso }],
        ["Dunn", null]
      ])
      const accounts = yield* collect(Query.stream("account", {
        select: ["name"],
        orderBy: "name asc",
        expand: [{
          property: "contact_customer_accounts",
          select: ["lastname"],
          filter: Query.ne("lastname", "Berg"),
          orderBy: "lastname desc",
          top: 5
        }]
      }))
      expect(sent.at(-1)!.url).toContain(
        "&$expand=contact_customer_accounts($select%3Dlastname%3B$filter%3Dlastname%20ne%20'Berg'" +
          "%3B$orderby%3Dlastname%20desc%3B$top%3D5)"
      )
      expect(accounts.map((row) => [
        row.accountid,
        (row.contact_customer_accounts as Array<{ lastname: string }>).map((c) => c.lastname)
      ])).toEqual([[contoso, ["Cole", "Ames"]], [fabrikam, []]])
    }))

  it.effect("counts rows with /$count, with and without a filter", () =>
    Effect.gen(function*() {
      yield* seedContacts(["A", "B", "C", "D", "E"])
      expect(yield* Query.count("contact")).toBe(5)
      expect(yield* Query.count("contact", Query.eq("address1_city", "Paris"))).toBe(3)
      expect(yield* Query.count("contact", Query.eq("lastname", "nobody"))).toBe(0)
      const error = yield* Effect.flip(Query.count("contact", "nosuchcolumn eq 1"))
      expect(error.reason).toBe("Validation")
    }))
})

describe("query building", () => {
  layer(Layer.empty)((it) => {
    it.effect("writes options as a query string, spaces as %20", () =>
      Effect.gen(function*() {
        expect(
          yield* Query.toQueryString({
            select: ["fullname", "emailaddress1"],
            filter: Query.eq("lastname", "O'Hara"),
            orderBy: "fullname asc",
            expand: ["primarycontactid", { property: "parentcustomerid_account", select: ["name", "accountnumber"] }],
            top: 5
          })
        ).toBe(
          "$select=fullname,emailaddress1&$filter=lastname%20eq%20'O''Hara'&$orderby=fullname%20asc" +
            "&$expand=primarycontactid,parentcustomerid_account($select%3Dname,accountnumber)&$top=5"
        )
        // $top travels only without a page size (the service ignores it then; the stream enforces it).
        expect(yield* Query.toQueryString({ top: 5, pageSize: 2 })).toBe("")
        expect(yield* Query.toQueryString({ query: "$filter=name eq 'A&B'&$top=1" })).toBe(
          "$filter=name%20eq%20'A%26B'&$top=1"
        )
        expect(Either.isLeft(Query.toQueryString({ expand: ["a/b"] }))).toBe(true)
        expect(Either.isLeft(Query.toQueryString({ top: -1 }))).toBe(true)
        expect(Either.isLeft(Query.toQueryString({ query: "not an option=1" }))).toBe(true)
      }))

    it.effect("writes nested expand options: select, filter, orderBy, top and expand", () =>
      Effect.gen(function*() {
        expect(
          yield* Query.toQueryString({
            select: ["name"],
            expand: [
              {
                property: "Account_Tasks",
                select: ["subject"],
                filter: Query.contains("subject", "Task"),
                orderBy: "createdon desc",
                top: 3
              },
              { property: "primarycontactid", expand: [{ property: "createdby", select: ["fullname"] }] }
            ]
          })
        ).toBe(
          "$select=name&$expand=Account_Tasks($select%3Dsubject%3B$filter%3Dcontains(subject,'Task')" +
            "%3B$orderby%3Dcreatedon%20desc%3B$top%3D3),primarycontactid($expand%3Dcreatedby($select%3Dfullname))"
        )
        const bad = Query.toQueryString({ expand: [{ property: "primarycontactid", expand: ["x y"] }] })
        expect(Either.isLeft(bad) && bad.left.message).toBe("'x y' is not a property name.")
        const top = Query.toQueryString({ expand: [{ property: "Account_Tasks", top: -1 }] })
        expect(Either.isLeft(top) && top.left.reason).toBe("InvalidInput")
      }))

    it.effect("writes filter literals and combinations", () =>
      Effect.gen(function*() {
        expect(Query.eq("lastname", "O'Hara")).toBe("lastname eq 'O''Hara'")
        expect(Query.ne("emailaddress1", null)).toBe("emailaddress1 ne null")
        expect(Query.gt("creditlimit", 10.5)).toBe("creditlimit gt 10.5")
        expect(Query.ge("createdon", new Date("2024-01-02T03:04:05Z"))).toBe("createdon ge 2024-01-02T03:04:05.000Z")
        expect(Query.lt("donotemail", true)).toBe("donotemail lt true")
        expect(Query.le("n", 12n)).toBe("n le 12")
        // Never `null` for what is not a number: that would match the rows without a value.
        expect(Query.eq("creditlimit", Number("1,000"))).toBe("creditlimit eq NaN")
        expect(Query.ne("creditlimit", -Infinity)).toBe("creditlimit ne -INF")
        expect(Query.lt("creditlimit", Infinity)).toBe("creditlimit lt INF")
        expect(Query.eq("_parentcustomerid_value", Query.guid("{5D1D2F3E-6A1B-4C8D-9E0F-112233445566}"))).toBe(
          "_parentcustomerid_value eq 5d1d2f3e-6a1b-4c8d-9e0f-112233445566"
        )
        expect(Query.eq("x", Query.raw("Microsoft.Dynamics.CRM.Today()"))).toBe("x eq Microsoft.Dynamics.CRM.Today()")
        expect(Query.and(Query.eq("a", 1))).toBe("a eq 1")
        expect(Query.and(Query.eq("a", 1), Query.or(Query.eq("b", 2), Query.eq("c", 3)))).toBe(
          "(a eq 1) and ((b eq 2) or (c eq 3))"
        )
        expect(Query.not(Query.endsWith("e", "@x.org"))).toBe("not (endswith(e,'@x.org'))")
        expect(Query.isIn("contactid", ["a'b", 2])).toBe(
          "Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=['a''b','2'])"
        )
      }))
  })
})

describe("FetchXML paging cookies", () => {
  layer(Layer.empty)((it) => {
    const inner =
      `<cookie page="1"><accountid last="{E062B974-7F8D-DC11-9048-0003FF27AC3B}" first="{60B934EF-798D-DC11-9048-0003FF27AC3B}" /></cookie>`
    // The current format: the inner cookie URL-encoded twice inside a plain element.
    const current = `<cookie pagenumber="2" pagingcookie="${
      encodeURIComponent(encodeURIComponent(inner))
    }" istracking="False" />`

    it.effect("reads the current format and the older one (the whole element URL-encoded)", () =>
      Effect.gen(function*() {
        expect(readPagingCookie(current)).toEqual({ cookie: inner, pageNumber: 2 })
        const older = encodeURIComponent(`<cookie pagenumber="2" pagingcookie="${encodeURIComponent(inner)}" />`)
        expect(readPagingCookie(older)).toEqual({ cookie: inner, pageNumber: 2 })
        // The service encodes in lower-case hex, including characters encodeURIComponent leaves alone.
        const lower = current.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())
        expect(readPagingCookie(lower)?.cookie).toBe(inner)
        // A % inside a value survives: decoding stops once the cookie is markup.
        const percent = `<cookie page="1"><name last="50%25 off" /></cookie>`
        expect(
          readPagingCookie(
            `<cookie pagenumber="2" pagingcookie="${encodeURIComponent(encodeURIComponent(percent))}" />`
          )
            ?.cookie
        ).toBe(percent)
        expect(readPagingCookie(`<cookie pagenumber="3" istracking="False" />`)).toEqual({
          cookie: undefined,
          pageNumber: 3
        })
        expect(readPagingCookie("not a cookie")).toBeUndefined()
      }))

    it.effect("sets page and the XML-escaped cookie on <fetch>, keeping the rest of the query", () =>
      Effect.gen(function*() {
        const xml =
          `<?xml version="1.0"?><!-- q --><fetch mapping='logical' count="3" page="1"><entity name="account" /></fetch>`
        const next = setFetchAttributes(xml, { page: "2", "paging-cookie": inner })
        expect(next).toBe(
          `<?xml version="1.0"?><!-- q --><fetch mapping="logical" count="3" page="2" paging-cookie="${
            inner.replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
          }"><entity name="account" /></fetch>`
        )
        const attributes = fetchAttributes(next as string) as ReadonlyMap<string, string>
        expect(attributes.get("paging-cookie")).toBe(inner)
        expect(setFetchAttributes(`<fetch page="2" paging-cookie="x"/>`, { "paging-cookie": undefined })).toBe(
          `<fetch page="2" />`
        )
        expect(setFetchAttributes(`<fetchx />`, { page: "2" })).toEqual({
          error: "The document does not start with <fetch>."
        })
        expect(fetchAttributes(`<fetch count=3>`)).toBe("The attribute 'count' of <fetch> is not quoted.")
      }))
  })
})

describe("lookups by many values", () => {
  // The URL of one lookup's GET, as the engine sends it.
  const urlOf = (filter: string) =>
    `https://org.crm.dynamics.com/api/data/v9.2/contacts?${
      queryString([["$select", "contactid"], ["$filter", filter]])
    }`
  const guids = Array.from(
    { length: 1000 },
    (_, i) => `${i.toString(16).padStart(8, "0")}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`
  )

  it("take as few GETs as the URL allows, every value once and in order", () => {
    const groups = groupsForFilter(guids, quote, maxInValues)
    // About 340 ids a GET (the URL near half its documented 32 KB), where 100 a GET took 10.
    expect(groups.map((group) => group.length)).toEqual([341, 341, 318])
    expect(groups.flat()).toEqual(guids)
    for (const group of groups) {
      expect(urlOf(isIn("contactid", group)).length).toBeLessThanOrEqual(filterBudget + 200)
    }
  })

  it("keep long and non-ASCII key values within the URL's budget, and a value too long for it alone", () => {
    const long = Array.from({ length: 200 }, (_, i) => `Société ${i} `.padEnd(300, "é"))
    const groups = groupsForFilter(long, quote, maxInValues)
    expect(groups.length).toBeGreaterThan(10)
    expect(groups.flat()).toEqual(long)
    for (const group of groups) {
      expect(urlOf(isIn("dve_name", group)).length).toBeLessThanOrEqual(filterBudget + 200)
      expect(urlOf(isIn("dve_name", group)).length).toBeLessThan(32 * 1024)
    }
    const huge = "x".repeat(filterBudget + 1)
    expect(groupsForFilter(["a", huge, "b"], quote, maxInValues)).toEqual([["a"], [huge], ["b"]])
  })

  it("stop at the count asked for when the values are short", () => {
    const numbers = Array.from({ length: 1200 }, (_, i) => String(i))
    expect(groupsForFilter(numbers, quote, maxInValues).map((group) => group.length)).toEqual([500, 500, 200])
    const keys = Array.from({ length: 60 }, (_, i) => ({ a: `A${i}`, b: i }))
    const byComposite = groupsForFilter(keys, (key) => and(eq("dve_a", key.a), eq("dve_b", key.b)), 25)
    expect(byComposite.map((group) => group.length)).toEqual([25, 25, 10])
  })

  it("leave a long $select its share of the URL", () => {
    const select = Array.from({ length: 500 }, (_, i) => `dve_a_rather_long_column_name_${i}`).join(",")
    const budget = filterBudgetBeside(select)
    expect(budget).toBeLessThan(filterBudget)
    expect(filterBudgetBeside("contactid,lastname")).toBe(filterBudget)
    for (const group of groupsForFilter(guids, quote, maxInValues, budget)) {
      const url = `https://org.crm.dynamics.com/api/data/v9.2/contacts?${
        queryString([["$select", select], ["$filter", isIn("contactid", group)]])
      }`
      expect(url.length).toBeLessThan(32 * 1024)
    }
  })

  it("are empty for no values", () => {
    expect(groupsForFilter([], quote, maxInValues)).toEqual([])
  })
})

import * as Emulator from "@dv-effect/emulator/Emulator"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Bulk from "../src/Bulk.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import * as Metadata from "../src/Metadata.js"
import * as Query from "../src/Query.js"
import * as Records from "../src/Records.js"

const clientFor = (credentials: (info: Emulator.StartInfo) => Credentials.TokenProvider) =>
  Layer.unwrapEffect(
    Effect.map(Emulator.Emulator, ({ info }) =>
      DataverseClient.layerNode({ url: info.webApiUrl, credentials: credentials(info) }))
  )

const Live = clientFor((info) => Credentials.staticToken(info.accessToken)).pipe(Layer.provideMerge(Emulator.layer()))

const seedContacts = (n: number) =>
  Effect.flatMap(Emulator.Emulator, (emulator) =>
    Effect.sync(() => {
      emulator.store.clear()
      const contacts = emulator.store.table("contact")!
      for (let i = 0; i < n; i++) contacts.insert({ id: crypto.randomUUID(), values: { lastname: `L${i}` } })
    }))

layer(Live, { excludeTestServices: true })("DataverseClient against the emulator", (it) => {
  it.effect("answers WhoAmI and learns the dop hint from it", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const client = yield* DataverseClient.DataverseClient
      const me = yield* DataverseClient.whoAmI
      expect(me.UserId).toBe(info.userId)
      expect(me.OrganizationId).toBe(info.organizationId)
      expect((yield* client.hints).dopHint).toEqual(Option.some(8))
      expect(yield* Bulk.resolveConcurrency("auto")).toBe(8)
      expect(client.webApiUrl).toBe(info.webApiUrl)
    }))

  it.effect("reads table metadata once and caches it", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      yield* Metadata.invalidate()
      const first = yield* Metadata.table("account")
      const requests = emulator.counters.requests
      const second = yield* Metadata.table("account")
      expect(first).toMatchObject({
        logicalName: "account",
        entitySetName: "accounts",
        primaryIdAttribute: "accountid",
        primaryNameAttribute: "name",
        tableType: "Standard",
        objectTypeCode: 1
      })
      expect(second).toBe(first)
      expect(emulator.counters.requests).toBe(requests)
    }))

  it.effect("fails with reason NotFound and a clear message for an unknown table", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Records.create("nosuchtable", { name: "x" }))
      expect(error._tag).toBe("DataverseError")
      expect(error.reason).toBe("NotFound")
      expect(error.status).toBe(404)
      expect(error.message).toContain("Table 'nosuchtable' does not exist")
    }))

  it.effect("creates and retrieves a record", () =>
    Effect.gen(function*() {
      const id = yield* Records.create("contact", {
        firstname: "Ada",
        lastname: "Lovelace",
        emailaddress1: "ada@example.com"
      })
      const row = yield* Records.retrieve("contact", id, { select: ["fullname", "emailaddress1"] })
      expect(row).toMatchObject({ contactid: id, fullname: "Ada Lovelace", emailaddress1: "ada@example.com" })
      // Checked against the metadata before sending, as the bulk engine checks rows.
      const tooLong = yield* Effect.flip(Records.create("contact", { lastname: "x".repeat(51) }))
      expect([tooLong.reason, tooLong.status]).toEqual(["Validation", undefined])
      expect(tooLong.message).toBe("column 'lastname' is 51 characters long; the most is 50")
      // Refused only after the table's metadata is read again (it may have changed since it was
      // cached); nothing is written.
      const emulator = yield* Emulator.Emulator
      const before = { requests: emulator.counters.requests, written: emulator.counters.recordsWritten }
      const misspelt = yield* Effect.flip(Records.update("contact", id, { lastnmae: "L" }))
      expect(misspelt.message).toBe("column 'lastnmae' does not exist in contact; did you mean 'lastname'?")
      expect(emulator.counters.requests).toBeGreaterThan(before.requests)
      expect(emulator.counters.recordsWritten).toBe(before.written)
      // An undefined value, which JSON leaves out, is no problem.
      yield* Records.update("contact", id, { firstname: "Ada", jobtitle: undefined })
      // Related records created in the same write (deep insert) are the service's to judge.
      const deep = yield* Effect.either(
        Records.create("account", { name: "Deep", primarycontactid: { lastname: "K" } })
      )
      if (deep._tag === "Left") expect(deep.left.status).toBeDefined()
      // What only the service knows comes back with its code and request id.
      yield* Records.create("account", { name: "A", accountnumber: "DUP-1" })
      const duplicate = yield* Effect.flip(Records.create("account", { name: "B", accountnumber: "DUP-1" }))
      expect(duplicate).toMatchObject({ reason: "DuplicateKey", code: "0x80040237", status: 412 })
      expect(duplicate.requestId).toMatch(/^[0-9a-f-]{36}$/)
    }))

  it.effect("streams every row of a table across pages, in order", () =>
    Effect.gen(function*() {
      yield* seedContacts(30)
      const rows = yield* Stream.runCollect(Query.stream("contact", { select: ["lastname"], pageSize: 7 }))
      expect(Chunk.toReadonlyArray(rows).map((row) => row.lastname)).toEqual(
        Array.from({ length: 30 }, (_, i) => `L${i}`)
      )
      expect(new Set(Chunk.toReadonlyArray(rows).map((row) => row.contactid)).size).toBe(30)
    }))

  it.effect("fetches pages lazily: taking 5 rows of pages of 2 costs 3 requests", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      yield* seedContacts(30)
      yield* Metadata.table("contact")
      const before = emulator.counters.requests
      const rows = yield* Stream.runCollect(Stream.take(Query.stream("contact", { pageSize: 2 }), 5))
      expect(Chunk.size(rows)).toBe(5)
      expect(emulator.counters.requests - before).toBe(3)
    }))

  it.effect("enforces top whether or not the service honours $top", () =>
    Effect.gen(function*() {
      yield* seedContacts(30)
      expect(Chunk.size(yield* Stream.runCollect(Query.stream("contact", { top: 5 })))).toBe(5)
      expect(Chunk.size(yield* Stream.runCollect(Query.stream("contact", { top: 5, pageSize: 2 })))).toBe(5)
      expect(Chunk.size(yield* Stream.runCollect(Query.stream("contact", { top: 0 })))).toBe(0)
      const error = yield* Effect.flip(Stream.runCollect(Query.stream("contact", { pageSize: 5001 })))
      expect(error.reason).toBe("InvalidInput")
    }))

  it.effect("creates many rows in chunks and reports one outcome per row, with its input index", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.store.clear()
      const progress: Array<Bulk.Progress> = []
      const outcomes = Chunk.toReadonlyArray(
        yield* Stream.runCollect(
          Bulk.createMany(
            "contact",
            Array.from({ length: 250 }, (_, i) => ({ lastname: `Row ${i}` })),
            { chunkSize: 100, concurrency: 3, onProgress: (p) => progress.push(p) }
          )
        )
      )
      // Outcomes come as their requests finish: one per input index.
      expect(outcomes.map((o) => o.index).sort((a, b) => a - b)).toEqual(Array.from({ length: 250 }, (_, i) => i))
      expect(outcomes.every((o) => o.status === "created")).toBe(true)
      const table = emulator.store.table("contact")!
      expect(table.size).toBe(250)
      for (const outcome of outcomes) {
        if (outcome.status === "created") expect(table.get(outcome.id!)!.values.lastname).toBe(`Row ${outcome.index}`)
      }
      // A report as each chunk leaves, as its request goes on the wire (its rows in flight) and as
      // it finishes, and a final one.
      expect(progress).toHaveLength(10)
      expect(progress[0]).toMatchObject({ inFlight: 1, rowsInFlight: 0 })
      // The first request on the wire: one of 100 rows, or the last, of 50.
      expect([50, 100]).toContain(progress.find((p) => p.rowsInFlight > 0)?.rowsInFlight)
      expect(progress.at(-1)).toMatchObject({ succeeded: 250, failed: 0, requests: 3, inFlight: 0 })
    }))

  it.effect("reports rows refused before sending as failed, alone", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.store.clear()
      const rows: Array<Bulk.RowInput> = Array.from({ length: 20 }, (_, i) => ({ lastname: `Row ${i}` }))
      rows[3] = new Bulk.InvalidRow({ message: "not JSON" })
      rows[15] = { lastname: "x".repeat(51) }
      const failures: Array<Bulk.RowOutcome> = []
      const summary = yield* Bulk.summarize(
        Bulk.createMany("contact", rows, { chunkSize: 10, concurrency: 2 }).pipe(
          Stream.tap((outcome) => Effect.sync(() => outcome.status === "failed" && failures.push(outcome)))
        )
      )
      expect(
        failures.map((
          f
        ) => [f.index, f.status === "failed" && f.error.reason, f.status === "failed" && f.error.message])
      )
        .toEqual([[3, "InvalidInput", "not JSON"], [15, "Validation", expect.any(String)]])
      // Row 3 never left; row 15 breaks the column's maximum length, caught before sending.
      expect(summary).toMatchObject({ total: 20, succeeded: 18, created: 18, failed: 2 })
      expect(emulator.store.table("contact")!.size).toBe(18)
    }))
})

layer(Emulator.layer(), { excludeTestServices: true })("authentication", (it) => {
  it.effect("refreshes a refused token once and retries", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      let invalidations = 0
      const provider: Credentials.TokenProvider = {
        getToken: Effect.sync(() => Redacted.make(invalidations === 0 ? "stale.token.value" : info.accessToken)),
        invalidate: Effect.sync(() => {
          invalidations++
        })
      }
      const me = yield* DataverseClient.whoAmI.pipe(
        Effect.provide(DataverseClient.layerNode({ url: info.url, credentials: provider }))
      )
      expect(me.UserId).toBe(info.userId)
      expect(invalidations).toBe(1)
    }))

  it.effect("fails with reason Unauthorized when the fresh token is refused too", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      let invalidations = 0
      const provider: Credentials.TokenProvider = {
        getToken: Effect.succeed(Redacted.make("bad.token.value")),
        invalidate: Effect.sync(() => {
          invalidations++
        })
      }
      const error = yield* Effect.flip(
        DataverseClient.whoAmI.pipe(
          Effect.provide(DataverseClient.layerNode({ url: info.url, credentials: provider }))
        )
      )
      expect([error.reason, error.status, invalidations]).toEqual(["Unauthorized", 401, 1])
      expect(error.message).not.toContain("cannot be refreshed")
      expect(JSON.stringify(error)).not.toContain(info.accessToken)
    }))

  it.effect("a static token refused is final at once, and the error says it cannot be refreshed", () =>
    Effect.gen(function*() {
      const running = yield* Emulator.Emulator
      const { info } = running
      const before = running.counters.requests
      const error = yield* Effect.flip(
        DataverseClient.whoAmI.pipe(
          Effect.provide(DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken("bad") }))
        )
      )
      expect([error.reason, error.status]).toEqual(["Unauthorized", 401])
      expect(error.message).toMatch(
        /\(the access token was given as is and cannot be refreshed: get a new one, or sign in with credentials that renew it\)$/
      )
      // Sent once: the same token again would be refused again.
      expect(running.counters.requests - before).toBe(1)
    }))

  it.effect("frees each request's socket whether or not its answer is read or its fiber interrupted", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      // One socket: an answer that kept its socket would leave the requests after it waiting for ever.
      const oneSocket = DataverseClient.layerNode({
        url: info.url,
        credentials: Credentials.staticToken(info.accessToken),
        maxSockets: 1
      })
      const me = yield* Effect.gen(function*() {
        const client = yield* DataverseClient.DataverseClient
        // Answers never read by their caller.
        for (let i = 0; i < 3; i++) yield* client.execute(HttpClientRequest.get("WhoAmI"))
        // Requests interrupted at once, and others cut off by a failing sibling.
        yield* Effect.fork(client.execute(HttpClientRequest.get("WhoAmI"))).pipe(Effect.flatMap(Fiber.interrupt))
        yield* Effect.either(Effect.all([
          client.execute(HttpClientRequest.get("WhoAmI")),
          client.execute(HttpClientRequest.get("nosuchentities"))
        ], { concurrency: "unbounded" }))
        return yield* DataverseClient.whoAmI
      }).pipe(Effect.provide(oneSocket), Effect.scoped, Effect.timeout("20 seconds"))
      expect(me.UserId).toBe(info.userId)
    }))

  it.effect("refuses an org URL that is not http(s) before sending anything", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        DataverseClient.whoAmI.pipe(
          Effect.provide(DataverseClient.layerNode({ url: "contoso", credentials: Credentials.staticToken("t") }))
        )
      )
      expect(error.reason).toBe("InvalidInput")
      expect(error.message).toContain("'contoso'")
    }))

  it.effect("takes a pasted app page as its org, and keeps the Web API version a URL names", () =>
    Effect.gen(function*() {
      const { info } = yield* Emulator.Emulator
      const connect = (url: string) =>
        Effect.gen(function*() {
          const client = yield* DataverseClient.DataverseClient
          const metadata = yield* Metadata.table("contact")
          return { webApiUrl: client.webApiUrl, entitySet: metadata.entitySetName }
        }).pipe(
          Effect.provide(DataverseClient.layerNode({ url, credentials: Credentials.staticToken(info.accessToken) }))
        )
      const page = yield* connect(`${info.url}/main.aspx?appid=1234&pagetype=entitylist&etn=contact`)
      expect(page).toEqual({ webApiUrl: `${info.url}/api/data/v9.2/`, entitySet: "contacts" })
      const older = yield* connect(`${info.url}/api/data/v9.1/`)
      expect(older).toEqual({ webApiUrl: `${info.url}/api/data/v9.1/`, entitySet: "contacts" })
    }))
})

describe("Credentials.staticToken", () => {
  layer(Layer.empty)((it) => {
    it.effect("strips a pasted 'Bearer ' prefix and refuses an empty token", () =>
      Effect.gen(function*() {
        const token = yield* Credentials.staticToken("Bearer abc").getToken
        expect(Redacted.value(token)).toBe("abc")
        const error = yield* Effect.flip(Credentials.staticToken("  ").getToken)
        expect(error.reason).toBe("InvalidInput")
      }))
  })
})

layer(Live, { excludeTestServices: true })("tables without the bulk messages", (it) => {
  it.effect("fall back to $batch, and refuse strategy multiple up front", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const outcomes = Chunk.toReadonlyArray(
        yield* Stream.runCollect(Bulk.createMany("task", [{ subject: "a" }, { subject: "b" }], { concurrency: 1 }))
      )
      expect(outcomes.map((o) => o.status)).toEqual(["created", "created"])
      expect(emulator.store.table("task")!.scan().map((r) => r.values.subject)).toEqual(["a", "b"])
      const refused = yield* Effect.flip(
        Stream.runCollect(Bulk.createMany("task", [{ subject: "c" }], { strategy: "multiple", concurrency: 1 }))
      )
      expect(refused.reason).toBe("InvalidInput")
      expect(refused.message).toMatch(/does not support CreateMultiple/)
    }))
})

describe("DataverseClient.layer over the HttpClient it is given", () => {
  it.effect("names an answer whose body broke off after its status as cut off, maybe applied", () =>
    Effect.gen(function*() {
      let sent = 0
      const cutting = HttpClient.make((request) =>
        Effect.sync(() => {
          sent++
          const body = new ReadableStream<Uint8Array>({
            start: (controller) => {
              controller.enqueue(new TextEncoder().encode("{\"UserId\":"))
              controller.error(new Error("socket hang up"))
            }
          })
          return HttpClientResponse.fromWeb(request, new Response(body, { status: 200 }))
        })
      )
      const error = yield* Effect.flip(DataverseClient.whoAmI.pipe(
        Effect.provide(
          DataverseClient.layer({
            url: "https://contoso.crm.dynamics.com",
            credentials: Credentials.staticToken("t0k3n"),
            retryPolicy: Schedule.recurs(1)
          }).pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, cutting)))
        )
      ))
      expect(error.reason).toBe("Transport")
      expect(error.message).toMatch(
        /^The answer to .*WhoAmI.* was cut off \(.*\); the request may or may not have been applied\.$/
      )
      // Transient: sent again once, as the retry policy allows.
      expect(sent).toBe(2)
    }))

  it.effect("sends through a client of the caller's own, with the bearer token, and reads the dop hint", () =>
    Effect.gen(function*() {
      const seen: Array<{ url: string; authorization: string | undefined }> = []
      const own = HttpClient.make((request) =>
        Effect.sync(() => {
          seen.push({ url: request.url, authorization: request.headers["authorization"] })
          return HttpClientResponse.fromWeb(
            request,
            new Response(
              JSON.stringify({
                UserId: "00000000-0000-4000-8000-000000000001",
                BusinessUnitId: "00000000-0000-4000-8000-000000000002",
                OrganizationId: "00000000-0000-4000-8000-000000000003"
              }),
              { status: 200, headers: { "content-type": "application/json", "x-ms-dop-hint": "5" } }
            )
          )
        })
      )
      const program = Effect.gen(function*() {
        const me = yield* DataverseClient.whoAmI
        const client = yield* DataverseClient.DataverseClient
        return { me, hint: Option.getOrUndefined((yield* client.hints).dopHint) }
      })
      const result = yield* program.pipe(
        Effect.provide(
          DataverseClient.layer({
            url: "https://contoso.crm.dynamics.com",
            credentials: Credentials.staticToken("t0k3n")
          })
            .pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, own)))
        )
      )
      expect(result).toEqual({
        me: {
          UserId: "00000000-0000-4000-8000-000000000001",
          BusinessUnitId: "00000000-0000-4000-8000-000000000002",
          OrganizationId: "00000000-0000-4000-8000-000000000003"
        },
        hint: 5
      })
      expect(seen).toEqual([
        { url: "https://contoso.crm.dynamics.com/api/data/v9.2/WhoAmI", authorization: "Bearer t0k3n" }
      ])
    }))
})

import * as Emulator from "@dv-effect/emulator/Emulator"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Batch from "../src/Batch.js"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import type { DataverseError } from "../src/DataverseError.js"
import * as Multipart from "../src/internal/multipart.js"
import * as BatchRequest from "./support/batchRequest.js"

// -----------------------------------------------------------------------------
// Samples of batch answers, written from the wire reference (section 4)
// -----------------------------------------------------------------------------

/** Writes a sample with CRLF line endings (the samples below are typed with LF). */
const crlf = (text: string) => text.replace(/\r?\n/g, "\r\n")

const org = "https://contoso.crm.dynamics.com/api/data/v9.2/"
const id1 = "a59c24f3-fafc-e411-80dd-00155d2a68cb"
const id2 = "a69c24f3-fafc-e411-80dd-00155d2a68cb"
const id3 = "11111111-2222-3333-4444-555555555555"

const expectRight = <A>(either: Either.Either<A, DataverseError>): A => {
  if (Either.isLeft(either)) throw new Error(`expected a value, got ${either.left.message}`)
  return either.right
}

const operation = (part: Batch.Part | undefined): Batch.OperationResponse => {
  if (part?._tag !== "OperationResponse") throw new Error(`expected an operation answer, got ${part?._tag}`)
  return part
}

const changeSetAnswer = (part: Batch.Part | undefined): Batch.ChangeSetResponse => {
  if (part?._tag !== "ChangeSetResponse") throw new Error(`expected a change set answer, got ${part?._tag}`)
  return part
}

/** The canonical form: CRLF, unquoted nested boundary, closing delimiters, `204 No Content`. */
const canonical = crlf(`--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f
Content-Type: multipart/mixed; boundary=changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc

--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-Version: 4.0
Location: ${org}tasks(${id1})
OData-EntityId: ${org}tasks(${id1})


--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 204 No Content
OData-Version: 4.0
OData-EntityId: ${org}tasks(${id2})


--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc--
--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 3

HTTP/1.1 200 OK
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{"@odata.context":"${org}$metadata#tasks(subject)","value":[{"subject":"Task 1 in batch"}]}
--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f--
`)
const canonicalType = "multipart/mixed; boundary=batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f"

/**
 * The quirks at once: LF-only, quoted boundaries, no space after the colons, `NoContent` and
 * `BadRequest`, the id only in `Location`, change-set answers out of Content-ID order, trailing
 * spaces after the closing delimiter.
 */
const quirky = `--batchresponse_2
Content-Type:multipart/mixed; boundary="changesetresponse_2a"

--changesetresponse_2a
Content-Type:application/http
Content-Transfer-Encoding:binary
Content-ID:2

HTTP/1.1 204 NoContent
OData-Version:4.0
Location:${org}contacts(${id2})

--changesetresponse_2a
Content-Type:application/http
Content-Transfer-Encoding:binary
Content-ID:1

HTTP/1.1 201 Created
Content-Type:application/json; odata.metadata=minimal
OData-EntityId:${org}accounts(${id1})

{"accountid":"${id1}","name":"Contoso"}
--changesetresponse_2a--
--batchresponse_2
Content-Type:application/http
Content-Transfer-Encoding:binary
Content-ID:3

HTTP/1.1 400 BadRequest
REQ_ID:5e0b3a8a-1111-2222-3333-444444444444
Content-Type:application/json; odata.metadata=minimal

{"error":{"code":"0x80044331","message":"A validation error occurred. The length of the 'lastname' attribute of the 'contact' entity exceeded the maximum allowed length of '50'."}}
--batchresponse_2--   \t
`
const quirkyType = "multipart/mixed;boundary=\"batchresponse_2\""

describe("Batch.parse", () => {
  it("reads the canonical form: change set answers, ids, JSON bodies", () => {
    const parts = expectRight(Batch.parse(canonicalType, canonical))
    expect(parts).toHaveLength(2)
    const changeSet = changeSetAnswer(parts[0])
    expect(changeSet.parts.map((p) => [p.contentId, p.status, p.statusText])).toEqual([
      ["1", 204, "No Content"],
      ["2", 204, "No Content"]
    ])
    expect(changeSet.parts[0]!.headers["odata-entityid"]).toBe(`${org}tasks(${id1})`)
    expect(changeSet.parts[0]!.body).toBe("")
    const get = operation(parts[1])
    expect(get.status).toBe(200)
    expect(JSON.parse(get.body).value[0].subject).toBe("Task 1 in batch")
  })

  it("reads LF-only answers, quoted boundaries, headers without a space, NoContent/BadRequest, trailing spaces", () => {
    const parts = expectRight(Batch.parse(quirkyType, quirky))
    expect(parts).toHaveLength(2)
    const changeSet = changeSetAnswer(parts[0])
    expect(changeSet.parts.map((p) => [p.contentId, p.status, p.statusText])).toEqual([
      ["2", 204, "NoContent"],
      ["1", 201, "Created"]
    ])
    expect(changeSet.parts[0]!.headers).toEqual({ "odata-version": "4.0", "location": `${org}contacts(${id2})` })
    const error = operation(parts[1])
    expect([error.status, error.statusText, error.headers["req_id"]]).toEqual([
      400,
      "BadRequest",
      "5e0b3a8a-1111-2222-3333-444444444444"
    ])
    expect(JSON.parse(error.body).error.code).toBe("0x80044331")
  })

  it("reads the same answer with CRLF line endings", () => {
    expect(expectRight(Batch.parse(quirkyType, crlf(quirky)))).toEqual(expectRight(Batch.parse(quirkyType, quirky)))
  })

  it("accepts a missing final -- on the batch and on the change set, and no closing delimiter at all", () => {
    const text = crlf(`--batchresponse_3
Content-Type: multipart/mixed; boundary=changesetresponse_3a

--changesetresponse_3a
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-EntityId: ${org}contacts(${id1})

--changesetresponse_3a
--batchresponse_3
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 204 No Content
Location: ${org}contacts(${id2})

--batchresponse_3`)
    const parts = expectRight(Batch.parse("multipart/mixed; boundary=batchresponse_3", text))
    expect(parts.map((p) => p._tag)).toEqual(["ChangeSetResponse", "OperationResponse"])
    expect(changeSetAnswer(parts[0]).parts).toHaveLength(1)
    expect(operation(parts[1]).headers["location"]).toBe(`${org}contacts(${id2})`)

    const unterminated = `--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n`
    const alone = expectRight(Batch.parse("multipart/mixed; boundary=b", unterminated))
    expect(alone.map((p) => operation(p).status)).toEqual([204])
  })

  it("finds the boundary in the body when the content type names none or another", () => {
    const text =
      `--batchresponse_x\nContent-Type: application/http\n\nHTTP/1.1 200 OK\n\n{"a":1}\n--batchresponse_x--\n`
    expect(operation(expectRight(Batch.parse("multipart/mixed", text))[0]).body).toBe("{\"a\":1}")
    expect(expectRight(Batch.parse(undefined, text))).toHaveLength(1)
    expect(expectRight(Batch.parse("multipart/mixed; boundary=other", text))).toHaveLength(1)
  })

  it("takes Content-ID from the inner message or in angle brackets, a status line without a blank line before it", () => {
    const text = crlf(`--b
Content-Type: application/http

HTTP/1.1 204 No Content
Content-ID: 7

--b
Content-Type: application/http
Content-ID: <8>
HTTP/1.1 204
Folded: one
  two

--b--`)
    const parts = expectRight(Batch.parse("multipart/mixed; boundary=b", text)).map(operation)
    expect(parts.map((p) => [p.contentId, p.status, p.statusText])).toEqual([["7", 204, "No Content"], ["8", 204, ""]])
    expect(parts[1]!.headers["folded"]).toBe("one two")
  })

  it("fails with reason Decode for a body that is not multipart or a part without a status line", () => {
    const notMultipart = Batch.parse("application/json", "{\"error\":{\"code\":\"0x0\",\"message\":\"x\"}}")
    expect(Either.isLeft(notMultipart) && notMultipart.left.reason).toBe("Decode")
    const noStatus = Batch.parse("multipart/mixed; boundary=b", "--b\nContent-Type: application/http\n\nhello\n--b--")
    expect(Either.isLeft(noStatus) && noStatus.left.message).toContain("status line")
  })
})

// -----------------------------------------------------------------------------
// Mapping answers back to requests
// -----------------------------------------------------------------------------

const response = (body: string, contentType: string, status = 200): Batch.RawResponse => ({
  status,
  headers: { "content-type": contentType, "x-ms-service-request-id": "outer-request-id" },
  body
})

const tags = (results: ReadonlyArray<Batch.Result>) => results.map((r) => r._tag)

const failure = (result: Batch.Result | undefined): DataverseError => {
  if (result?._tag !== "Failure") throw new Error(`expected a Failure, got ${result?._tag}`)
  return result.error
}

const success = (result: Batch.Result | undefined): Batch.Success => {
  if (result?._tag !== "Success") throw new Error(`expected a Success, got ${result?._tag}`)
  return result
}

describe("Batch.decodeResponse", () => {
  it.effect("maps parts by position and change-set answers by Content-ID; reads ids from Location or OData-EntityId", () =>
    Effect.gen(function*() {
      const items = [
        Batch.changeSet([
          Batch.post("accounts", { name: "Contoso" }),
          Batch.post("contacts", { lastname: "Doe", "parentcustomerid_account@odata.bind": "$1" })
        ]),
        Batch.post("contacts", { lastname: "x".repeat(51) })
      ]
      const results = yield* Batch.decodeResponse(items, response(quirky, quirkyType))
      expect(tags(results)).toEqual(["Success", "Success", "Failure"])
      expect(results.map((r) => r.index)).toEqual([0, 1, 2])
      const account = success(results[0])
      expect([account.status, account.id, (account.body as { name: string }).name]).toEqual([201, id1, "Contoso"])
      expect([success(results[1]).status, success(results[1]).id, success(results[1]).body]).toEqual([
        204,
        id2,
        undefined
      ])
      const error = failure(results[2])
      expect(error).toMatchObject({
        reason: "Validation",
        status: 400,
        code: "0x80044331",
        requestId: "5e0b3a8a-1111-2222-3333-444444444444",
        request: "POST contacts"
      })
      expect(error.message).toContain("maximum allowed length")
    }))

  it.effect("maps the one error part of a failed change set to every request of it", () =>
    Effect.gen(function*() {
      const items = [
        Batch.get("WhoAmI"),
        Batch.changeSet([
          Batch.post("contacts", { lastname: "A" }),
          Batch.patch(`contacts(${id3})`, { lastname: "B" })
        ]),
        Batch.post("contacts", { lastname: "C" })
      ]
      const text = crlf(`--batchresponse_4
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 200 OK
Content-Type: application/json

{"UserId":"${id1}"}
--batchresponse_4
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 404 Not Found
Content-Type: application/json; odata.metadata=minimal

{"error":{"code":"0x80040217","message":"contact With Id = ${id3} Does Not Exist"}}
--batchresponse_4
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 204 No Content
OData-EntityId: ${org}contacts(${id2})

--batchresponse_4--`)
      const results = yield* Batch.decodeResponse(items, response(text, "multipart/mixed; boundary=batchresponse_4"))
      expect(tags(results)).toEqual(["Success", "Failure", "Failure", "Success"])
      expect((success(results[0]).body as { UserId: string }).UserId).toBe(id1)
      expect(failure(results[1])).toBe(failure(results[2]))
      expect(failure(results[1])).toMatchObject({
        reason: "NotFound",
        code: "0x80040217",
        requestId: "outer-request-id"
      })
      expect(success(results[3]).id).toBe(id2)
    }))

  const stopItems = [
    Batch.post("contacts", { lastname: "A" }),
    Batch.changeSet([Batch.post("contacts", { lastname: "B" }), Batch.patch(`contacts(${id3})`, { lastname: "B2" })]),
    Batch.patch(`contacts(${id3})`, { lastname: "C" }, { headers: { "If-Match": "*" } }),
    Batch.post("contacts", { lastname: "D" })
  ]
  const errorPart = (contentId: string | undefined) =>
    crlf(`--batchresponse_5
Content-Type: application/http
Content-Transfer-Encoding: binary
${contentId === undefined ? "" : `Content-ID: ${contentId}\n`}
HTTP/1.1 404 Not Found
Content-Type: application/json; odata.metadata=minimal

{"error":{"code":"0x80040217","message":"contact With Id = ${id3} Does Not Exist"}}
--batchresponse_5--
`)
  const stopType = "multipart/mixed; boundary=batchresponse_5"

  it.effect("stopped at the first failure, error part alone with a Content-ID: applied, failed, not run", () =>
    Effect.gen(function*() {
      const inSingle = yield* Batch.decodeResponse(stopItems, response(errorPart("4"), stopType, 404))
      expect(tags(inSingle)).toEqual(["Applied", "Applied", "Applied", "Failure", "NotExecuted"])
      expect(failure(inSingle[3])).toMatchObject({ reason: "NotFound", status: 404, request: `PATCH contacts(${id3})` })

      const inChangeSet = yield* Batch.decodeResponse(stopItems, response(errorPart("3"), stopType, 404))
      expect(tags(inChangeSet)).toEqual(["Applied", "Failure", "Failure", "NotExecuted", "NotExecuted"])
      expect(failure(inChangeSet[1]).request).toBe(`PATCH contacts(${id3})`)
    }))

  it.effect("stopped at the first failure, error part alone without a Content-ID: Unknown, carrying the error", () =>
    Effect.gen(function*() {
      const results = yield* Batch.decodeResponse(stopItems, response(errorPart(undefined), stopType, 404))
      expect(tags(results)).toEqual(["Unknown", "Unknown", "Unknown", "Unknown", "Unknown"])
      const first = results[0] as Batch.Unknown
      expect(first.error).toMatchObject({ reason: "NotFound", code: "0x80040217" })
      expect(first.message).toContain("does not say which request failed")
      // With one request there is nothing to guess.
      const single = yield* Batch.decodeResponse([stopItems[0]!], response(errorPart(undefined), stopType, 404))
      expect(failure(single[0]).code).toBe("0x80040217")
    }))

  it.effect("stopped at the first failure with the earlier answers included: by position", () =>
    Effect.gen(function*() {
      const text = crlf(`--batchresponse_6
Content-Type: application/http

HTTP/1.1 204 NoContent
OData-EntityId: ${org}contacts(${id1})

--batchresponse_6
Content-Type: application/http

HTTP/1.1 400 BadRequest
Content-Type: application/json

{"error":{"code":"0x80048d19","message":"An undeclared property 'x' was found."}}
--batchresponse_6
`)
      const items = [stopItems[0]!, stopItems[2]!, stopItems[3]!, Batch.get("WhoAmI")]
      const results = yield* Batch.decodeResponse(
        items,
        response(text, "multipart/mixed; boundary=batchresponse_6", 400)
      )
      expect(tags(results)).toEqual(["Success", "Failure", "NotExecuted", "NotExecuted"])
      expect(success(results[0]).id).toBe(id1)
      expect(failure(results[1])).toMatchObject({ reason: "Validation", code: "0x80048d19" })
    }))

  it.effect("reports a request the answer skips as Unknown when the batch did not stop", () =>
    Effect.gen(function*() {
      const text = `--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n--b--`
      const results = yield* Batch.decodeResponse(
        [Batch.post("contacts", {}), Batch.post("contacts", {})],
        response(text, "multipart/mixed; boundary=b")
      )
      expect(tags(results)).toEqual(["Success", "Unknown"])
    }))
})

// -----------------------------------------------------------------------------
// Encoding
// -----------------------------------------------------------------------------

describe("Batch.encode", () => {
  const items: ReadonlyArray<Batch.Item> = [
    Batch.get("contacts?$select=fullname&$top=2", { headers: { Prefer: "odata.include-annotations=\"*\"" } }),
    Batch.changeSet([
      Batch.post("accounts", { name: "Contoso" }, { headers: { Prefer: "return=representation" } }),
      Batch.post("contacts", { lastname: "Doe", "parentcustomerid_account@odata.bind": "$2" }),
      Batch.patch("$3", { firstname: "Jo" }, { headers: { "If-Match": "*" } })
    ]),
    Batch.delete(`contacts(${id1})`),
    Batch.changeSet([Batch.post("contacts", { lastname: "Own id" }, { contentId: "mine" })])
  ]

  it.effect("writes CRLF multipart with batch_/changeset_ boundaries, application/http parts and Content-IDs", () =>
    Effect.gen(function*() {
      const encoded = yield* Batch.encode(items, { webApiUrl: org })
      const boundary = /^multipart\/mixed; boundary=(batch_[0-9a-f-]{36})$/.exec(encoded.contentType)?.[1]
      expect(boundary).toBeDefined()
      expect(encoded.operations).toBe(6)
      expect(encoded.body.replace(/\r\n/g, "")).not.toMatch(/[\r\n]/)
      expect(encoded.body.startsWith(`--${boundary}\r\n`)).toBe(true)
      expect(encoded.body.endsWith(`\r\n--${boundary}--\r\n`)).toBe(true)
      expect(encoded.body.match(/Content-Type: multipart\/mixed; boundary=changeset_[0-9a-f-]{36}\r\n/g)).toHaveLength(
        2
      )
      expect(encoded.body.match(/Content-Type: application\/http\r\nContent-Transfer-Encoding: binary\r\n/g))
        .toHaveLength(6)
      expect(encoded.body.match(/Content-ID: \S+/g)).toEqual([
        "Content-ID: 1",
        "Content-ID: 2",
        "Content-ID: 3",
        "Content-ID: 4",
        "Content-ID: 5",
        "Content-ID: mine"
      ])
      expect(encoded.body).toContain(`\r\nGET ${org}contacts?$select=fullname&$top=2 HTTP/1.1\r\n`)
      expect(encoded.body).toContain(
        `\r\nPOST ${org}accounts HTTP/1.1\r\nContent-Type: application/json; type=entry\r\nPrefer: return=representation\r\n\r\n{"name":"Contoso"}\r\n`
      )
      expect(encoded.body).toContain(`\r\nPATCH $3 HTTP/1.1\r\n`)
      expect(encoded.body).toContain(`\r\nDELETE ${org}contacts(${id1}) HTTP/1.1\r\n\r\n`)
      const relative = yield* Batch.encode([Batch.get("WhoAmI")])
      expect(relative.body).toContain("\r\nGET /api/data/v9.2/WhoAmI HTTP/1.1\r\n")
    }))

  it.effect("round-trips: encode, then read back every operation, header, body and grouping", () =>
    Effect.gen(function*() {
      const encoded = yield* Batch.encode(items, { webApiUrl: org })
      const parsed = BatchRequest.parseRequest(encoded.contentType, encoded.body)
      if (parsed instanceof Multipart.ParseError) throw new Error(parsed.message)
      const flat = (item: Batch.Request, contentId: string) => ({
        method: item.method,
        url: item.url.startsWith("$") ? item.url : `${org}${item.url}`,
        headers: Object.fromEntries([
          ...(item.body === undefined ? [] : [["content-type", "application/json; type=entry"]]),
          ...Object.entries(item.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])
        ]),
        body: item.body === undefined ? "" : item.body,
        contentId
      })
      const read = (request: BatchRequest.ParsedRequest) => ({
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body === "" ? "" : JSON.parse(request.body),
        contentId: request.contentId
      })
      expect(parsed.map((p) => "changeSet" in p ? p.changeSet.map(read) : read(p))).toEqual([
        flat(items[0] as Batch.Request, "1"),
        (items[1] as Batch.ChangeSet).requests.map((r, i) => flat(r, String(i + 2))),
        flat(items[2] as Batch.Request, "5"),
        [flat((items[3] as Batch.ChangeSet).requests[0]!, "mine")]
      ])
    }))

  it.effect("refuses more than 1,000 operations, empty change sets, GET in a change set, repeated Content-IDs", () =>
    Effect.gen(function*() {
      const creates = (n: number) => Array.from({ length: n }, (_, i) => Batch.post("contacts", { lastname: `${i}` }))
      expect((yield* Batch.encode(creates(1000))).operations).toBe(1000)
      const tooMany = yield* Effect.flip(Batch.encode([...creates(999), Batch.changeSet(creates(2))]))
      expect(tooMany.reason).toBe("InvalidInput")
      expect(tooMany.message).toContain("1001")
      const refusals = [
        [Batch.changeSet([])],
        [Batch.changeSet([Batch.get("WhoAmI")])],
        [Batch.post("contacts", {}, { contentId: "2" }), Batch.post("contacts", {})],
        [Batch.get("contacts", { headers: { "X-Bad": "a\r\nInjected: yes" } })],
        [Batch.get("contacts?$filter=lastname eq 'a'")],
        [Batch.post("contacts", { big: 1n })]
      ]
      for (const batch of refusals) {
        expect((yield* Effect.flip(Batch.encode(batch))).reason).toBe("InvalidInput")
      }
    }))
})

// -----------------------------------------------------------------------------
// Against the emulator, over HTTP
// -----------------------------------------------------------------------------

const Live = Layer.unwrapEffect(
  Effect.map(
    Emulator.Emulator,
    ({ info }) =>
      DataverseClient.layerNode({ url: info.webApiUrl, credentials: Credentials.staticToken(info.accessToken) })
  )
).pipe(Layer.provideMerge(Emulator.layer({ identity: false })))

const missing = "00000000-0000-0000-0000-00000000abcd"

/** Sends an encoded batch with a plain HTTP client, to see the raw answer the connection hides on a failure status. */
const sendRaw = (items: ReadonlyArray<Batch.Item>, continueOnError = false) =>
  Effect.gen(function*() {
    const { info } = yield* Emulator.Emulator
    const encoded = yield* Batch.encode(items, { webApiUrl: info.webApiUrl })
    const client = yield* HttpClient.HttpClient
    const answer = yield* client.execute(
      HttpClientRequest.post(`${info.webApiUrl}$batch`).pipe(
        HttpClientRequest.bearerToken(info.accessToken),
        HttpClientRequest.setHeaders({
          "OData-Version": "4.0",
          "OData-MaxVersion": "4.0",
          ...(continueOnError ? { Prefer: "odata.continue-on-error" } : {})
        }),
        HttpClientRequest.bodyText(encoded.body, encoded.contentType)
      )
    )
    const body = yield* answer.text
    return { status: answer.status, headers: answer.headers, body } satisfies Batch.RawResponse
  }).pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer))

layer(Live, { excludeTestServices: true })("Batch against the emulator", (it) => {
  it.effect("runs operations and change sets with continue-on-error and maps every result", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const [seeded] = emulator.seed("contact", [{ firstname: "Seed", lastname: "Ed" }])
      const results = yield* Batch.send([
        Batch.post("contacts", { firstname: "Ada", lastname: "Lovelace" }),
        Batch.post("contacts", { lastname: "x".repeat(51) }),
        Batch.changeSet([
          Batch.post("accounts", { name: "Contoso" }),
          Batch.post("contacts", { lastname: "Doe", "parentcustomerid_account@odata.bind": "$3" })
        ]),
        Batch.changeSet([
          Batch.post("contacts", { lastname: "Rolled back" }),
          Batch.patch(`contacts(${missing})`, { firstname: "Nobody" }, { headers: { "If-Match": "*" } })
        ]),
        Batch.get(`contacts(${seeded})?$select=fullname`),
        Batch.post("contacts", { lastname: "Representation" }, { headers: { Prefer: "return=representation" } })
      ], { continueOnError: true })

      expect(tags(results)).toEqual([
        "Success",
        "Failure",
        "Success",
        "Success",
        "Failure",
        "Failure",
        "Success",
        "Success"
      ])
      const contacts = emulator.store.table("contact")!
      const accounts = emulator.store.table("account")!

      const ada = success(results[0])
      expect(ada.status).toBe(204)
      expect(contacts.get(ada.id!)!.values).toMatchObject({ firstname: "Ada", lastname: "Lovelace" })

      expect(failure(results[1])).toMatchObject({ reason: "Validation", status: 400, code: "0x80044331" })
      expect(failure(results[1]).requestId).toMatch(/^[0-9a-f-]{36}$/)

      const account = success(results[2])
      const doe = success(results[3])
      expect(accounts.get(account.id!)!.values.name).toBe("Contoso")
      expect(contacts.get(doe.id!)!.values.parentcustomerid).toEqual({ table: "account", id: account.id })

      // The failed change set: one error for both requests, and the create in it rolled back.
      expect(failure(results[4])).toBe(failure(results[5]))
      expect(failure(results[4])).toMatchObject({ reason: "NotFound", status: 404, code: "0x80040217" })
      expect(contacts.scan().some((r) => r.values.lastname === "Rolled back")).toBe(false)

      expect(success(results[6]).body).toMatchObject({ contactid: seeded, fullname: "Seed Ed" })
      const representation = success(results[7])
      expect(representation.status).toBe(201)
      expect(representation.body).toMatchObject({ lastname: "Representation", contactid: representation.id })
      expect(contacts.size).toBe(4)
    }))

  it.effect("resolves $n as a URL inside a change set and runs a bulk message inside a batch", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const results = yield* Batch.send([
        Batch.changeSet([
          Batch.post("contacts", { lastname: "Hopper" }),
          Batch.patch("$1", { firstname: "Grace" })
        ]),
        Batch.post("contacts/Microsoft.Dynamics.CRM.CreateMultiple", {
          Targets: [
            { "@odata.type": "Microsoft.Dynamics.CRM.contact", lastname: "M1" },
            { "@odata.type": "Microsoft.Dynamics.CRM.contact", lastname: "M2" }
          ]
        })
      ])
      expect(tags(results)).toEqual(["Success", "Success", "Success"])
      const contacts = emulator.store.table("contact")!
      expect(contacts.get(success(results[0]).id!)!.values).toMatchObject({ firstname: "Grace", lastname: "Hopper" })
      const ids = (success(results[2]).body as { Ids: Array<string> }).Ids
      expect(ids.map((id) => contacts.get(id)!.values.lastname)).toEqual(["M1", "M2"])
    }))

  it.effect("without continue-on-error, stops at the first failure and still answers per request", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const items = [
        Batch.post("contacts", { lastname: "First" }),
        Batch.patch(`contacts(${missing})`, { lastname: "Second" }, { headers: { "If-Match": "*" } }),
        Batch.post("contacts", { lastname: "Third" })
      ]
      const results = yield* Batch.send(items)
      const lastnames = () => emulator.store.table("contact")!.scan().map((r) => r.values.lastname)
      expect(lastnames()).toEqual(["First"])
      // The answer (status 404) holds only the failing part, with its Content-ID: the request before
      // it was applied, the one after it never ran and can be sent again.
      expect(tags(results)).toEqual(["Applied", "Failure", "NotExecuted"])
      expect(failure(results[1])).toMatchObject({ reason: "NotFound", status: 404, code: "0x80040217" })

      // A batch of one change set: the failure can only be the change set's.
      emulator.reset()
      const single = yield* Batch.send([Batch.changeSet([items[0]!, items[1]!] as Array<Batch.Request>)])
      expect(tags(single)).toEqual(["Failure", "Failure"])
      expect(failure(single[0]).status).toBe(404)
      expect(lastnames()).toEqual([])
    }))

  it.effect("stop-at-first-failure answers over raw HTTP map to applied, failed (whole change set), not run", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const items = [
        Batch.post("contacts", { lastname: "A" }),
        Batch.changeSet([
          Batch.post("contacts", { lastname: "B" }),
          Batch.patch(`contacts(${missing})`, { lastname: "B2" }, { headers: { "If-Match": "*" } })
        ]),
        Batch.post("contacts", { lastname: "D" })
      ]
      const raw = yield* sendRaw(items)
      expect(raw.status).toBe(404)
      expect(raw.headers["content-type"]).toMatch(/^multipart\/mixed/)
      const results = yield* Batch.decodeResponse(items, raw)
      expect(tags(results)).toEqual(["Applied", "Failure", "Failure", "NotExecuted"])
      expect(failure(results[1])).toBe(failure(results[2]))
      expect(failure(results[1])).toMatchObject({ reason: "NotFound", code: "0x80040217" })
      expect(emulator.store.table("contact")!.scan().map((r) => r.values.lastname)).toEqual(["A"])
    }))

  it.effect("takes 1,000 operations in one batch and refuses 1,001 before sending", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const creates = (n: number) =>
        Array.from({ length: n }, (_, i) => Batch.post("contacts", { lastname: `Row ${i}` }))
      const requestsBefore = emulator.counters.requests
      const results = yield* Batch.send(creates(1000), { continueOnError: true })
      expect(emulator.counters.requests - requestsBefore).toBe(1)
      expect(results.every((r) => r._tag === "Success")).toBe(true)
      const contacts = emulator.store.table("contact")!
      expect(contacts.size).toBe(1000)
      expect(new Set(results.map((r) => success(r).id)).size).toBe(1000)
      expect(contacts.get(success(results[999]).id!)!.values.lastname).toBe("Row 999")

      const error = yield* Effect.flip(Batch.send(creates(1001)))
      expect(error.reason).toBe("InvalidInput")
      expect(emulator.counters.requests - requestsBefore).toBe(1)
      expect(contacts.size).toBe(1000)
      expect(yield* Batch.send([])).toEqual([])
    }))
})

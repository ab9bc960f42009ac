/**
 * The emulator under abuse beyond what Robustness.test.ts covers: a flood of concurrent requests
 * and connections past the concurrency limit, and garbage headers. It must answer each with the
 * service's errors, never a 5xx of its own, and keep serving.
 */
import * as Net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"
import * as Model from "../src/Model.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
const concurrencyLimit = 4

beforeAll(async () => {
  emulator = await Emulator.start({
    identity: false,
    // Requests hold their slot for 200 ms, so a flood finds every slot taken.
    profile: { ...Model.fast, concurrencyLimit, latency: { baseMs: 200, perRecordMs: 0, perOperationMs: 0 } }
  })
})
afterAll(() => emulator.close())

const send = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
  fetch(`${emulator.info.webApiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${emulator.info.accessToken}`, "Content-Type": "application/json", ...headers },
    ...(body === undefined ? {} : { body })
  })

const stillServes = async () => {
  const whoAmI = await send("GET", "WhoAmI")
  expect(whoAmI.status).toBe(200)
  const created = await send("POST", "contacts", JSON.stringify({ lastname: "after the abuse" }))
  expect(created.status).toBe(204)
}

/** Sends raw bytes on a fresh connection and resolves with what came back (the status line first). */
const raw = (text: string | Buffer) =>
  new Promise<string>((resolve) => {
    const { port } = new URL(emulator.info.url)
    let answer = ""
    // The write ends the sending side: a request the server waits on the rest of still gets an end.
    const socket = Net.connect(Number(port), "127.0.0.1", () => socket.end(text))
    socket.setEncoding("latin1")
    socket.on("data", (chunk: string) => {
      answer += chunk
      // One response is enough: close once its head and (declared) body are in.
      const head = answer.indexOf("\r\n\r\n")
      if (head === -1) return
      const length = /content-length: *(\d+)/i.exec(answer.slice(0, head))
      if (length === null || answer.length >= head + 4 + Number(length[1])) socket.destroy()
    })
    socket.on("close", () => resolve(answer))
    socket.on("error", () => resolve(answer))
  })

const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)

describe("a flood past the concurrency limit", () => {
  it("admits at most the limit at once, answers the rest 429 0x80072326 with Retry-After, and serves after", async () => {
    emulator.reset()
    const before = { ...emulator.servers[0]!.throttled }
    const flood = 60
    const responses = await Promise.all(
      Array.from(
        { length: flood },
        (_, i) =>
          send("POST", "contacts", JSON.stringify({ lastname: `Flood${i}` })).then(async (response) => ({
            status: response.status,
            retryAfter: response.headers.get("Retry-After"),
            body: response.status === 204 ? undefined : await response.json() as { error: { code: string } }
          }))
      )
    )
    const admitted = responses.filter((r) => r.status === 204)
    const refused = responses.filter((r) => r.status === 429)
    expect(admitted.length + refused.length).toBe(flood)
    expect(admitted.length).toBeGreaterThanOrEqual(concurrencyLimit)
    expect(refused.length).toBeGreaterThan(0)
    for (const response of refused) {
      expect(response.body!.error.code).toBe("0x80072326")
      expect(Number(response.retryAfter)).toBeGreaterThanOrEqual(1)
    }
    // Exactly the admitted requests wrote a record; the refused ones wrote nothing.
    expect(emulator.store.table("contact")!.size).toBe(admitted.length)
    expect(emulator.servers[0]!.throttled.concurrency - before.concurrency).toBe(refused.length)
    // Refusals for concurrency do not count as load: the slots free and the next wave is admitted.
    const next = await Promise.all(
      Array.from(
        { length: concurrencyLimit },
        (_, i) => send("POST", "contacts", JSON.stringify({ lastname: `N${i}` }))
      )
    )
    expect(next.map((r) => r.status)).toEqual(Array.from({ length: concurrencyLimit }, () => 204))
    await stillServes()
  })

  it("survives hundreds of connections opened at once, left half-written and dropped", async () => {
    const { port } = new URL(emulator.info.url)
    const sockets = await Promise.all(
      Array.from(
        { length: 300 },
        (_, i) =>
          new Promise<Net.Socket>((resolve) => {
            const socket = Net.connect(Number(port), "127.0.0.1", () => {
              // Requests cut off before the server admits them (a request admitted and then dropped
              // is the test "frees the slot of a request whose client hung up" below).
              socket.write(
                i % 3 === 0
                  ? `POST /api/data/v9.2/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: Bear`
                  : i % 3 === 1
                  ? "GET /api/data/v9.2/WhoAmI HTTP/1.1\r\nHost: x\r\n"
                  : "\u0016\u0003\u0001\u0002\u0000\u0001"
              )
              resolve(socket)
            })
            socket.on("error", () => resolve(socket))
          })
      )
    )
    for (const socket of sockets) socket.destroy()
    await stillServes()
  })
})

describe("clients that hang up", () => {
  // A request takes its concurrency slot before its body is read; a client that hangs up while
  // sending the body must not leave the slot taken, or after `concurrencyLimit` such requests the
  // user would be refused with 429 0x80072326 until the emulator restarts.
  it("frees the slot of a request whose client hung up while sending its body", async () => {
    const limited = await Emulator.start({
      identity: false,
      profile: { ...Model.fast, concurrencyLimit: 2, latency: { baseMs: 50, perRecordMs: 0, perOperationMs: 0 } }
    })
    try {
      const { port } = new URL(limited.info.url)
      for (let i = 0; i < 3; i++) {
        const admitted = limited.servers[0]!.requests
        const socket = Net.connect(Number(port), "127.0.0.1")
        socket.on("error", () => {})
        socket.write(
          `POST /api/data/v9.2/contacts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${limited.info.accessToken}\r\n` +
            `Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"lastname":`
        )
        // Hang up once the server has admitted the request (a condition, polled, not a delay).
        await new Promise<void>((resolve) => {
          const check = () => (limited.servers[0]!.requests > admitted ? resolve() : void setImmediate(check))
          check()
        })
        await new Promise<void>((resolve) => {
          socket.on("close", () => resolve())
          socket.destroy()
        })
      }
      // The hung-up requests may still run out their modelled 50 ms; then their slots are free.
      const statuses: Array<number> = []
      while (statuses.at(-1) !== 200 && statuses.length < 200) {
        const response = await fetch(`${limited.info.webApiUrl}WhoAmI`, {
          headers: { Authorization: `Bearer ${limited.info.accessToken}` }
        })
        statuses.push(response.status)
        if (response.status !== 200) await new Promise((resolve) => setTimeout(resolve, 10))
      }
      expect(statuses.at(-1)).toBe(200)
    } finally {
      await limited.close()
    }
  })
})

describe("garbage headers", () => {
  it("answers a bad or missing token with 401 in Dataverse's format, whatever the header holds", async () => {
    for (
      const authorization of [
        "",
        "Bearer",
        "Bearer ",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.",
        "Basic dXNlcjpwYXNz",
        `Bearer ${"x".repeat(8000)}`,
        `Bearer ${emulator.info.accessToken.split(".").slice(0, 2).join(".")}.c2lnbmF0dXJl`,
        `bearer ${emulator.info.accessToken}x`
      ]
    ) {
      const response = await fetch(`${emulator.info.webApiUrl}WhoAmI`, { headers: { Authorization: authorization } })
      expect(response.status, authorization.slice(0, 40)).toBe(401)
      const body = (await response.json()) as { error: { code: string; message: string } }
      expect(body.error.message.length).toBeGreaterThan(0)
    }
    await stillServes()
  })

  it("answers garbage in the headers it reads with a clear 4xx or ignores them, never a 5xx", async () => {
    const cases: ReadonlyArray<readonly [string, string, string | undefined, Record<string, string>]> = [
      ["GET", "contacts", undefined, { Prefer: "odata.maxpagesize=abc" }],
      ["GET", "contacts", undefined, { Prefer: "odata.maxpagesize=-5, odata.include-annotations=\"*" }],
      ["GET", "contacts", undefined, { Prefer: ";;;===,,," }],
      ["POST", "contacts", "{\"lastname\":\"H1\"}", { "Content-Type": "text/plain" }],
      ["POST", "contacts", "{\"lastname\":\"H2\"}", { "Content-Type": "application/json; charset=klingon" }],
      ["POST", "contacts", "{\"lastname\":\"H3\"}", { "If-Match": "W/\"not-a-version" }],
      ["POST", "contacts", "{\"lastname\":\"H4\"}", { "If-None-Match": "garbage" }],
      ["PATCH", "contacts(00000000-0000-4000-8000-000000000001)", "{\"lastname\":\"H5\"}", { "If-Match": "W/\"x\"" }],
      ["POST", "contacts", "{\"lastname\":\"H6\"}", { "MSCRM.BypassBusinessLogicExecution": "CustomSync,,;;=garbage" }],
      ["POST", "contacts", "{\"lastname\":\"H7\"}", { "OData-Version": "99.0", "OData-MaxVersion": "banana" }],
      ["POST", "$batch", "--b\r\n\r\n--b--", { "Content-Type": "multipart/mixed" }],
      ["POST", "$batch", "--b\r\n\r\n--b--", { "Content-Type": "multipart/mixed; boundary=" }],
      ["POST", "$batch", "x", { "Content-Type": "multipart/mixed; boundary=\"" + "b".repeat(5000) + "\"" }],
      ["GET", "contacts", undefined, { Cookie: "ARRAffinity=; ARRAffinity=%%%; =;" }]
    ]
    for (const [method, path, body, headers] of cases) {
      const response = await send(method, path, body, headers)
      const label = `${method} ${path} ${JSON.stringify(headers).slice(0, 80)}`
      expect(response.status, label).toBeLessThan(500)
      if (response.status >= 400) {
        const error = (await response.json()) as { error: { message: string } }
        expect(error.error.message.length, label).toBeGreaterThan(0)
      } else {
        await response.arrayBuffer()
      }
    }
    await stillServes()
  })

  it("survives malformed requests on the wire: bad lengths, huge headers, bad encodings", async () => {
    const auth = `Authorization: Bearer ${emulator.info.accessToken}\r\n`
    const answers = await Promise.all([
      // A negative and a non-numeric Content-Length, and both Content-Length and chunked.
      raw(`POST /api/data/v9.2/contacts HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: -1\r\n\r\n{}`),
      raw(`POST /api/data/v9.2/contacts HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ten\r\n\r\n{}`),
      raw(
        `POST /api/data/v9.2/contacts HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`
      ),
      // Headers far over Node's limit.
      raw(`GET /api/data/v9.2/WhoAmI HTTP/1.1\r\nHost: x\r\n${auth}X-Junk: ${"j".repeat(100_000)}\r\n\r\n`),
      // A header name and value with bytes HTTP does not allow.
      raw(
        Buffer.from(
          `GET /api/data/v9.2/WhoAmI HTTP/1.1\r\nHost: x\r\n${auth}X-\u0000Bad: \u0001\u00ff\r\n\r\n`,
          "latin1"
        )
      ),
      // A request line that is not HTTP.
      raw("BREW /coffee HTCPCP/1.0\r\n\r\n"),
      // A Content-Length larger than what is sent, then the connection ends.
      raw(`POST /api/data/v9.2/contacts HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1000\r\n\r\n{"lastname":`)
    ])
    for (const answer of answers) {
      const status = statusOf(answer)
      // An answer, if any, is a client error: the server never fails on its own.
      if (status !== 0) expect(status, answer.slice(0, 200)).toBeLessThan(500)
    }
    expect(statusOf(answers[3]!)).toBe(431)
    await stillServes()
  })
})

import * as Net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
const maxBodyBytes = 64 * 1024

beforeAll(async () => {
  emulator = await Emulator.start({ maxBodyBytes })
})
afterAll(() => emulator.close())

const send = (method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}) =>
  fetch(`${emulator.info.webApiUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${emulator.info.accessToken}`, ...headers },
    ...(body === undefined ? {} : { body })
  })

/** A deterministic stream of bytes, so a failure can be replayed. */
const bytes = (seed: number, length: number) => {
  let state = seed
  return Uint8Array.from({ length }, () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return state & 0xff
  })
}

const stillServes = async () => {
  const whoAmI = await send("GET", "WhoAmI")
  expect(whoAmI.status).toBe(200)
  const created = await send("POST", "contacts", JSON.stringify({ lastname: "after the storm" }), {
    "Content-Type": "application/json"
  })
  expect(created.status).toBe(204)
}

describe("the emulator under abuse", () => {
  it("answers garbage bodies with Dataverse errors and keeps serving", async () => {
    const targets = [
      "contacts",
      "contacts/Microsoft.Dynamics.CRM.CreateMultiple",
      "$batch",
      `contacts(00000000-0000-4000-8000-000000000001)`
    ]
    for (let seed = 1; seed <= 40; seed++) {
      const target = targets[seed % targets.length]!
      const response = await send(seed % 3 === 0 ? "PATCH" : "POST", target, bytes(seed, 1 + (seed * 97) % 3000), {
        "Content-Type": seed % 2 === 0 ? "application/json" : "multipart/mixed; boundary=batch_x"
      })
      expect(response.status, `seed ${seed} on ${target}`).toBeGreaterThanOrEqual(400)
      expect(response.status, `seed ${seed} on ${target}`).toBeLessThan(500)
      const body = (await response.json()) as { error: { code: string; message: string } }
      expect(typeof body.error.message).toBe("string")
    }
    const truncated = [
      "{\"lastname\": \"x",
      "{\"Targets\": [{\"@odata.type\": ",
      "--batch_x\r\nContent-Type: application/http\r\n\r\nPOST"
    ]
    for (const text of truncated) {
      const response = await send("POST", "$batch", text, { "Content-Type": "multipart/mixed; boundary=batch_x" })
      expect(response.status).toBe(400)
    }
    const wrongType = await send("POST", "$batch", "{}", { "Content-Type": "application/json" })
    expect(wrongType.status).toBe(400)
    await stillServes()
  })

  it("refuses bodies over the limit with 413, absurd paging and unknown routes and methods with clear errors", async () => {
    const huge = JSON.stringify({ lastname: "x".repeat(maxBodyBytes) })
    const tooBig = await send("POST", "contacts", huge, { "Content-Type": "application/json" })
    expect(tooBig.status).toBe(413)
    for (
      const [method, path, status] of [
        ["GET", "contacts?$top=-1", 400],
        ["GET", "contacts?$top=abc", 400],
        ["GET", "contacts?$skiptoken=%3Ccookie%20nonsense", 400],
        ["GET", "contacts(not-a-guid)", 400],
        ["GET", "contacts(lastname='x'", 400],
        ["GET", "nosuchset", 404],
        ["PUT", "contacts", 405],
        ["DELETE", "contacts", 405],
        ["GET", "%E0%A4%A", 400]
      ] as const
    ) {
      const response = await send(method, path)
      expect(response.status, `${method} ${path}`).toBe(status)
      expect(((await response.json()) as { error: { message: string } }).error.message.length).toBeGreaterThan(0)
    }
    const huge_page = await send("GET", "contacts?$select=lastname", undefined, {
      Prefer: "odata.maxpagesize=999999999"
    })
    expect(huge_page.status).toBe(200)
    await stillServes()
  })

  it("survives connections that send half a request and hang up", async () => {
    const { port } = new URL(emulator.info.url)
    for (
      const text of [
        "POST /api/data/v9.2/contacts HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{\"lastn",
        "GARBAGE\r\n\r\n",
        "\u0000\u0001\u0002"
      ]
    ) {
      await new Promise<void>((resolve) => {
        const socket = Net.connect(Number(port), "127.0.0.1", () => {
          socket.end(text)
        })
        socket.on("close", () => resolve())
        socket.on("error", () => resolve())
        socket.resume()
      })
    }
    await stillServes()
  })
})

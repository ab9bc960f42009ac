import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import { decodeErrorResponse, normaliseOrgUrl } from "../src/DataverseClient.js"
import { isAmbiguous, isTransient, normaliseCode, parseRetryAfter, reasonFor } from "../src/DataverseError.js"
import { idFromEntityUrl } from "../src/Records.js"

describe("normaliseCode", () => {
  it("keeps hex codes, lower-cased and padded", () => {
    expect(normaliseCode("0x80040217")).toBe("0x80040217")
    expect(normaliseCode("0X8004431A")).toBe("0x8004431a")
    expect(normaliseCode("80040217")).toBe("0x80040217")
  })
  it("converts the signed and unsigned decimal forms", () => {
    expect(normaliseCode("-2147220969")).toBe("0x80040217")
    expect(normaliseCode(-2147220969)).toBe("0x80040217")
    expect(normaliseCode("2147746327")).toBe("0x80040217")
  })
  it("treats the OData layer's empty and zero codes as no code", () => {
    expect(normaliseCode("")).toBeUndefined()
    expect(normaliseCode("0x0")).toBeUndefined()
    expect(normaliseCode(undefined)).toBeUndefined()
    expect(normaliseCode("not a code")).toBeUndefined()
  })
})

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-11-22T10:00:00Z")
  it("reads whole and fractional seconds", () => {
    expect(parseRetryAfter("5", now)).toEqual(Option.some(Duration.millis(5000)))
    expect(parseRetryAfter(" 0.25 ", now)).toEqual(Option.some(Duration.millis(250)))
  })
  it("reads an HTTP date relative to now, never negative", () => {
    expect(parseRetryAfter("Sun, 22 Nov 2026 10:00:30 GMT", now)).toEqual(Option.some(Duration.millis(30_000)))
    expect(parseRetryAfter("Sun, 22 Nov 2026 09:00:00 GMT", now)).toEqual(Option.some(Duration.millis(0)))
  })
  it("ignores what it cannot read", () => {
    expect(parseRetryAfter(undefined, now)).toEqual(Option.none())
    expect(parseRetryAfter("soon", now)).toEqual(Option.none())
  })
})

describe("reasonFor", () => {
  it("maps statuses and codes to reasons", () => {
    expect(reasonFor(429, "0x80072322")).toBe("Throttled")
    expect(reasonFor(401, undefined)).toBe("Unauthorized")
    expect(reasonFor(404, "0x80040217")).toBe("NotFound")
    expect(reasonFor(412, "0x80040237")).toBe("DuplicateKey")
    expect(reasonFor(412, undefined)).toBe("PreconditionFailed")
    expect(reasonFor(400, "0x80044331")).toBe("Validation")
    expect(reasonFor(413, undefined)).toBe("PayloadTooLarge")
    expect(reasonFor(414, undefined)).toBe("PayloadTooLarge")
    expect(reasonFor(431, undefined)).toBe("PayloadTooLarge")
    expect(reasonFor(500, "0x80044150")).toBe("ServiceUnavailable")
    expect(reasonFor(500, "0x80044151")).toBe("Timeout")
    expect(reasonFor(503, undefined)).toBe("ServiceUnavailable")
    expect(reasonFor(500, "0x80040265")).toBe("Unknown")
  })
})

describe("decodeErrorResponse", () => {
  it("reads the Dataverse error body, request id and Retry-After", () => {
    const error = decodeErrorResponse(
      "POST https://x/api/data/v9.2/contacts",
      429,
      { "retry-after": "7", "x-ms-service-request-id": "req-1" },
      JSON.stringify({
        error: {
          code: "0x80072322",
          message: "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
        }
      }),
      0
    )
    expect(error._tag).toBe("DataverseError")
    expect(error.reason).toBe("Throttled")
    expect(error.code).toBe("0x80072322")
    expect(error.requestId).toBe("req-1")
    expect(error.retryAfter).toEqual(Duration.millis(7000))
    expect(error.message).toContain("6000")
    expect(isTransient(error)).toBe(true)
    expect(isAmbiguous(error)).toBe(false)
  })
  it("keeps the status when the body is not JSON", () => {
    const error = decodeErrorResponse("GET x", 502, { req_id: "r" }, "<html>Bad Gateway</html>", 0)
    expect(error.reason).toBe("ServiceUnavailable")
    expect(error.requestId).toBe("r")
    expect(error.code).toBeUndefined()
    const empty = decodeErrorResponse("GET x", 401, {}, "", 0)
    expect(empty.message).toBe("HTTP 401")
    expect(isTransient(empty)).toBe(false)
  })
})

describe("URLs", () => {
  it("normalises what users paste as the org URL", () => {
    expect(normaliseOrgUrl("https://contoso.crm.dynamics.com")).toBe("https://contoso.crm.dynamics.com")
    expect(normaliseOrgUrl("https://contoso.crm.dynamics.com/")).toBe("https://contoso.crm.dynamics.com")
    expect(normaliseOrgUrl("https://contoso.crm.dynamics.com/api/data/v9.2/")).toBe("https://contoso.crm.dynamics.com")
    expect(normaliseOrgUrl("http://127.0.0.1:4000/api/data/v9.2")).toBe("http://127.0.0.1:4000")
    // What the browser shows in a model-driven app, and a request URL copied from a trace.
    expect(normaliseOrgUrl("https://contoso.crm4.dynamics.com/main.aspx?appid=1234&pagetype=entitylist#x"))
      .toBe("https://contoso.crm4.dynamics.com")
    expect(normaliseOrgUrl("https://contoso.crm.dynamics.com/api/data/v9.2/contacts?$top=1"))
      .toBe("https://contoso.crm.dynamics.com")
    expect(normaliseOrgUrl("https://server/org1/api/data/v9.1/")).toBe("https://server/org1")
    expect(normaliseOrgUrl("contoso")).toBeUndefined()
    expect(normaliseOrgUrl("ftp://contoso")).toBeUndefined()
  })
  it("reads record ids from OData-EntityId", () => {
    expect(idFromEntityUrl("https://x/api/data/v9.2/contacts(6F1E1C1E-0000-4000-8000-000000000001)")).toBe(
      "6f1e1c1e-0000-4000-8000-000000000001"
    )
    expect(idFromEntityUrl("https://x/api/data/v9.2/contacts")).toBeUndefined()
    expect(idFromEntityUrl(undefined)).toBeUndefined()
  })
})

import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Option from "effect/Option"
import { DataverseError, normaliseCode, parseRetryAfter, reasonFor } from "../DataverseError.js"

export const describe = (request: HttpClientRequest.HttpClientRequest) =>
  `${request.method} ${request.url.split("?")[0]}`

/** Reads a Dataverse error body (`{"error":{"code","message"}}`) into a `DataverseError`. */
export const decodeErrorResponse = (
  request: string,
  status: number,
  headers: Readonly<Record<string, string>>,
  bodyText: string,
  now: number
): DataverseError => {
  let code: string | undefined
  let message: string | undefined
  let details: Record<string, unknown> | undefined
  try {
    const body = JSON.parse(bodyText) as { error?: Record<string, unknown> }
    code = normaliseCode(body.error?.code)
    if (typeof body.error?.message === "string") message = body.error.message
    for (const [name, value] of Object.entries(body.error ?? {})) {
      if (name !== "code" && name !== "message") (details ??= {})[name] = value
    }
  } catch {
    // Not JSON (a gateway page, an empty 401): keep the status line.
  }
  const reason = reasonFor(status, code)
  const retryAfter = parseRetryAfter(headers["retry-after"], now)
  return new DataverseError({
    reason,
    status,
    code,
    message: message ?? (bodyText.trim() !== "" && bodyText.length < 300 ? bodyText.trim() : `HTTP ${status}`),
    requestId: headers["x-ms-service-request-id"] ?? headers["req_id"],
    retryAfter: Option.getOrUndefined(retryAfter),
    request,
    details
  })
}

/** Socket errors that mean the request never reached a server. */
const unreachableCodes: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  CERT_HAS_EXPIRED: "its TLS certificate has expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "its TLS certificate is self-signed",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its TLS certificate cannot be verified",
  SELF_SIGNED_CERT_IN_CHAIN: "its TLS certificate chain is not trusted"
}

const socketCode = (cause: unknown): string | undefined => {
  for (let current = cause, depth = 0; typeof current === "object" && current !== null && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string") return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/**
 * An answer whose body broke off after its status came: the request reached the service, which may
 * have applied it (reason Transport, as a connection lost before the answer: ambiguous for writes).
 */
export const cutOffError = (request: string, error: HttpClientError.HttpClientError) =>
  new DataverseError({
    reason: "Transport",
    message: `The answer to ${request} was cut off (${error.message}); the request may or may not have been applied.`,
    request,
    cause: error
  })

export const transportError = (error: HttpClientError.HttpClientError) => {
  const request = error.request
  const code = socketCode(error.cause)
  const unreachable = code === undefined ? undefined : unreachableCodes[code]
  if (unreachable !== undefined) {
    return new DataverseError({
      reason: "Unreachable",
      message: `Cannot reach ${new URL(request.url).host}: ${unreachable} (${code}).`,
      request: describe(request),
      cause: error
    })
  }
  return new DataverseError({
    reason: "Transport",
    message: `The connection failed before an answer arrived (${
      code ?? error.message
    }); the request may or may not have been applied.`,
    request: describe(request),
    cause: error
  })
}

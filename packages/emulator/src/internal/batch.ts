/**
 * `$batch` (wire reference, section 4): a `multipart/mixed` request of operations and change
 * sets. A change set is atomic (a store transaction: one failure rolls back all its operations
 * and yields one error part); later parts of a change set may refer to earlier ones as `$<n>`.
 * Without `Prefer: odata.continue-on-error` the batch stops at the first failure, whose status
 * becomes the batch's and whose part is the only one returned.
 *
 * Requests are parsed tolerantly (CRLF or LF, quoted boundaries, absolute or relative URLs);
 * responses are written in the canonical form.
 */
import { randomUUID } from "node:crypto"
import { STATUS_CODES } from "node:http"
import type { Store } from "../Store.js"
import { badRequest, Fault } from "./fault.js"
import { faultReply, type Reply } from "./reply.js"

/** The most operations one batch may hold. */
export const maxOperations = 1000

interface HttpPart {
  readonly method: string
  /** The request target as written in the part. */
  readonly url: string
  readonly headers: Record<string, string>
  readonly body: string
  readonly contentId: string | undefined
}

type BatchItem = { readonly _tag: "Operation"; readonly part: HttpPart } | {
  readonly _tag: "ChangeSet"
  readonly parts: ReadonlyArray<HttpPart>
}

/** The boundary parameter of a `multipart/*` content type. */
export const boundaryOf = (contentType: string | undefined): string | undefined => {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "")
  return match === null ? undefined : (match[1] ?? match[2])
}

/** Splits a header block into lower-cased names and values. */
const parseHeaders = (lines: ReadonlyArray<string>): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(":")
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return headers
}

/** The parts between `--boundary` lines, each with its header block and its content. */
const splitMultipart = (
  body: string,
  boundary: string
): Array<{ headers: Record<string, string>; content: string }> | Fault => {
  const text = body.replace(/\r\n/g, "\n")
  const delimiter = `--${boundary}`
  const pieces = text.split(new RegExp(`^${delimiter.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(--)?[ \\t]*$`, "m"))
  // pieces: preamble, then alternating [content, closing-marker] captures
  if (pieces.length < 3) return badRequest(`The batch body has no part delimited by '${delimiter}'.`)
  const parts: Array<{ headers: Record<string, string>; content: string }> = []
  for (let i = 1; i + 1 < pieces.length; i += 2) {
    const closing = pieces[i] === "--"
    if (closing) break
    const raw = pieces[i + 1]!.replace(/^\n/, "").replace(/\n$/, "")
    const blank = raw.indexOf("\n\n")
    const headerBlock = blank < 0 ? raw : raw.slice(0, blank)
    parts.push({ headers: parseHeaders(headerBlock.split("\n")), content: blank < 0 ? "" : raw.slice(blank + 2) })
  }
  return parts
}

/** Reads an `application/http` part: request line, headers, body. */
const parseHttpPart = (part: { headers: Record<string, string>; content: string }): HttpPart | Fault => {
  const lines = part.content.split("\n")
  const requestLine = /^([A-Z]+)\s+(\S+)(?:\s+HTTP\/\d\.\d)?\s*$/.exec(lines[0] ?? "")
  if (requestLine === null) {
    return badRequest(`A batch part does not start with a request line: '${(lines[0] ?? "").slice(0, 80)}'.`)
  }
  const blank = lines.indexOf("", 1)
  const headerLines = blank < 0 ? lines.slice(1) : lines.slice(1, blank)
  const body = blank < 0 ? "" : lines.slice(blank + 1).join("\n").replace(/\n+$/, "")
  return {
    method: requestLine[1]!,
    url: requestLine[2]!,
    headers: parseHeaders(headerLines),
    body,
    contentId: part.headers["content-id"] ?? parseHeaders(headerLines)["content-id"]
  }
}

/** Parses a `$batch` body into operations and change sets. */
export const parseBatch = (body: string, contentType: string | undefined): Array<BatchItem> | Fault => {
  const boundary = boundaryOf(contentType)
  if (boundary === undefined || !/^multipart\/mixed/i.test(contentType ?? "")) {
    return badRequest("A $batch request must have Content-Type: multipart/mixed; boundary=<boundary>.")
  }
  const parts = splitMultipart(body, boundary)
  if (parts instanceof Fault) return parts
  const items: Array<BatchItem> = []
  for (const part of parts) {
    const type = part.headers["content-type"] ?? ""
    if (/^multipart\/mixed/i.test(type)) {
      const inner = boundaryOf(type)
      if (inner === undefined) return badRequest("A change set has no boundary.")
      const changeParts = splitMultipart(part.content, inner)
      if (changeParts instanceof Fault) return changeParts
      const operations: Array<HttpPart> = []
      for (const changePart of changeParts) {
        const operation = parseHttpPart(changePart)
        if (operation instanceof Fault) return operation
        if (operation.method === "GET") return badRequest("A change set cannot contain a GET request.")
        operations.push(operation)
      }
      items.push({ _tag: "ChangeSet", parts: operations })
    } else {
      const operation = parseHttpPart(part)
      if (operation instanceof Fault) return operation
      items.push({ _tag: "Operation", part: operation })
    }
  }
  return items
}

/** The target of a part relative to the version root; `$n` replaced by the URL it stands for. */
const relativeTarget = (url: string, references: ReadonlyMap<string, string>): string | Fault => {
  const reference = /^\$(\d+)(.*)$/.exec(url)
  if (reference !== null) {
    const target = references.get(reference[1]!)
    if (target === undefined) {
      return badRequest(`The reference '$${reference[1]}' does not name an earlier part of the change set.`)
    }
    return target + reference[2]
  }
  const api = url.indexOf("/api/data/")
  if (api >= 0) return url.slice(api).replace(/^\/api\/data\/v\d+(\.\d+)?\//, "")
  return url.replace(/^\//, "")
}

/** `"nav@odata.bind": "$1"` in a change set binds to the record part 1 created. */
const resolveBindReferences = (body: string, references: ReadonlyMap<string, string>): string => {
  if (references.size === 0 || !body.includes("\"$")) return body
  try {
    const json = JSON.parse(body) as Record<string, unknown>
    for (const [key, value] of Object.entries(json)) {
      const match = typeof value === "string" ? /^\$(\d+)$/.exec(value) : null
      if (key.endsWith("@odata.bind") && match !== null && references.has(match[1]!)) {
        json[key] = `/${references.get(match[1]!)}`
      }
    }
    return JSON.stringify(json)
  } catch {
    return body
  }
}

const statusLine = (status: number) => `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`

/** One `application/http` response part. */
const writePart = (reply: Reply, contentId: string | undefined): string => {
  const lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
  if (contentId !== undefined) lines.push(`Content-ID: ${contentId}`)
  lines.push("", statusLine(reply.status), "OData-Version: 4.0")
  for (const [name, value] of Object.entries(reply.headers ?? {})) lines.push(`${name}: ${value}`)
  if (reply.body !== undefined) {
    lines.push(
      "Content-Type: application/json; odata.metadata=minimal",
      "",
      typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body)
    )
  } else {
    lines.push("")
  }
  return lines.join("\r\n")
}

const writeMultipart = (
  boundary: string,
  parts: ReadonlyArray<{ readonly contentType?: string; readonly text: string }>
): string =>
  parts.map((part) =>
    part.contentType === undefined
      ? `--${boundary}\r\n${part.text}\r\n`
      : `--${boundary}\r\nContent-Type: ${part.contentType}\r\n\r\n${part.text}\r\n`
  ).join("") + `--${boundary}--\r\n`

/** What one executed request of the batch needs from the Web API. */
export type Execute = (method: string, target: string, headers: Record<string, string>, body: string) => Reply

/**
 * Runs a parsed batch and writes its response.
 */
export const runBatch = (
  store: Store,
  items: ReadonlyArray<BatchItem>,
  execute: Execute,
  continueOnError: boolean,
  webApiUrl: string
): Reply => {
  const operations = items.reduce((n, item) => n + (item._tag === "ChangeSet" ? item.parts.length : 1), 0)
  if (operations > maxOperations) {
    return faultReply(badRequest(`The batch holds ${operations} operations; the maximum is ${maxOperations}.`))
  }
  const boundary = `batchresponse_${randomUUID()}`
  const parts: Array<{ contentType?: string; text: string }> = []
  // A batch is one request for the limits, but all its work counts.
  const work = { records: 0, operations: 0 }
  const count = (reply: Reply) => {
    work.records += reply.work?.records ?? 0
    work.operations += reply.work?.operations ?? 1
  }
  for (const item of items) {
    if (item._tag === "Operation") {
      const target = relativeTarget(item.part.url, new Map())
      const reply = target instanceof Fault
        ? faultReply(target)
        : execute(item.part.method, target, item.part.headers, item.part.body)
      count(reply)
      if (reply.status >= 400 && !continueOnError) return { ...failedBatch(reply, item.part.contentId), work }
      parts.push({ text: writePart(reply, item.part.contentId) })
      continue
    }
    // A change set: all its operations in one transaction.
    const references = new Map<string, string>()
    const replies: Array<{ reply: Reply; contentId: string | undefined }> = []
    let failure: { reply: Reply; contentId: string | undefined } | undefined
    store.transaction(() => {
      for (const part of item.parts) {
        const target = relativeTarget(part.url, references)
        const reply = target instanceof Fault
          ? faultReply(target)
          : execute(part.method, target, part.headers, resolveBindReferences(part.body, references))
        count(reply)
        if (reply.status >= 400) {
          failure = { reply, contentId: part.contentId }
          return new Fault(reply.status, "", "change set failed")
        }
        const entityId = reply.headers?.["OData-EntityId"]
        if (part.contentId !== undefined && entityId !== undefined) {
          references.set(part.contentId, entityId.startsWith(webApiUrl) ? entityId.slice(webApiUrl.length) : entityId)
        }
        replies.push({ reply, contentId: part.contentId })
      }
      return true
    })
    if (failure !== undefined) {
      if (!continueOnError) return { ...failedBatch(failure.reply, failure.contentId), work }
      parts.push({ text: writePart(failure.reply, failure.contentId) })
      continue
    }
    const changeBoundary = `changesetresponse_${randomUUID()}`
    parts.push({
      contentType: `multipart/mixed; boundary=${changeBoundary}`,
      text: writeMultipart(
        changeBoundary,
        replies.map(({ contentId, reply }) => ({ text: writePart(reply, contentId) }))
      )
    })
  }
  return {
    status: 200,
    body: writeMultipart(boundary, parts),
    contentType: `multipart/mixed; boundary=${boundary}`,
    work
  }
}

/** Without continue-on-error, a failure ends the batch: its status, and its part alone. */
const failedBatch = (reply: Reply, contentId: string | undefined): Reply => {
  const boundary = `batchresponse_${randomUUID()}`
  return {
    status: reply.status,
    body: writeMultipart(boundary, [{ text: writePart(reply, contentId) }]),
    contentType: `multipart/mixed; boundary=${boundary}`
  }
}

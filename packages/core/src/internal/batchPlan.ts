/**
 * The layout of a batch: every request with its position, its group (a change set or a request
 * alone) and its `Content-ID`, checked once for what the service would refuse. Writing the batch
 * (`batchEncode.ts`) and reading its answer (`batchResults.ts`) both work from it.
 */
import * as Either from "effect/Either"
import type { Item, Request } from "../Batch.js"
import type { DataverseError } from "../DataverseError.js"
import { isChangeSet } from "./batch.js"
import { invalid } from "./invalidInput.js"

/** `Batch.maxOperations`. */
export const maxOperations = 1000

/** A request of the batch with its position, its group and its `Content-ID`. */
export interface Flat {
  readonly request: Request
  readonly index: number
  readonly group: number
  readonly contentId: string
}

/** A top-level part of the batch: a change set, or one request alone. */
export interface Group {
  readonly changeSet: boolean
  readonly indices: ReadonlyArray<number>
}

/** A checked batch: its requests in order, and its top-level parts. */
export interface Plan {
  readonly flat: ReadonlyArray<Flat>
  readonly groups: ReadonlyArray<Group>
}

const hasLineBreak = (text: string) => /[\r\n]/.test(text)

/** The plan of a batch; Left: why the items cannot be one. */
export const plan = (items: ReadonlyArray<Item>): Either.Either<Plan, DataverseError> => {
  const flat: Array<Flat> = []
  const groups: Array<Group> = []
  const seen = new Set<string>()
  const add = (request: Request, group: number, where: string): DataverseError | undefined => {
    const index = flat.length
    const contentId = request.contentId ?? String(index + 1)
    if (!/^[A-Za-z0-9._~-]+$/.test(contentId)) {
      return invalid(`${where}: the Content-ID '${contentId}' may hold only letters, digits and . _ ~ -.`)
    }
    if (seen.has(contentId)) return invalid(`${where}: the Content-ID '${contentId}' is used twice in the batch.`)
    seen.add(contentId)
    if (typeof request.url !== "string" || request.url.trim() === "" || /\s/.test(request.url)) {
      return invalid(`${where}: the URL must be non-empty without spaces (percent-encode them), got '${request.url}'.`)
    }
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || hasLineBreak(String(value))) {
        return invalid(`${where}: the header '${name}' is not a valid header name and value.`)
      }
    }
    flat.push({ request, index, group, contentId })
    return undefined
  }
  for (const item of items) {
    const group = groups.length
    if (isChangeSet(item)) {
      if (item.requests.length === 0) return Either.left(invalid(`Change set ${group + 1} holds no request.`))
      const indices: Array<number> = []
      for (const request of item.requests) {
        const where = `Request ${flat.length}`
        if (request.method === "GET") {
          return Either.left(invalid(`${where}: a change set cannot hold a GET (${request.url}).`))
        }
        indices.push(flat.length)
        const error = add(request, group, where)
        if (error !== undefined) return Either.left(error)
      }
      groups.push({ changeSet: true, indices })
    } else {
      const index = flat.length
      const error = add(item, group, `Request ${index}`)
      if (error !== undefined) return Either.left(error)
      groups.push({ changeSet: false, indices: [index] })
    }
  }
  if (flat.length > maxOperations) {
    return Either.left(
      invalid(`A $batch holds at most ${maxOperations} operations; this one holds ${flat.length}. Split it.`)
    )
  }
  return Either.right({ flat, groups })
}

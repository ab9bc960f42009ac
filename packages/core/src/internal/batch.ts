/**
 * The requests of a batch (`Batch.get`, `Batch.post`, ..., `Batch.changeSet`).
 */
import type { ChangeSet, Item, Method, Request, RequestOptions } from "../Batch.js"

const make = (method: Method, url: string, body: unknown, options: RequestOptions | undefined): Request => ({
  method,
  url,
  ...(body === undefined ? {} : { body }),
  ...(options?.headers === undefined ? {} : { headers: options.headers }),
  ...(options?.contentId === undefined ? {} : { contentId: options.contentId })
})

/** `Batch.changeSet`. */
export const changeSet = (requests: ReadonlyArray<Request>): ChangeSet => ({ _tag: "ChangeSet", requests })

/** `Batch.isChangeSet`. */
export const isChangeSet = (item: Item): item is ChangeSet => "_tag" in item && item._tag === "ChangeSet"

/** `Batch.get`. */
export const get = (url: string, options?: RequestOptions): Request => make("GET", url, undefined, options)

/** `Batch.post`. */
export const post = (url: string, body: unknown, options?: RequestOptions): Request => make("POST", url, body, options)

/** `Batch.patch`. */
export const patch = (url: string, body: unknown, options?: RequestOptions): Request =>
  make("PATCH", url, body, options)

/** `Batch.put`. */
export const put = (url: string, body: unknown, options?: RequestOptions): Request => make("PUT", url, body, options)

/** `Batch.delete`. */
export const deleteRequest = (url: string, options?: RequestOptions): Request => make("DELETE", url, undefined, options)

import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"

/**
 * A request body as the string it is: the HTTP client writes it as it stands (Node encodes it on
 * its way to the socket, and sets its Content-Length), where `bodyText` and `bodyUnsafeJson` first
 * copy it through a `TextEncoder`, about a millisecond per 150 KB, once more per request of a bulk
 * run.
 */
export const bodyString = (text: string, contentType: string) =>
  HttpClientRequest.setBody(HttpBody.raw(text, { contentType }))

/** A JSON body (see `bodyString`). */
export const bodyJson = (value: unknown) => bodyString(JSON.stringify(value), "application/json")

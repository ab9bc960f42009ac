/**
 * Sending a batch through the connection: `POST $batch`, the answer read whatever its status.
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import type { ExecuteOptions, Item, RawResponse, Result } from "../Batch.js"
import { DataverseClient, decodeErrorResponse } from "../DataverseClient.js"
import type { DataverseError } from "../DataverseError.js"
import { encode } from "./batchEncode.js"
import { decodeResponse } from "./batchResults.js"
import { cutOffError } from "./clientErrors.js"
import { bodyString } from "./requestBody.js"

/**
 * Posts the batch and reads the answer whatever its status: without continue-on-error a failing
 * batch answers with the failing part's status and that part, which `decodeResponse` maps to its
 * request. An answer that is not multipart is a failure of the batch as a whole. A 429 never
 * comes back here: the connection waits it out and sends the batch again (nothing of it ran).
 */
const postBatch = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.flatMap(DataverseClient, (client) =>
    Effect.scoped(
      Effect.flatMap(client.executeRaw(request), (response) =>
        Effect.flatMap(
          Effect.mapError(response.text, (error) => cutOffError("POST $batch", error)),
          (body): Effect.Effect<RawResponse, DataverseError> => {
            const multipart = /^multipart\//i.test(response.headers["content-type"] ?? "")
            if (response.status < 400 || multipart) {
              return Effect.succeed({ status: response.status, headers: response.headers, body })
            }
            return Effect.clockWith((clock) => clock.currentTimeMillis).pipe(
              Effect.flatMap((now) =>
                Effect.fail(decodeErrorResponse("POST $batch", response.status, response.headers, body, now))
              )
            )
          }
        ))
    ))

/** `Batch.send`. */
export const send = (
  items: ReadonlyArray<Item>,
  options: ExecuteOptions = {}
): Effect.Effect<ReadonlyArray<Result>, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    const encoded = yield* encode(items, { webApiUrl: client.webApiUrl })
    if (encoded.operations === 0) return []
    const prefer = [
      ...Object.entries(options.headers ?? {}).filter(([name]) => name.toLowerCase() === "prefer").map(([, v]) => v),
      ...(options.continueOnError === true ? ["odata.continue-on-error"] : [])
    ]
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (name.toLowerCase() !== "prefer") headers[name] = value
    }
    if (prefer.length > 0) headers["Prefer"] = prefer.join(", ")
    const request = HttpClientRequest.post("$batch").pipe(
      HttpClientRequest.setHeaders(headers),
      bodyString(encoded.body, encoded.contentType)
    )
    return yield* decodeResponse(items, yield* postBatch(request))
  })

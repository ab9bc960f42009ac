/**
 * FetchXML queries as a `Stream`: one page after the other with the paging cookie the service
 * returns (the FetchXML text itself is read and written by `fetchXml.ts`).
 */
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { DataverseClient } from "../DataverseClient.js"
import type { DataverseError } from "../DataverseError.js"
import type { FetchXmlOptions } from "../Query.js"
import type { Row } from "../Records.js"
import { fetchAttributes, readPagingCookie, setFetchAttributes } from "./fetchXml.js"
import { invalid } from "./invalidInput.js"
import { withQuery } from "./odata.js"
import { checkPageSize, valueOf } from "./query.js"

const pagingAnnotations =
  "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\""

/** `Query.fetchXml`. */
export const fetchXml = (
  table: string,
  xml: string,
  options: FetchXmlOptions = {}
): Stream.Stream<Row, DataverseError, DataverseClient> =>
  Stream.unwrap(
    Effect.gen(function*() {
      yield* checkPageSize(options.pageSize)
      const attributes = fetchAttributes(xml)
      if (typeof attributes === "string") return yield* invalid(`Not a FetchXML query: ${attributes}`)
      const single = attributes.has("top")
      if (single && options.pageSize !== undefined) {
        return yield* invalid("A FetchXML query with 'top' is not paged: leave out pageSize, or 'top'.")
      }
      const firstPage = attributes.has("page") ? Number(attributes.get("page")) : 1
      if (!Number.isInteger(firstPage) || firstPage < 1) {
        return yield* invalid(
          `The 'page' of the FetchXML query must be a whole number from 1, got ${attributes.get("page")}.`
        )
      }
      const setAttributes = (values: Readonly<Record<string, string | undefined>>) => {
        const written = setFetchAttributes(xml, values)
        return typeof written === "string" ? Effect.succeed(written) : Effect.fail(invalid(written.error))
      }
      const first = options.pageSize === undefined ? xml : yield* setAttributes({ count: String(options.pageSize) })
      const client = yield* DataverseClient
      const metadata = yield* client.table(table)
      const prefer = options.annotations === true ? "odata.include-annotations=\"*\"" : pagingAnnotations
      const page = (state: { readonly xml: string; readonly page: number }) =>
        client.executeJson(
          HttpClientRequest.get(withQuery(metadata.entitySetName, [["fetchXml", state.xml]]), {
            headers: { Prefer: prefer }
          })
        ).pipe(
          Effect.flatMap(({ body }) =>
            Effect.flatMap(valueOf(metadata.entitySetName, body), (rows) => {
              const b = body as Record<string, unknown>
              const more = b["@Microsoft.Dynamics.CRM.morerecords"] === true ||
                b["@Microsoft.Dynamics.CRM.morerecords"] === "true"
              const chunk = Chunk.unsafeFromArray(rows)
              // An empty page that claims more would loop forever: stop.
              if (single || !more || rows.length === 0) return Effect.succeed([chunk, Option.none()] as const)
              const annotation = b["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"]
              // Without a readable cookie the service still pages by number (simple paging).
              const cookie = typeof annotation === "string" ? readPagingCookie(annotation)?.cookie : undefined
              const next = state.page + 1
              return Effect.map(
                setAttributes({
                  ...(options.pageSize === undefined ? {} : { count: String(options.pageSize) }),
                  page: String(next),
                  "paging-cookie": cookie
                }),
                (nextXml) => [chunk, Option.some({ xml: nextXml, page: next })] as const
              )
            })
          )
        )
      return Stream.paginateChunkEffect({ xml: first, page: firstPage }, page)
    })
  )

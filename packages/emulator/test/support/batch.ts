/**
 * `$batch` bodies for tests, as the wire reference (§4) writes them: parts of `batch_1`, change
 * sets of `changeset_1`.
 */

/** One request of a batch: `GET WhoAmI`, or a write with its JSON body and an optional Content-ID. */
export const batchOperation = (method: string, url: string, body?: unknown, contentId?: string): string =>
  [
    "Content-Type: application/http",
    "Content-Transfer-Encoding: binary",
    ...(contentId === undefined ? [] : [`Content-ID: ${contentId}`]),
    "",
    `${method} ${url} HTTP/1.1`,
    ...(body === undefined ? [] : ["Content-Type: application/json; type=entry", "", JSON.stringify(body)]),
    ""
  ].join("\r\n")

/** A change set of operations: all applied, or none. */
export const changeSet = (parts: ReadonlyArray<string>): string =>
  [
    "Content-Type: multipart/mixed; boundary=changeset_1",
    "",
    ...parts.map((p) => `--changeset_1\r\n${p}`),
    "--changeset_1--",
    ""
  ].join("\r\n")

/** The body of a batch of `batch_1` (its Content-Type: `multipart/mixed; boundary=batch_1`). */
export const batchBody = (parts: ReadonlyArray<string>): string =>
  parts.map((p) => `--batch_1\r\n${p}`).join("\r\n") + "\r\n--batch_1--\r\n"

/** The status of each response of a batch's answer, in order. */
export const batchStatuses = (text: string): Array<number> =>
  [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]))

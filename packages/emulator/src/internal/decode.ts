/**
 * Reading JSON files with Effect `Schema` (the schema and profile files): the first problem of a
 * failure as one line that names the field.
 */
import * as ParseResult from "effect/ParseResult"

/** `path: message` for the first issue of a decoding failure. */
export const firstIssue = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return error.message
  const path = issue.path.map((part) => (typeof part === "number" ? `[${part}]` : `.${String(part)}`)).join("").replace(
    /^\./,
    ""
  )
  return `${path === "" ? "" : `${path}: `}${issue.message.split("\n")[0]}`
}

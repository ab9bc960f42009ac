/**
 * Reading JSON files with Effect `Schema` (the schema and profile files): the first problem of a
 * failure as one line that names the field.
 */
import * as ParseResult from "effect/ParseResult"

const literalIssue = /^Expected ("(?:[^"\\]|\\.)*"), actual (.*)$/

/**
 * `path: message` for the first issue of a decoding failure. A value outside a set of literals
 * (a column's `type`) fails once per literal: those are said as one issue listing them all.
 */
export const firstIssue = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const issue = issues[0]
  if (issue === undefined) return error.message
  const path = issue.path.map((part) => (typeof part === "number" ? `[${part}]` : `.${String(part)}`)).join("").replace(
    /^\./,
    ""
  )
  const at = path === "" ? "" : `${path}: `
  const first = literalIssue.exec(issue.message)
  if (first !== null) {
    const samePath = issues.filter((other) =>
      other.path.length === issue.path.length && other.path.every((part, i) => part === issue.path[i])
    )
    const expected = samePath.flatMap((other) => {
      const match = literalIssue.exec(other.message)
      return match === null || match[2] !== first[2] ? [] : [match[1]!]
    })
    if (expected.length > 1) return `${at}expected one of ${expected.join(", ")}, got ${first[2]}`
  }
  return `${at}${issue.message.split("\n")[0]}`
}

/**
 * OData text: literals, query strings and `$expand` clauses, written the way the Dataverse Web
 * API reads them.
 */

/** A string literal: single-quoted, with `'` doubled. */
export const quote = (value: string): string => `'${value.replace(/'/g, "''")}'`

const guidPattern = /^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$/

/** The canonical (lower-case, no braces) form of a GUID, or undefined when `text` is not one. */
export const normaliseGuid = (text: string): string | undefined => {
  const match = guidPattern.exec(text.trim())
  return match === null ? undefined : match[1]!.toLowerCase()
}

/** An identifier the service accepts as a property or parameter name (no quoting, no injection). */
export const isIdentifier = (name: string): boolean => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)

/** Characters `encodeURIComponent` escapes that are safe, and easier to read, in a query value. */
const readable: Readonly<Record<string, string>> = { "%2C": ",", "%2F": "/", "%3A": ":", "%40": "@", "%24": "$" }

/** Percent-encodes a query value: a space is `%20` (never `+`); `&`, `=`, `+`, `#`, `%` are escaped. */
export const encodeQueryValue = (value: string): string =>
  encodeURIComponent(value).replace(/%(2C|2F|3A|40|24)/g, (escaped) => readable[escaped]!)

/**
 * A query string (without `?`) from name/value pairs, values encoded by `encodeQueryValue`, names
 * kept as they are when they are plain (`$select`, `fetchXml`).
 */
export const queryString = (params: ReadonlyArray<readonly [string, string]>): string =>
  params
    .map(([name, value]) =>
      `${/^\$?[A-Za-z0-9_.-]+$/.test(name) ? name : encodeURIComponent(name)}=${encodeQueryValue(value)}`
    )
    .join("&")

/** Appends a query string to a URL (relative or absolute). */
export const withQuery = (url: string, params: ReadonlyArray<readonly [string, string]>): string =>
  params.length === 0 ? url : `${url}${url.includes("?") ? "&" : "?"}${queryString(params)}`

/**
 * Splits a raw query string (`$select=a,b&$filter=name eq 'A&B'`, with or without a leading `?`)
 * into name/value pairs: `&` inside a quoted string does not split, and a value that is already
 * percent-encoded is decoded once (so it is not encoded twice).
 */
export const parseRawQuery = (raw: string): Array<[string, string]> =>
  splitOutsideQuotes(raw.trim().replace(/^\?/, ""), "&").parts
    .filter((part) => part.trim() !== "")
    .map((part) => {
      const at = part.indexOf("=")
      return at < 0
        ? [decodeOnce(part.trim()), ""]
        : [decodeOnce(part.slice(0, at).trim()), decodeOnce(part.slice(at + 1))]
    })

/** Percent-decodes once; text that is not valid percent-encoding stays as it is. */
export const decodeOnce = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/**
 * Splits at `separator` outside quoted strings (`'...'`, where `''` is a quote inside); `closed`
 * is false when a quote was left open.
 */
export const splitOutsideQuotes = (
  text: string,
  separator: string
): { readonly parts: Array<string>; readonly closed: boolean } => {
  const parts: Array<string> = []
  let current = ""
  let inString = false
  for (const c of text) {
    if (c === "'") inString = !inString
    if (c === separator && !inString) {
      parts.push(current)
      current = ""
    } else current += c
  }
  parts.push(current)
  return { parts, closed: !inString }
}

/**
 * A single-valued navigation property to expand, optionally with the columns to return from the
 * related record.
 */
export type ExpandItem = string | { readonly property: string; readonly select?: ReadonlyArray<string> }

/** The `$expand` value: `primarycontactid($select=fullname),parentcustomerid_account`. */
export const expandClause = (items: ReadonlyArray<ExpandItem>): string =>
  items
    .map((item) => {
      if (typeof item === "string") return item
      return item.select === undefined || item.select.length === 0
        ? item.property
        : `${item.property}($select=${item.select.join(",")})`
    })
    .join(",")

/** The first name in `items` that is not a plain identifier, if any. */
export const badExpand = (items: ReadonlyArray<ExpandItem>): string | undefined => {
  for (const item of items) {
    const property = typeof item === "string" ? item : item.property
    if (!isIdentifier(property)) return property
    if (typeof item !== "string") {
      const bad = item.select?.find((column) => !isIdentifier(column))
      if (bad !== undefined) return bad
    }
  }
  return undefined
}

/**
 * FetchXML paging: the attributes of the root `<fetch>` element (`count`, `page`,
 * `paging-cookie`, `top`) and the paging cookie the service returns in
 * `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie`.
 */

/** Escapes text for an XML attribute value in double quotes. */
export const xmlEscape = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** Resolves the predefined entities and character references. */
export const xmlUnescape = (text: string): string =>
  text.replace(/&(lt|gt|quot|apos|amp|#x[0-9a-fA-F]+|#\d+);/g, (_, entity: string) => {
    switch (entity) {
      case "lt":
        return "<"
      case "gt":
        return ">"
      case "quot":
        return "\""
      case "apos":
        return "'"
      case "amp":
        return "&"
      default:
        return String.fromCodePoint(
          entity.startsWith("#x") ? parseInt(entity.slice(2), 16) : parseInt(entity.slice(1), 10)
        )
    }
  })

interface Attribute {
  readonly name: string
  /** As written, still XML-escaped. */
  readonly raw: string
}

/** The first start tag of the document, when it is `<name ...>`; offsets span the whole tag. */
interface StartTag {
  readonly start: number
  readonly end: number
  readonly selfClosing: boolean
  readonly attributes: ReadonlyArray<Attribute>
}

const isSpace = (c: string | undefined) => c === " " || c === "\t" || c === "\n" || c === "\r"

/** Skips the XML declaration, processing instructions, comments and whitespace. */
const skipProlog = (xml: string): number => {
  let i = 0
  for (;;) {
    while (isSpace(xml[i])) i++
    if (xml.startsWith("\uFEFF", i)) i++
    else if (xml.startsWith("<?", i)) {
      const end = xml.indexOf("?>", i)
      if (end < 0) return -1
      i = end + 2
    } else if (xml.startsWith("<!--", i)) {
      const end = xml.indexOf("-->", i)
      if (end < 0) return -1
      i = end + 3
    } else return i
  }
}

/** Reads the root start tag if it is named `name`; a string says what is wrong. */
const readStartTag = (xml: string, name: string): StartTag | string => {
  const start = skipProlog(xml)
  if (start < 0 || !xml.startsWith(`<${name}`, start)) return `The document does not start with <${name}>.`
  let i = start + name.length + 1
  if (!isSpace(xml[i]) && xml[i] !== ">" && xml[i] !== "/") return `The document does not start with <${name}>.`
  const attributes: Array<Attribute> = []
  for (;;) {
    while (isSpace(xml[i])) i++
    if (i >= xml.length) return `The <${name}> element is not closed.`
    if (xml[i] === ">") return { start, end: i + 1, selfClosing: false, attributes }
    if (xml.startsWith("/>", i)) return { start, end: i + 2, selfClosing: true, attributes }
    let attribute = ""
    while (i < xml.length && !isSpace(xml[i]) && xml[i] !== "=" && xml[i] !== ">" && xml[i] !== "/") {
      attribute += xml[i++]
    }
    while (isSpace(xml[i])) i++
    if (attribute === "" || xml[i] !== "=") return `A malformed attribute in <${name}>.`
    i++
    while (isSpace(xml[i])) i++
    const quote = xml[i]
    if (quote !== "\"" && quote !== "'") return `The attribute '${attribute}' of <${name}> is not quoted.`
    const close = xml.indexOf(quote, i + 1)
    if (close < 0) return `The attribute '${attribute}' of <${name}> is not closed.`
    attributes.push({ name: attribute, raw: xml.slice(i + 1, close) })
    i = close + 1
  }
}

/** The attributes of the root `<fetch>` element, XML-unescaped; a string says what is wrong. */
export const fetchAttributes = (xml: string): ReadonlyMap<string, string> | string => {
  const tag = readStartTag(xml, "fetch")
  if (typeof tag === "string") return tag
  return new Map(tag.attributes.map((attribute) => [attribute.name, xmlUnescape(attribute.raw)]))
}

/**
 * Sets (or, with `undefined`, removes) attributes of the root `<fetch>` element and leaves the
 * rest of the document as it was. Values are XML-escaped here.
 */
export const setFetchAttributes = (
  xml: string,
  values: Readonly<Record<string, string | undefined>>
): string | { readonly error: string } => {
  const tag = readStartTag(xml, "fetch")
  if (typeof tag === "string") return { error: tag }
  const written: Array<string> = []
  const done = new Set<string>()
  for (const attribute of tag.attributes) {
    if (attribute.name in values) {
      done.add(attribute.name)
      const value = values[attribute.name]
      if (value !== undefined) written.push(`${attribute.name}="${xmlEscape(value)}"`)
    } else written.push(`${attribute.name}="${attribute.raw.replace(/"/g, "&quot;")}"`)
  }
  for (const [name, value] of Object.entries(values)) {
    if (!done.has(name) && value !== undefined) written.push(`${name}="${xmlEscape(value)}"`)
  }
  const open = `<fetch${written.length === 0 ? "" : " " + written.join(" ")}${tag.selfClosing ? " />" : ">"}`
  return xml.slice(0, tag.start) + open + xml.slice(tag.end)
}

const decodeOnce = (text: string): string | undefined => {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

/** URL-decodes until the text is markup (at most `rounds` times); undefined when it never is. */
const decodeToMarkup = (value: string, rounds: number): string | undefined => {
  let text: string | undefined = value.trim()
  for (let round = 0; round < rounds && text !== undefined && !text.startsWith("<"); round++) {
    text = decodeOnce(text)?.trim()
  }
  return text?.startsWith("<") ? text : undefined
}

/**
 * Reads `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie`: the element
 * `<cookie pagenumber="2" pagingcookie="%253ccookie%2520page..." istracking="False" />`, or, from
 * older services, that whole element URL-encoded. Returns the inner cookie to send back as
 * `paging-cookie` (`<cookie page="1">...</cookie>`, its `pagingcookie` attribute URL-decoded twice,
 * or once when the element itself was encoded) and the page number the service expects next.
 * Undefined when the value is not a paging cookie.
 */
export const readPagingCookie = (
  annotation: string
): { readonly cookie: string | undefined; readonly pageNumber: number | undefined } | undefined => {
  const element = decodeToMarkup(annotation, 2)
  if (element === undefined) return undefined
  const tag = readStartTag(element, "cookie")
  if (typeof tag === "string") return undefined
  const attributes = new Map(tag.attributes.map((attribute) => [attribute.name, xmlUnescape(attribute.raw)]))
  const pageNumber = Number(attributes.get("pagenumber"))
  const outer = attributes.get("pagingcookie")
  return {
    cookie: outer === undefined || outer.trim() === "" ? undefined : decodeToMarkup(outer, 2),
    pageNumber: Number.isInteger(pageNumber) && pageNumber > 0 ? pageNumber : undefined
  }
}

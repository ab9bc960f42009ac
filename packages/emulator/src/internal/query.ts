/**
 * Queries of a table: `$select`, `$filter`, `$orderby`, `$top`, `$count` and `/$count`, paged by
 * `Prefer: odata.maxpagesize` with `@odata.nextLink` (wire reference, section 8).
 */
import type { LookupValue, Store, StoredRecord, TableStore } from "../Store.js"
import { navigationProperties, projection } from "./expand.js"
import { badRequest, Fault, segmentNotFound } from "./fault.js"
import { parseFetchXml, readFetchPagingCookie, writeFetchInnerCookie, writeFetchPagingCookie } from "./fetchxml.js"
import { compileFilter, compileOrderBy, primaryKeyCandidates } from "./filter.js"
import { auditColumns, columnsOf, present } from "./records.js"
import { faultReply, type Reply } from "./reply.js"

/** The `Prefer` preferences the emulator honours. */
export interface Prefer {
  readonly maxPageSize: number | undefined
  readonly returnRepresentation: boolean
  readonly annotations: boolean
  readonly continueOnError: boolean
}

/** Parses one or more `Prefer` headers (joined by commas). */
export const parsePrefer = (header: string | undefined): Prefer => {
  let maxPageSize: number | undefined
  let returnRepresentation = false
  let annotations = false
  let continueOnError = false
  for (const raw of (header ?? "").split(",")) {
    const part = raw.trim()
    const at = part.indexOf("=")
    const name = (at < 0 ? part : part.slice(0, at)).trim().toLowerCase()
    const value = at < 0 ? undefined : part.slice(at + 1).trim()
    if (name === "odata.maxpagesize" && value !== undefined && /^\d+$/.test(value)) maxPageSize = Number(value)
    else if (name === "return" && value === "representation") returnRepresentation = true
    else if (name === "odata.include-annotations") annotations = true
    else if (name === "odata.continue-on-error") continueOnError = true
  }
  return { maxPageSize, returnRepresentation, annotations, continueOnError }
}

const maxPageSize = 5000
/** `$count` and `/$count` stop counting at 5,000, as on the service. */
const maxCount = 5000

const unsupported = ["$apply", "savedQuery", "userQuery", "$search"]

/**
 * A skip token looks like the service's: a `<cookie>` whose `pagingcookie` attribute is
 * URL-encoded twice. Clients must treat it as opaque and follow `@odata.nextLink` verbatim.
 * Unordered queries continue after the last `seq` served (stable under concurrent inserts);
 * ordered ones continue at an offset.
 */
const writeSkipToken = (pageNumber: number, position: { last: number; returned: number }): string => {
  const inner = `<cookie page="${pageNumber - 1}" last="${position.last}" returned="${position.returned}" />`
  return `<cookie pagenumber="${pageNumber}" pagingcookie="${
    encodeURIComponent(encodeURIComponent(inner))
  }" istracking="False" />`
}

const readSkipToken = (token: string | null): { page: number; last: number; returned: number } | Fault => {
  if (token === null) return { page: 1, last: 0, returned: 0 }
  const invalid = badRequest("The $skiptoken is not valid.")
  const pageNumber = /pagenumber="(\d+)"/.exec(token)
  const cookie = /pagingcookie="([^"]*)"/.exec(token)
  if (pageNumber === null || cookie === null) return invalid
  let inner: string
  try {
    inner = decodeURIComponent(decodeURIComponent(cookie[1]!))
  } catch {
    return invalid
  }
  const last = /last="(\d+)"/.exec(inner)
  const returned = /returned="(\d+)"/.exec(inner)
  if (last === null || returned === null) return invalid
  return { page: Number(pageNumber[1]), last: Number(last[1]), returned: Number(returned[1]) }
}

/** Both conditions, either of which may be absent. */
const both = <A>(
  first: ((a: A) => boolean) | undefined,
  second: ((a: A) => boolean) | undefined
): ((a: A) => boolean) | undefined =>
  first === undefined ? second : second === undefined ? first : (a) => second(a) && first(a)

/** Query strings with OData's `$` left readable, as the service writes them. */
const encodeQuery = (params: URLSearchParams): string =>
  [...params].map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join("&")

/**
 * Answers `GET <entityset>` (or `GET <entityset>/$count` when `countOnly`).
 */
export const queryTable = (
  store: Store,
  table: TableStore,
  search: URLSearchParams,
  prefer: Prefer,
  webApiUrl: string,
  countOnly: boolean,
  visible?: (record: StoredRecord) => boolean,
  /** The path `@odata.nextLink` continues at: the entity set, or a filtered collection. */
  path: string = table.definition.entitySetName
): Reply => {
  const definition = table.definition
  const fetchXml = search.get("fetchXml")
  if (fetchXml !== null && !countOnly) return queryFetchXml(store, table, fetchXml, prefer, webApiUrl, visible)
  for (const option of unsupported) {
    if (search.has(option)) {
      return faultReply(badRequest(`The query option '${option}' is not available in this version of the emulator.`))
    }
  }
  if (search.has("$skip")) return faultReply(badRequest("The query parameter $skip is not supported."))
  const filterText = search.get("$filter")
  const filter = filterText === null || filterText.trim() === "" ? undefined : compileFilter(filterText, definition)
  if (filter instanceof Fault) return faultReply(filter)
  const where = both(filter, visible)
  // A filter on the primary key reads those records by id, not the whole table.
  const among = filterText === null ? undefined : primaryKeyCandidates(filterText, definition)
  const pageOf = (afterSeq: number, limit: number) =>
    among === undefined ? table.page(afterSeq, limit, where) : table.pageAmong(among, afterSeq, limit, where)
  const matching = () => pageOf(0, Number.MAX_SAFE_INTEGER).records
  const orderText = search.get("$orderby")
  const order = orderText === null || orderText.trim() === "" ? undefined : compileOrderBy(orderText, definition)
  if (order instanceof Fault) return faultReply(order)

  if (countOnly) {
    return { status: 200, body: String(Math.min(maxCount, matching().length)) }
  }
  const projected = projection(store, definition, search, prefer.annotations, webApiUrl)
  if (projected instanceof Fault) return faultReply(projected)
  const topText = search.get("$top")
  const top = topText === null ? undefined : Number(topText)
  if (top !== undefined && (!Number.isInteger(top) || top < 0)) {
    return faultReply(
      badRequest(
        `Invalid value '${topText}' for $top query option found. The $top query option requires a non-negative integer value.`
      )
    )
  }
  // As on the service: $top is ignored when a page size is asked for; page sizes above 5,000 are ignored.
  const askedPageSize = prefer.maxPageSize !== undefined && prefer.maxPageSize > 0 && prefer.maxPageSize <= maxPageSize
    ? prefer.maxPageSize
    : undefined
  const limit = askedPageSize === undefined ? top : undefined
  const cookie = readSkipToken(search.get("$skiptoken"))
  if (cookie instanceof Fault) return faultReply(cookie)
  const pageSize = Math.max(0, Math.min(askedPageSize ?? maxPageSize, (limit ?? Infinity) - cookie.returned))

  let records: Array<StoredRecord>
  let more: boolean
  let last: number
  if (order === undefined) {
    const page = pageSize === 0 ? { records: [], more: false } : pageOf(cookie.last, pageSize)
    records = page.records
    more = page.more
    last = records.at(-1)?.seq ?? cookie.last
  } else {
    const all = matching().sort(order)
    records = all.slice(cookie.last, cookie.last + pageSize)
    more = cookie.last + pageSize < all.length
    last = cookie.last + records.length
  }
  const value = records.map(projected.present)
  const body: Record<string, unknown> = { "@odata.context": projected.contextUrl(false) }
  if (search.get("$count") === "true") body["@odata.count"] = Math.min(maxCount, matching().length)
  body.value = value
  const returned = cookie.returned + records.length
  if (more && records.length > 0 && returned < (limit ?? Infinity)) {
    const next = new URLSearchParams(search)
    next.set("$skiptoken", writeSkipToken(cookie.page + 1, { last, returned }))
    body["@odata.nextLink"] = `${webApiUrl}${path}?${encodeQuery(next)}`
  }
  const applied = [
    ...(askedPageSize !== undefined ? [`odata.maxpagesize=${askedPageSize}`] : []),
    ...(prefer.annotations ? ["odata.include-annotations=\"*\""] : [])
  ]
  return { status: 200, body, headers: applied.length > 0 ? { "Preference-Applied": applied.join(",") } : {} }
}

/**
 * Answers `GET <entityset>(<id>)/<collection-valued navigation property>`, the filtered collection
 * (learn.microsoft.com, webapi/query/overview, "Filtered collections") that an expanded
 * collection's `<property>@odata.nextLink` names: the related records, queried and paged like
 * the entity set. Modelling choice: its `@odata.context` is the related entity set's.
 */
export const queryRelated = (
  store: Store,
  parent: TableStore,
  record: StoredRecord,
  property: string,
  search: URLSearchParams,
  prefer: Prefer,
  webApiUrl: string,
  countOnly: boolean
): Reply => {
  const navigation = navigationProperties(store, parent.definition).get(property)
  if (navigation === undefined) return faultReply(segmentNotFound(property))
  if (navigation._tag === "Single") {
    return faultReply(
      badRequest(
        `Reading a single-valued navigation property ('${property}') by its URL is not available in this version of the emulator: use $expand.`
      )
    )
  }
  const attribute = navigation.column.logicalName
  const owner = parent.definition.logicalName
  const pointsHere = (related: StoredRecord) => {
    const lookup = related.values[attribute] as LookupValue | null | undefined
    return lookup != null && lookup.id === record.id && lookup.table === owner
  }
  return queryTable(
    store,
    navigation.referencing,
    search,
    prefer,
    webApiUrl,
    countOnly,
    pointsHere,
    `${parent.definition.entitySetName}(${record.id})/${property}`
  )
}

/**
 * Answers `GET <entityset>?fetchXml=...` (wire reference, section 8): pages of `count` records
 * (at most 5,000), with `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` and
 * `@Microsoft.Dynamics.CRM.morerecords` while more follow (when annotations are asked for, as
 * clients must), and null columns omitted, as FetchXML results do.
 */
const queryFetchXml = (
  store: Store,
  table: TableStore,
  xml: string,
  prefer: Prefer,
  webApiUrl: string,
  visible: ((record: StoredRecord) => boolean) | undefined
): Reply => {
  const definition = table.definition
  const parsed = parseFetchXml(xml, (name) => store.table(name)?.definition, {
    records: (name) => store.table(name)?.scan() ?? []
  })
  if (parsed instanceof Fault) return faultReply(parsed)
  const plan = visible === undefined
    ? parsed
    : { ...parsed, predicate: (record: StoredRecord) => visible(record) && parsed.predicate(record) }
  if (plan.entity !== definition.logicalName) {
    return faultReply(
      badRequest(`The FetchXML queries '${plan.entity}' but was sent to '${definition.entitySetName}'.`)
    )
  }
  const pageSize = Math.min(maxPageSize, plan.count ?? maxPageSize, plan.top ?? maxPageSize)
  const page = plan.page ?? 1
  const cookie = plan.pagingCookie === undefined ? undefined : readFetchPagingCookie(plan.pagingCookie)
  let records: Array<StoredRecord>
  let more: boolean
  if (plan.compare === undefined && cookie?.lastSeq !== undefined) {
    const result = table.page(cookie.lastSeq, pageSize, plan.predicate)
    records = result.records
    more = result.more
  } else {
    const all = table.scan(plan.predicate)
    if (plan.compare !== undefined) all.sort(plan.compare)
    const start = (page - 1) * pageSize
    records = all.slice(start, start + pageSize)
    more = start + pageSize < all.length
  }
  if (plan.top !== undefined) more = false
  const columns = plan.attributes === "all"
    ? definition.columns
    // `createdby` and `modifiedby` are named like any attribute, declared or implied.
    : [
      ...definition.columns,
      ...auditColumns.filter((column) => columnsOf(definition).get(column.logicalName) === column)
    ]
      .filter((column) => (plan.attributes as ReadonlyArray<string>).includes(column.logicalName))
  // Modelling choice: pages count the main entity's records; a one-to-many link-entity adds a row
  // per linked record to the page.
  const value = records.flatMap((record) => {
    const row = present(definition, record, columns, prefer.annotations)
    for (const key of Object.keys(row)) if (row[key] === null) delete row[key]
    return plan.join(record, prefer.annotations).map((linked) => ({ ...row, ...linked }))
  })
  const body: Record<string, unknown> = { "@odata.context": `${webApiUrl}$metadata#${definition.entitySetName}`, value }
  if (plan.returnTotalRecordCount && prefer.annotations) {
    const total = table.scan(plan.predicate).length
    body["@Microsoft.Dynamics.CRM.totalrecordcount"] = Math.min(total, maxCount)
    body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = total > maxCount
  }
  if (more && records.length > 0 && prefer.annotations) {
    const inner = writeFetchInnerCookie(page, definition.primaryIdAttribute, records[0]!, records.at(-1)!)
    body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"] = writeFetchPagingCookie(page + 1, inner)
    body["@Microsoft.Dynamics.CRM.morerecords"] = true
  }
  return {
    status: 200,
    body,
    headers: prefer.annotations ? { "Preference-Applied": "odata.include-annotations=\"*\"" } : {}
  }
}

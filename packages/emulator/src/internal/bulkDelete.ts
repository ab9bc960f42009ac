/**
 * `POST BulkDelete`, the asynchronous mass delete of standard tables (wire reference, section 3):
 * a `QuerySet` of QueryExpressions, answered with `{"JobId"}`; the job then runs on its own and
 * its `asyncoperations(<id>)` record goes to statecode 3 (Completed) with statuscode 30
 * (Succeeded) or 31 (Failed).
 *
 * A QueryExpression's criteria are translated into FetchXML, so the emulator evaluates them with
 * the same code as FetchXML queries.
 */
import { randomUUID } from "node:crypto"
import type { Store, StoredRecord } from "../Store.js"
import { badRequest, Fault } from "./fault.js"
import { parseFetchXml } from "./fetchxml.js"
import { faultReply, type Reply } from "./reply.js"

/** ConditionOperator names (as the Web API serialises them) to FetchXML operators. */
const operators: Readonly<Record<string, string>> = {
  Equal: "eq",
  NotEqual: "ne",
  GreaterThan: "gt",
  GreaterEqual: "ge",
  LessThan: "lt",
  LessEqual: "le",
  Like: "like",
  NotLike: "not-like",
  In: "in",
  NotIn: "not-in",
  Null: "null",
  NotNull: "not-null",
  BeginsWith: "begins-with",
  DoesNotBeginWith: "not-begin-with",
  EndsWith: "ends-with",
  DoesNotEndWith: "not-end-with",
  Between: "between",
  NotBetween: "not-between"
}

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** A QueryExpression value: a bare JSON value, or `{"Value": ..., "Type": "System.String"}`. */
const valueText = (value: unknown): string => {
  const raw = typeof value === "object" && value !== null && "Value" in value
    ? (value as { Value: unknown }).Value
    : value
  return escape(String(raw))
}

/** Translates a FilterExpression into a FetchXML `<filter>`, or names what is wrong. */
const filterXml = (filter: unknown, path: string): string | Fault => {
  if (typeof filter !== "object" || filter === null) return badRequest(`${path} is not a FilterExpression.`)
  const { Conditions, FilterOperator, Filters } = filter as {
    FilterOperator?: unknown
    Conditions?: unknown
    Filters?: unknown
  }
  const type = FilterOperator === "Or" || FilterOperator === 1 ? "or" : "and"
  let xml = `<filter type="${type}">`
  for (const [i, condition] of (Array.isArray(Conditions) ? Conditions : []).entries()) {
    const { AttributeName, Operator, Values } = condition as {
      AttributeName?: unknown
      Operator?: unknown
      Values?: unknown
    }
    const operator = typeof Operator === "string" ? operators[Operator] : undefined
    if (typeof AttributeName !== "string" || operator === undefined) {
      return badRequest(
        `${path}.Conditions[${i}]: needs an AttributeName and one of the operators ${
          Object.keys(operators).join(", ")
        }.`
      )
    }
    const values = Array.isArray(Values) ? Values : []
    if (operator === "null" || operator === "not-null") {
      xml += `<condition attribute="${escape(AttributeName)}" operator="${operator}" />`
    } else if (values.length === 1 && operator !== "in" && operator !== "not-in") {
      xml += `<condition attribute="${escape(AttributeName)}" operator="${operator}" value="${valueText(values[0])}" />`
    } else {
      xml += `<condition attribute="${escape(AttributeName)}" operator="${operator}">${
        values.map((v) => `<value>${valueText(v)}</value>`).join("")
      }</condition>`
    }
  }
  for (const [i, nested] of (Array.isArray(Filters) ? Filters : []).entries()) {
    const inner = filterXml(nested, `${path}.Filters[${i}]`)
    if (inner instanceof Fault) return inner
    xml += inner
  }
  return `${xml}</filter>`
}

interface AsyncOperation {
  readonly asyncoperationid: string
  readonly name: string
  readonly operationtype: number
  statecode: number
  statuscode: number
  message: string | null
  readonly createdon: string
  completedon: string | null
}

/**
 * The mass-delete jobs and their `asyncoperations` records.
 */
export const makeBulkDelete = (store: Store, now: () => string) => {
  const operations = new Map<string, AsyncOperation>()

  const start = (body: unknown, webApiUrl: string): Reply => {
    const querySet = typeof body === "object" && body !== null ? (body as { QuerySet?: unknown }).QuerySet : undefined
    if (!Array.isArray(querySet) || querySet.length === 0) {
      return faultReply(badRequest("BulkDelete needs a QuerySet of one or more QueryExpressions."))
    }
    const plans: Array<{ table: string; predicate: (record: StoredRecord) => boolean }> = []
    for (const [i, query] of querySet.entries()) {
      const { Criteria, EntityName } = (query ?? {}) as { EntityName?: unknown; Criteria?: unknown }
      if (typeof EntityName !== "string") return faultReply(badRequest(`QuerySet[${i}] has no EntityName.`))
      const filter = Criteria === undefined ? "" : filterXml(Criteria, `QuerySet[${i}].Criteria`)
      if (filter instanceof Fault) return faultReply(filter)
      const plan = parseFetchXml(
        `<fetch><entity name="${escape(EntityName)}">${filter}</entity></fetch>`,
        (name) => store.table(name)?.definition
      )
      if (plan instanceof Fault) return faultReply(plan)
      if (store.table(EntityName)!.definition.tableType === "Elastic") {
        return faultReply(
          badRequest(`BulkDelete does not apply to the elastic table '${EntityName}'; use DeleteMultiple.`)
        )
      }
      plans.push({ table: EntityName, predicate: plan.predicate })
    }
    const jobName = (body as { JobName?: unknown }).JobName
    const operation: AsyncOperation = {
      asyncoperationid: randomUUID(),
      name: typeof jobName === "string" ? jobName : "Bulk Delete",
      operationtype: 13,
      statecode: 0,
      statuscode: 0,
      message: null,
      createdon: now(),
      completedon: null
    }
    operations.set(operation.asyncoperationid, operation)
    // The job runs after the answer, as the service's asynchronous service would.
    setImmediate(() => {
      operation.statecode = 2
      operation.statuscode = 20
      let deleted = 0
      const result = store.transaction(() => {
        for (const plan of plans) {
          const table = store.table(plan.table)!
          for (const record of table.scan(plan.predicate)) {
            table.remove(record.id)
            deleted++
          }
        }
        return true
      })
      operation.statecode = 3
      operation.statuscode = result instanceof Fault ? 31 : 30
      operation.message = result instanceof Fault ? result.message : `${deleted} records deleted.`
      operation.completedon = now()
    })
    return {
      status: 200,
      body: {
        "@odata.context": `${webApiUrl}$metadata#Microsoft.Dynamics.CRM.BulkDeleteResponse`,
        JobId: operation.asyncoperationid
      }
    }
  }

  const retrieve = (id: string, select: ReadonlyArray<string> | undefined, webApiUrl: string): Reply => {
    const operation = operations.get(id.toLowerCase())
    if (operation === undefined) {
      return faultReply(new Fault(404, "0x80040217", `asyncoperation With Id = ${id} Does Not Exist`))
    }
    const body: Record<string, unknown> = { "@odata.context": `${webApiUrl}$metadata#asyncoperations/$entity` }
    for (const [name, value] of Object.entries(operation)) {
      if (select === undefined || select.includes(name) || name === "asyncoperationid") body[name] = value
    }
    return { status: 200, body }
  }

  return { start, retrieve }
}

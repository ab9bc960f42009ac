import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type { RowOutcome } from "../../Bulk.js"
import type { DataverseClient } from "../../DataverseClient.js"
import { type DataverseError, isRunFailure } from "../../DataverseError.js"
import { quote } from "../odata.js"
import * as internalQuery from "../query.js"
import * as internalFilter from "../queryFilter.js"
import { lookUpInGroups } from "./lookupGroups.js"
import { isDuplicateKey, succeeded } from "./outcomes.js"
import type { RunPlan } from "./plan.js"
import { partitionOf, type Prepared } from "./prepare.js"
import { planSmart, type SmartItem } from "./smart.js"

/**
 * Exactly-once creates. Every create carries its id (the row's own, or one the engine chose), so
 * after an answer that never came, or a crash, the engine asks which of the ids exist and sends
 * only the others. The id the engine sent is the truth about a row's record, never its position
 * in an answer's `Ids`.
 */

/**
 * The reads that ask about creates, by partition: on an elastic table one group per partition,
 * its filter naming it, and every read sends the latest `x-ms-session-token` as
 * `MSCRM.SessionToken`, so that it sees the connection's own writes (wire reference §8b; without
 * it a record written moments ago may not show yet); on a standard table one group, no filter.
 */
const readsByPartition = (
  plan: RunPlan,
  items: ReadonlyArray<Prepared>
): Effect.Effect<{
  readonly groups: ReadonlyArray<{ readonly within: string | undefined; readonly items: ReadonlyArray<Prepared> }>
  readonly headers: Readonly<Record<string, string>> | undefined
}> =>
  Effect.gen(function*() {
    const byPartition = new Map<string | undefined, Array<Prepared>>()
    for (const item of items) {
      const partition = plan.elastic ? partitionOf(item.row) : undefined
      const group = byPartition.get(partition) ?? []
      group.push(item)
      byPartition.set(partition, group)
    }
    const session = plan.elastic ? (yield* plan.client.hints).sessionToken : Option.none()
    return {
      groups: [...byPartition].map(([partition, items]) => ({
        within: partition === undefined ? undefined : internalFilter.eq("partitionid", partition),
        items
      })),
      headers: Option.isSome(session) ? { "MSCRM.SessionToken": session.value } : undefined
    }
  })

/** Which of these creates' records exist (`readsByPartition`'s reads). */
export const existing = (
  plan: RunPlan,
  items: ReadonlyArray<Prepared>
): Effect.Effect<Set<string>, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const { metadata } = plan
    const pk = metadata.primaryIdAttribute
    const found = new Set<string>()
    const { groups, headers } = yield* readsByPartition(plan, items)
    for (const { items: inPartition, within } of groups) {
      yield* lookUpInGroups(
        internalFilter.groupsForFilter(inPartition.map((item) => item.id!), quote, internalFilter.maxInValues),
        (group) =>
          Effect.map(
            Stream.runCollect(
              internalQuery.stream(metadata.logicalName, {
                select: [pk],
                filter: within === undefined
                  ? internalFilter.isIn(pk, group)
                  : internalFilter.and(within, internalFilter.isIn(pk, group)),
                ...(headers === undefined ? {} : { headers })
              })
            ),
            (rows) => {
              for (const row of rows) {
                const id = row[pk]
                if (typeof id === "string") found.add(id.toLowerCase())
              }
            }
          )
      )
    }
    return found
  })

/**
 * `existing`, or none found when the check itself fails for a reason of its own: the rows are then
 * sent again (with the same ids, so nothing is created twice). A run failure, or an outage that
 * outlasted the retries, stops the run.
 */
export const existingOrNone = (
  plan: RunPlan,
  items: ReadonlyArray<Prepared>
): Effect.Effect<Set<string>, DataverseError, DataverseClient> =>
  Effect.catchIf(existing(plan, items), (error) => !isRunFailure(error), () => Effect.succeed(new Set<string>()))

/**
 * Which of these creates landed, after an answer that never came (or a run that stopped before
 * it): `existingOrNone`, but a row's own id proves less than an id the engine chose. An engine id
 * names only this run's record; a row's own id may name a record that was there before, and then
 * the create was refused as a duplicate, not written. Such a record counts as landed only when it
 * holds the row's values in every column a create writes (smart mode's comparison); otherwise the
 * row is sent again and fails as the duplicate it is. A value the service stores otherwise than
 * sent (money rounded to its precision, a plug-in's change) makes a landed row look like someone
 * else's: it then fails as a duplicate though its record is there, which loses nothing, where
 * taking a stranger's record for the row's would lose the row. A record that was there before
 * with the row's very values counts as landed: the row's data is there either way. On an elastic
 * table each partition is asked on its own with the latest session token (`readsByPartition`); a
 * write that lookup still misses (its answer and session token lost, §8b) is sent again, refused
 * as a duplicate, and compared again until its record shows (`confirmUnseenDuplicates`).
 */
export const landedOrNone = (
  plan: RunPlan,
  items: ReadonlyArray<Prepared>
): Effect.Effect<Set<string>, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const ownIds = items.filter((item) => !item.ownId)
    const engineIds = items.filter((item) => item.ownId)
    const found = engineIds.length === 0 ? new Set<string>() : yield* existingOrNone(plan, engineIds)
    if (ownIds.length === 0) return found
    for (const id of (yield* compareWithRecords(plan, ownIds)).same) found.add(id)
    return found
  })

/**
 * Which of these rows with their own ids have a record that holds the row's values (`same`), and
 * which a record that holds others (`other`), asked as `readsByPartition` asks. Only what a create
 * writes is compared: a column the service computes or ignores on create (a contact's fullname)
 * holds its own value, whoever created the record. One query (per partition on an elastic table)
 * finds the records by id and compares them, so that a record is seen and compared at one moment.
 * A row whose record does not show is in neither set, nor one whose comparison failed for a reason
 * of its own (it proves nothing). A run failure stops the run.
 */
const compareWithRecords = (
  plan: RunPlan,
  items: ReadonlyArray<Prepared>
): Effect.Effect<{ readonly same: Set<string>; readonly other: Set<string> }, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    const same = new Set<string>()
    const other = new Set<string>()
    const creatable = new Set(
      plan.metadata.columns.filter((column) => column.isValidForCreate).map((column) => column.logicalName)
    )
    const { groups, headers } = yield* readsByPartition(plan, items)
    for (const { items: inPartition, within } of groups) {
      const written = inPartition.map((item): SmartItem => {
        const row: Record<string, unknown> = {}
        for (const name in item.row) {
          if (name.endsWith("@odata.bind") || creatable.has(name)) row[name] = item.row[name]
        }
        return { index: item.index, id: item.id, row }
      })
      const compared = yield* Effect.either(
        planSmart({
          metadata: plan.metadata,
          items: written,
          key: undefined,
          create: false,
          update: false,
          allColumns: false,
          ...(within === undefined ? {} : { within }),
          ...(headers === undefined ? {} : { headers })
        })
      )
      if (compared._tag === "Left" && isRunFailure(compared.left)) return yield* compared.left
      if (compared._tag === "Right") {
        for (const { item } of compared.right.unchanged) same.add(item.id!)
        for (const { found, item } of compared.right.skipped) if (found) other.add(item.id!)
      }
    }
    return { same, other }
  })

/**
 * How long a row waits for its record to show, when the service refuses it as a duplicate but
 * reads do not show the record yet: 250 ms, doubling, six times (about 16 s in all). Reads outside
 * the session that wrote a record "might not include data changes that you've just made" (wire
 * reference §8b; Microsoft Learn, "Use elastic tables using code"); the replicas behind them
 * converge (Azure Cosmos DB's session consistency is eventual outside the session), so a record
 * the service holds shows within moments. Past the last wait the row fails as the duplicate it may
 * be: nothing is lost.
 */
const untilShown = Schedule.exponential("250 millis").pipe(Schedule.intersect(Schedule.recurs(6)))

/**
 * Rows with their own ids on an elastic table whose answer was lost, that no read showed landed
 * (`landedOrNone`: their session token was lost with the answer, §8b), sent again and refused as
 * duplicates (code 0x80040237): the refusal says the record is there, and it is either the lost
 * write's or another's. They are compared again, with the latest session token, until the record
 * shows: holding the row's values, the row is created; holding others, it is the duplicate it was
 * refused as. A record that does not show before `untilShown` ends leaves the row failed. Those
 * outcomes become `created`.
 */
export const confirmUnseenDuplicates = (
  plan: RunPlan,
  unseen: ReadonlyArray<Prepared>,
  outcomes: Array<RowOutcome>
): Effect.Effect<void, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    if (unseen.length === 0) return
    const byIndex = new Map(unseen.map((item) => [item.index, item]))
    let waiting = outcomes.flatMap((outcome) => {
      const item = byIndex.get(outcome.index)
      return item !== undefined && outcome.status === "failed" && isDuplicateKey(outcome.error) ? [item] : []
    })
    const landed = new Set<string>()
    const driver = yield* Schedule.driver(untilShown)
    while (waiting.length > 0) {
      const { other, same } = yield* compareWithRecords(plan, waiting)
      for (const id of same) landed.add(id)
      // A record that shows with other values is another's: the duplicate stands.
      waiting = waiting.filter((item) => !same.has(item.id!) && !other.has(item.id!))
      if (waiting.length === 0 || (yield* Effect.either(driver.next(undefined)))._tag === "Left") break
    }
    for (let i = 0; i < outcomes.length; i++) {
      const item = byIndex.get(outcomes[i]!.index)
      if (item !== undefined && outcomes[i]!.status === "failed" && landed.has(item.id!)) {
        outcomes[i] = succeeded("create", item, item.id)
      }
    }
  })

/**
 * Creates refused as duplicates (code 0x80040237) of an id the engine chose: an earlier attempt,
 * whose answer was lost, created them. On a standard table the record is looked up first, since
 * the duplicate may be of an alternate key (another record's). An elastic table has no alternate
 * keys (wire reference §8b): the duplicate is the engine's own id, and a lookup could miss the
 * write whose answer (and session token) was lost, so it is taken as created. Those outcomes
 * become `created`.
 */
export const confirmOwnDuplicates = (
  plan: RunPlan,
  items: ReadonlyArray<Prepared>,
  outcomes: Array<RowOutcome>
): Effect.Effect<void, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    // Most chunks have none: no index of their rows is built for them.
    if (!outcomes.some((outcome) => outcome.status === "failed" && isDuplicateKey(outcome.error))) return
    const byIndex = new Map(items.map((item) => [item.index, item]))
    const own = outcomes.flatMap((outcome) => {
      const item = byIndex.get(outcome.index)
      return outcome.status === "failed" && isDuplicateKey(outcome.error) && item?.ownId === true ? [item] : []
    })
    if (own.length === 0) return
    const found = plan.elastic ? new Set(own.map((item) => item.id!)) : yield* existingOrNone(plan, own)
    for (let i = 0; i < outcomes.length; i++) {
      const item = byIndex.get(outcomes[i]!.index)!
      if (item.ownId && outcomes[i]!.status === "failed" && found.has(item.id!)) {
        outcomes[i] = succeeded("create", item, item.id)
      }
    }
  })

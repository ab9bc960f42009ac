import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { BulkOptions, Operation, Plan, Progress, RowInput, RowOutcome } from "../../Bulk.js"
import { DataverseClient } from "../../DataverseClient.js"
import { DataverseError, isRunFailure } from "../../DataverseError.js"
import type { JournalError } from "../../Journal.js"
import { isStream, toStream } from "../input.js"
import { estimateBytes, makeChunkSizer } from "./chunking.js"
import { landedOrNone } from "./exactlyOnce.js"
import { currentExposure, type Exposure, isExposed, makeExposure } from "./exposure.js"
import { combined, type Identity, makeIdentities, progressOf } from "./identities.js"
import { idMaker, newRunId } from "./ids.js"
import { failedAll, succeeded } from "./outcomes.js"
import { makePasses } from "./passes.js"
import { messageOf, planRun, type RunPlan, sendsWith } from "./plan.js"
import { invalidRowError, isInvalidRow, makePrepare, type Prepared, recordIdentity } from "./prepare.js"
import { type SendContext, sendResilient } from "./resilient.js"
import { checkSameInput } from "./sameInput.js"
import { makeBindCache, planSmart } from "./smart.js"
import { makeChunkSource } from "./source.js"

/** Rows the input is read in: the buffer ahead of the requests holds eight such chunks. */
const readAheadChunk = 256

/** The smallest request the even split of an input's last rows makes. */
const tailChunkSize = 25

/** A row that cannot be sent, and why: its failed outcome. */
interface Unsendable {
  readonly index: number
  readonly error: DataverseError
}

/** A row as read: prepared to send, or why it cannot be sent. */
type Entry = Prepared | Unsendable

/** Told by its `error`, which `Prepared` has no field of. */
const isUnsendable = (entry: Entry): entry is Unsendable => "error" in entry

/** What stops a run: a run failure of the service, or of its journal. */
export type RunError = DataverseError | JournalError

/** One chunk's outcomes, and the journal entry that finishes them. */
export interface ChunkResult {
  readonly outcomes: ReadonlyArray<RowOutcome>
  readonly finish: Effect.Effect<void, JournalError>
}

/** A run, ready to go. */
export interface Engine<E, R> {
  /** The run's chunks, in the order their requests finish. */
  readonly chunks: Stream.Stream<ChunkResult, RunError | E, DataverseClient | R>
  readonly progress: () => Progress
  readonly finishedBefore: { readonly succeeded: number; readonly failed: number }
  readonly plan: Plan
  /** A row of the input ready to send, or why not (an `InvalidRow`'s message, or validation's). */
  readonly prepare: (input: RowInput, index: number) => Prepared | DataverseError
  /**
   * Once the run is done: fails when an earlier run of the journal read rows past the end of this
   * input and did not finish them all (a resume over an input cut shorter would otherwise end as
   * if complete).
   */
  readonly inputEnded: Effect.Effect<void, JournalError>
}

/**
 * Builds a run: checks the options, opens the journal, and wires the rows through validation,
 * the passes that keep one record out of two requests, the chunk source, the connection's
 * controller (its slots and Retry-After hold) and the senders.
 */
export const makeEngine = <E, R>(
  operation: Operation,
  table: string,
  rows: Iterable<RowInput> | Stream.Stream<RowInput, E, R>,
  options: BulkOptions
): Effect.Effect<Engine<E, R>, RunError, DataverseClient | Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* DataverseClient
    // A run failure of any identity's request names that identity (DataverseClient.make).
    const plan = yield* planRun(operation, table, options)
    const { metadata } = plan
    // Each identity has its own controller and ceiling; their ceilings add up.
    const identities = yield* makeIdentities(client, options.concurrency)
    const ceiling = identities.reduce((sum, identity) => sum + identity.ceiling, 0)
    const session = options.journal === undefined
      ? undefined
      : yield* options.journal.open({ operation, table, input: options.inputIdentity })
    const idFor = idMaker(session?.state.runId ?? newRunId())
    const prepare = makePrepare({ operation, metadata, key: plan.key, smart: plan.smart !== undefined, idFor })
    /** A row of the input ready to send, or why not: its reader's refusal or validation's. */
    const prepareInput = (input: RowInput, index: number): Prepared | DataverseError =>
      isInvalidRow(input) ? invalidRowError(input) : prepare(input, index)
    const sizer = plan.strategy === "single"
      ? makeChunkSizer({ fixed: typeof plan.chunkSize === "number" ? plan.chunkSize : 10 })
      : typeof plan.chunkSize === "number"
      ? makeChunkSizer({ fixed: plan.chunkSize })
      : makeChunkSizer({ start: 100, max: plan.elastic ? 100 : 1000, targetMs: plan.targetLatencyMs })
    const retryPolicy = options.retryPolicy ?? client.retryPolicy

    const counters = {
      succeeded: 0,
      failed: 0,
      resumed: 0,
      retries: 0,
      inFlight: 0,
      rowsInFlight: 0,
      checking: 0,
      landedBefore: 0
    }
    // Rows an earlier run sent without an answer: looked up before they are sent again.
    const unanswered = session === undefined ? new Set<number>() : new Set(session.state.unanswered)
    counters.checking = unanswered.size
    // Rows handed out to requests and not finished: the tail's sizing counts them half done.
    let rowsHandedOut = 0
    const moveRowsInFlight = (identity: Identity, rows: number, sign: 1 | -1) => {
      counters.rowsInFlight += sign * rows
      identity.counters.rowsInFlight += sign * rows
    }
    const snapshot = (now: number): Progress => {
      const each = identities.map((identity) => progressOf(identity, now))
      const { concurrency, requests, throttled, waitingUntil } = combined(each)
      return {
        ...counters,
        requests,
        throttled,
        concurrency,
        chunkSize: sizer.current(),
        waitingMs: waitingUntil === undefined ? 0 : waitingUntil - now,
        waitingUntil,
        identities: each
      }
    }
    const reportAt = (now: number) => {
      if (options.onProgress === undefined && options.progress === undefined) return
      const progress = snapshot(now)
      options.onProgress?.(progress)
      options.progress?.unsafeOffer(progress)
    }
    const report = Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => reportAt(now)))
    // A Retry-After is reported when it starts, not only when a chunk next finishes.
    for (const identity of identities) yield* identity.client.controller.onHold((_, now) => reportAt(now))
    const limit = () => identities.reduce((sum, identity) => sum + identity.client.controller.state().limit, 0)

    /** Smart mode: look the records up, then create, update or leave each row. */
    const bindCache = makeBindCache()
    const smartGroups = (items: ReadonlyArray<Prepared>) =>
      Effect.gen(function*() {
        const smart = plan.smart!
        const decided = yield* planSmart({
          metadata,
          items,
          key: plan.key,
          create: smart.create ?? true,
          update: smart.update ?? true,
          allColumns: smart.allColumns ?? false,
          bindCache
        })
        const outcomes: Array<RowOutcome> = [
          ...decided.unchanged.map(({ id, item }): RowOutcome => ({ index: item.index, status: "unchanged", id })),
          ...decided.skipped.map(({ id, item }): RowOutcome => ({ index: item.index, status: "skipped", id })),
          ...decided.ambiguous.map(({ item, records }): RowOutcome => ({
            index: item.index,
            status: "failed",
            error: new DataverseError({
              reason: "InvalidInput",
              message: `its ${(plan.key ?? []).join(", ")} ${
                (plan.key ?? []).length === 1 ? "value matches" : "values match"
              } ${records} records of ${metadata.logicalName}: smart mode cannot tell which to change (name records by a key that is unique)`
            })
          }))
        ]
        const creates = decided.create.map((item): Prepared =>
          item.id !== undefined
            ? { index: item.index, row: item.row, ref: undefined, id: item.id, ownId: false }
            : { index: item.index, row: item.row, ref: undefined, id: idFor(item.index), ownId: true }
        )
        const updates = decided.update.map(({ id, item, row }): Prepared => ({
          index: item.index,
          row,
          ref: id,
          id,
          ownId: false
        }))
        return { outcomes, groups: [["create", creates], ["update", updates]] as const }
      })

    /**
     * Creates a stopped run sent without an answer may have landed: those found are done. The rest
     * are sent; on an elastic table those with their own ids are `unseen` (`sendResilient`): the
     * stopped run's session tokens are gone, so a read may not show what it wrote (§8b).
     */
    const landedBefore = (items: ReadonlyArray<Prepared>, outcomes: Array<RowOutcome>) =>
      Effect.gen(function*() {
        const none = { pending: items, unseen: [] as ReadonlyArray<Prepared> }
        if (session === undefined) return none
        const unsure = items.filter((item) => unanswered.has(item.index))
        if (unsure.length === 0) return none
        yield* report
        const found = yield* landedOrNone(plan, unsure)
        for (const item of unsure) {
          unanswered.delete(item.index)
          if (found.has(item.id!)) {
            counters.landedBefore++
            outcomes.push(succeeded("create", item, item.id))
          }
        }
        counters.checking = unanswered.size
        return {
          pending: items.filter((item) => !(found.has(item.id!) && session.state.unanswered.has(item.index))),
          unseen: plan.elastic ? unsure.filter((item) => !item.ownId && !found.has(item.id!)) : []
        }
      })

    /**
     * Creates this run journalled as sent, whose request stops (Ctrl-C, a run failure) before any
     * of its writes went on the wire without a 429 for an answer: journalled as not sent after
     * all, so that a resume does not look them up. Not rows an earlier run sent without an answer:
     * they may have landed whatever this run's lookup found (its session tokens are gone, §8b; a
     * request it cancelled may still commit). Best effort: if the entry cannot be written, they are
     * looked up.
     */
    const unsentOnStop = <A, E, R>(send: Effect.Effect<A, E, R>, items: ReadonlyArray<Prepared>, exposure: Exposure) =>
      Effect.onExit(send, (exit) => {
        if (!Exit.isFailure(exit) || isExposed(exposure) || session?.unsent === undefined) return Effect.void
        const sentFirstNow = items.filter((item) => !session.state.unanswered.has(item.index))
        return sentFirstNow.length === 0
          ? Effect.void
          : Effect.ignore(session.unsent(sentFirstNow.map((item) => item.index)))
      })

    /** One request's rows: plan (smart mode), journal, send, journal, report. */
    const processChunk = (entries: ReadonlyArray<Entry>, round: number, identity: Identity, context: SendContext) => {
      const items: Array<Prepared> = []
      // Rows in flight are what a stop right now leaves unsure: those of a request whose writes
      // went on the wire without a 429 for an answer (exposure.ts), reported as that changes, and
      // left counted when the run stops before their answer (the last progress then says how many).
      const exposure = makeExposure((exposed) =>
        Effect.suspend(() => {
          moveRowsInFlight(identity, items.length, exposed ? 1 : -1)
          return report
        })
      )
      return Effect.gen(function*() {
        const outcomes: Array<RowOutcome> = []
        for (let i = 0; i < entries.length; i++) {
          const entry = entries[i]!
          if (isUnsendable(entry)) outcomes.push({ index: entry.index, status: "failed", error: entry.error })
          else items.push(entry)
        }
        counters.inFlight++
        identity.counters.inFlight++
        rowsHandedOut += items.length
        if (items.length > 0) yield* report
        let groups: ReadonlyArray<readonly [Operation, ReadonlyArray<Prepared>]> = [[operation, items]]
        if (plan.smart !== undefined && items.length > 0) {
          const planned = yield* Effect.either(smartGroups(items))
          if (planned._tag === "Left") {
            if (isRunFailure(planned.left)) return yield* planned.left
            for (const outcome of failedAll(items, planned.left)) outcomes.push(outcome)
            groups = []
          } else {
            for (const outcome of planned.right.outcomes) outcomes.push(outcome)
            groups = planned.right.groups
          }
        }
        for (const [op, group] of groups) {
          if (group.length === 0) continue
          let pending = group
          let unseen: ReadonlyArray<Prepared> = []
          if (op === "create" && session !== undefined) {
            const before = yield* landedBefore(group, outcomes)
            pending = before.pending
            unseen = before.unseen
            if (pending.length > 0) yield* session.sent(pending.map((item) => item.index))
          }
          if (pending.length > 0) {
            const sent = sendResilient(context, op, pending, round, unseen)
            for (const outcome of yield* (op === "create" ? unsentOnStop(sent, pending, exposure) : sent)) {
              outcomes.push(outcome)
            }
          }
        }
        // In input order for the journal's ranges; most chunks already are.
        if (!ordered(outcomes)) outcomes.sort((a, b) => a.index - b.index)
        const ok: Array<number> = []
        // A failed outcome is the row's own fault (a run failure stops the run instead): final.
        const failed: Array<number> = []
        for (const outcome of outcomes) {
          if (outcome.status === "failed") {
            counters.failed++
            identity.counters.failed++
            failed.push(outcome.index)
          } else {
            counters.succeeded++
            identity.counters.succeeded++
            ok.push(outcome.index)
          }
        }
        counters.inFlight--
        identity.counters.inFlight--
        rowsHandedOut -= items.length
        if (isExposed(exposure)) moveRowsInFlight(identity, items.length, -1)
        yield* report
        // Journalled once the outcomes have been handed on (see `execute`): a row is finished only
        // after its caller has seen, and e.g. written to a rejects file, its outcome.
        const finish = session === undefined ? Effect.void : session.finished(ok, failed)
        return { outcomes, finish } satisfies ChunkResult
      }).pipe(
        // Lookups, existence checks and metadata go as the identity that sends the chunk.
        Effect.provideService(DataverseClient, identity.client),
        Effect.locally(currentExposure, exposure)
      )
    }

    /** How each identity sends: the plan with its connection, its retries counted to it. */
    const contexts = new Map(identities.map((identity): [Identity, SendContext] => [identity, {
      plan: { ...plan, client: identity.client, sizer },
      sizer,
      retryPolicy,
      onRetry: () => {
        counters.retries++
        identity.counters.retries++
      }
    }]))

    // Rows of an input of known length. Near its end, requests share what is left evenly, so that
    // every worker finishes at about the same time instead of one answering a full chunk alone at
    // the end. What is left counts the rows in flight as half done, as on average they are.
    const knownTotal = Array.isArray(rows) ? rows.length : undefined
    const sizeAt = (handedOut: number) =>
      knownTotal === undefined || !sizer.adaptive
        ? sizer.current()
        : Math.min(
          sizer.current(),
          Math.max(
            tailChunkSize,
            Math.ceil((knownTotal - handedOut + rowsHandedOut / 2) / limit())
          )
        )

    /**
     * Sends a pass: rows are validated ahead (in a buffer), and each request is formed when a slot
     * of the controller frees, at the size of that moment.
     */
    const sendAll = <E2, R2>(
      input: Stream.Stream<Entry, E2, R2>
    ): Stream.Stream<ChunkResult, RunError | E2, DataverseClient | R2> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const source = yield* makeChunkSource(Stream.bufferChunks(input, { capacity: 8 }), {
          size: sizeAt,
          maxBytes: plan.maxRequestBytes,
          bytesOf: (entry) => (isUnsendable(entry) ? 0 : estimateBytes(entry.row)),
          counts: (entry) => !isUnsendable(entry)
        })
        // Each identity's workers take a slot of its own controller, then the next rows of the
        // shared source: rows go to whichever identity has room, and a throttled one pauses alone.
        const worker = (identity: Identity) =>
          Stream.repeatEffectOption(
            identity.client.controller.withSlot((round) =>
              source.next.pipe(
                Effect.mapError((error): Option.Option<RunError | E2> => Option.some(error)),
                Effect.flatMap(Option.match({
                  onNone: () => Effect.fail(Option.none()),
                  onSome: (chunk) =>
                    Effect.mapError(
                      processChunk(chunk, round, identity, contexts.get(identity)!),
                      (error): Option.Option<RunError | E2> => Option.some(error)
                    )
                }))
              )
            )
          )
        return Stream.mergeAll(
          identities.flatMap((identity) => Array.from({ length: identity.ceiling }, () => worker(identity))),
          { concurrency: "unbounded" }
        )
      }))

    // First occurrences go now; a record seen before waits for a later pass.
    const identityOf = (entry: Entry) => isUnsendable(entry) ? undefined : recordIdentity(operation, entry, plan.key)
    const passes = makePasses<Entry>(identityOf)
    /** A row of the input: prepared, and kept for a later pass if its record went before. */
    const admitted = (input: RowInput, index: number): Entry | undefined => {
      if (session !== undefined && session.state.isFinished(index)) {
        counters.resumed++
        options.onResumed?.(index)
        return undefined
      }
      const prepared = prepareInput(input, index)
      const entry: Entry = prepared instanceof DataverseError ? { index, error: prepared } : prepared
      return passes.admit(entry, identityOf(entry)) ? entry : undefined
    }
    // One stage over each chunk of the input (rows are prepared ahead, in sendAll's buffer): a
    // stage per step would cost more CPU than the steps themselves. The input goes in chunks of
    // `readAheadChunk` rows: the buffer then holds few rows (a prepared row kept long outlives
    // the young generation, and the collector pays for it twice), and a stream's small chunks
    // (a parser's) do not each pay the buffer's hand-over.
    // Without the caller's name for the input, the journal checks its rows (the first ones, then
    // every 32nd) before any row read with them is skipped or sent. A caller's name wins: rows may
    // carry values of their run (a load's time).
    const sameInput = checkSameInput(options.inputIdentity === undefined ? session : undefined)
    const input: Stream.Stream<RowInput, E | JournalError, R> = sameInput.check(
      isStream(rows) ? Stream.rechunk(rows, readAheadChunk) : toStream(rows, readAheadChunk)
    )
    const firstPass = Stream.suspend(() => {
      let index = 0
      return Stream.mapChunks(input, (chunk) => {
        const inputs = Chunk.toReadonlyArray(chunk)
        const out: Array<Entry> = []
        for (let i = 0; i < inputs.length; i++) {
          const entry = admitted(inputs[i]!, index++)
          if (entry !== undefined) out.push(entry)
        }
        return Chunk.unsafeFromArray(out)
      })
    })
    const laterPasses = (): Stream.Stream<ChunkResult, RunError, DataverseClient> => {
      const pass = passes.next()
      return pass.length === 0
        ? Stream.empty
        : Stream.concat(sendAll(Stream.fromIterable(pass)), Stream.suspend(laterPasses))
    }
    // A last report when the run ends, not when it stops: the waits a stop tears down would read as
    // requests in flight with no Retry-After (each change before it was reported as it came).
    const chunks = Stream.concat(sendAll(firstPass), Stream.suspend(laterPasses)).pipe(
      Stream.ensuringWith((exit) => Exit.isSuccess(exit) ? report : Effect.void)
    )
    return {
      chunks,
      progress: () => snapshot(Date.now()),
      finishedBefore: session?.state.finishedBefore ?? { succeeded: 0, failed: 0 },
      plan: publicPlan(plan, sizer.current(), ceiling),
      prepare: prepareInput,
      inputEnded: sameInput.ended
    }
  })

const ordered = (outcomes: ReadonlyArray<RowOutcome>) => {
  for (let i = 1; i < outcomes.length; i++) if (outcomes[i - 1]!.index > outcomes[i]!.index) return false
  return true
}

const publicPlan = (plan: RunPlan, startChunkSize: number, concurrency: number): Plan => {
  const strategy = sendsWith(plan, plan.operation)
  return {
    table: plan.metadata.logicalName,
    entitySet: plan.metadata.entitySetName,
    tableType: plan.metadata.tableType,
    operation: plan.operation,
    strategy,
    message: strategy === "multiple" ? messageOf[plan.operation] : undefined,
    chunkSize: plan.chunkSize,
    startChunkSize,
    concurrency,
    maxRequestBytes: plan.maxRequestBytes
  }
}

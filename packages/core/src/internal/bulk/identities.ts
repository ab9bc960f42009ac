import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { IdentityProgress } from "../../Bulk.js"
import { type ControllerState, DataverseClient, type DataverseClientService, whoAmI } from "../../DataverseClient.js"
import type { DataverseError } from "../../DataverseError.js"
import { invalid } from "../invalidInput.js"

/** The service's concurrent-request limit per user and web server (wire reference §6). */
const maxConcurrency = 52

/**
 * `"auto"` concurrency: the service's `x-ms-dop-hint` (wire reference §6: "read it from a cheap
 * first call"), from a `WhoAmI` when no answer has reported it yet; 4 when the service gives none.
 */
export const resolveConcurrency = (
  concurrency: number | "auto" | undefined
): Effect.Effect<number, DataverseError, DataverseClient> =>
  Effect.gen(function*() {
    if (typeof concurrency === "number") {
      if (!Number.isInteger(concurrency) || concurrency < 1) {
        return yield* invalid(`concurrency must be a positive whole number or "auto", got ${concurrency}.`)
      }
      return concurrency
    }
    const client = yield* DataverseClient
    let hint = (yield* client.hints).dopHint
    if (Option.isNone(hint)) {
      yield* whoAmI
      hint = (yield* client.hints).dopHint
    }
    return Math.min(maxConcurrency, Option.getOrElse(hint, () => 4))
  })

/**
 * One identity (application user) of a run: its own connection, controller and ceiling, and
 * what it has done. The service's limits are per user (wire reference §6), so each identity's
 * requests are throttled, paced and counted on their own; the run's rows go to whichever has a
 * free slot.
 */
export interface Identity {
  readonly client: DataverseClientService
  /** Its most requests in flight: its own dop hint under `"auto"`, else the run's number. */
  readonly ceiling: number
  readonly counters: {
    succeeded: number
    failed: number
    retries: number
    inFlight: number
    rowsInFlight: number
  }
  /** Its controller's counts when the run started: the run reports its own requests. */
  readonly atStart: ControllerState
}

/**
 * The run's identities, each with its ceiling set. With several, each signs in first (a `WhoAmI`,
 * which also reads its dop hint), so that a bad credential stops the run before any row goes, and
 * two identities of one user are refused: the service's limits are per user (wire reference §6),
 * so a second identity of the same user adds nothing. With one, `"auto"` reads the dop hint.
 */
export const makeIdentities = (
  client: DataverseClientService,
  concurrency: number | "auto" | undefined
): Effect.Effect<ReadonlyArray<Identity>, DataverseError> =>
  Effect.gen(function*() {
    const several = client.identities.length > 1
    const users = several
      ? yield* Effect.forEach(client.identities, (identity) =>
        whoAmI.pipe(
          Effect.provideService(DataverseClient, identity),
          Effect.map((me) => me.UserId)
        ), { concurrency: "unbounded" })
      : []
    const seen = new Map<string, DataverseClientService>()
    for (const [i, userId] of users.entries()) {
      const identity = client.identities[i]!
      const before = seen.get(userId)
      if (before !== undefined) {
        return yield* invalid(
          `identities ${before.label} and ${identity.label} sign in as the same user (${userId}); the service's limits are per user, so give each identity its own application user.`
        )
      }
      seen.set(userId, identity)
    }
    return yield* Effect.forEach(client.identities, (identity) =>
      resolveConcurrency(concurrency).pipe(
        Effect.provideService(DataverseClient, identity),
        Effect.tap((ceiling) => identity.controller.setCeiling(ceiling)),
        Effect.map((ceiling): Identity => ({
          client: identity,
          ceiling,
          counters: { succeeded: 0, failed: 0, retries: 0, inFlight: 0, rowsInFlight: 0 },
          atStart: identity.controller.state()
        }))
      ), { concurrency: "unbounded" })
  })

/** What one identity has done in the run so far. */
export const progressOf = (identity: Identity, now: number): IdentityProgress => {
  const state = identity.client.controller.state()
  return {
    label: identity.client.label,
    ...identity.counters,
    requests: state.requests - identity.atStart.requests,
    throttled: state.throttled - identity.atStart.throttled,
    concurrency: state.limit,
    waitingUntil: state.waitingUntil > now ? state.waitingUntil : undefined
  }
}

/**
 * The run's totals over its identities. It waits for a Retry-After only while every identity
 * does (one throttled identity pauses alone), until the first of them may go again.
 */
export const combined = (identities: ReadonlyArray<IdentityProgress>) => {
  let requests = 0
  let throttled = 0
  let concurrency = 0
  let waitingUntil: number | undefined = Infinity
  for (const identity of identities) {
    requests += identity.requests
    throttled += identity.throttled
    concurrency += identity.concurrency
    waitingUntil = identity.waitingUntil === undefined || waitingUntil === undefined
      ? undefined
      : Math.min(waitingUntil, identity.waitingUntil)
  }
  return { requests, throttled, concurrency, waitingUntil: waitingUntil === Infinity ? undefined : waitingUntil }
}

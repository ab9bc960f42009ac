import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * The run's own view of the service's execution-time window. Dataverse charges a request's
 * execution time when it completes and refuses new requests while the charges of the last window
 * reach the budget; the 429 that says so names the budget and the window ("exceeded limit of
 * 1,200,000 milliseconds over time window of 300 seconds"). From then on the engine keeps the
 * same account of its own requests (their round trips, a little more than what the service
 * charges) and holds new requests until the window has room, instead of learning it from more
 * 429s, each of which lengthens the wait. Before the first such 429 nothing is held: an unspent
 * window admits everything.
 */
export interface ExecutionBudget {
  /** Learns the budget from an execution-time 429's message; false when it names none. */
  readonly learn: (message: string) => boolean
  /** A request answered at `at` after running `ms`. */
  readonly record: (at: number, ms: number) => void
  /** Milliseconds until the window has room at `now`, with the budget of `servers` web servers. */
  readonly delay: (now: number, servers: number) => number
  /** Waits until the window has room. */
  readonly wait: (servers: () => number) => Effect.Effect<void>
}

/** Reads "limit of 1,200,000 milliseconds over time window of 300 seconds". */
export const parseExecutionLimit = (
  message: string
): { readonly budgetMs: number; readonly windowMs: number } | undefined => {
  const match = /limit of ([\d,.]+) milliseconds over time window of ([\d,.]+) seconds/i.exec(message)
  if (match === null) return undefined
  const budgetMs = Number(match[1]!.replace(/,/g, ""))
  const windowMs = Number(match[2]!.replace(/,/g, "")) * 1000
  return budgetMs > 0 && windowMs > 0 ? { budgetMs, windowMs } : undefined
}

export const makeExecutionBudget = (): ExecutionBudget => {
  let limit: { readonly budgetMs: number; readonly windowMs: number } | undefined
  // Answers in the order they came: (time, ms), oldest first from `head`.
  const at: Array<number> = []
  const ms: Array<number> = []
  let head = 0
  let sum = 0
  const expire = (now: number, windowMs: number) => {
    while (head < at.length && at[head]! <= now - windowMs) {
      sum -= ms[head]!
      head++
    }
    if (head > 1024) {
      at.splice(0, head)
      ms.splice(0, head)
      head = 0
    }
  }
  const delay = (now: number, servers: number): number => {
    if (limit === undefined) return 0
    const windowMs = limit.windowMs
    expire(now, windowMs)
    const budget = limit.budgetMs * Math.max(1, servers)
    if (sum < budget) return 0
    let left = sum
    for (let i = head; i < at.length; i++) {
      left -= ms[i]!
      if (left < budget) return Math.max(1, at[i]! + windowMs - now + 1)
    }
    return 1
  }
  const wait = (servers: () => number): Effect.Effect<void> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const ms = delay(now, servers())
      return ms > 0 ? Effect.zipRight(Effect.sleep(Duration.millis(ms)), wait(servers)) : Effect.void
    })
  return {
    learn: (message) => {
      const parsed = parseExecutionLimit(message)
      if (parsed !== undefined) limit = parsed
      return parsed !== undefined
    },
    record: (time, spent) => {
      // Until a 429 names the window, keep the service's documented one (300 s).
      expire(time, limit?.windowMs ?? 300_000)
      at.push(time)
      ms.push(spent)
      sum += spent
    },
    delay,
    wait
  }
}

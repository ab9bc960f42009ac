import { makeSeenIdentities } from "./seen.js"

/**
 * The same record is never in two requests in flight (wire reference §3: concurrent writes to one
 * record can deadlock, UpdateMultiple drops a second target with the same key, UpsertMultiple
 * refuses it). A row whose record already appeared in the run waits for a later pass; each pass
 * ends before the next starts, so the last occurrence wins, as it would one by one.
 */
export interface Passes<A> {
  /** Whether the row goes now; if not, it is kept for a later pass. */
  readonly admit: (item: A, identity: string | undefined) => boolean
  /** The next pass: the first occurrence of each record among the rows kept back. */
  readonly next: () => ReadonlyArray<A>
}

export const makePasses = <A>(identityOf: (item: A) => string | undefined): Passes<A> => {
  const seen = makeSeenIdentities()
  let deferred: Array<A> = []
  return {
    admit: (item, identity) => {
      if (identity === undefined || seen.add(identity)) return true
      deferred.push(item)
      return false
    },
    next: () => {
      const now: Array<A> = []
      const later: Array<A> = []
      const inPass = new Set<string>()
      for (const item of deferred) {
        const identity = identityOf(item)
        if (identity !== undefined && inPass.has(identity)) later.push(item)
        else {
          if (identity !== undefined) inPass.add(identity)
          now.push(item)
        }
      }
      deferred = later
      return now
    }
  }
}

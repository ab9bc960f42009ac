import * as Effect from "effect/Effect"
import { DataverseError } from "../../DataverseError.js"

/** A refusal of the request's size: its body, or its URL or headers (413, 414, 431). */
const tooLarge = (error: unknown): boolean => error instanceof DataverseError && error.reason === "PayloadTooLarge"

/**
 * Looks `groups` up, one GET each (`lookup`), in order. A group whose request the service, or a
 * proxy before it, refuses as too large is looked up again in two halves, down to single values:
 * a URL limit shorter than the documented 32 KB (wire reference §8) costs GETs, not rows.
 */
export const lookUpInGroups = <A, E, R>(
  groups: ReadonlyArray<ReadonlyArray<A>>,
  lookup: (group: ReadonlyArray<A>) => Effect.Effect<void, E, R>
): Effect.Effect<void, E, R> => {
  const one = (group: ReadonlyArray<A>): Effect.Effect<void, E, R> =>
    Effect.catchIf(lookup(group), (error) => group.length > 1 && tooLarge(error), () => {
      const half = Math.ceil(group.length / 2)
      return Effect.zipRight(one(group.slice(0, half)), one(group.slice(half)))
    })
  return Effect.forEach(groups, one, { discard: true })
}

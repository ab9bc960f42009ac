import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"

/**
 * Whether the rows of one request of a run may have landed, for what a run says when it stops
 * (`Progress.rowsInFlight`). They may once one of the request's writes went on the wire and came
 * back with anything but a 429, or did not come back: a 429 did nothing (wire reference §6). Until
 * then they did not, however long the request waited: for a slot, a Retry-After, smart mode's
 * lookups. Reads (lookups, existence checks) write nothing and are not followed.
 */
export interface Exposure {
  /** Writes of the request on the wire now. */
  onWire: number
  /** A write of the request went on the wire and was not refused with a 429. */
  unsure: boolean
  /** Told when `isExposed` changes. */
  readonly onChange: (exposed: boolean) => Effect.Effect<void>
}

export const makeExposure = (onChange: (exposed: boolean) => Effect.Effect<void>): Exposure => ({
  onWire: 0,
  unsure: false,
  onChange
})

/** Whether the request's rows may have landed. */
export const isExposed = (exposure: Exposure): boolean => exposure.onWire > 0 || exposure.unsure

/** The request of a run the current fiber sends for; none outside a run's requests. */
export const currentExposure: FiberRef.FiberRef<Exposure | undefined> = FiberRef.unsafeMake<Exposure | undefined>(
  undefined
)

/** One attempt of a write, followed for the current request, if any; `refused`: its result is a 429. */
export const followed = <A, E, R>(
  attempt: Effect.Effect<A, E, R>,
  refused: (result: A) => boolean
): Effect.Effect<A, E, R> =>
  FiberRef.getWith(currentExposure, (exposure) =>
    exposure === undefined ? attempt : Effect.acquireUseRelease(
      Effect.suspend(() => {
        const before = isExposed(exposure)
        exposure.onWire++
        return before ? Effect.void : exposure.onChange(true)
      }),
      () => attempt,
      (_, exit) =>
        Effect.suspend(() => {
          exposure.onWire--
          if (!(Exit.isSuccess(exit) && refused(exit.value))) exposure.unsure = true
          return isExposed(exposure) ? Effect.void : exposure.onChange(false)
        })
    ))

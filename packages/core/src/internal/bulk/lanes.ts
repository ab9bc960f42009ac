import type { ServerHints } from "../../DataverseClient.js"
import { type ExecutionBudget, makeExecutionBudget } from "./budget.js"
import { type Gate, makeGate } from "./gate.js"

/**
 * One web server as the run sees it: its throttle gate, its execution-time account and the
 * run's requests in flight to it. The service's limits are per web server, so once the servers
 * are known (by the `ARRAffinity` cookies of their answers) each request is sent to one of them
 * on purpose: a 429 then holds only that server's lane while the others go on, and each
 * server's window is accounted apart.
 */
export interface Lane {
  /** The server's `ARRAffinity` value; `undefined`: not pinned, the load balancer chooses. */
  readonly server: string | undefined
  readonly gate: Gate
  readonly budget: ExecutionBudget
  inFlight: number
}

export interface Lanes {
  /** The lane for the next request: the least busy server that is not held, else the least held. */
  readonly pick: (now: number, hints: ServerHints) => Lane
  /** An execution-time 429's message: every server has the same budget. */
  readonly learn: (message: string) => void
  /** How long the whole run waits at `now`: 0 while any lane may send. */
  readonly waiting: (now: number) => number
  /** Lanes of known servers (none until an answer named one). */
  readonly count: () => number
}

/**
 * The web servers whose budget a lane's requests draw on: a pinned lane's one, or all of them
 * when the load balancer spreads the lane's requests.
 */
export const serversOf = (lane: Lane, webServers: number): number => (lane.server === undefined ? webServers : 1)

const makeLane = (server: string | undefined): Lane => ({
  server,
  gate: makeGate(),
  budget: makeExecutionBudget(),
  inFlight: 0
})

export const makeLanes = (): Lanes => {
  // Before any server is known (and with a service that sets no affinity cookie) requests go
  // where the load balancer sends them.
  const balanced = makeLane(undefined)
  const lanes: Array<Lane> = []
  let lesson: string | undefined
  const held = (lane: Lane, now: number, webServers: number) =>
    lane.gate.busy(now) || lane.budget.delay(now, serversOf(lane, webServers)) > 0
  return {
    pick: (now, hints) => {
      if (lanes.length < hints.webServerIds.length) {
        for (const id of hints.webServerIds) {
          if (lanes.some((lane) => lane.server === id)) continue
          const lane = makeLane(id)
          if (lesson !== undefined) lane.budget.learn(lesson)
          lanes.push(lane)
        }
      }
      if (lanes.length === 0) return balanced
      let best = lanes[0]!
      let bestHeld = held(best, now, hints.webServers)
      for (let i = 1; i < lanes.length; i++) {
        const lane = lanes[i]!
        const laneHeld = held(lane, now, hints.webServers)
        if (
          (bestHeld && !laneHeld) ||
          (bestHeld === laneHeld && lane.inFlight < best.inFlight)
        ) {
          best = lane
          bestHeld = laneHeld
        }
      }
      return best
    },
    learn: (message) => {
      lesson = message
      balanced.budget.learn(message)
      for (const lane of lanes) lane.budget.learn(message)
    },
    waiting: (now) => {
      const inUse = lanes.length === 0 ? [balanced] : lanes
      let least = Infinity
      for (const lane of inUse) least = Math.min(least, lane.gate.remaining(now))
      return Number.isFinite(least) ? least : 0
    },
    count: () => lanes.length
  }
}

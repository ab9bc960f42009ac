// The emulator profile of a scenario, resolved the way the emulator host starts it: a named
// profile (`"bench"`) or a profile file's JSON (`{ extends: "bench", ... }`, decoded by
// `Model.decodeProfile`), then `servers` over it. The driver resolves it too, before any trial,
// to compute the model optimum and to skip a cell whose profile this emulator cannot decode.
import * as Model from "@dv-effect/emulator/Model"

/** The profile, or a message saying why there is none. */
export const resolveProfile = ({ profile = "bench", servers }) => {
  const decoded = typeof profile === "object"
    ? Model.decodeProfile(profile)
    : Model.profiles[profile] ?? `No profile named ${profile}`
  if (typeof decoded === "string") return decoded
  return servers === undefined ? { ...decoded } : { ...decoded, servers }
}

/** The seeded faults of the matrix's `faults-*` cells (and `FAULTS=1` of the trace scripts). */
export const seededFaults = {
  seed: 7,
  throttle: 0.05,
  unavailable: 0.02,
  resetBeforeCommit: 0.005,
  resetAfterCommit: 0.005
}

/**
 * The profile of bench/trace-engine.mjs and bench/trace-requests.mjs: `bench`, with the matrix's
 * seeded faults when `FAULTS` is set and request times varying by `JITTER` (a spread, as the
 * matrix's `-jitter` cells: 0.3) when it is set, each drawn from seed `SEED` (else the matrix's
 * first, 7).
 */
export const traceProfile = (env = process.env) => {
  const seed = Number(env.SEED ?? seededFaults.seed)
  if (!env.FAULTS && !env.JITTER) return "bench"
  return {
    extends: "bench",
    ...(env.FAULTS ? { faults: { ...seededFaults, seed } } : {}),
    ...(env.JITTER ? { jitter: { spread: Number(env.JITTER), seed } } : {})
  }
}

/**
 * The chunk size that rows the service refuses make best. A standard table runs a bulk message
 * as one transaction: one bad row fails the whole request, and the engine finds it by sending the
 * chunk again as a `$batch` with continue-on-error (wire reference §3), whose every operation
 * costs execution time (§4). With one bad row in a thousand, chunks of 1,000 rows nearly all fail
 * and a whole load runs at `$batch` cost; smaller chunks fail less often but pay a request's
 * fixed cost more often. This model learns, from what the run measures itself (§6: latency, and
 * which rows failed), the rate of bad rows and the costs, and gives the size of least expected
 * cost per row. While no row is refused it gives the largest size: a clean run is not touched.
 */
export interface RefusedRowsModel {
  /** `rows` rows a bulk message took; `ms` its time when it is the service's (no Retry-After held it). */
  readonly clean: (rows: number, ms: number | undefined) => void
  /**
   * A bulk request of `rows` rows was refused: it holds a bad row, counted until its search says
   * how many. `ms` as for `clean`: while no request was clean, what refused ones took stands in
   * for a clean request's cost (every chunk may hold a bad row).
   */
  readonly refusing: (rows: number, ms: number | undefined) => void
  /** The search of a refused request ended (its bad rows counted by `searched`). */
  readonly settled: () => void
  /** A `$batch` searched `rows` rows and found `bad` of them refused; `ms` as for `clean`. */
  readonly searched: (rows: number, bad: number, ms: number | undefined) => void
  /** The size of least expected cost per row, at most `max`; `max` while no row was refused. */
  readonly best: (max: number) => number
}

/**
 * The execution time a request is worth in the service's windows: the documented default limits
 * allow 1,200,000 ms of execution and 6,000 requests per 5 minutes (wire reference §6), so once
 * either binds, a request costs as much of the window as 200 ms of execution. Small chunks that
 * spare execution time spend requests.
 */
export const requestWorthMs = 1_200_000 / 6_000

/** Rows of an imagined clean start: one bad row in the first rows is not taken for a rate of 1%. */
const priorRows = 200

/** Rows over which the count of bad rows halves: a file whose bad rows cluster recovers after. */
const halfLifeRows = 20_000

/** The smallest size the model gives. */
const smallest = 10

/** The sizes compared: about 10% apart, from `smallest` up. */
const candidates = (max: number): Array<number> => {
  const sizes: Array<number> = []
  for (let n = smallest; n < max; n = Math.max(n + 1, Math.round(n * 1.1))) sizes.push(n)
  sizes.push(max)
  return sizes
}

/** What the expected cost per row of a size is computed from. */
export interface Costs {
  /** The rate of bad rows among the rows sent. */
  readonly badRate: number
  /** A clean request's fixed cost and cost per row, in ms. */
  readonly fixedMs: number
  readonly perRowMs: number
  /** What finding the bad rows of a refused request of n rows adds: `isolationFixedMs + n * isolationPerRowMs`. */
  readonly isolationFixedMs: number
  readonly isolationPerRowMs: number
}

/**
 * The expected cost per row of chunks of `n` rows: the execution time of the requests, or the
 * requests themselves at `requestWorthMs` each, whichever is more (whichever window binds).
 * A chunk holds a bad row with probability `1 - (1 - q)^n`; a refused single row needs no search.
 */
export const costPerRow = (costs: Costs, n: number): number => {
  const refusedShare = 1 - (1 - costs.badRate) ** n
  const search = n > 1 ? refusedShare : 0
  const executionMs = costs.fixedMs + costs.perRowMs * n +
    search * (costs.isolationFixedMs + costs.isolationPerRowMs * n)
  const requests = 1 + search * Math.ceil(n / 1000)
  return Math.max(executionMs, requests * requestWorthMs) / n
}

/** The size of least `costPerRow` among sizes about 10% apart, at most `max`. */
export const bestSize = (costs: Costs, max: number): number => {
  let best = max
  let bestCost = costPerRow(costs, max)
  for (const n of candidates(max)) {
    const cost = costPerRow(costs, n)
    if (cost < bestCost) {
      best = n
      bestCost = cost
    }
  }
  return best
}

/** A least-squares line of a request's time over its rows: ms = fixed + perRow * rows. */
const makeLine = () => {
  let n = 0
  let sx = 0
  let sy = 0
  let sxx = 0
  let sxy = 0
  return {
    add: (rows: number, ms: number) => {
      n++
      sx += rows
      sy += ms
      sxx += rows * rows
      sxy += rows * ms
    },
    /** The fixed cost and cost per row; a fixed cost of 0 while the sizes barely varied. */
    fit: (): { readonly fixedMs: number; readonly perRowMs: number } | undefined => {
      if (n === 0) return undefined
      const meanX = sx / n
      const meanY = sy / n
      const variance = sxx / n - meanX * meanX
      const perRowAll = Math.max(meanY / Math.max(meanX, 1), 1e-6)
      if (n < 3 || variance < (0.1 * meanX) ** 2) return { fixedMs: 0, perRowMs: perRowAll }
      const perRow = (sxy / n - meanX * meanY) / variance
      const fixed = meanY - perRow * meanX
      // Noise can tilt the line: kept within what the answers allow (both costs at least 0).
      if (perRow <= 0 || fixed < 0) return { fixedMs: 0, perRowMs: perRowAll }
      return { fixedMs: Math.min(fixed, meanY), perRowMs: perRow }
    }
  }
}

export const makeRefusedRowsModel = (): RefusedRowsModel => {
  // Decayed counts of the rows sent and of the bad rows among them; refused requests whose
  // search has not ended count one bad row each.
  let rows = 0
  let bad = 0
  let refusing = 0
  const clean = makeLine()
  const refused = makeLine()
  // The searches' `$batch` requests with their time.
  let searches = 0
  let searchedRows = 0
  let searchedMs = 0

  const count = (sent: number, failed: number) => {
    const keep = 0.5 ** (sent / halfLifeRows)
    rows = rows * keep + sent
    bad = bad * keep + failed
  }

  return {
    clean: (sent, ms) => {
      count(sent, 0)
      if (ms !== undefined) clean.add(sent, ms)
    },
    refusing: (sent, ms) => {
      refusing++
      if (ms !== undefined) refused.add(sent, ms)
    },
    settled: () => {
      refusing = Math.max(0, refusing - 1)
    },
    searched: (sent, failed, ms) => {
      count(sent, failed)
      if (ms === undefined) return
      searches++
      searchedRows += sent
      searchedMs += ms
    },
    best: (max) => {
      if (bad === 0 && refusing === 0) return max
      const line = clean.fit() ?? refused.fit()
      if (line === undefined) return max
      const { fixedMs, perRowMs } = line
      const badRate = (bad + refusing) / (rows + priorRows)
      // A `$batch` pays a request's fixed cost, and each of its operations at least what a row
      // costs in the message (until one is timed, exactly that: the least it can cost). A refused
      // request costs what it would have cost clean, then its search.
      const batchPerRowMs = searches === 0
        ? perRowMs
        : Math.max(perRowMs, (searchedMs - searches * fixedMs) / Math.max(searchedRows, 1))
      return bestSize({
        badRate,
        fixedMs,
        perRowMs,
        isolationFixedMs: 2 * fixedMs,
        isolationPerRowMs: perRowMs + batchPerRowMs
      }, max)
    }
  }
}

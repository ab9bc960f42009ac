/**
 * Progress on stderr: a live bar on a terminal, plain lines otherwise (every 2 seconds while rows
 * finish, and at least every 10 seconds however long the run waits).
 *
 * Each report gives the rows done, the rate over the last 10 seconds beside the average since the
 * start, and, when the input's size is known (rows of an array, bytes of a file), the percent done
 * (of a file: read) and an ETA of the rows left at the recent rate. While no row finishes it says what the run is doing: waiting
 * for a Retry-After, checking rows an earlier run sent, waiting for requests in flight, reading the
 * input.
 *
 * @since 0.1.0
 */
import type { Progress } from "@dv-effect/core/Bulk"
import * as CliProgress from "cli-progress"

/**
 * A progress display for one job.
 *
 * @since 0.1.0
 */
export interface ProgressReporter {
  readonly update: (progress: Progress) => void
  /** Ends the display; `final: false` leaves out the last plain line (after a fatal error). */
  readonly stop: (options?: { readonly final?: boolean }) => void
}

/**
 * The size of a file input: its bytes, and how many of them the reader has consumed so far.
 *
 * @since 0.1.0
 */
export interface InputSize {
  readonly totalBytes: number
  readonly bytesRead: () => number
  /**
   * The rows read from those bytes so far: with it, the ETA follows the rows that land (the file's
   * rows estimated from the bytes per row read so far), not the reading, which runs ahead by the
   * rows buffered and in flight.
   */
  readonly rowsRead?: () => number
}

/**
 * The clock and the ticking the reporter runs on: the system's by default, a virtual one in tests.
 *
 * @since 0.1.0
 */
export interface Timer {
  /** Epoch milliseconds. */
  readonly now: () => number
  /** Calls `tick` every `ms` milliseconds until the returned function is called. */
  readonly every: (ms: number, tick: () => void) => () => void
}

/**
 * `Date.now` and an unref'd `setInterval` (it never keeps the process alive).
 *
 * @since 0.1.0
 */
export const systemTimer: Timer = {
  now: () => Date.now(),
  every: (ms, tick) => {
    const handle = setInterval(tick, ms)
    handle.unref()
    return () => clearInterval(handle)
  }
}

/**
 * How to build a reporter: where to write, and on what clock.
 *
 * @since 0.1.0
 */
export interface MakeOptions {
  readonly stream?: NodeJS.WriteStream
  readonly timer?: Timer
}

/** The span of the recent rate. */
const windowMs = 10_000
/** Plain lines come at most this often while rows finish... */
const lineIntervalMs = 2_000
/** ... and at least this often, whatever happens. */
const quietLineMs = 10_000
/** No row finished for this long: say what the run is doing. */
const stallMs = 5_000
/** How often the display is refreshed without an event (recent rate, bytes read, stalls). */
const tickMs = 1_000

/** The local time of day of an epoch time, `hh:mm:ss`. */
const clock = (epochMs: number): string => {
  const at = new Date(epochMs)
  return [at.getHours(), at.getMinutes(), at.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":")
}

/** A duration for people: `42s`, `3m 05s`, `2h 03m`. */
export const duration = (ms: number): string => {
  const total = Math.max(0, Math.round(ms / 1000))
  const pad = (n: number) => String(n).padStart(2, "0")
  if (total < 60) return `${total}s`
  if (total < 3600) return `${Math.floor(total / 60)}m ${pad(total % 60)}s`
  return `${Math.floor(total / 3600)}h ${pad(Math.floor((total % 3600) / 60))}m`
}

/** Bytes for people: `812 B`, `4.2 MB`. */
export const bytes = (n: number): string => {
  const units = ["B", "kB", "MB", "GB", "TB"]
  let value = n
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return unit === 0 ? `${value} ${units[0]}` : `${value.toFixed(1)} ${units[unit]}`
}

const n = (value: number) => value.toLocaleString("en-US")

/**
 * The rate of a growing count over the last `windowMs`: samples of the count, kept for the window
 * and one before it (the count as it was when the window starts).
 */
const recentRate = (started: number) => {
  const samples: Array<{ t: number; v: number }> = [{ t: started, v: 0 }]
  return {
    add: (t: number, v: number) => {
      const lastSample = samples[samples.length - 1]!
      if (lastSample.t === t) lastSample.v = v
      else samples.push({ t, v })
      while (samples.length > 1 && samples[1]!.t <= t - windowMs) samples.shift()
    },
    /** Per second over the last window (since the start in the first one). */
    perSecond: (t: number, v: number) => {
      const base = samples[0]!
      const from = Math.max(base.t, t - windowMs)
      return t > from ? ((v - base.v) * 1000) / (t - from) : 0
    }
  }
}

/**
 * `, 3 throttled, waiting for Retry-After until 14:03:07` while the service holds the run; the
 * count alone after.
 */
const throttling = (progress: Progress): string =>
  progress.throttled === 0
    ? ""
    : `, ${progress.throttled} throttled${
      progress.waitingUntil === undefined ? "" : `, waiting for Retry-After until ${clock(progress.waitingUntil)}`
    }`

/**
 * `, checking 40 rows an earlier run sent without an answer` while a resumed run looks them up.
 */
const checking = (progress: Progress): string =>
  progress.checking > 0 ? `, checking ${n(progress.checking)} rows an earlier run sent without an answer` : ""

/**
 * `; app1: 40,120 rows, 81 requests, 2 throttled (waiting until 14:03:07); app2: ...` with several
 * identities: each is throttled and paced apart, so each says its own.
 */
const byIdentity = (progress: Progress, now: number): string =>
  progress.identities.length < 2 ?
    "" :
    progress.identities.map((identity) =>
      `; ${identity.label}: ${n(identity.succeeded + identity.failed)} row${
        identity.succeeded + identity.failed === 1 ? "" : "s"
      }, ${n(identity.requests)} request${identity.requests === 1 ? "" : "s"}, ${n(identity.throttled)} throttled${
        identity.waitingUntil === undefined || identity.waitingUntil <= now
          ? ""
          : ` (waiting until ${clock(identity.waitingUntil)})`
      }`
    ).join("")

/** A count in at most five characters, for the bar: `812`, `25.8k`, `1.2M`. */
const compact = (value: number): string =>
  value >= 999_950
    ? `${(value / 1_000_000).toFixed(1)}M`
    : value >= 1000
    ? `${(value / 1000).toFixed(1)}k`
    : String(value)

/**
 * ` | app1 25.8k, app2 24.2k 2×429 held` on the bar with several identities: its line must fit a
 * terminal, so each identity says its rows, its 429s when it had some, and whether a Retry-After
 * holds it now (the plain lines and the summary say the rest).
 */
const byIdentityOnBar = (progress: Progress, now: number): string =>
  progress.identities.length < 2 ?
    "" :
    ` | ${
      progress.identities.map((identity) =>
        `${identity.label} ${compact(identity.succeeded + identity.failed)}${
          identity.throttled > 0 ? ` ${compact(identity.throttled)}×429` : ""
        }${identity.waitingUntil !== undefined && identity.waitingUntil > now ? " held" : ""}`
      ).join(", ")
    }`

/** The figures before any progress event. */
const nothingYet: Progress = {
  succeeded: 0,
  failed: 0,
  resumed: 0,
  requests: 0,
  retries: 0,
  throttled: 0,
  inFlight: 0,
  rowsInFlight: 0,
  checking: 0,
  landedBefore: 0,
  concurrency: 0,
  chunkSize: 0,
  waitingMs: 0,
  waitingUntil: undefined,
  identities: []
}

/** What a display shows at one moment. */
interface View {
  readonly done: number
  /** Rows per second over the last 10 seconds, and since the start. */
  readonly recent: number
  readonly average: number
  /** `40 rows/s last 10s, 12 avg` */
  readonly rates: string
  /** Rows of a known total, or bytes of a known size, read so far (the bar's value). */
  readonly value: number
  readonly percent: number | undefined
  /** `15s`, `unknown`, `input read` (a file read to its end), undefined without a known size. */
  readonly eta: string | undefined
  /** `, nothing finished for 42s, waiting for 4 requests in flight` during a stall; else "". */
  readonly stall: string
}

/**
 * A reporter for `label`, with the input's size when known: a number of rows, or a file's bytes.
 *
 * @since 0.1.0
 */
export const make = (
  label: string,
  size: number | InputSize | undefined,
  options: MakeOptions = {}
): ProgressReporter => {
  const stream = options.stream ?? process.stderr
  const timer = options.timer ?? systemTimer
  const total = typeof size === "number" ? size : undefined
  const file = typeof size === "object" && size.totalBytes > 0 ? size : undefined
  const started = timer.now()
  const rowRate = recentRate(started)
  const byteRate = recentRate(started)
  let last: Progress | undefined
  let lastDone = 0
  let lastAdvance = started

  /** The last progress as of `now`: a Retry-After wait that has ended is no longer shown. */
  const lastAsOf = (now: number): Progress => {
    const progress = last ?? nothingYet
    return progress.waitingUntil !== undefined && progress.waitingUntil <= now
      ? { ...progress, waitingUntil: undefined }
      : progress
  }

  /** Takes the figures at `now` (rates sampled) and what to show. */
  const view = (now: number): View => {
    const progress = lastAsOf(now)
    const done = progress.succeeded + progress.failed
    rowRate.add(now, done)
    const read = file === undefined ? 0 : Math.min(file.bytesRead(), file.totalBytes)
    if (file !== undefined) byteRate.add(now, read)
    const elapsed = now - started
    const recent = Math.round(rowRate.perSecond(now, done))
    const average = elapsed > 0 ? Math.round((done * 1000) / elapsed) : 0
    let value = done
    let percent: number | undefined
    let eta: string | undefined
    if (total !== undefined) {
      percent = total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 100
      const left = Math.max(0, total - done)
      const rate = rowRate.perSecond(now, done)
      eta = left === 0 ? duration(0) : rate > 0 ? duration((left * 1000) / rate) : "unknown"
    } else if (file !== undefined) {
      value = read
      percent = Math.floor((read * 100) / file.totalBytes)
      const rowsRead = file.rowsRead?.() ?? 0
      if (rowsRead > 0 && read > 0) {
        const expected = read >= file.totalBytes
          ? rowsRead
          : Math.max(rowsRead, Math.round((rowsRead * file.totalBytes) / read))
        // Rows an earlier run finished are read and skipped: they never land again.
        const left = Math.max(0, expected - done - progress.resumed)
        const rate = rowRate.perSecond(now, done)
        eta = left === 0 ? duration(0) : rate > 0 ? duration((left * 1000) / rate) : "unknown"
      } else {
        const left = file.totalBytes - read
        const rate = byteRate.perSecond(now, read)
        eta = left === 0 ? "input read" : rate > 0 ? duration((left * 1000) / rate) : "unknown"
      }
    }
    const still = now - lastAdvance
    let stall = ""
    if (still >= stallMs) {
      // The Retry-After wait and the look-ups of unanswered rows are said already.
      const doing = progress.waitingUntil !== undefined || progress.checking > 0
        ? ""
        : progress.inFlight > 0
        ? `, waiting for ${progress.inFlight} request${progress.inFlight === 1 ? "" : "s"} in flight`
        : file !== undefined && read >= file.totalBytes
        ? ", finishing"
        : ", reading the input"
      stall = `, nothing finished for ${duration(still)}${doing}`
    }
    return {
      done,
      recent,
      average,
      rates: `${n(recent)} rows/s last 10s, ${n(average)} avg`,
      value,
      percent,
      eta,
      stall
    }
  }

  const note = (progress: Progress) => {
    const now = timer.now()
    const done = progress.succeeded + progress.failed
    if (done > lastDone) {
      lastDone = done
      lastAdvance = now
    }
    last = progress
    return now
  }

  if (stream.isTTY === true) {
    const tail = `{inFlight} in flight | {failed} failed{throttle}{checking}{stall}{identities}`
    const format = total !== undefined
      ? `${label} |{bar}| {percentage}% | {rows}/${n(total)} rows | {rates} | {etaText} | ${tail}`
      : file !== undefined
      ? `${label} |{bar}| {percentage}% of ${bytes(file.totalBytes)} read | {rows} rows | {rates} | {etaText} | ${tail}`
      : `${label} {value} rows | {rates} | ${tail}`
    const bar = new CliProgress.SingleBar({
      stream,
      format,
      hideCursor: true,
      clearOnComplete: false,
      fps: 10
    }, CliProgress.Presets.shades_classic)
    const payload = (at: View) => {
      const progress = lastAsOf(timer.now())
      return {
        rows: n(at.done),
        rates: at.rates,
        etaText: at.eta === undefined || at.eta === "input read" ? at.eta ?? "" : `ETA ${at.eta}`,
        failed: n(progress.failed),
        inFlight: progress.inFlight,
        throttle: throttling(progress),
        checking: checking(progress),
        stall: at.stall,
        identities: byIdentityOnBar(progress, timer.now())
      }
    }
    const draw = (now: number) => {
      const at = view(now)
      bar.update(at.value, payload(at))
    }
    const first = view(started)
    bar.start(total ?? file?.totalBytes ?? 0, 0, payload(first))
    const cancel = timer.every(tickMs, () => draw(timer.now()))
    return {
      update: (progress) => draw(note(progress)),
      stop: () => {
        cancel()
        draw(timer.now())
        bar.stop()
      }
    }
  }

  let lastLine = started
  // The counts the last line showed: the line at the end repeats none of them unchanged.
  let shown: string | undefined
  const countsOf = (progress: Progress) =>
    `${
      progress.succeeded + progress.failed + progress.resumed
    }/${progress.failed}/${progress.inFlight}/${progress.throttled}/${progress.checking}`
  const line = (now: number) => {
    lastLine = now
    const at = view(now)
    const progress = lastAsOf(now)
    shown = countsOf(progress)
    const done = `${n(at.done)} row${at.done === 1 ? "" : "s"}`
    const rows = total !== undefined
      ? `${n(at.done)}/${n(total)} rows (${at.percent}%)`
      : file !== undefined
      ? `${done}, ${at.percent}% of ${bytes(file.totalBytes)} read`
      : done
    const eta = at.eta === undefined ? "" : at.eta === "input read" ? ", input read" : `, ETA ${at.eta}`
    stream.write(
      `${label} ${rows}, ${at.rates}${eta}, ${progress.inFlight} in flight, ${n(progress.failed)} failed${
        throttling(progress)
      }${checking(progress)}${at.stall}${byIdentity(progress, now)}\n`
    )
  }
  // However long the run waits, a line comes at least every 10 seconds.
  const cancel = timer.every(tickMs, () => {
    const now = timer.now()
    if (now - lastLine >= quietLineMs) line(now)
    else view(now) // keeps the recent rates sampled
  })
  return {
    update: (progress) => {
      // A new Retry-After wait is told at once: nothing else is printed until it ends. So is the
      // start of the look-ups of rows an earlier run sent without an answer.
      const newWait = progress.waitingUntil !== undefined && progress.waitingUntil !== last?.waitingUntil
      const newChecking = progress.checking > 0 && (last === undefined || last.checking === 0)
      const now = note(progress)
      if (newWait || newChecking || now - lastLine >= lineIntervalMs) line(now)
    },
    stop: (options) => {
      cancel()
      if (last !== undefined && options?.final !== false && countsOf(last) !== shown) line(timer.now())
    }
  }
}

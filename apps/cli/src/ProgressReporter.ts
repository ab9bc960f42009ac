/**
 * Progress on stderr: a live bar on a terminal, a plain line every few seconds otherwise.
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

const lineIntervalMs = 2000

/** The local time of day of an epoch time, `hh:mm:ss`. */
const clock = (epochMs: number): string => {
  const at = new Date(epochMs)
  return [at.getHours(), at.getMinutes(), at.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":")
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
  progress.checking > 0 ? `, checking ${progress.checking} rows an earlier run sent without an answer` : ""

/**
 * A reporter for `label`; `total` rows when known.
 *
 * @since 0.1.0
 */
export const make = (
  label: string,
  total: number | undefined,
  stream: NodeJS.WriteStream = process.stderr
): ProgressReporter => {
  const started = Date.now()
  const rate = (done: number) => {
    const seconds = (Date.now() - started) / 1000
    return seconds > 0 ? Math.round(done / seconds) : 0
  }
  if (stream.isTTY === true) {
    const bar = new CliProgress.SingleBar({
      stream,
      format: total === undefined
        ? `${label} {value} rows | {rate} rows/s | {inFlight} in flight | {failed} failed{throttle}{checking}`
        : `${label} |{bar}| {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted} | {failed} failed{throttle}{checking}`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
      fps: 10
    }, CliProgress.Presets.shades_classic)
    bar.start(total ?? 0, 0, { rate: 0, failed: 0, inFlight: 0, throttle: "", checking: "" })
    return {
      update: (progress) => {
        const done = progress.succeeded + progress.failed
        bar.update(done, {
          rate: rate(done),
          failed: progress.failed,
          inFlight: progress.inFlight,
          throttle: throttling(progress),
          checking: checking(progress)
        })
      },
      stop: () => bar.stop()
    }
  }
  let lastLine = started
  let last: Progress | undefined
  const line = (progress: Progress) => {
    const done = progress.succeeded + progress.failed
    const of = total === undefined ? "" : `/${total}`
    stream.write(
      `${label} ${done}${of} rows, ${rate(done)} rows/s, ${progress.inFlight} in flight, ${progress.failed} failed${
        throttling(progress)
      }${checking(progress)}\n`
    )
  }
  return {
    update: (progress) => {
      // A new Retry-After wait is told at once: nothing else is printed until it ends. So is the
      // start of the look-ups of rows an earlier run sent without an answer.
      const newWait = progress.waitingUntil !== undefined && progress.waitingUntil !== last?.waitingUntil
      const newChecking = progress.checking > 0 && (last === undefined || last.checking === 0)
      last = progress
      const now = Date.now()
      if (newWait || newChecking || now - lastLine >= lineIntervalMs) {
        lastLine = now
        line(progress)
      }
    },
    stop: (options) => {
      if (last !== undefined && options?.final !== false) line(last)
    }
  }
}

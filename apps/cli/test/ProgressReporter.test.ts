import type { Progress } from "@dv-effect/core/Bulk"
import { describe, expect, it } from "vitest"
import * as ProgressReporter from "../src/ProgressReporter.js"

/** A stand-in for stderr that keeps what is written. */
const fakeStream = (isTTY: boolean) => {
  const writes: Array<string> = []
  const stream = {
    isTTY,
    columns: 200,
    write: (text: string) => {
      writes.push(text)
      return true
    },
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    on: () => stream,
    removeListener: () => stream
  }
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => writes.join("") }
}

const progress = (done: number, extra: Partial<Progress> = {}): Progress => ({
  succeeded: done,
  failed: 0,
  resumed: 0,
  requests: 1,
  retries: 0,
  throttled: 0,
  inFlight: 2,
  rowsInFlight: 200,
  checking: 0,
  concurrency: 4,
  chunkSize: 100,
  waitingMs: 0,
  waitingUntil: undefined,
  ...extra
})

describe("progress on stderr", () => {
  it("without a terminal, writes plain lines: rows, rate, in flight, failures and throttling", () => {
    const { stream, text } = fakeStream(false)
    const reporter = ProgressReporter.make("create contact", undefined, stream)
    const until = new Date(2026, 11, 5, 14, 3, 7).getTime()
    reporter.update(progress(100))
    reporter.update(progress(250, { failed: 3, throttled: 2, waitingMs: 4200, waitingUntil: until }))
    reporter.update(progress(260, { failed: 3, throttled: 2, waitingMs: 4100, waitingUntil: until }))
    reporter.stop()
    const lines = text().trim().split("\n")
    // Lines come at most every two seconds, at once when a Retry-After wait starts, and once at
    // the end with the last figures.
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(
      /^create contact 253 rows, \d+ rows\/s, 2 in flight, 3 failed, 2 throttled, waiting for Retry-After until 14:03:07$/
    )
    expect(lines[1]).toMatch(/^create contact 263 rows, /)
    expect(text()).not.toContain("\u001b[")
  })

  it("without a terminal, says at once that rows an earlier run sent are being checked", () => {
    const { stream, text } = fakeStream(false)
    const reporter = ProgressReporter.make("create contact", undefined, stream)
    reporter.update(progress(0, { checking: 300 }))
    reporter.update(progress(100, { checking: 200 }))
    reporter.update(progress(400, { checking: 0 }))
    reporter.stop()
    const lines = text().trim().split("\n")
    // The first report with rows to check is printed at once; the next lines follow every two seconds.
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(
      /^create contact 0 rows, \d+ rows\/s, 2 in flight, 0 failed, checking 300 rows an earlier run sent without an answer$/
    )
    expect(lines[1]).toMatch(/^create contact 400 rows, .* 0 failed$/)
  })

  it("on a terminal, shows the rows being checked in the bar", () => {
    const { stream, text } = fakeStream(true)
    const reporter = ProgressReporter.make("create contact", undefined, stream)
    reporter.update(progress(0, { checking: 40, throttled: 1 }))
    reporter.stop()
    expect(text()).toContain("0 failed, 1 throttled, checking 40 rows an earlier run sent without an answer")
  })

  it("on a terminal, draws a bar with the same figures and the total when known", () => {
    const { stream, text } = fakeStream(true)
    const reporter = ProgressReporter.make("accounts", 1000, stream)
    reporter.update(progress(500, { throttled: 1 }))
    reporter.stop()
    expect(text()).toMatch(/accounts \|[█░]+\| 50% \| 500\/1000 rows \| \d+ rows\/s \| ETA .* \| 0 failed, 1 throttled/)
  })
})

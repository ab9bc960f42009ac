import type { Progress } from "@dv-effect/core/Bulk"
import { describe, expect, it } from "vitest"
import * as ProgressReporter from "../src/ProgressReporter.js"

/** A virtual clock: time moves only when the test advances it, firing the ticks due on the way. */
const virtualTimer = (start = new Date(2026, 11, 5, 14, 0, 0).getTime()) => {
  let now = start
  const tasks: Array<{ ms: number; next: number; tick: () => void; active: boolean }> = []
  const timer: ProgressReporter.Timer = {
    now: () => now,
    every: (ms, tick) => {
      const task = { ms, next: now + ms, tick, active: true }
      tasks.push(task)
      return () => {
        task.active = false
      }
    }
  }
  const advance = (ms: number) => {
    const end = now + ms
    for (;;) {
      const due = tasks.filter((task) => task.active && task.next <= end).sort((a, b) => a.next - b.next)[0]
      if (due === undefined) break
      now = due.next
      due.next += due.ms
      due.tick()
    }
    now = end
  }
  return { timer, advance, now: () => now, active: () => tasks.filter((task) => task.active).length }
}

/** A stand-in for stderr that keeps what is written, and when (on the virtual clock). */
const fakeStream = (isTTY: boolean, now: () => number = () => 0) => {
  const writes: Array<{ at: number; text: string }> = []
  const stream = {
    isTTY,
    columns: 400,
    write: (text: string) => {
      writes.push({ at: now(), text })
      return true
    },
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    on: () => stream,
    removeListener: () => stream
  }
  return {
    stream: stream as unknown as NodeJS.WriteStream,
    text: () => writes.map((write) => write.text).join(""),
    lines: () =>
      writes.flatMap((write) =>
        write.text.split("\n").filter((line) => line !== "").map((line) => ({ at: write.at, line }))
      )
  }
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
  landedBefore: 0,
  concurrency: 4,
  chunkSize: 100,
  waitingMs: 0,
  waitingUntil: undefined,
  identities: [],
  ...extra
})

/** A reporter writing plain lines on a virtual clock. */
const plain = (size: number | ProgressReporter.InputSize | undefined) => {
  const clock = virtualTimer()
  const out = fakeStream(false, clock.now)
  const reporter = ProgressReporter.make("create contact", size, { stream: out.stream, timer: clock.timer })
  return { ...clock, ...out, reporter }
}

describe("progress without a terminal", () => {
  it("writes every count with thousands separators, failures too", () => {
    const { advance, lines, reporter } = plain(undefined)
    advance(500)
    reporter.update(progress(2000, { failed: 3000 }))
    reporter.stop()
    expect(lines().at(-1)?.line).toContain("create contact 5,000 rows")
    expect(lines().at(-1)?.line).toContain("3,000 failed")
  })

  it("writes plain lines: rows, recent and average rate, in flight, failures and throttling", () => {
    const { advance, lines, now, reporter, text } = plain(undefined)
    const until = now() + 7_000
    advance(500)
    reporter.update(progress(100))
    reporter.update(progress(250, { failed: 3, throttled: 2, waitingMs: 4200, waitingUntil: until }))
    reporter.update(progress(260, { failed: 3, throttled: 2, waitingMs: 4100, waitingUntil: until }))
    reporter.stop()
    // Lines come at most every two seconds, at once when a Retry-After wait starts, and once at
    // the end with the last figures.
    expect(lines().map((l) => l.line)).toEqual([
      "create contact 253 rows, 506 rows/s last 10s, 506 avg, 2 in flight, 3 failed, 2 throttled, waiting for Retry-After until 14:00:07",
      "create contact 263 rows, 526 rows/s last 10s, 526 avg, 2 in flight, 3 failed, 2 throttled, waiting for Retry-After until 14:00:07"
    ])
    expect(text()).not.toContain("\u001b[")
  })

  it("ends with no line that repeats the last one's counts", () => {
    const { advance, lines, reporter } = plain(undefined)
    advance(3000)
    reporter.update(progress(400, { inFlight: 0 }))
    advance(100)
    // The run's last report, the same counts, then the end.
    reporter.update(progress(400, { inFlight: 0 }))
    reporter.stop()
    expect(lines().map((l) => l.line)).toEqual([expect.stringMatching(/^create contact 400 rows, /)])
  })

  it("says one row as one row", () => {
    const { advance, lines, reporter } = plain(undefined)
    advance(500)
    reporter.update(progress(1))
    reporter.stop()
    expect(lines().map((l) => l.line)).toEqual([expect.stringMatching(/^create contact 1 row, /)])
  })

  it("says at once that rows an earlier run sent are being checked", () => {
    const { advance, lines, reporter } = plain(undefined)
    advance(1000)
    reporter.update(progress(0, { checking: 300 }))
    reporter.update(progress(100, { checking: 200 }))
    reporter.update(progress(400, { checking: 0 }))
    reporter.stop()
    const printed = lines().map((l) => l.line)
    expect(printed).toHaveLength(2)
    expect(printed[0]).toBe(
      "create contact 0 rows, 0 rows/s last 10s, 0 avg, 2 in flight, 0 failed, checking 300 rows an earlier run sent without an answer"
    )
    expect(printed[1]).toMatch(/^create contact 400 rows, .* 0 failed$/)
  })

  it("gives the total, percent and ETA of a known number of rows", () => {
    const { advance, lines, reporter } = plain(1000)
    for (let second = 1; second <= 4; second++) {
      advance(1000)
      reporter.update(progress(second * 50))
    }
    expect(lines().at(-1)?.line).toBe(
      "create contact 200/1,000 rows (20%), 50 rows/s last 10s, 50 avg, ETA 16s, 2 in flight, 0 failed"
    )
    reporter.stop()
  })

  it("gives the percent of a file's bytes read and an ETA from the recent byte rate", () => {
    let read = 0
    const { advance, lines, reporter } = plain({ totalBytes: 4_000_000, bytesRead: () => read })
    // 100 kB/s for 20 s, then 200 kB/s for 10 s.
    for (let second = 1; second <= 30; second++) {
      advance(1000)
      read += second <= 20 ? 100_000 : 200_000
      reporter.update(progress(second * 10))
    }
    // 2 MB + 2 MB: the whole file is read; the last rows are still on their way.
    expect(lines().at(-1)!.line).toBe(
      "create contact 300 rows, 100% of 4.0 MB read, 10 rows/s last 10s, 10 avg, input read, 2 in flight, 0 failed"
    )
    reporter.stop()
  })

  it("gives the percent read part way through a file, with the ETA from the last 10 seconds", () => {
    let read = 0
    const { advance, lines, reporter } = plain({ totalBytes: 10_000_000, bytesRead: () => read })
    for (let second = 1; second <= 30; second++) {
      advance(1000)
      read += second <= 20 ? 100_000 : 300_000
      reporter.update(progress(second * 10))
    }
    // 5 MB of 10 read; the last 10 seconds read 300 kB/s: 5 MB left take 17 s (the average, 167 kB/s, would say 30 s).
    expect(lines().at(-1)!.line).toBe(
      "create contact 300 rows, 50% of 10.0 MB read, 10 rows/s last 10s, 10 avg, ETA 17s, 2 in flight, 0 failed"
    )
    reporter.stop()
  })

  it("with the rows read, gives the ETA of the rows still to land, not of the reading", () => {
    let read = 0
    let rowsRead = 0
    const { advance, lines, reporter } = plain({
      totalBytes: 10_000_000,
      bytesRead: () => read,
      rowsRead: () => rowsRead
    })
    // The reader runs 1,000 rows (100 kB) ahead of the rows that land, 10 a second.
    for (let second = 1; second <= 30; second++) {
      advance(1000)
      read += 1000
      rowsRead += 10
      if (second === 1) {
        read += 100_000
        rowsRead += 1000
      }
      reporter.update(progress(second * 10))
    }
    // 1,300 rows in 130 kB read: the file holds about 100,000 rows; 99,700 left at 10 a second.
    expect(lines().at(-1)!.line).toBe(
      "create contact 300 rows, 1% of 10.0 MB read, 10 rows/s last 10s, 10 avg, ETA 2h 46m, 2 in flight, 0 failed"
    )
    // Every byte read: the rows read are all there are; the ETA goes on until they land.
    read = 10_000_000
    rowsRead = 100_000
    advance(2000)
    reporter.update(progress(99_990))
    expect(lines().at(-1)!.line).toMatch(/100% of 10\.0 MB read, .*, ETA \d+s, 2 in flight/)
    reporter.stop()
  })

  it("prints a line at least every 10 seconds while nothing arrives, saying what the run waits for", () => {
    const { advance, lines, reporter } = plain(undefined)
    advance(1000)
    reporter.update(progress(100, { inFlight: 3 }))
    const before = lines().length
    advance(60_000)
    const during = lines().slice(before)
    expect(during.length).toBeGreaterThanOrEqual(6)
    let previous = during[0]!.at - 10_000
    for (const { at } of during) {
      expect(at - previous).toBeLessThanOrEqual(10_000)
      previous = at
    }
    expect(during.at(-1)!.line).toBe(
      "create contact 100 rows, 0 rows/s last 10s, 2 avg, 3 in flight, 0 failed, nothing finished for 59s, waiting for 3 requests in flight"
    )
    reporter.stop()
  })

  it("prints lines while the run has not reported anything yet", () => {
    const { advance, lines, reporter } = plain(undefined)
    advance(25_000)
    expect(lines().map((l) => l.line)).toEqual([
      "create contact 0 rows, 0 rows/s last 10s, 0 avg, 0 in flight, 0 failed, nothing finished for 10s, reading the input",
      "create contact 0 rows, 0 rows/s last 10s, 0 avg, 0 in flight, 0 failed, nothing finished for 20s, reading the input"
    ])
    reporter.stop()
  })

  it("shows the recent rate drop to 0 during a long wait and recover after, while the average stays", () => {
    const { advance, lines, now, reporter } = plain(undefined)
    let done = 0
    for (let second = 1; second <= 20; second++) {
      advance(1000)
      done += 100
      reporter.update(progress(done))
    }
    expect(lines().at(-1)!.line).toMatch(/^create contact 2,000 rows, 100 rows\/s last 10s, 100 avg,/)
    // A 60-second Retry-After: the engine reports it once, then nothing until it ends.
    const until = now() + 60_000
    reporter.update(progress(done, { throttled: 1, waitingUntil: until, waitingMs: 60_000 }))
    advance(50_000)
    expect(lines().at(-1)!.line).toBe(
      "create contact 2,000 rows, 0 rows/s last 10s, 29 avg, 2 in flight, 0 failed, 1 throttled, waiting for Retry-After until 14:01:20, nothing finished for 50s"
    )
    // Once the wait has ended, the requests are what the run waits for.
    advance(10_000)
    expect(lines().at(-1)!.line).toBe(
      "create contact 2,000 rows, 0 rows/s last 10s, 25 avg, 2 in flight, 0 failed, 1 throttled, nothing finished for 1m 00s, waiting for 2 requests in flight"
    )
    for (let second = 1; second <= 10; second++) {
      advance(1000)
      done += 100
      reporter.update(progress(done, { throttled: 1 }))
    }
    expect(lines().at(-1)!.line).toBe(
      "create contact 3,000 rows, 100 rows/s last 10s, 33 avg, 2 in flight, 0 failed, 1 throttled"
    )
    reporter.stop()
  })

  it("says the ETA is unknown while nothing is read, and that the run is finishing once all is read", () => {
    let read = 0
    const { advance, lines, reporter } = plain({ totalBytes: 1_000_000, bytesRead: () => read })
    advance(1000)
    read = 400_000
    reporter.update(progress(100, { inFlight: 0 }))
    advance(30_000)
    expect(lines().at(-1)!.line).toBe(
      "create contact 100 rows, 40% of 1.0 MB read, 0 rows/s last 10s, 3 avg, ETA unknown, 0 in flight, 0 failed, nothing finished for 29s, reading the input"
    )
    read = 1_000_000
    advance(10_000)
    expect(lines().at(-1)!.line).toBe(
      "create contact 100 rows, 100% of 1.0 MB read, 0 rows/s last 10s, 3 avg, input read, 0 in flight, 0 failed, nothing finished for 39s, finishing"
    )
    reporter.stop()
  })

  it("stops its timer, and leaves out the last line after a fatal error", () => {
    const { active, advance, lines, reporter } = plain(undefined)
    advance(3000)
    reporter.update(progress(10))
    const count = lines().length
    reporter.stop({ final: false })
    expect(active()).toBe(0)
    advance(60_000)
    expect(lines()).toHaveLength(count)
  })
})

describe("progress on a terminal", () => {
  const tty = (size: number | ProgressReporter.InputSize | undefined) => {
    const clock = virtualTimer()
    const out = fakeStream(true, clock.now)
    const reporter = ProgressReporter.make("accounts", size, { stream: out.stream, timer: clock.timer })
    return { ...clock, ...out, reporter }
  }

  it("shows the rows being checked in the bar", () => {
    const { reporter, text } = tty(undefined)
    reporter.update(progress(0, { checking: 40, throttled: 1 }))
    reporter.stop()
    expect(text()).toContain("0 failed, 1 throttled, checking 40 rows an earlier run sent without an answer")
  })

  it("draws a bar with the total, percent, rates and ETA when the rows are known", () => {
    const { advance, reporter, text } = tty(1000)
    advance(10_000)
    reporter.update(progress(500, { throttled: 1 }))
    reporter.stop()
    expect(text()).toContain(
      "| 50% | 500/1,000 rows | 50 rows/s last 10s, 50 avg | ETA 10s | 2 in flight | 0 failed, 1 throttled"
    )
    expect(text()).toMatch(/accounts \|[█░]+\| 50%/)
  })

  it("draws a bar of the file's bytes read", () => {
    let read = 0
    const { advance, reporter, text } = tty({ totalBytes: 2_000_000, bytesRead: () => read })
    for (let second = 1; second <= 10; second++) {
      advance(1000)
      read += 50_000
      reporter.update(progress(second * 20))
    }
    reporter.stop()
    expect(text()).toMatch(
      /accounts \|[█░]+\| 25% of 2\.0 MB read \| 200 rows \| 20 rows\/s last 10s, 20 avg \| ETA 30s \| 2 in flight \| 0 failed/
    )
  })

  it("says each identity's rows, 429s and hold in a few characters on the bar", () => {
    const { now, reporter, text } = tty(undefined)
    const identity = (label: string, succeeded: number, throttled: number, waitingUntil?: number) => ({
      label,
      succeeded,
      failed: 0,
      requests: 10,
      retries: 0,
      throttled,
      inFlight: 1,
      rowsInFlight: 100,
      concurrency: 4,
      waitingUntil
    })
    reporter.update(progress(1_284_400, {
      identities: [identity("app1", 25_800, 0), identity("app2", 1_258_600, 2, now() + 60_000)]
    }))
    reporter.stop()
    expect(text()).toContain("0 failed | app1 25.8k, app2 1.3M 2×429 held")
  })

  it("shows rows and rates without a bar when the size is unknown, and the stall as it lasts", () => {
    const { advance, reporter, text } = tty(undefined)
    advance(2000)
    reporter.update(progress(100, { inFlight: 1 }))
    advance(30_000)
    reporter.stop()
    expect(text()).toContain(
      "accounts 100 rows | 0 rows/s last 10s, 3 avg | 1 in flight | 0 failed, nothing finished for 30s, waiting for 1 request in flight"
    )
  })
})

describe("durations and sizes", () => {
  it("reads as people write them", () => {
    expect(ProgressReporter.duration(4_400)).toBe("4s")
    expect(ProgressReporter.duration(185_000)).toBe("3m 05s")
    expect(ProgressReporter.duration(7_380_000)).toBe("2h 03m")
    expect(ProgressReporter.bytes(812)).toBe("812 B")
    expect(ProgressReporter.bytes(4_230_000)).toBe("4.2 MB")
  })
})

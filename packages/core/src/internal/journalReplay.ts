/**
 * A run's journal entries and the state they rebuild: rows named by their input position, kept
 * as ranges in the entries and as a bit set in memory.
 */
import type { JournalState } from "../Journal.js"

/** An entry after the header: rows sent, or rows finished (`ok` and `failed`), as ranges. */
export interface Entry {
  readonly sent?: unknown
  /** Rows recorded as sent that were not (`JournalSession.unsent`). */
  readonly unsent?: unknown
  readonly ok?: unknown
  readonly failed?: unknown
  /** The fingerprint of the input's first rows (`JournalSession.inputHead`). */
  readonly inputHead?: unknown
  /** Fingerprints of rows further in, `[position, fingerprint]` (`JournalSession.inputMarks`). */
  readonly marks?: unknown
}

/** Positions as a growable bit set: a million rows take 125 KB. */
class BitSet {
  private words = new Uint32Array(1024)
  add(index: number): void {
    const word = index >>> 5
    if (word >= this.words.length) {
      const grown = new Uint32Array(Math.max(word + 1, this.words.length * 2))
      grown.set(this.words)
      this.words = grown
    }
    this.words[word]! |= 1 << (index & 31)
  }
  has(index: number): boolean {
    const word = index >>> 5
    return word < this.words.length && (this.words[word]! & (1 << (index & 31))) !== 0
  }
}

/** Consecutive positions as `[first, last]` pairs: a chunk is usually one pair. */
export const toRanges = (indexes: ReadonlyArray<number>): Array<[number, number]> => {
  const sorted = [...indexes].sort((a, b) => a - b)
  const ranges: Array<[number, number]> = []
  for (const index of sorted) {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && index === last[1] + 1) last[1] = index
    else ranges.push([index, index])
  }
  return ranges
}

const forEachInRanges = (ranges: unknown, f: (index: number) => void): number => {
  let count = 0
  if (!Array.isArray(ranges)) return 0
  for (const range of ranges) {
    if (!Array.isArray(range) || typeof range[0] !== "number" || typeof range[1] !== "number") continue
    for (let index = range[0]; index <= range[1]; index++) {
      f(index)
      count++
    }
  }
  return count
}

/** Rebuilds a run's state from its entries (a header, then `sent`, `unsent`, `finished` and `marks` lines). */
export class Replay {
  readonly finished = new BitSet()
  readonly unanswered = new Set<number>()
  succeeded = 0
  failed = 0
  inputHead: string | undefined
  readonly marks = new Map<number, string>()
  apply(entry: Entry): void {
    if (typeof entry.inputHead === "string") this.inputHead = entry.inputHead
    if (Array.isArray(entry.marks)) {
      for (const mark of entry.marks) {
        if (Array.isArray(mark) && typeof mark[0] === "number" && typeof mark[1] === "string") {
          this.marks.set(mark[0], mark[1])
        }
      }
    }
    forEachInRanges(entry.sent, (index) => this.unanswered.add(index))
    forEachInRanges(entry.unsent, (index) => this.unanswered.delete(index))
    this.succeeded += forEachInRanges(entry.ok, (index) => {
      this.finished.add(index)
      this.unanswered.delete(index)
    })
    this.failed += forEachInRanges(entry.failed, (index) => {
      this.finished.add(index)
      this.unanswered.delete(index)
    })
  }
  state(runId: string, resumed: boolean): JournalState {
    return {
      runId,
      resumed,
      isFinished: (index) => this.finished.has(index),
      unanswered: this.unanswered,
      finishedBefore: { succeeded: this.succeeded, failed: this.failed },
      isMarked: (index) => this.marks.has(index)
    }
  }
}

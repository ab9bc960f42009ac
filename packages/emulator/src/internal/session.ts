/**
 * Session consistency of elastic tables (wire reference, section 8b; Microsoft Learn, "Use
 * elastic tables using code"): writes answer with an `x-ms-session-token`; a read that sends it
 * back as `MSCRM.SessionToken` sees the session's own writes, one that does not "might not
 * include data changes that you've just made".
 *
 * Documented: the two headers, and that a read without the token may miss recent writes. The
 * token is opaque; its form here follows the one in Microsoft's Web API elastic-table sample
 * (`207:8#142792103#7=-1`), with the store's write sequence in the middle. Modelling choice
 * (`Profile.elasticReadLagMs`): how long a record stays invisible to reads without a token as
 * new as its creation.
 */
import type { StoredRecord } from "../Store.js"

/** The `x-ms-session-token` of a response after the store's write `sequence`. */
export const sessionToken = (sequence: number): string => `0:0#${sequence}#0=-1`

/** The write sequence an `MSCRM.SessionToken` header stands for, if it is one of ours. */
export const readSessionToken = (header: string | undefined): number | undefined => {
  const match = /^\s*\d+:-?\d+#(\d+)#/.exec(header ?? "")
  return match === null ? undefined : Number(match[1])
}

/**
 * The writes of the last `lagMs`, as (first sequence written, time) per request: since both grow
 * together, every record created less than `lagMs` ago has a position (`StoredRecord.seq`) at
 * least the oldest entry's.
 */
export class ReadLag {
  private readonly writes: Array<{ readonly fromSeq: number; readonly at: number }> = []
  private head = 0

  constructor(private readonly lagMs: number, private readonly now: () => number) {}

  /** A request wrote sequences from `fromSeq` on, now. */
  wrote(fromSeq: number): void {
    if (this.lagMs > 0) this.writes.push({ fromSeq, at: this.now() })
  }

  /**
   * Which records a read with this `MSCRM.SessionToken` header sees, or undefined when it sees
   * every record.
   */
  visibility(tokenHeader: string | undefined): ((record: StoredRecord) => boolean) | undefined {
    if (this.lagMs <= 0) return undefined
    const since = this.now() - this.lagMs
    while (this.head < this.writes.length && this.writes[this.head]!.at <= since) this.head++
    if (this.head > 1024 && this.head > this.writes.length / 2) {
      this.writes.splice(0, this.head)
      this.head = 0
    }
    if (this.head === this.writes.length) return undefined
    const recent = this.writes[this.head]!.fromSeq
    const token = readSessionToken(tokenHeader) ?? -1
    return (record) => record.seq < recent || record.seq <= token
  }
}

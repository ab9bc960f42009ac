/**
 * The record identities a run has seen, kept as 64-bit hashes in one typed array (open
 * addressing): nothing per row for the garbage collector to trace, and no id string kept alive,
 * where a `Set` of the strings held every id of a streamed input (2,000,000 ids: 223 MB against
 * 70 MB) and cost about as much CPU as preparing the rows. Two identities with one hash (odds of
 * about n² / 2^65 over n rows) only make the second wait for a later pass, as a repeated record
 * does: nothing is lost or sent twice.
 */
export interface SeenIdentities {
  /** Records `identity`; false when it (or one with its hash) was recorded before. */
  readonly add: (identity: string) => boolean
}

export const makeSeenIdentities = (): SeenIdentities => {
  let capacity = 1 << 12
  let size = 0
  // Slot i holds a hash in [2i, 2i + 1]; 0, 0 is an empty slot (no hash is made 0, 0).
  let slots = new Int32Array(capacity * 2)
  const place = (high: number, low: number): boolean => {
    let i = (high ^ low) & (capacity - 1)
    for (;;) {
      const a = slots[2 * i]!
      const b = slots[2 * i + 1]!
      if (a === 0 && b === 0) {
        slots[2 * i] = high
        slots[2 * i + 1] = low
        return true
      }
      if (a === high && b === low) return false
      i = (i + 1) & (capacity - 1)
    }
  }
  return {
    add: (identity) => {
      // FNV-1a and a Murmur-style mix over the UTF-16 code units: two independent 32-bit hashes.
      let high = 0x811c9dc5 | 0
      let low = 0x9747b28c | 0
      for (let i = 0; i < identity.length; i++) {
        const c = identity.charCodeAt(i)
        high = Math.imul(high ^ c, 0x01000193)
        low = Math.imul(low ^ c, 0x5bd1e995) ^ (low >>> 15)
      }
      if (high === 0 && low === 0) low = 1
      if (size * 2 >= capacity) {
        const old = slots
        capacity *= 2
        slots = new Int32Array(capacity * 2)
        for (let i = 0; i < old.length; i += 2) if (old[i] !== 0 || old[i + 1] !== 0) place(old[i]!, old[i + 1]!)
      }
      if (!place(high, low)) return false
      size++
      return true
    }
  }
}

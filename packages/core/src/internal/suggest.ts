/**
 * "Did you mean": the names closest to one that names nothing. One rule for the library and the
 * CLI (tables, columns, option labels, flags and commands).
 */

/**
 * The edit distance of two strings: insertions, deletions, substitutions and swaps of two
 * neighbouring characters (`lastnmae` → `lastname` is one edit) each count one.
 */
export const distance = (a: string, b: string): number => {
  // Three rows of the optimal string alignment table: two back (for swaps), one back, this one.
  let before: Array<number> = []
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1)
      current[j] = d
    }
    before = previous
    previous = current
  }
  return previous[b.length]!
}

/** The most edits a name of this length may be from a suggestion: 2, or a third of a long name. */
const allowance = (length: number): number => (length < 3 ? 0 : Math.max(2, Math.floor(length / 3)))

/**
 * The candidates closest to `name`, best first, at most `limit` of them: compared without regard
 * to case (a candidate that differs only in case comes first), within 2 edits (a third of the
 * length for names of 9 characters or more). A name shorter than 3 characters, or a candidate
 * that short, is suggested only when it differs in case alone.
 */
export const suggest = (name: string, candidates: Iterable<string>, limit = 3): Array<string> => {
  const wanted = name.toLowerCase()
  const most = allowance(wanted.length)
  const found: Array<{ readonly candidate: string; readonly d: number; readonly order: number }> = []
  const seen = new Set<string>()
  for (const candidate of candidates) {
    if (seen.has(candidate)) continue
    seen.add(candidate)
    const lower = candidate.toLowerCase()
    const allowed = Math.min(most, allowance(lower.length))
    if (Math.abs(lower.length - wanted.length) > allowed) continue
    const d = distance(wanted, lower)
    if (d <= allowed) found.push({ candidate, d, order: found.length })
  }
  return found.sort((x, y) => x.d - y.d || x.order - y.order).slice(0, limit).map((f) => f.candidate)
}

/**
 * `did you mean 'a'?`, `did you mean 'a' or 'b'?`, `did you mean 'a', 'b' or 'c'?`, or undefined
 * when nothing is close.
 */
export const didYouMean = (name: string, candidates: Iterable<string>): string | undefined =>
  didYouMeanOf(suggest(name, candidates))

/** `did you mean 'a', 'b' or 'c'?` for names already chosen, or undefined for none. */
export const didYouMeanOf = (names: ReadonlyArray<string>): string | undefined => {
  const quoted = names.map((c) => `'${c}'`)
  const last = quoted.pop()
  if (last === undefined) return undefined
  return `did you mean ${quoted.length === 0 ? last : `${quoted.join(", ")} or ${last}`}?`
}

/** `message` with `; did you mean ...?` when something is close, else `message` + `otherwise`. */
export const withSuggestion = (
  message: string,
  name: string,
  candidates: Iterable<string>,
  otherwise = ""
): string => {
  const hint = didYouMean(name, candidates)
  return hint === undefined ? `${message}${otherwise}` : `${message}; ${hint}`
}

import { createHash, randomBytes } from "node:crypto"

/**
 * A fresh run id: a UUID version 7, whose first 48 bits are the run's start in Unix
 * milliseconds, so that the ids the run gives its rows can be ordered after those of earlier runs.
 */
export const newRunId = (now: number = Date.now()): string => {
  const bytes = randomBytes(16)
  let ms = now
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256
    ms = Math.floor(ms / 256)
  }
  bytes[6] = 0x70 | (bytes[6]! & 0x0f)
  bytes[8] = 0x80 | (bytes[8]! & 0x3f)
  const hex = bytes.toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** The start of a version 7 run id, in Unix milliseconds; undefined for other run ids. */
const startOf = (runId: string): number | undefined =>
  /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(runId)
    ? parseInt(runId.slice(0, 8) + runId.slice(9, 13), 16)
    : undefined

/**
 * The id the engine gives the row at `index` of run `runId`: the same on every attempt and every
 * resume, so the engine can ask which rows already landed.
 *
 * SQL Server orders `uniqueidentifier`s by their last six bytes first, then bytes 8 and 9, then
 * the rest: ids that grow in that order append to the clustered index instead of splitting its
 * pages. For a version 7 run id the last six bytes hold the run's start (seconds since 2020, 30
 * bits) and the high bits of the index, bytes 8 and 9 its low 14 bits (after the variant), and the
 * first eight bytes a hash of the run id, which keeps runs that start in the same second apart:
 * ids increase within a run and from one run to the next. Older run ids (random UUIDs, from
 * journals written before) keep their layout, so that their runs resume with the same ids.
 */
export const idMaker = (runId: string): (index: number) => string => {
  const hash = createHash("sha1").update(runId).digest("hex")
  const version = `8${hash.slice(13, 16)}`
  const start = startOf(runId)
  if (start === undefined) {
    // Version 8 (custom) and the RFC 4122 variant, so the value is a well-formed GUID.
    const variant = ((parseInt(hash.slice(16, 17), 16) & 0x3) | 0x8).toString(16) + hash.slice(17, 20)
    const prefix = `${hash.slice(0, 8)}-${hash.slice(8, 12)}-${version}-${variant}-`
    return (index) => prefix + hex(index, 12)
  }
  const prefix = `${hash.slice(0, 8)}-${hash.slice(8, 12)}-${version}-`
  const seconds = Math.max(0, Math.floor(start / 1000) - epoch2020) % 2 ** 30
  // The last group changes once every 2^14 rows, and writing a number past 2^32 in hex is slow
  // (about 1 µs of the 1.5 µs an id took): it is kept from one id to the next.
  let tailHigh: number | undefined = undefined
  let tail = ""
  return (index) => {
    const low = index % 2 ** 14
    const high = Math.floor(index / 2 ** 14) % 2 ** 18
    if (high !== tailHigh) {
      tailHigh = high
      tail = `-${hex(seconds * 2 ** 18 + high, 12)}`
    }
    // 0x8000 to 0xbfff: always four digits.
    return prefix + (0x8000 + low).toString(16) + tail
  }
}

/** `idMaker(runId)(index)`. */
export const deterministicId = (runId: string, index: number): string => idMaker(runId)(index)

/** 2020-01-01T00:00:00Z in Unix seconds. */
const epoch2020 = 1_577_836_800

const hex = (value: number, digits: number) => value.toString(16).padStart(digits, "0")

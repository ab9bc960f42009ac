import { createHash, randomUUID } from "node:crypto"

/** A fresh run id. */
export const newRunId = (): string => randomUUID()

/**
 * The id the engine gives the row at `index` of run `runId`: the same on every attempt and every
 * resume, so the engine can ask which rows already landed. The first ten bytes come from the run,
 * the last six are the index: SQL Server orders `uniqueidentifier`s by their last six bytes
 * first, so a run's ids are sequential there and inserts do not fragment the clustered index.
 */
export const deterministicId = (runId: string, index: number): string => {
  const hash = createHash("sha1").update(runId).digest("hex")
  return idFrom(hash, index)
}

/** `deterministicId` with the run's hash computed once. */
export const idMaker = (runId: string): (index: number) => string => {
  const hash = createHash("sha1").update(runId).digest("hex")
  return (index) => idFrom(hash, index)
}

const idFrom = (hash: string, index: number): string => {
  // Version 8 (custom) and the RFC 4122 variant, so the value is a well-formed GUID.
  const version = `8${hash.slice(13, 16)}`
  const variant = ((parseInt(hash.slice(16, 17), 16) & 0x3) | 0x8).toString(16) + hash.slice(17, 20)
  const tail = index.toString(16).padStart(12, "0")
  return `${hash.slice(0, 8)}-${hash.slice(8, 12)}-${version}-${variant}-${tail}`
}

/**
 * What a handler answers, before it becomes an HTTP response (or a part of a `$batch` response).
 */
import type { Fault } from "./fault.js"

export interface Reply {
  readonly status: number
  /** A JSON body; a string is sent as text/plain (`$count`). */
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
  /** Overrides the content type of a string body (`multipart/mixed; boundary=...` for `$batch`). */
  readonly contentType?: string
  /** What the request did, for the latency model: records through bulk messages, other operations. */
  readonly work?: Work
}

/** The work a request did; one operation unless a handler says otherwise. */
export interface Work {
  readonly records: number
  readonly operations: number
}

/** The Dataverse error body for a fault: `{"error":{"code","message"}}` plus any extra properties. */
export const faultReply = (fault: Fault, extra: Readonly<Record<string, unknown>> = {}): Reply => ({
  status: fault.status,
  body: { error: { code: fault.code, message: fault.message, ...extra } },
  headers: fault.headers
})

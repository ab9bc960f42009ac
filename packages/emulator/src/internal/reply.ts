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
}

/** The Dataverse error body for a fault: `{"error":{"code","message"}}` plus any extra properties. */
export const faultReply = (fault: Fault, extra: Readonly<Record<string, unknown>> = {}): Reply => ({
  status: fault.status,
  body: { error: { code: fault.code, message: fault.message, ...extra } },
  headers: fault.headers
})

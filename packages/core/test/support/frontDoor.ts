import * as Effect from "effect/Effect"
import * as Http from "node:http"

/**
 * A front door to the emulator, for tests: tells `seen` of every request, lets `rewrite` change an
 * answer's body, and resets the client's connection when the emulator resets its own. `refuse`
 * answers a request with a 503 of its own instead of forwarding it (an outage); `throttle` answers
 * it with a 429 (0x80072322, the number-of-requests limit) and the Retry-After in seconds it
 * returns; `maxUrl` answers a longer URL with a 414, as a proxy with a shorter limit than the
 * service's would; `close()` shuts the door (the host no longer answers).
 */
export const frontDoor = (
  target: string,
  options: {
    readonly seen?: (request: Http.IncomingMessage) => void
    readonly rewrite?: (url: string, status: number, body: string) => string
    /** The headers of an answer handed to the client. */
    readonly delivered?: (headers: Http.IncomingHttpHeaders) => void
    readonly refuse?: (request: Http.IncomingMessage) => boolean
    readonly throttle?: (request: Http.IncomingMessage) => number | undefined
    readonly maxUrl?: number
  } = {}
) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly server: Http.Server; readonly close: () => void }>((resume) => {
      const server = Http.createServer((request, response) => {
        options.seen?.(request)
        if (!server.listening) return request.socket.destroy()
        if (options.refuse?.(request) === true) {
          response.writeHead(503, { "content-type": "application/json" })
          response.end(JSON.stringify({ error: { code: "", message: "Service Unavailable" } }))
          return
        }
        if (options.maxUrl !== undefined && (request.url ?? "").length > options.maxUrl) {
          request.resume()
          response.writeHead(414, { "content-type": "text/plain" })
          response.end("URI Too Long")
          return
        }
        const retryAfter = options.throttle?.(request)
        if (retryAfter !== undefined) {
          request.resume()
          response.writeHead(429, { "content-type": "application/json", "retry-after": String(retryAfter) })
          response.end(
            JSON.stringify({ error: { code: "0x80072322", message: "Number of requests exceeded the limit." } })
          )
          return
        }
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const forward = Http.request(`${target}${request.url}`, {
            method: request.method,
            headers: { ...request.headers, host: new URL(target).host }
          }, (answer) => {
            const body: Array<Buffer> = []
            answer.on("data", (chunk: Buffer) => body.push(chunk))
            answer.on("error", () => response.socket?.destroy())
            answer.on("end", () => {
              const text = Buffer.concat(body).toString("utf8")
              const { "content-length": _length, ...headers } = answer.headers
              options.delivered?.(answer.headers)
              response.writeHead(answer.statusCode ?? 500, headers)
              response.end(options.rewrite?.(request.url ?? "", answer.statusCode ?? 500, text) ?? text)
            })
          })
          forward.on("error", () => response.socket?.destroy())
          forward.end(Buffer.concat(chunks))
        })
      })
      const close = () => {
        server.close()
        server.closeAllConnections()
      }
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as { port: number }
        resume(Effect.succeed({ url: `http://127.0.0.1:${address.port}`, server, close }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        if (!server.listening) return resume(Effect.void)
        server.close(() => resume(Effect.void))
      })
  )

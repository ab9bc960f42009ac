/**
 * An msal-node `system.networkClient` on `node:https` that trusts the identity server's CA.
 */
import * as Https from "node:https"
import type { MsalNetworkModule, MsalNetworkRequestOptions, MsalNetworkResponse } from "../../IdentityServer.js"

/** See `IdentityServer.makeMsalNetworkClient`. */
export const makeMsalNetworkClient = (caPem: string): MsalNetworkModule => {
  // No keep-alive: every exchange closes its socket, so a server can stop at once.
  const agent = new Https.Agent({ ca: caPem, keepAlive: false })
  const send = <T>(
    method: "GET" | "POST",
    url: string,
    options: MsalNetworkRequestOptions | undefined,
    timeoutMs: number | undefined
  ) =>
    new Promise<MsalNetworkResponse<T>>((resolve, reject) => {
      const body = method === "POST" ? options?.body ?? "" : undefined
      const headers: Record<string, string> = { ...options?.headers }
      if (body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(body))
      const request = Https.request(new URL(url), { method, headers, agent }, (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("error", reject)
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          let parsed: unknown
          try {
            parsed = text === "" ? {} : JSON.parse(text)
          } catch {
            reject(new Error(`Failed to parse response from ${url} (status ${response.statusCode})`))
            return
          }
          const responseHeaders: Record<string, string> = {}
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined) responseHeaders[name] = Array.isArray(value) ? value.join(", ") : value
          }
          resolve({ headers: responseHeaders, body: parsed as T, status: response.statusCode ?? 0 })
        })
      })
      if (timeoutMs !== undefined && timeoutMs > 0) {
        request.setTimeout(timeoutMs, () => request.destroy(new Error(`Request timeout after ${timeoutMs} ms: ${url}`)))
      }
      request.on("error", reject)
      request.end(body)
    })
  return {
    sendGetRequestAsync: (url, options, timeout) => send("GET", url, options, timeout),
    sendPostRequestAsync: (url, options) => send("POST", url, options, undefined)
  }
}

/**
 * What the msal-node based credentials share: msal-node loaded on first use, the scope of a
 * resource, a network client that can trust an extra CA (a local identity endpoint such as the
 * emulator's), a persistent token cache file (mode 0600), the authority settings, and turning
 * msal's results into tokens and its errors into `DataverseError`s without secrets.
 */
import type * as Msal from "@azure/msal-node"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Https from "node:https"
import * as Path from "node:path"
import * as Tls from "node:tls"
import type { AccessToken, AuthorityOptions } from "../Credentials.js"
import { DataverseError } from "../DataverseError.js"

/**
 * msal-node (and its dependencies) load only when a sign-in flow first runs: a command that
 * uses a static token, or only prints its help, never pays for them.
 */
export const lazy = <A>(make: (msal: typeof Msal) => A): () => Promise<A> => {
  let made: Promise<A> | undefined
  return () => (made ??= import("@azure/msal-node").then(make))
}

/** The scope that asks for a token of `resource` (the org URL): `<org url>/.default`. */
export const scopeOf = (resource: string) => `${resource.replace(/\/+$/, "")}/.default`

/** The msal `auth` authority fields for a tenant. */
export const authorityFor = (tenantId: string | undefined, options: AuthorityOptions) => {
  const authority = options.authority ?? `https://login.microsoftonline.com/${tenantId ?? "organizations"}`
  const host = new URL(authority).host
  // msal asks Microsoft's instance discovery about any authority it does not know: naming the
  // host as known keeps a local or sovereign authority working without that round trip.
  const known = /(^|\.)login\.microsoftonline\.com$/i.test(host) ? [] : [host]
  return { authority, knownAuthorities: known }
}

/**
 * An msal `system.networkClient` on `node:https` whose agent trusts `ca` as well as the system's
 * roots. msal's default client is the global `fetch`, which cannot take a CA per request.
 */
export const networkClient = (ca: string): Msal.INetworkModule => {
  const agent = new Https.Agent({ ca: [...Tls.rootCertificates, ca], keepAlive: true })
  const send = <T>(method: "GET" | "POST", url: string, options?: Msal.NetworkRequestOptions, timeoutMs?: number) =>
    new Promise<Msal.NetworkResponse<T>>((resolve, reject) => {
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
            reject(new Error(`The identity endpoint answered ${response.statusCode} with a body that is not JSON.`))
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
        request.setTimeout(timeoutMs, () => request.destroy(new Error("timeout")))
      }
      request.on("error", reject)
      request.end(body)
    })
  return {
    sendGetRequestAsync: (url, options, timeout) => send("GET", url, options, timeout),
    sendPostRequestAsync: (url, options) => send("POST", url, options)
  }
}

/** The msal `system` options: a network client that trusts `options.ca`, when given. */
export const systemOptions = (options: AuthorityOptions): Msal.NodeSystemOptions =>
  options.ca === undefined ? {} : { networkClient: networkClient(options.ca) }

/**
 * An msal cache plugin keeping the token cache in a file readable by its owner only (mode 0600),
 * so that interactive sign-ins (device code) survive between CLI runs.
 */
export const fileCachePlugin = (file: string): Msal.ICachePlugin => ({
  beforeCacheAccess: async (context: Msal.TokenCacheContext) => {
    try {
      context.tokenCache.deserialize(await Fs.promises.readFile(file, "utf8"))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error
    }
  },
  afterCacheAccess: async (context: Msal.TokenCacheContext) => {
    if (!context.cacheHasChanged) return
    await Fs.promises.mkdir(Path.dirname(file), { recursive: true, mode: 0o700 })
    const temporary = `${file}.${process.pid}.tmp`
    await Fs.promises.writeFile(temporary, context.tokenCache.serialize(), { mode: 0o600 })
    await Fs.promises.rename(temporary, file)
  }
})

/**
 * A `DataverseError` for a failed sign-in. msal's messages carry the Entra error code and a
 * description; they never carry the secret, but the request body is dropped all the same.
 */
export const signInError = (flow: string, cause: unknown): DataverseError => {
  const error = cause as { errorCode?: unknown; errorMessage?: unknown; message?: unknown }
  const code = typeof error?.errorCode === "string" ? error.errorCode : undefined
  const text = typeof error?.errorMessage === "string" && error.errorMessage !== ""
    ? error.errorMessage
    : typeof error?.message === "string"
    ? error.message
    : String(cause)
  // msal writes "<codes> - Timestamp: ... - Description: AADSTS...: <text> - Trace ID: ...": keep the description.
  const description = /Description: (.+?)(?: Trace ID:| Correlation ID:| - Trace ID| - Correlation ID|\r?\n|$)/.exec(
    text
  )?.[1]
  const firstLine = (description ?? text.split(/\r?\n/)[0]!).replace(/ - Timestamp:.*$/, "").trim()
  return new DataverseError({
    reason: "Unauthorized",
    message: `Sign-in with ${flow} failed${code === undefined ? "" : ` (${code})`}: ${firstLine}`
  })
}

const fromResult = (
  flow: string,
  result: Msal.AuthenticationResult | null
): Effect.Effect<AccessToken, DataverseError> =>
  result === null || result.accessToken === ""
    ? Effect.fail(new DataverseError({ reason: "Unauthorized", message: `Sign-in with ${flow} returned no token.` }))
    : Effect.succeed({ token: Redacted.make(result.accessToken), expiresOn: result.expiresOn ?? undefined })

/** One msal call of a flow: its token, or a `DataverseError` (reason `Unauthorized`). */
export const msalCall = (flow: string, call: () => Promise<Msal.AuthenticationResult | null>) =>
  Effect.tryPromise({ try: call, catch: (cause) => signInError(flow, cause) }).pipe(
    Effect.flatMap((result) => fromResult(flow, result))
  )

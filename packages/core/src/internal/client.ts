// The connection: its identities, each over the shared HTTP client, and the org's metadata cache.
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as Credentials from "../Credentials.js"
import type { ClientOptions, DataverseClientService } from "../DataverseClient.js"
import { DataverseError, isRunFailure } from "../DataverseError.js"
import { makeIdentity } from "./identity.js"
import { fetchTableMetadata } from "./metadata.js"

/** The org root of what users paste as "the URL" (org root or Web API root, any trailing slash). */
export const normaliseOrgUrl = (url: string): string | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url.trim())
  } catch {
    return undefined
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return undefined
  // The Web API root and anything under it, or a page of an app (`/main.aspx?appid=...`, what
  // the browser shows), name the org at the path before them.
  const path = parsed.pathname.replace(/\/api\/data(\/.*)?$/i, "").replace(/\/[^/]*\.aspx$/i, "").replace(
    /\/+$/,
    ""
  )
  return `${parsed.protocol}//${parsed.host}${path}`
}

/** The Web API version a pasted URL names (`.../api/data/v9.1/`), if any. */
export const apiVersionInUrl = (url: string): string | undefined => /\/api\/data\/v(\d+\.\d+)(\/|$|\?)/i.exec(url)?.[1]

/** Builds a connection (`DataverseClient.make`). */
export const make = (
  options: ClientOptions
): Effect.Effect<DataverseClientService, DataverseError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const url = normaliseOrgUrl(options.url)
    if (url === undefined) {
      return yield* new DataverseError({
        reason: "InvalidInput",
        message: `'${options.url}' is not an http(s) URL of a Dataverse org (e.g. https://contoso.crm.dynamics.com).`
      })
    }
    const credentials: ReadonlyArray<Credentials.Credential> = isCredentialList(options.credentials)
      ? options.credentials
      : [options.credentials]
    if (credentials.length === 0) {
      return yield* new DataverseError({ reason: "InvalidInput", message: "No credentials: give at least one." })
    }
    if (options.labels !== undefined && options.labels.length !== credentials.length) {
      return yield* new DataverseError({
        reason: "InvalidInput",
        message: `${options.labels.length} labels for ${credentials.length} credentials: give one label per credential.`
      })
    }
    const labels = credentials.map((_, i) => options.labels?.[i] ?? String(i + 1))
    const twice = labels.find((label, i) => labels.indexOf(label) !== i)
    if (twice !== undefined) {
      return yield* new DataverseError({
        reason: "InvalidInput",
        message: `The label '${twice}' names two identities.`
      })
    }
    // A version the URL names is kept: Microsoft's guidance is to use the version the code was
    // written for (v9.0 to v9.2 behave alike today).
    const webApiUrl = `${url}/api/data/v${options.apiVersion ?? apiVersionInUrl(options.url) ?? "9.2"}/`
    const identities = yield* Effect.forEach(
      credentials,
      (credential, i) =>
        Effect.map(
          makeIdentity(options, url, webApiUrl, Credentials.forResource(credential, url), labels[i]!),
          (identity) => credentials.length > 1 ? namingRunFailures(identity) : identity
        )
    )
    // Table definitions are the org's, whoever asks: fetched once, as the first identity, and
    // kept for the connection's life; a failed fetch is not, so the next use retries.
    const metadata = yield* Cache.makeWith({
      capacity: 1024,
      timeToLive: (exit) => (Exit.isSuccess(exit) ? Duration.infinity : Duration.zero),
      lookup: (logicalName: string) =>
        fetchTableMetadata((request, options) => identities[0]!.executeJson(request, options), logicalName)
    })
    const shared = {
      table: (logicalName: string) => metadata.get(logicalName),
      invalidateMetadata: (logicalName?: string) =>
        logicalName === undefined ? metadata.invalidateAll : metadata.invalidate(logicalName)
    }
    const services = identities.map((identity): DataverseClientService => {
      const service: DataverseClientService = {
        ...identity,
        ...shared,
        get identities() {
          return [service]
        }
      }
      return service
    })
    return { ...services[0]!, identities: services } satisfies DataverseClientService
  })

/**
 * With several identities, a failure of the run (a refused sign-in or permission, an answer that
 * cannot be read, an outage, throttling past `maxThrottleWait`) is that identity's: its message
 * names it (`identity app2: ...`), whatever made the request. A row's own failure is not named.
 */
const namingRunFailures = <A extends Pick<DataverseClientService, "execute" | "executeRaw" | "executeJson" | "label">>(
  identity: A
): A => {
  const prefix = `identity ${identity.label}: `
  const named = (error: DataverseError): DataverseError =>
    isRunFailure(error) && !error.message.startsWith(prefix)
      ? new DataverseError({ ...error, message: prefix + error.message })
      : error
  return {
    ...identity,
    execute: (request) => Effect.mapError(identity.execute(request), named),
    executeRaw: (request) => Effect.mapError(identity.executeRaw(request), named),
    executeJson: (request, executeOptions) => Effect.mapError(identity.executeJson(request, executeOptions), named)
  }
}

const isCredentialList = (
  credentials: Credentials.Credential | ReadonlyArray<Credentials.Credential>
): credentials is ReadonlyArray<Credentials.Credential> => Array.isArray(credentials)

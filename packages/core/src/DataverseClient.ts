/**
 * A connection to one Dataverse org: the HTTP pipeline every operation goes through (base URL,
 * OData headers, bearer token, no cookies, keep-alive agent, timeout, 401 → refresh once,
 * `x-ms-dop-hint` tracking, errors decoded into `DataverseError`), its throttle controller
 * (a 429 is waited out and sent again, and the connection's other requests wait for a probe; see
 * `Controller`),
 * plus the per-connection metadata cache.
 *
 * @since 0.1.0
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Cookies from "@effect/platform/Cookies"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cache from "effect/Cache"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as ConnectionString from "./ConnectionString.js"
import * as Credentials from "./Credentials.js"
import {
  DataverseError,
  isAmbiguous,
  isRunFailure,
  isTransient,
  normaliseCode,
  parseRetryAfter,
  reasonFor
} from "./DataverseError.js"
import { makeController } from "./internal/bulk/controller.js"
import { fetchTableMetadata } from "./internal/metadata.js"
import type { TableMetadata } from "./Metadata.js"
import * as RetryPolicy from "./RetryPolicy.js"

/**
 * How to connect.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /** The org URL, e.g. `https://contoso.crm.dynamics.com` (a trailing `/` or `/api/data/v9.2/` is fine). */
  readonly url: string
  /**
   * A token provider, or a flow that makes one for the org (`Credentials.clientSecret(...)`). Several
   * make a connection of several identities (application users): each has its own token, throttle
   * controller, dop hint and stats, and the bulk engine spreads a run over all of them (the
   * service's limits are per user, wire reference §6). Every other call goes as the first.
   */
  readonly credentials: Credentials.Credential | ReadonlyArray<Credentials.Credential>
  /**
   * Names of the identities, in the order of `credentials`, for progress and messages (e.g. the
   * profile names). Default: `1`, `2`, ...
   */
  readonly labels?: ReadonlyArray<string>
  /** Web API version. Default `9.2`. */
  readonly apiVersion?: string
  /** Per-request timeout. Default 4 minutes, as Microsoft's SDK. */
  readonly timeout?: Duration.DurationInput
  /** Appended to the `User-Agent`. */
  readonly userAgent?: string
  /** Headers sent with every request (e.g. `CallerObjectId`). */
  readonly headers?: Readonly<Record<string, string>>
  /** Sockets kept alive per host; size it to the concurrency you use. Default 64. */
  readonly maxSockets?: number
  /**
   * Send the cookies the service sets back (a cookie jar), pinning the connection to one web
   * server by its `ARRAffinity` cookie. Off by default, as the wire reference (§6) asks of a bulk
   * client: limits are per server, and a cookie-less client is spread over all of them.
   */
  readonly affinityCookies?: boolean
  /** Retry schedule for transient failures other than throttling. Default `RetryPolicy.defaultPolicy`. */
  readonly retryPolicy?: Schedule.Schedule<unknown, DataverseError>
  /**
   * How long one request may be kept waiting by 429s, from its first refusal, before it fails with
   * reason `Throttled` (a bulk run then stops, resumable). Default 1 hour: the service's windows
   * are five minutes long, and throttling is no reason to give up on a load.
   */
  readonly maxThrottleWait?: Duration.DurationInput
}

/**
 * Figures the service reports on its responses.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerHints {
  /** `x-ms-dop-hint`: the degree of parallelism the service recommends. */
  readonly dopHint: Option.Option<number>
  /** `x-ms-ratelimit-burst-remaining-xrm-requests`: requests left in the window of the server that answered. */
  readonly requestsRemaining: Option.Option<number>
  /**
   * `x-ms-ratelimit-time-remaining-xrm-requests` (seconds, `1,200.00`), in milliseconds: execution
   * time left in the window of the server that answered.
   */
  readonly executionRemainingMs: Option.Option<number>
  /**
   * The latest `x-ms-session-token`: elastic tables answer writes with one, and a read that
   * sends it back as `MSCRM.SessionToken` sees those writes (wire reference §8b).
   */
  readonly sessionToken: Option.Option<string>
}

/**
 * The throttle controller of one connection (one identity), shared by every request it sends:
 * the bulk engine's writes, `$batch`, existence checks, lookups, queries and metadata. It acts
 * only on what the wire reference (§6) says a client may rely on: the 429 status, `Retry-After`,
 * `x-ms-dop-hint` and latency it measures itself; never on a message's text, the
 * `x-ms-ratelimit-*` headers (diagnostics only) or affinity cookies.
 *
 * - A refused request waits its Retry-After and is sent again: a refused request did nothing
 *   (§6), so resending is safe even for a create, and throttling never fails a request. Only a
 *   wait past `maxThrottleWait` (counted from the request's first refusal) fails it, with reason
 *   `Throttled`. The others of the connection wait for one probe: refused too, they all wait
 *   (`Gate`). Each congestion episode (from a 429 until the service admits a request sent after
 *   it) cuts the requests in flight once (`Limiter`), unless the 429 came outside the slots.
 * - Latency rising well above the run's baseline (`LatencySignal`) cuts the requests in flight
 *   too; healthy answers add them back, up to the ceiling (`x-ms-dop-hint`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Controller {
  /** Runs `effect` holding one of the adaptive slots; `round` identifies the limit it started under. */
  readonly withSlot: <A, E, R>(effect: (round: number) => Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Sends through the Retry-After hold. `refusal` reads a result: the 429 it is (as an error with
   * its `retryAfter`), else undefined. A refused request waits and is sent again.
   */
  readonly throttled: <A, R, R2>(
    attempt: Effect.Effect<A, DataverseError, R>,
    refusal: (result: A) => Effect.Effect<DataverseError | undefined, never, R2>
  ) => Effect.Effect<A, DataverseError, R | R2>
  /** A write of `rows` rows, started under `round`, answered in `ms`. */
  readonly observe: (round: number, rows: number, ms: number) => Effect.Effect<void>
  /** The most requests in flight (the dop hint, or the run's own number). */
  readonly setCeiling: (ceiling: number) => Effect.Effect<void>
  readonly state: () => ControllerState
  /**
   * Calls `f` with the end of every hold that starts or lengthens (and the time it started),
   * until the scope closes.
   */
  readonly onHold: (f: (until: number, now: number) => void) => Effect.Effect<void, never, Scope.Scope>
  /** Fastest milliseconds per row seen for requests of about `rows` rows. */
  readonly baselinePerRow: (rows: number) => number | undefined
}

/**
 * What a connection's throttle controller is doing now.
 *
 * @since 0.1.0
 * @category models
 */
export interface ControllerState {
  /** Requests allowed in flight now. */
  readonly limit: number
  readonly ceiling: number
  /** Slots held now. */
  readonly inFlight: number
  /** Epoch ms the Retry-After hold ends; in the past when none. */
  readonly heldUntil: number
  /** Requests sent, refused ones included. */
  readonly requests: number
  /** 429s received. */
  readonly throttled: number
}

/**
 * What the connection has sent so far.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientStats {
  /** HTTP requests sent, retries and token refreshes included. */
  readonly requests: number
  /** Responses with status 429. */
  readonly throttled: number
  /** Requests sent again after a transient failure. */
  readonly retries: number
}

/**
 * The client's metrics: requests by status class, 429s, retries, and request latency.
 *
 * @since 0.1.0
 * @category utils
 */
export const metrics = {
  requests: Metric.counter("dataverse_requests", { description: "HTTP requests sent to Dataverse" }),
  throttled: Metric.counter("dataverse_throttled", { description: "Responses with status 429" }),
  retries: Metric.counter("dataverse_retries", { description: "Requests sent again after a transient failure" }),
  latency: Metric.histogram(
    "dataverse_request_duration_ms",
    MetricBoundaries.exponential({ start: 5, factor: 2, count: 14 }),
    "Time from sending a request to its response headers"
  )
}

/**
 * The connection service.
 *
 * @since 0.1.0
 * @category models
 */
export interface DataverseClientService {
  /** The org root, without a trailing slash. */
  readonly url: string
  /** `<url>/api/data/v<version>/`. */
  readonly webApiUrl: string
  /**
   * Sends a request and fails with a `DataverseError` on any non-2xx answer. Relative URLs are
   * resolved against `webApiUrl`. Not retried: see `executeWithRetry`.
   */
  readonly execute: (
    request: HttpClientRequest.HttpClientRequest
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, DataverseError, Scope.Scope>
  /**
   * Like `execute`, but answers with the response whatever its status (for `$batch`, whose
   * failing answers still carry per-request parts). Transport failures still fail.
   */
  readonly executeRaw: (
    request: HttpClientRequest.HttpClientRequest
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, DataverseError, Scope.Scope>
  /**
   * Like `execute`, reads the body as JSON and retries transient failures with the connection's
   * policy. A request that is not `idempotent` (a create without its own id) is not retried after
   * an ambiguous failure (timeout, broken connection), which may have been applied.
   */
  readonly executeJson: (
    request: HttpClientRequest.HttpClientRequest,
    options?: {
      readonly idempotent?: boolean
      /** `false`: fail at once, for callers that retry themselves (the bulk engine). */
      readonly retry?: boolean
    }
  ) => Effect.Effect<ExecuteResult, DataverseError>
  /** The connection's retry policy. */
  readonly retryPolicy: Schedule.Schedule<unknown, DataverseError>
  /**
   * What the service last said about parallelism and limits. The rate-limit figures are for
   * display: nothing in this library steers by them (wire reference §6).
   */
  readonly hints: Effect.Effect<ServerHints>
  /**
   * The connection's throttle controller, shared by every request it sends: the Retry-After
   * hold, the adaptive number of requests in flight of bulk runs, and their latency baseline.
   */
  readonly controller: Controller
  /** Requests sent and throttled so far. */
  readonly stats: Effect.Effect<ClientStats>
  /** Table metadata by logical name, fetched once per connection. */
  readonly table: (logicalName: string) => Effect.Effect<TableMetadata, DataverseError>
  /** Forgets cached metadata (all tables, or one). */
  readonly invalidateMetadata: (logicalName?: string) => Effect.Effect<void>
  /** This identity's name: its entry in `labels`, else its position from 1. */
  readonly label: string
  /**
   * The connection's identities, one per credential, this one first. Each is a connection of its
   * own (token, controller, hints, stats) sharing the org's metadata cache; an identity's own
   * `identities` is itself alone. The bulk engine sends a run's requests through all of them.
   */
  readonly identities: ReadonlyArray<DataverseClientService>
}

/**
 * A decoded answer: status, headers and the JSON body (undefined for an empty body).
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecuteResult {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
}

/**
 * The connection, as an Effect service.
 *
 * @since 0.1.0
 * @category tags
 */
export class DataverseClient extends Context.Tag("@dv-effect/core/DataverseClient")<
  DataverseClient,
  DataverseClientService
>() {}

/**
 * Splits what users paste as "the URL" (the org root, the Web API root, with or without a
 * trailing slash) into the org root.
 *
 * @since 0.1.0
 * @category utils
 */
export const normaliseOrgUrl = (url: string): string | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url.trim())
  } catch {
    return undefined
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return undefined
  const path = parsed.pathname.replace(/\/api\/data(\/v\d+(\.\d+)?)?\/?$/i, "").replace(/\/+$/, "")
  return `${parsed.protocol}//${parsed.host}${path}`
}

const describe = (request: HttpClientRequest.HttpClientRequest) => `${request.method} ${request.url.split("?")[0]}`

/**
 * Reads a Dataverse error body (`{"error":{"code","message"}}`) into a `DataverseError`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const decodeErrorResponse = (
  request: string,
  status: number,
  headers: Readonly<Record<string, string>>,
  bodyText: string,
  now: number
): DataverseError => {
  let code: string | undefined
  let message: string | undefined
  let details: Record<string, unknown> | undefined
  try {
    const body = JSON.parse(bodyText) as { error?: Record<string, unknown> }
    code = normaliseCode(body.error?.code)
    if (typeof body.error?.message === "string") message = body.error.message
    for (const [name, value] of Object.entries(body.error ?? {})) {
      if (name !== "code" && name !== "message") (details ??= {})[name] = value
    }
  } catch {
    // Not JSON (a gateway page, an empty 401): keep the status line.
  }
  const reason = reasonFor(status, code)
  const retryAfter = parseRetryAfter(headers["retry-after"], now)
  return new DataverseError({
    reason,
    status,
    code,
    message: message ?? (bodyText.trim() !== "" && bodyText.length < 300 ? bodyText.trim() : `HTTP ${status}`),
    requestId: headers["x-ms-service-request-id"] ?? headers["req_id"],
    retryAfter: Option.getOrUndefined(retryAfter),
    request,
    details
  })
}

/** Socket errors that mean the request never reached a server. */
const unreachableCodes: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  CERT_HAS_EXPIRED: "its TLS certificate has expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "its TLS certificate is self-signed",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its TLS certificate cannot be verified",
  SELF_SIGNED_CERT_IN_CHAIN: "its TLS certificate chain is not trusted"
}

const socketCode = (cause: unknown): string | undefined => {
  for (let current = cause, depth = 0; typeof current === "object" && current !== null && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string") return code
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

const transportError = (error: HttpClientError.HttpClientError) => {
  const request = error.request
  const code = socketCode(error.cause)
  const unreachable = code === undefined ? undefined : unreachableCodes[code]
  if (unreachable !== undefined) {
    return new DataverseError({
      reason: "Unreachable",
      message: `Cannot reach ${new URL(request.url).host}: ${unreachable} (${code}).`,
      request: describe(request),
      cause: error
    })
  }
  return new DataverseError({
    reason: "Transport",
    message: `The connection failed before an answer arrived (${
      code ?? error.message
    }); the request may or may not have been applied.`,
    request: describe(request),
    cause: error
  })
}

/**
 * Builds a connection. Needs an `HttpClient`; `layer` provides Node's with a keep-alive agent.
 *
 * @since 0.1.0
 * @category constructors
 */
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
    const webApiUrl = `${url}/api/data/v${options.apiVersion ?? "9.2"}/`
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
      lookup: (logicalName: string) => fetchTableMetadata((request) => identities[0]!.executeJson(request), logicalName)
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

/** One identity of a connection: its token, controller, hints and stats, on the shared HTTP client. */
const makeIdentity = (
  options: ClientOptions,
  url: string,
  webApiUrl: string,
  credentials: Credentials.TokenProvider,
  label: string
): Effect.Effect<
  Omit<DataverseClientService, "table" | "invalidateMetadata" | "identities">,
  never,
  HttpClient.HttpClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options.timeout ?? "4 minutes")
    const retryPolicy = options.retryPolicy ?? RetryPolicy.defaultPolicy
    const hintsRef = yield* Ref.make<ServerHints>({
      dopHint: Option.none(),
      requestsRemaining: Option.none(),
      executionRemainingMs: Option.none(),
      sessionToken: Option.none()
    })
    const controller = yield* makeController({
      ceiling: 4,
      maxThrottleWait: Duration.decode(options.maxThrottleWait ?? "1 hour")
    })
    const statsRef = yield* Ref.make<ClientStats>({ requests: 0, throttled: 0, retries: 0 })
    const httpClient = yield* HttpClient.HttpClient
    const cookies = yield* Ref.make(Cookies.empty)
    // Only with `affinityCookies`: the jar hands back what the service set, as a browser would.
    // Nothing reads a cookie's value or steers by it (wire reference §6: its meaning is undocumented).
    const baseClient = (options.affinityCookies === true ? HttpClient.withCookiesRef(httpClient, cookies) : httpClient)
      .pipe(
        HttpClient.mapRequest((request) =>
          request.pipe(
            HttpClientRequest.prependUrl(/^https?:\/\//i.test(request.url) ? "" : webApiUrl),
            HttpClientRequest.setHeaders({
              "Accept": "application/json",
              "OData-Version": "4.0",
              "OData-MaxVersion": "4.0",
              "User-Agent": `dv-effect/0.1${options.userAgent === undefined ? "" : ` ${options.userAgent}`}`,
              ...options.headers
            })
          )
        )
      )

    const recordHints = (response: HttpClientResponse.HttpClientResponse) => {
      // Each read of `headers` rebuilds the record on Node: read it once.
      const headers = response.headers
      const dop = Number(headers["x-ms-dop-hint"])
      const session = headers["x-ms-session-token"]
      // Diagnostics only (wire reference §6): shown in progress, never used to steer.
      const remaining = Number(headers["x-ms-ratelimit-burst-remaining-xrm-requests"]?.replace(/,/g, ""))
      const seconds = Number(headers["x-ms-ratelimit-time-remaining-xrm-requests"]?.replace(/,/g, ""))
      if (
        !Number.isFinite(dop) && !Number.isFinite(remaining) && !Number.isFinite(seconds) && session === undefined
      ) return Effect.void
      return Ref.update(hintsRef, (hints) => ({
        dopHint: Number.isFinite(dop) && dop > 0 ? Option.some(dop) : hints.dopHint,
        requestsRemaining: Number.isFinite(remaining) ? Option.some(remaining) : hints.requestsRemaining,
        executionRemainingMs: Number.isFinite(seconds)
          ? Option.some(Math.round(seconds * 1000))
          : hints.executionRemainingMs,
        sessionToken: session === undefined || session === "" ? hints.sessionToken : Option.some(session)
      }))
    }

    const sendOnce = (request: HttpClientRequest.HttpClientRequest, token: Redacted.Redacted<string>) =>
      baseClient.execute(HttpClientRequest.bearerToken(request, token)).pipe(
        Metric.trackDuration(Metric.mapInput(metrics.latency, Duration.toMillis)),
        Effect.ensuring(
          Ref.update(statsRef, (stats) => ({ ...stats, requests: stats.requests + 1 })).pipe(
            Effect.zipRight(Metric.increment(metrics.requests))
          )
        ),
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new DataverseError({
              reason: "Timeout",
              message: `No answer within ${Duration.format(timeout)}; the request may or may not have been applied.`,
              request: describe(request)
            })
        }),
        Effect.catchTag("RequestError", (error) => Effect.fail(transportError(error))),
        Effect.catchTag("ResponseError", (error) => Effect.fail(transportError(error))),
        Effect.tap(recordHints),
        Effect.tap((response) =>
          response.status === 429
            ? Ref.update(statsRef, (stats) => ({ ...stats, throttled: stats.throttled + 1 })).pipe(
              Effect.zipRight(Metric.increment(metrics.throttled))
            )
            : Effect.void
        )
      )

    /** The error an answer of status 400 or more says. */
    const errorOf = (
      request: HttpClientRequest.HttpClientRequest,
      response: HttpClientResponse.HttpClientResponse
    ): Effect.Effect<DataverseError> =>
      response.text.pipe(
        Effect.orElseSucceed(() => ""),
        Effect.flatMap((text) =>
          Effect.map(
            Effect.clockWith((clock) => clock.currentTimeMillis),
            (now) => decodeErrorResponse(describe(request), response.status, response.headers, text, now)
          )
        )
      )

    const failOnStatus = (
      request: HttpClientRequest.HttpClientRequest,
      response: HttpClientResponse.HttpClientResponse
    ) => response.status < 400 ? Effect.succeed(response) : Effect.flatMap(errorOf(request, response), Effect.fail)

    const attempt = (request: HttpClientRequest.HttpClientRequest) =>
      Effect.gen(function*() {
        const token = yield* credentials.getToken
        const response = yield* sendOnce(request, token)
        if (response.status !== 401) return response
        // The answer is not used: read it to its end, so that its connection is free again (an
        // unread body keeps the socket until the server drops it, and the pool has few).
        yield* Effect.ignore(response.text)
        // The token may have been revoked or expired early: refresh once, then give up.
        yield* credentials.invalidate
        const fresh = yield* credentials.getToken
        return yield* sendOnce(request, fresh)
      })

    /** A 429 as the error it is (with its Retry-After); its body is read, the response is not used. */
    const refusal = (request: HttpClientRequest.HttpClientRequest) =>
    (
      response: HttpClientResponse.HttpClientResponse
    ): Effect.Effect<DataverseError | undefined> =>
      response.status === 429 ? errorOf(request, response) : Effect.succeed(undefined)

    // Every request passes the connection's throttle controller: a refused request waits its
    // Retry-After and is sent again, the others wait for a probe (wire reference §6); only a wait
    // past maxThrottleWait fails.
    const executeRaw = (request: HttpClientRequest.HttpClientRequest) =>
      controller.throttled(attempt(request), refusal(request))

    const execute = (request: HttpClientRequest.HttpClientRequest) =>
      Effect.flatMap(executeRaw(request), (response) => failOnStatus(request, response))

    const executeJson = (
      request: HttpClientRequest.HttpClientRequest,
      executeOptions?: { readonly idempotent?: boolean; readonly retry?: boolean }
    ) => {
      let attempts = 0
      const countRetry = Effect.suspend(() =>
        attempts++ === 0
          ? Effect.void
          : Ref.update(statsRef, (stats) => ({ ...stats, retries: stats.retries + 1 })).pipe(
            Effect.zipRight(Metric.increment(metrics.retries))
          )
      )
      return countRetry.pipe(Effect.zipRight(Effect.scoped(
        Effect.gen(function*() {
          const response = yield* execute(request)
          const text = yield* response.text.pipe(
            Effect.mapError((error) =>
              new DataverseError({
                reason: "Transport",
                message: `The answer was cut off: ${error.message}`,
                request: describe(request),
                cause: error
              })
            )
          )
          let body: unknown = undefined
          if (text.trim() !== "") {
            try {
              body = JSON.parse(text)
            } catch (cause) {
              return yield* new DataverseError({
                reason: "Decode",
                message: `The answer to ${describe(request)} is not JSON: ${text.slice(0, 120)}`,
                status: response.status,
                request: describe(request),
                cause
              })
            }
          }
          return { status: response.status, headers: response.headers, body } satisfies ExecuteResult
        })
      ))).pipe(
        Effect.tapError((error) =>
          Effect.logDebug(
            `${error.request ?? describe(request)} failed: ${error.reason}${
              error.status === undefined ? "" : ` ${error.status}`
            } ${error.message}`
          )
        ),
        Effect.retry({
          schedule: retryPolicy,
          // Throttling was waited out already (a Throttled error is a wait past maxThrottleWait);
          // the schedule decides when to retry, never whether a data error is retried.
          while: (error) =>
            executeOptions?.retry !== false && isTransient(error) && error.reason !== "Throttled" &&
            (executeOptions?.idempotent !== false || !isAmbiguous(error))
        }),
        Effect.withSpan("Dataverse.execute", {
          kind: "client",
          attributes: { "http.request.method": request.method, "dataverse.resource": describe(request) }
        })
      )
    }

    return {
      url,
      webApiUrl,
      execute,
      executeRaw,
      executeJson,
      retryPolicy,
      hints: Ref.get(hintsRef),
      controller,
      stats: Ref.get(statsRef),
      label
    }
  })

/**
 * A connection over the `HttpClient` it is given (any platform's, or a test's own). No cookie is
 * sent back (unless `affinityCookies`), so requests spread over all the service's web servers
 * (wire reference §6); nothing reads or steers by a cookie's value. `layerNode` provides Node's.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Layer, Redacted } from "effect"
 * import { Credentials, DataverseClient } from "@dv-effect/core"
 * declare const token: string
 * const Live = DataverseClient.layer({
 *   url: "https://contoso.crm.dynamics.com",
 *   credentials: Credentials.staticToken(Redacted.make(token))
 * }).pipe(Layer.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ClientOptions): Layer.Layer<DataverseClient, DataverseError, HttpClient.HttpClient> =>
  Layer.scoped(DataverseClient, make(options))

/**
 * A connection with Node's HTTP client and a keep-alive agent sized by `maxSockets` (64 by
 * default): `layer` with what a Node program needs.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import { Credentials, DataverseClient } from "@dv-effect/core"
 * declare const token: string
 * const Live = DataverseClient.layerNode({
 *   url: "https://contoso.crm.dynamics.com",
 *   credentials: Credentials.staticToken(Redacted.make(token))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNode = (options: ClientOptions): Layer.Layer<DataverseClient, DataverseError> =>
  layer(options).pipe(
    Layer.provide(NodeHttpClient.layerWithoutAgent),
    Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: true, maxSockets: options.maxSockets ?? 64 }))
  )

/**
 * The conventional environment variables of a connection, by the setting each holds: the one
 * place their names are written (`environmentConfig` reads them; the CLI's flags fall back to
 * them).
 *
 * @example
 * ```ts
 * import { DataverseClient } from "@dv-effect/core"
 * const variable: string = DataverseClient.environmentVariables.clientSecret // "AZURE_CLIENT_SECRET"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export const environmentVariables = {
  url: "DATAVERSE_URL",
  connectionString: "DATAVERSE_CONNECTION_STRING",
  accessToken: "DATAVERSE_ACCESS_TOKEN",
  tenantId: "AZURE_TENANT_ID",
  clientId: "AZURE_CLIENT_ID",
  clientSecret: "AZURE_CLIENT_SECRET",
  certificatePath: "AZURE_CLIENT_CERTIFICATE_PATH",
  certificatePassword: "AZURE_CLIENT_CERTIFICATE_PASSWORD",
  federatedTokenFile: "AZURE_FEDERATED_TOKEN_FILE",
  authorityHost: "AZURE_AUTHORITY_HOST",
  caFile: "DATAVERSE_CA_FILE",
  username: "DATAVERSE_USERNAME",
  password: "DATAVERSE_PASSWORD",
  identityEndpoint: "IDENTITY_ENDPOINT",
  msiEndpoint: "MSI_ENDPOINT"
} as const

/**
 * What the conventional environment variables hold (`environmentConfig`); a variable set to the
 * empty string counts as unset, except the certificate password (a PFX may have an empty one).
 * Secrets stay `Redacted`.
 *
 * @since 0.2.0
 * @category models
 */
export interface EnvironmentSettings {
  readonly url: Option.Option<string>
  readonly connectionString: Option.Option<Redacted.Redacted<string>>
  /** `DATAVERSE_ACCESS_TOKEN`, comma-separated: one identity each (a JWT has no comma). */
  readonly accessTokens: ReadonlyArray<Redacted.Redacted<string>>
  readonly tenantId: Option.Option<string>
  readonly clientId: Option.Option<string>
  readonly clientSecret: Option.Option<Redacted.Redacted<string>>
  readonly certificatePath: Option.Option<string>
  readonly certificatePassword: Option.Option<Redacted.Redacted<string>>
  readonly federatedTokenFile: Option.Option<string>
  readonly authorityHost: Option.Option<string>
  readonly caFile: Option.Option<string>
  readonly username: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
  /** `IDENTITY_ENDPOINT` or `MSI_ENDPOINT` is set: the host has a managed identity. */
  readonly managedIdentity: boolean
}

const nonEmpty = (value: string) => value.trim() !== ""
const optionalText = (name: string) => Config.option(Config.string(name)).pipe(Config.map(Option.filter(nonEmpty)))
const optionalSecret = (name: string) =>
  Config.option(Config.redacted(name)).pipe(
    Config.map(Option.filter((value) => nonEmpty(Redacted.value(value))))
  )

/**
 * The conventional environment variables (`environmentVariables`) as one `Config`: read it with
 * any `ConfigProvider` (the process environment by default).
 *
 * @example
 * ```ts
 * import { ConfigProvider, Effect, Option } from "effect"
 * import { DataverseClient } from "@dv-effect/core"
 * const settings = Effect.withConfigProvider(
 *   DataverseClient.environmentConfig,
 *   ConfigProvider.fromMap(new Map([["DATAVERSE_URL", "https://contoso.crm.dynamics.com"]]))
 * )
 * const url = Effect.map(settings, (s) => Option.getOrUndefined(s.url))
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const environmentConfig: Config.Config<EnvironmentSettings> = Config.all({
  url: optionalText(environmentVariables.url),
  connectionString: optionalSecret(environmentVariables.connectionString),
  accessTokens: Config.map(
    optionalSecret(environmentVariables.accessToken),
    Option.match({
      onNone: () => [],
      onSome: (tokens) =>
        Redacted.value(tokens).split(",").map((t) => t.trim()).filter(nonEmpty).map((t) => Redacted.make(t))
    })
  ),
  tenantId: optionalText(environmentVariables.tenantId),
  clientId: optionalText(environmentVariables.clientId),
  clientSecret: optionalSecret(environmentVariables.clientSecret),
  certificatePath: optionalText(environmentVariables.certificatePath),
  certificatePassword: Config.option(Config.redacted(environmentVariables.certificatePassword)),
  federatedTokenFile: optionalText(environmentVariables.federatedTokenFile),
  authorityHost: optionalText(environmentVariables.authorityHost),
  caFile: optionalText(environmentVariables.caFile),
  username: optionalText(environmentVariables.username),
  password: optionalSecret(environmentVariables.password),
  managedIdentity: Config.map(
    Config.all([optionalText(environmentVariables.identityEndpoint), optionalText(environmentVariables.msiEndpoint)]),
    ([identity, msi]) => Option.isSome(identity) || Option.isSome(msi)
  )
})

/**
 * The connection the environment describes (`environmentConfig`), first match wins:
 * `DATAVERSE_CONNECTION_STRING`; `DATAVERSE_ACCESS_TOKEN` (several, comma-separated: one identity
 * each); `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_TENANT_ID` and `AZURE_CLIENT_ID` (workload
 * identity); `AZURE_CLIENT_CERTIFICATE_PATH` (+ `AZURE_CLIENT_CERTIFICATE_PASSWORD`);
 * `AZURE_CLIENT_SECRET`; `IDENTITY_ENDPOINT` or `MSI_ENDPOINT` (managed identity, user-assigned
 * when `AZURE_CLIENT_ID` is set). `DATAVERSE_URL` names the org (a connection string may name it
 * instead); `AZURE_AUTHORITY_HOST` and `DATAVERSE_CA_FILE` point at another identity endpoint (a
 * local one) and its CA. Reading the files a setting names (CA, certificate) is why this is an
 * `Effect` over the `Config`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const configFromEnvironment: Effect.Effect<
  {
    readonly url: string
    readonly credentials: Credentials.Credential | ReadonlyArray<Credentials.Credential>
  },
  DataverseError | ConfigError.ConfigError
> = Effect.gen(function*() {
  const env = yield* environmentConfig
  const ca = Option.isSome(env.caFile) ? yield* readText(environmentVariables.caFile, env.caFile.value) : undefined
  if (Option.isSome(env.connectionString)) {
    const parsed = yield* ConnectionString.parse(env.connectionString.value, ca === undefined ? {} : { ca })
    return { url: Option.getOrElse(env.url, () => parsed.url), credentials: parsed.credentials }
  }
  // Without a connection string the org must be named: fail as `Config.string` does.
  const url = Option.isSome(env.url) ? env.url.value : yield* Config.string(environmentVariables.url)
  if (env.accessTokens.length > 0) {
    return {
      url,
      credentials: env.accessTokens.length === 1
        ? Credentials.staticToken(env.accessTokens[0]!)
        : env.accessTokens.map((token) => Credentials.staticToken(token))
    }
  }
  const app = () => {
    if (Option.isNone(env.tenantId) || Option.isNone(env.clientId)) return undefined
    return {
      tenantId: env.tenantId.value,
      clientId: env.clientId.value,
      ...(Option.isSome(env.authorityHost)
        ? { authority: `${env.authorityHost.value.replace(/\/+$/, "")}/${env.tenantId.value}` }
        : {}),
      ...(ca === undefined ? {} : { ca })
    }
  }
  const settings = app()
  if (settings !== undefined && Option.isSome(env.federatedTokenFile)) {
    return { url, credentials: Credentials.workloadIdentity({ ...settings, tokenFile: env.federatedTokenFile.value }) }
  }
  if (settings !== undefined && Option.isSome(env.certificatePath)) {
    const read = yield* Credentials.readCertificateFile(
      env.certificatePath.value,
      Option.getOrUndefined(env.certificatePassword)
    )
    return { url, credentials: Credentials.clientCertificate({ ...settings, ...read }) }
  }
  if (settings !== undefined && Option.isSome(env.clientSecret)) {
    return { url, credentials: Credentials.clientSecret({ ...settings, clientSecret: env.clientSecret.value }) }
  }
  if (env.managedIdentity) {
    return {
      url,
      credentials: Credentials.managedIdentity({
        ...(Option.isSome(env.clientId) ? { clientId: env.clientId.value } : {}),
        ...(ca === undefined ? {} : { ca })
      })
    }
  }
  return yield* new DataverseError({
    reason: "InvalidInput",
    message:
      "No credentials in the environment: set DATAVERSE_ACCESS_TOKEN, DATAVERSE_CONNECTION_STRING, or AZURE_TENANT_ID + AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE."
  })
})

const readText = (variable: string, path: string) =>
  Effect.tryPromise({
    try: () => Fs.promises.readFile(path, "utf8"),
    catch: () => new DataverseError({ reason: "InvalidInput", message: `Cannot read ${variable}=${path}.` })
  })

/**
 * A connection whose options are `Config` values, read when the layer is built, over the
 * `HttpClient` it is given (as `layer`).
 *
 * @example
 * ```ts
 * import { Config, Layer } from "effect"
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Credentials, DataverseClient } from "@dv-effect/core"
 * const Live = DataverseClient.layerConfig({
 *   url: Config.string("ORG_URL"),
 *   credentials: Config.map(Config.redacted("ORG_TOKEN"), Credentials.staticToken)
 * }).pipe(Layer.provide(NodeHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<ClientOptions>
): Layer.Layer<DataverseClient, DataverseError | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

/**
 * A connection configured from the conventional environment variables (`configFromEnvironment`),
 * with Node's HTTP client (as `layerNode`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DataverseClient } from "@dv-effect/core"
 * Effect.runPromise(DataverseClient.whoAmI.pipe(Effect.provide(DataverseClient.layerEnvironment())))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerEnvironment = (
  options: Omit<ClientOptions, "url" | "credentials"> = {}
): Layer.Layer<DataverseClient, DataverseError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(configFromEnvironment, ({ credentials, url }) => layerNode({ ...options, url, credentials }))
  )

/**
 * `GET WhoAmI`: who the connection acts as. A cheap first call that also tells the service's
 * recommended parallelism (`hints`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const whoAmI: Effect.Effect<
  { readonly UserId: string; readonly BusinessUnitId: string; readonly OrganizationId: string },
  DataverseError,
  DataverseClient
> = Effect.flatMap(DataverseClient, (client) => client.executeJson(HttpClientRequest.get("WhoAmI"))).pipe(
  Effect.flatMap(({ body }) => {
    const b = body as Record<string, unknown> | undefined
    return typeof b?.UserId === "string" && typeof b.BusinessUnitId === "string" &&
        typeof b.OrganizationId === "string"
      ? Effect.succeed({ UserId: b.UserId, BusinessUnitId: b.BusinessUnitId, OrganizationId: b.OrganizationId })
      : Effect.fail(
        new DataverseError({
          reason: "Decode",
          message: "The WhoAmI answer lacks UserId, BusinessUnitId or OrganizationId."
        })
      )
  })
)

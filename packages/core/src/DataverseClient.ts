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
import type * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Credentials from "./Credentials.js"
import { DataverseError } from "./DataverseError.js"
import * as internalClient from "./internal/client.js"
import * as internalErrors from "./internal/clientErrors.js"
import * as internalMetrics from "./internal/clientMetrics.js"
import * as internalEnvironment from "./internal/environment.js"
import type { TableMetadata } from "./Metadata.js"

/**
 * How to connect.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /**
   * The org URL, e.g. `https://contoso.crm.dynamics.com`. What users paste is fine too: a trailing
   * `/`, the Web API root (`/api/data/v9.1/`, whose version is then used unless `apiVersion` says
   * otherwise), or an app's page (`/main.aspx?appid=...`).
   */
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
  /** Web API version. Default: the one `url` names, else `9.2`. */
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
 *   it) cuts the requests in flight once (`Limiter`): at once for the concurrent-request limit,
 *   else once the probe is refused too. A lone 429 whose probe is admitted, or one while no
 *   slot is held, cuts nothing.
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
   * Calls `f` with the end of every hold that starts or lengthens, and of every refused request's
   * own Retry-After wait as it starts (and the time it started), until the scope closes.
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
  /**
   * Epoch ms the connection may send again, while every request it has is waiting for a
   * Retry-After (a hold, or each refused request's own wait with none on the wire); in the past
   * when it is not waiting. For display.
   */
  readonly waitingUntil: number
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
export const metrics: {
  readonly requests: Metric.Metric.Counter<number>
  readonly throttled: Metric.Metric.Counter<number>
  readonly retries: Metric.Metric.Counter<number>
  readonly latency: Metric.Metric.Histogram<number>
} = internalMetrics.metrics

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
 * Splits what users paste as "the URL" (the org root, the Web API root or a URL under it, an
 * app's page such as `/main.aspx?appid=...`, with or without a trailing slash) into the org root.
 *
 * @since 0.1.0
 * @category utils
 */
export const normaliseOrgUrl: (url: string) => string | undefined = internalClient.normaliseOrgUrl

/**
 * Reads a Dataverse error body (`{"error":{"code","message"}}`) into a `DataverseError`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const decodeErrorResponse: (
  request: string,
  status: number,
  headers: Readonly<Record<string, string>>,
  bodyText: string,
  now: number
) => DataverseError = internalErrors.decodeErrorResponse

/**
 * Builds a connection. Needs an `HttpClient`; `layer` provides Node's with a keep-alive agent.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: ClientOptions
) => Effect.Effect<DataverseClientService, DataverseError, HttpClient.HttpClient | Scope.Scope> = internalClient.make

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
export const environmentVariables: {
  readonly url: "DATAVERSE_URL"
  readonly connectionString: "DATAVERSE_CONNECTION_STRING"
  readonly accessToken: "DATAVERSE_ACCESS_TOKEN"
  readonly tenantId: "AZURE_TENANT_ID"
  readonly clientId: "AZURE_CLIENT_ID"
  readonly clientSecret: "AZURE_CLIENT_SECRET"
  readonly certificatePath: "AZURE_CLIENT_CERTIFICATE_PATH"
  readonly certificatePassword: "AZURE_CLIENT_CERTIFICATE_PASSWORD"
  readonly federatedTokenFile: "AZURE_FEDERATED_TOKEN_FILE"
  readonly authorityHost: "AZURE_AUTHORITY_HOST"
  readonly caFile: "DATAVERSE_CA_FILE"
  readonly username: "DATAVERSE_USERNAME"
  readonly password: "DATAVERSE_PASSWORD"
  readonly identityEndpoint: "IDENTITY_ENDPOINT"
  readonly msiEndpoint: "MSI_ENDPOINT"
} = internalEnvironment.environmentVariables

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
export const environmentConfig: Config.Config<EnvironmentSettings> = internalEnvironment.environmentConfig

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
> = internalEnvironment.configFromEnvironment

/**
 * A connection whose options are `Config` values, read when the layer is built, over the
 * `HttpClient` it is given (as `layer`).
 *
 * @example
 * ```ts
 * import { Config, Layer } from "effect"
 * import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
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

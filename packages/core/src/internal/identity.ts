// One identity of a connection: its HTTP pipeline (base URL, OData headers, bearer token, no
// cookies unless asked, timeout, 401 -> refresh once), hints, stats and throttle controller.
import * as Cookies from "@effect/platform/Cookies"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type * as Credentials from "../Credentials.js"
import type {
  ClientOptions,
  ClientStats,
  DataverseClientService,
  ExecuteResult,
  ServerHints
} from "../DataverseClient.js"
import { DataverseError, isAmbiguous, isTransient } from "../DataverseError.js"
import * as RetryPolicy from "../RetryPolicy.js"
import { makeController } from "./bulk/controller.js"
import { followed } from "./bulk/exposure.js"
import { cutOffError, decodeErrorResponse, describe, transportError } from "./clientErrors.js"
import { metrics } from "./clientMetrics.js"

/** One identity of a connection: its token, controller, hints and stats, on the shared HTTP client. */
export const makeIdentity = (
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
        ),
        // Each request's abort is bound to a scope, which `sendOnce` closes once the answer's body
        // is read: without it an answer left unread (its fiber interrupted before the body) keeps
        // its keep-alive socket until garbage collection, and a small pool then hangs.
        HttpClient.withScope
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

    // The body is read before the answer is handed on (every caller reads it whole; the text is
    // cached on the answer), so that the request's scope can close, freeing its socket, even when
    // the caller is interrupted before reading it.
    const sendOnce = (request: HttpClientRequest.HttpClientRequest, token: Redacted.Redacted<string>) =>
      Effect.scoped(
        Effect.tap(
          baseClient.execute(HttpClientRequest.bearerToken(request, token)),
          (response) => Effect.mapError(response.text, (error) => cutOffError(describe(request), error))
        )
      ).pipe(
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

    // A token given as is cannot be renewed: a 401 is final, and says why no refresh was tried.
    const renewable = credentials.refreshable !== false
    const unrenewable = (error: DataverseError) =>
      renewable || error.reason !== "Unauthorized"
        ? error
        : new DataverseError({
          ...error,
          message:
            `${error.message} (the access token was given as is and cannot be refreshed: get a new one, or sign in with credentials that renew it)`
        })

    const failOnStatus = (
      request: HttpClientRequest.HttpClientRequest,
      response: HttpClientResponse.HttpClientResponse
    ) =>
      response.status < 400
        ? Effect.succeed(response)
        : Effect.flatMap(errorOf(request, response), (error) => Effect.fail(unrenewable(error)))

    // A write on the wire is followed for what a stopped run says may have landed (exposure.ts):
    // a 429 or a 401 answer says it did nothing; signing in is not on the wire.
    const send = (request: HttpClientRequest.HttpClientRequest, token: Redacted.Redacted<string>) =>
      request.method === "GET"
        ? sendOnce(request, token)
        : followed(sendOnce(request, token), (response) => response.status === 429 || response.status === 401)

    const attempt = (request: HttpClientRequest.HttpClientRequest) =>
      Effect.gen(function*() {
        const token = yield* credentials.getToken
        const response = yield* send(request, token)
        if (response.status !== 401 || !renewable) return response
        // The token may have been revoked or expired early: refresh once, then give up.
        yield* credentials.invalidate
        const fresh = yield* credentials.getToken
        return yield* send(request, fresh)
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
          // Read (and cut off, if it was) in `sendOnce` already: this is its cached text.
          const text = yield* Effect.mapError(response.text, (error) => cutOffError(describe(request), error))
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

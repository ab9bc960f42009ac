/**
 * Counters of one web server of the model: requests, 429s by limit, faults injected.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerCounters {
  requests: number
  throttled: { requests: number; executionTime: number; concurrency: number; injected: number }
  faults: { unavailable: number; resetBeforeCommit: number; resetAfterCommit: number; timeout: number }
}

/**
 * Counters that tests and benchmarks read: requests answered, records written, error answers.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmulatorCounters {
  requests: number
  recordsWritten: number
  errors: number
}

/**
 * A running emulator: an HTTP server on Node answering the Dataverse Web API, started from
 * Effect code (`layer`, `make`) or from plain code (`start`).
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { randomBytes, randomUUID } from "node:crypto"
import * as Http from "node:http"
import * as Identity from "./Identity.js"
import * as IdentityServer from "./IdentityServer.js"
import { Fault } from "./internal/fault.js"
import { createRecord } from "./internal/operations.js"
import * as Persistence from "./internal/persistence.js"
import { ServiceModel } from "./internal/throttle.js"
import { makeApp } from "./internal/webApi.js"
import * as Model from "./Model.js"
import { Store } from "./Store.js"
import { defaultSchema, type SchemaDefinition } from "./TableSchema.js"

/**
 * How to start an emulator. Every field has a default suited to tests.
 *
 * @since 0.1.0
 * @category models
 */
export interface EmulatorOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string
  /** Port; `0` (the default) picks a free one. */
  readonly port?: number
  /** The tables to serve. Default `defaultSchema`. */
  readonly schema?: SchemaDefinition
  /** The performance model: a named profile (`Model.profileNames`) or a profile object. Default `fast`. */
  readonly profile?: Model.Profile | Model.ProfileName
  /**
   * Overrides the profile's `x-ms-dop-hint` (and so each server's capacity, `Model.serverCapacity`,
   * unless the profile sets one).
   */
  readonly dopHint?: number
  /** Largest request body accepted, in bytes; larger ones get 413. Default 128 MiB. */
  readonly maxBodyBytes?: number
  /**
   * A directory to keep the data in across restarts (created if missing). Writes are journalled
   * once a second; a clean stop writes a snapshot. Default: memory only.
   */
  readonly dataDir?: string
  /**
   * Serve the identity endpoint (HTTPS, for msal-node). Default true; false starts faster (about
   * a second less, the first time in a process) when only the static token is used.
   */
  readonly identity?: boolean
  /**
   * More credentials for the default app registration: a client certificate (PEM) and a workload
   * identity federation trust, for testing those flows.
   */
  readonly appCredentials?: {
    readonly certificatePem?: string
    readonly federated?: IdentityServer.FederatedCredential
  }
  /**
   * How many application users to register, each with its own client id, client secret, static
   * access token and systemuser (`StartInfo.users`). The service protection limits apply per
   * user (and per web server), so each user has its own windows. Default 1.
   */
  readonly users?: number
  /** Lifetime of the access token in the start contract, in seconds. Default 24 hours. */
  readonly tokenLifetimeSeconds?: number
  /**
   * Lifetime of the access tokens the identity endpoint issues, in seconds. Default 3600, as
   * Entra. A short one makes a client refresh its token within a run.
   */
  readonly identityTokenLifetimeSeconds?: number
}

/**
 * One application user of the org, as the start contract lists it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ApplicationUser {
  /** Its `systemuserid`: what `WhoAmI` answers for its tokens, and its records' `_createdby_value`. */
  readonly userId: string
  /** The application (client) id of its app registration. */
  readonly clientId: string
  /** Its client secret, for the client credentials flow (when the identity endpoint runs). */
  readonly clientSecret?: string
  /** A static token the Web API accepts for it. */
  readonly accessToken: string
}

/**
 * The start contract: what `dv-effect emulator` prints as its first line on stdout, and what
 * code that starts an emulator gets back.
 *
 * @since 0.1.0
 * @category models
 */
export interface StartInfo {
  /** The org root, e.g. `http://127.0.0.1:41234`. */
  readonly url: string
  /** `<url>/api/data/v9.2/`. */
  readonly webApiUrl: string
  /** A token the Web API accepts, for the default application user. */
  readonly accessToken: string
  readonly tenantId: string
  /** The application (client) id of the default app registration, which is an application user of the org. */
  readonly clientId: string
  /** Its client secret, for the client credentials flow. */
  readonly clientSecret?: string
  /** The identity endpoint as msal's `auth.authority`: `https://127.0.0.1:<port>/<tenantId>`. */
  readonly authority?: string
  /** A PEM file with the CA that signed the identity endpoint's certificate: trust it (`NODE_EXTRA_CA_CERTS`). */
  readonly caFile?: string
  /** A public client (no secret) for the user flows: device code, username/password. */
  readonly publicClientId?: string
  /** A user of the tenant and of the org, for the user flows (device code, username/password). */
  readonly username?: string
  readonly password?: string
  readonly organizationId: string
  /** The `systemuserid` that `WhoAmI` reports for `accessToken`. */
  readonly userId: string
  /**
   * Every application user (`EmulatorOptions.users`), the first being the one of the top-level
   * `clientId`, `clientSecret`, `accessToken` and `userId`.
   */
  readonly users: ReadonlyArray<ApplicationUser>
}

/**
 * A running emulator: its start contract, its store and counters.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningEmulator {
  readonly info: StartInfo
  readonly store: Store
  readonly counters: Readonly<EmulatorCounters>
  /** Per web server: requests, 429s by kind, faults injected. */
  readonly servers: ReadonlyArray<Readonly<ServerCounters>>
  /** The performance profile in force. */
  readonly profile: Model.Profile
  /** The identity endpoint, when it runs: msal configuration helpers, device-code approval, counters. */
  readonly identity: IdentityServer.RunningIdentityServer | undefined
  /**
   * Creates records in `table` (logical name) as `POST` would by the first application user, with
   * the same validation, and returns their ids; fails on the first invalid row, writing none of them.
   */
  readonly seed: (table: string, rows: ReadonlyArray<Record<string, unknown>>) => Array<string>
  /** Removes every record of every table, and forgets the service protection windows, holds and counters. */
  readonly reset: () => void
  /**
   * Issues another access token for the default user (or the application user at index `user`
   * of `info.users`), e.g. with a short lifetime or another audience.
   */
  readonly issueToken: (
    options?: { readonly lifetimeSeconds?: number; readonly audience?: string; readonly user?: number }
  ) => Promise<string>
}

/**
 * Why an emulator could not start.
 *
 * @since 0.1.0
 * @category errors
 */
export class EmulatorError extends Data.TaggedError("EmulatorError")<{
  readonly reason: "Listen" | "DataDir" | "Identity"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The emulator as an Effect service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Emulator extends Context.Tag("@dv-effect/emulator/Emulator")<Emulator, RunningEmulator>() {}

/**
 * Starts an emulator; it stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: EmulatorOptions = {}): Effect.Effect<RunningEmulator, EmulatorError, Scope.Scope> =>
  Effect.gen(function*() {
    const userCount = options.users ?? 1
    if (!Number.isInteger(userCount) || userCount < 1) {
      return yield* Effect.dieMessage(`users must be a positive integer, got ${userCount}`)
    }
    const tenantId = randomUUID()
    const appUsers = Array.from({ length: userCount }, () => ({
      clientId: randomUUID(),
      clientSecret: randomBytes(24).toString("base64url"),
      objectId: randomUUID(),
      userId: randomUUID()
    }))
    const { clientId, clientSecret, userId } = appUsers[0]!
    const organizationId = randomUUID()
    const publicClientId = randomUUID()
    const userObjectId = randomUUID()
    const userSystemUserId = randomUUID()
    const username = "admin@dv-effect.emulator"
    const password = randomBytes(12).toString("base64url")
    const managedIdentity = { clientId: randomUUID(), objectId: randomUUID(), systemAssigned: true }
    const managedIdentityUserId = randomUUID()
    const identity = yield* Effect.promise(() => Identity.make(tenantId))
    const store = new Store((options.schema ?? defaultSchema).tables)
    if (options.dataDir !== undefined) {
      const directory = options.dataDir
      // Warnings (a damaged line, a failed flush) go through the caller's logger, from any callback.
      const runtime = yield* Effect.runtime<never>()
      const warn = (message: string) => Runtime.runFork(runtime)(Effect.logWarning(message))
      const persistence = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => Persistence.open(directory, store, { onWarning: warn }),
          catch: (cause) =>
            new EmulatorError({
              reason: "DataDir",
              message: `Cannot use the data directory ${directory}: ${String(cause)}`,
              cause
            })
        }),
        (persistence) => Effect.promise(() => persistence.close())
      )
      yield* Effect.logDebug(`restored ${persistence.restored} records from ${directory}`)
    }
    const counters: EmulatorCounters = { requests: 0, recordsWritten: 0, errors: 0 }
    const baseProfile = typeof options.profile === "string"
      ? Model.profiles[options.profile]
      : options.profile ?? Model.fast
    const profile = options.dopHint === undefined ? baseProfile : { ...baseProfile, dopHint: options.dopHint }
    const model = new ServiceModel(profile)
    let orgUrl = ""
    let authority = `https://login.microsoftonline.com/${tenantId}`
    const app = makeApp({
      authority: () => authority,
      store,
      identity,
      orgUrl: () => orgUrl,
      organizationId,
      businessUnitId: randomUUID(),
      users: new Map([
        ...appUsers.map((user) => [user.objectId, user.userId] as const),
        [userObjectId, userSystemUserId],
        [managedIdentity.objectId, managedIdentityUserId]
      ]),
      model,
      maxBodyBytes: options.maxBodyBytes ?? 128 * 1024 * 1024,
      counters
    })
    const server = yield* NodeHttpServer.make(() => {
      // The service takes a GET URL of up to 32 KB (documented; wire reference §8), where Node's
      // default refuses a request line and headers over 16 KB with a 431. Room for both; a longer
      // request still gets Node's 431 (a modelling choice: the service's answer is not documented).
      const http = Http.createServer({ maxHeaderSize: 64 * 1024 })
      // Longer than the clients' idle timeouts, so that a kept-alive socket is never closed under them.
      http.keepAliveTimeout = 65_000
      return http
    }, { host: options.host ?? "127.0.0.1", port: options.port ?? 0 }).pipe(
      Effect.mapError((cause: ServeError) => new EmulatorError({ reason: "Listen", message: cause.message, cause }))
    )
    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the emulator must listen on TCP")
    const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname
    orgUrl = `http://${host}:${address.port}`
    yield* server.serve(app)
    const identityServer = options.identity === false ? undefined : yield* IdentityServer.make({
      identity,
      audience: () => orgUrl,
      apps: [
        ...appUsers.map((user, i) => ({
          clientId: user.clientId,
          clientSecret: user.clientSecret,
          objectId: user.objectId,
          ...(i === 0 ? options.appCredentials : {})
        })),
        { clientId: publicClientId, objectId: randomUUID() }
      ],
      users: [{ username, password, objectId: userObjectId, displayName: "Emulator Admin" }],
      managedIdentities: [managedIdentity],
      host: options.host ?? "127.0.0.1",
      ...(options.identityTokenLifetimeSeconds === undefined
        ? {}
        : { tokenLifetimeSeconds: options.identityTokenLifetimeSeconds })
    }).pipe(
      Effect.mapError((cause) =>
        new EmulatorError({
          reason: "Identity",
          message: `The identity endpoint could not start: ${cause.message}`,
          cause
        })
      )
    )
    if (identityServer !== undefined) authority = identityServer.authority
    const issueToken = (
      tokenOptions: { readonly lifetimeSeconds?: number; readonly audience?: string; readonly user?: number } = {}
    ) => {
      const user = appUsers[tokenOptions.user ?? 0]
      if (user === undefined) {
        return Promise.reject(new Error(`issueToken: there is no application user ${tokenOptions.user}`))
      }
      return identity.issueAccessToken({
        audience: tokenOptions.audience ?? orgUrl,
        objectId: user.objectId,
        appId: user.clientId,
        lifetimeSeconds: tokenOptions.lifetimeSeconds ?? options.tokenLifetimeSeconds ?? 24 * 60 * 60
      })
    }
    const accessTokens = yield* Effect.promise(() => Promise.all(appUsers.map((_, user) => issueToken({ user }))))
    const accessToken = accessTokens[0]!
    const seededBy = { table: "systemuser", id: userId }
    yield* Effect.logDebug(`emulator listening on ${orgUrl}`)
    return {
      info: {
        url: orgUrl,
        webApiUrl: `${orgUrl}/api/data/v9.2/`,
        accessToken,
        tenantId,
        clientId,
        ...(identityServer === undefined
          ? {}
          : {
            clientSecret,
            authority: identityServer.authority,
            caFile: identityServer.caFile,
            publicClientId,
            username,
            password
          }),
        organizationId,
        userId,
        users: appUsers.map((user, i) => ({
          userId: user.userId,
          clientId: user.clientId,
          ...(identityServer === undefined ? {} : { clientSecret: user.clientSecret }),
          accessToken: accessTokens[i]!
        }))
      },
      identity: identityServer,
      // Seeded records are created by the first application user.
      seed: (tableName, rows) => {
        const table = store.table(tableName)
        if (table === undefined) throw new Error(`seed: the schema has no table '${tableName}'`)
        const stamp = () => new Date().toISOString().replace(/\.\d{3}Z$/, "Z")
        const created = store.transaction(() => {
          const ids: Array<string> = []
          for (const [i, row] of rows.entries()) {
            const record = createRecord(store, table, row, stamp, seededBy)
            if (record instanceof Fault) return new Fault(record.status, record.code, `row ${i}: ${record.message}`)
            ids.push(record.id)
          }
          return ids
        })
        if (created instanceof Fault) throw new Error(`seed ${tableName}: ${created.message}`)
        return created
      },
      reset: () => {
        store.clear()
        model.reset()
        Object.assign(counters, { requests: 0, recordsWritten: 0, errors: 0 })
      },
      store,
      counters,
      servers: model.counters,
      profile,
      issueToken
    }
  })

/**
 * A layer that runs an emulator for as long as it is in use.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: EmulatorOptions = {}): Layer.Layer<Emulator, EmulatorError> =>
  Layer.scoped(Emulator, make(options))

/**
 * Starts an emulator from plain (non-Effect) code; `close()` stops it.
 *
 * @example
 * ```ts
 * import { start } from "@dv-effect/emulator/Emulator"
 * const emulator = await start()
 * console.log(emulator.info.webApiUrl, emulator.info.accessToken)
 * await emulator.close()
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (options: EmulatorOptions = {}): Promise<RunningEmulator & { close(): Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const running = await Effect.runPromise(Scope.extend(make(options), scope))
  return { ...running, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

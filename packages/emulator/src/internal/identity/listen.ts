/**
 * The identity server's HTTPS listener: TLS material from a CA generated at start, the CA file a
 * client trusts (removed when the scope closes, or by the next emulator to start once its process
 * is gone), and the availability switch of `setAvailable`.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpServer from "@effect/platform/HttpServer"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs/promises"
import type * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import type { IdentityServerError } from "../../IdentityServer.js"
import { makeTlsMaterial } from "../tls.js"

/** Why the server could not start: the fields of the public `IdentityServerError`. */
export type StartFailure = ConstructorParameters<typeof IdentityServerError>[0]

const failure = (reason: StartFailure["reason"], message: string, cause: unknown): StartFailure => ({
  reason,
  message,
  cause
})

const tempPrefix = "dv-effect-identity-"

/** Whether a process of this id runs (one of another user's counts as running). */
const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Removes the CA directories of emulators whose process is gone: a process killed outright
 * (SIGKILL, a closed terminal) runs no finalizer. Directories are named by their process id.
 */
const removeOrphans = Effect.promise(async () => {
  const entries = await Fs.readdir(Os.tmpdir()).catch(() => [] as Array<string>)
  for (const name of entries) {
    const pid = new RegExp(`^${tempPrefix}(\\d+)-`).exec(name)?.[1]
    if (pid === undefined || Number(pid) === process.pid || isRunning(Number(pid))) continue
    await Fs.rm(Path.join(Os.tmpdir(), name), { recursive: true, force: true }).catch(() => undefined)
  }
})

/** A listening server, not yet serving. */
export interface Listener {
  readonly server: HttpServer.HttpServer
  /** `127.0.0.1:<port>`: msal's known authority. */
  readonly hostAndPort: string
  /** `https://<hostAndPort>`. */
  readonly origin: string
  readonly caFile: string
  readonly caPem: string
  /** Test control: `false` closes open connections and every new one (see `setAvailable`). */
  readonly setAvailable: (available: boolean) => void
}

/** Listens on `host:port` over HTTPS; the server stops when the scope closes. */
export const listen = (host: string, port: number): Effect.Effect<Listener, StartFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const tls = yield* Effect.tryPromise({
      try: () => makeTlsMaterial([host]),
      catch: (cause) => failure("Certificate", "Could not make certificates", cause)
    })
    yield* removeOrphans
    const directory = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => Fs.mkdtemp(Path.join(Os.tmpdir(), `${tempPrefix}${process.pid}-`)),
        catch: (cause) => failure("CaFile", "Could not make a temporary directory", cause)
      }),
      (directory) =>
        Effect.tryPromise(() => Fs.rm(directory, { recursive: true, force: true })).pipe(
          Effect.catchAll((error) => Effect.logWarning(`could not remove ${directory}`, error))
        )
    )
    const caFile = Path.join(directory, "ca.pem")
    yield* Effect.tryPromise({
      try: () => Fs.writeFile(caFile, tls.caPem, { mode: 0o644 }),
      catch: (cause) => failure("CaFile", `Could not write ${caFile}`, cause)
    })

    let httpsServer: Https.Server | undefined
    const server = yield* NodeHttpServer.make(() => {
      httpsServer = Https.createServer({ key: tls.keyPem, cert: tls.certPem })
      // An https.Server is what NodeHttpServer needs of an http.Server: listen, close, "request" events.
      return httpsServer as unknown as Http.Server
    }, { host, port }).pipe(
      Effect.mapError((error) => failure("Listen", `Could not listen on ${host}`, error.cause))
    )
    // Runs before the server's own close: sockets still open (a client mid-poll) must not hold it.
    yield* Effect.addFinalizer(() => Effect.sync(() => httpsServer?.closeAllConnections()))
    // Test control (`setAvailable`), not part of the service model: while down, every connection
    // is closed as soon as it is made.
    let available = true
    httpsServer?.on("connection", (socket: Net.Socket) => {
      if (!available) socket.destroy()
    })
    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("the identity server must listen on TCP")
    const listenHost = address.hostname === "0.0.0.0" || address.hostname === "::" ? "127.0.0.1" : address.hostname
    const hostAndPort = `${listenHost.includes(":") ? `[${listenHost}]` : listenHost}:${address.port}`
    const origin = `https://${hostAndPort}`
    return {
      server,
      hostAndPort,
      origin,
      caFile,
      caPem: tls.caPem,
      setAvailable: (value) => {
        available = value
        if (!value) httpsServer?.closeAllConnections()
      }
    } satisfies Listener
  })

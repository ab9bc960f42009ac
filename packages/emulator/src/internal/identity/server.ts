/**
 * Starting an identity server: the HTTPS listener, the state its handlers share, the HTTP app.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { IdentityServerOptions, RunningIdentityServer } from "../../IdentityServer.js"
import { approve } from "./deviceCode.js"
import { makeHttpApp } from "./http.js"
import { listen, type StartFailure } from "./listen.js"
import { makeMsalNetworkClient } from "./msalNetworkClient.js"
import { makeState } from "./state.js"

/** Starts an identity server; it stops, and its CA file is removed, when the scope closes. */
export const make = (
  options: IdentityServerOptions
): Effect.Effect<RunningIdentityServer, StartFailure, Scope.Scope> =>
  Effect.gen(function*() {
    const { caFile, caPem, hostAndPort, origin, server, setAvailable } = yield* listen(
      options.host ?? "127.0.0.1",
      options.port ?? 0
    )
    const state = makeState(options, origin)
    const { authority, counters, identityHeader, tenantId } = state

    yield* server.serve(makeHttpApp(state))
    yield* Effect.logDebug(`identity server listening on ${origin}`)

    return {
      origin,
      tenantId,
      authority,
      knownAuthorities: [hostAndPort],
      tokenEndpoint: `${authority}/oauth2/v2.0/token`,
      caFile,
      caPem,
      msalNetworkClient: makeMsalNetworkClient(caPem),
      managedIdentityEnvironment: { IDENTITY_ENDPOINT: `${origin}/msi/token`, IDENTITY_HEADER: identityHeader },
      approveDeviceCode: (userCode, username) => approve(state, userCode, username, undefined) === undefined,
      counters,
      setAvailable
    }
  })

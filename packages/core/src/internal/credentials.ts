/**
 * Token providers that need no sign-in library: a static token, the cache every flow shares (one
 * refresh at a time, five minutes before expiry) and a token callback.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Credentials from "../Credentials.js"
import { DataverseError } from "../DataverseError.js"
import { signInError } from "./msal.js"

export const forResource: typeof Credentials.forResource = (credential, resource) =>
  typeof credential === "function" ? credential(resource) : credential

export const staticToken: typeof Credentials.staticToken = (token) => {
  const redacted = typeof token === "string" ? Redacted.make(token) : token
  const value = Redacted.value(redacted).trim()
  const getToken = value === ""
    ? Effect.fail(new DataverseError({ reason: "InvalidInput", message: "The access token is empty." }))
    : Effect.succeed(Redacted.make(value.replace(/^Bearer\s+/i, "")))
  return { getToken, invalidate: Effect.void, refreshable: false }
}

const refreshMargin = Duration.minutes(5)

export const cached: typeof Credentials.cached = (acquire) => {
  let current: { readonly token: Redacted.Redacted<string>; readonly refreshAt: number } | undefined
  let forceNext = false
  const lock = Effect.unsafeMakeSemaphore(1)
  const fresh = (now: number) => current !== undefined && now < current.refreshAt
  const getToken = Effect.gen(function*() {
    const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    if (fresh(now)) return current!.token
    return yield* lock.withPermits(1)(
      Effect.gen(function*() {
        const later = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        // Someone else refreshed while this caller waited for the lock.
        if (fresh(later)) return current!.token
        const acquired = yield* acquire(forceNext)
        forceNext = false
        const refreshAt = acquired.expiresOn === undefined
          ? later + Duration.toMillis(refreshMargin)
          : Math.max(later, acquired.expiresOn.getTime() - Duration.toMillis(refreshMargin))
        current = { token: acquired.token, refreshAt }
        return acquired.token
      })
    )
  })
  return {
    getToken,
    invalidate: Effect.sync(() => {
      current = undefined
      forceNext = true
    })
  }
}

export const fromCallback: typeof Credentials.fromCallback = (callback) => (resource) =>
  cached(() =>
    Effect.tryPromise({
      try: () => callback(resource),
      catch: (cause) => signInError("the token callback", cause)
    }).pipe(
      Effect.map((result) =>
        typeof result === "string"
          ? { token: Redacted.make(result), expiresOn: undefined }
          : { token: Redacted.make(result.token), expiresOn: result.expiresOn }
      )
    )
  )

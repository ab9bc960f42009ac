import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as DataverseClient from "../src/DataverseClient.js"

const withEnv = <A, E>(effect: Effect.Effect<A, E>, env: Record<string, string>) =>
  Effect.withConfigProvider(effect, ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("environmentConfig", () => {
  it.effect("reads every conventional variable; an empty one counts as unset", () =>
    Effect.gen(function*() {
      const settings = yield* withEnv(DataverseClient.environmentConfig, {
        DATAVERSE_URL: "https://contoso.crm.dynamics.com",
        DATAVERSE_ACCESS_TOKEN: " t1, ,t2 ",
        AZURE_TENANT_ID: "",
        AZURE_CLIENT_ID: "app",
        AZURE_CLIENT_SECRET: "s3cret",
        AZURE_CLIENT_CERTIFICATE_PASSWORD: "",
        MSI_ENDPOINT: "http://169.254.169.254"
      })
      expect(Option.getOrUndefined(settings.url)).toBe("https://contoso.crm.dynamics.com")
      expect(settings.accessTokens.map(Redacted.value)).toEqual(["t1", "t2"])
      expect(Option.isNone(settings.tenantId)).toBe(true)
      expect(Option.getOrUndefined(settings.clientId)).toBe("app")
      expect(Option.map(settings.clientSecret, Redacted.value)).toEqual(Option.some("s3cret"))
      // A PFX may have an empty password: that one is kept.
      expect(Option.map(settings.certificatePassword, Redacted.value)).toEqual(Option.some(""))
      expect(settings.managedIdentity).toBe(true)
      expect(Option.isNone(settings.connectionString)).toBe(true)
      // A secret is never shown by its settings.
      expect(JSON.stringify(settings)).not.toContain("s3cret")
    }))

  it.effect("configFromEnvironment: a token per comma-separated value, one identity each", () =>
    Effect.gen(function*() {
      const one = yield* withEnv(DataverseClient.configFromEnvironment, {
        DATAVERSE_URL: "https://contoso.crm.dynamics.com",
        DATAVERSE_ACCESS_TOKEN: "t1"
      })
      expect(Array.isArray(one.credentials)).toBe(false)
      const two = yield* withEnv(DataverseClient.configFromEnvironment, {
        DATAVERSE_URL: "https://contoso.crm.dynamics.com",
        DATAVERSE_ACCESS_TOKEN: "t1,t2"
      })
      expect(Array.isArray(two.credentials) && two.credentials.length).toBe(2)
    }))

  it.effect("configFromEnvironment: no org URL is a missing DATAVERSE_URL; no credential names the variables", () =>
    Effect.gen(function*() {
      const noUrl = yield* Effect.flip(withEnv(DataverseClient.configFromEnvironment, { DATAVERSE_ACCESS_TOKEN: "t" }))
      expect(String(noUrl)).toContain("DATAVERSE_URL")
      const none = yield* Effect.flip(
        withEnv(DataverseClient.configFromEnvironment, {
          DATAVERSE_URL: "https://contoso.crm.dynamics.com",
          DATAVERSE_ACCESS_TOKEN: "",
          AZURE_CLIENT_ID: "app"
        })
      )
      expect(none._tag === "DataverseError" && none.reason).toBe("InvalidInput")
      expect(none.message).toContain("DATAVERSE_ACCESS_TOKEN")
    }))
})

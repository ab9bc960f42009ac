/**
 * The connection flags every command that talks to Dataverse takes, and the layer they build.
 *
 * @since 0.1.0
 */
import * as Credentials from "@dv-effect/core/Credentials"
import * as DataverseClient from "@dv-effect/core/DataverseClient"
import type { DataverseError } from "@dv-effect/core/DataverseError"
import * as Options from "@effect/cli/Options"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { CliError } from "./CliError.js"

/**
 * `--url`, `--access-token` (with their environment fallbacks) and `--emulator`.
 *
 * @since 0.1.0
 */
export const options = {
  url: Options.text("url").pipe(
    Options.withDescription("Org URL, e.g. https://contoso.crm.dynamics.com (env DATAVERSE_URL)"),
    Options.withFallbackConfig(Config.string("DATAVERSE_URL")),
    Options.optional
  ),
  accessToken: Options.redacted("access-token").pipe(
    Options.withDescription("Bearer token for the org (env DATAVERSE_ACCESS_TOKEN); never printed"),
    Options.withFallbackConfig(Config.redacted("DATAVERSE_ACCESS_TOKEN")),
    Options.optional
  ),
  emulator: Options.boolean("emulator").pipe(
    Options.withDescription("Run against a fresh in-process emulator instead of --url")
  )
}

/**
 * The parsed connection flags.
 *
 * @since 0.1.0
 */
export interface ConnectionArgs {
  readonly url: Option.Option<string>
  readonly accessToken: Option.Option<Redacted.Redacted<string>>
  readonly emulator: boolean
}

/**
 * A `DataverseClient` from the flags: an in-process emulator with `--emulator`, else `--url`
 * with `--access-token`.
 *
 * @since 0.1.0
 */
export const layer = (
  args: ConnectionArgs,
  settings: { readonly maxSockets?: number } = {}
): Layer.Layer<DataverseClient.DataverseClient, CliError | DataverseError> => {
  if (args.emulator) {
    return Layer.unwrapScoped(
      Effect.gen(function*() {
        // Loaded on demand: `--help` and remote runs never pay for the emulator's modules.
        const Emulator = yield* Effect.promise(() => import("@dv-effect/emulator/Emulator"))
        // Only the static token is used: no identity endpoint, a faster start.
        const running = yield* Emulator.make({ identity: false }).pipe(
          Effect.mapError((cause) =>
            new CliError({ message: `Could not start the in-process emulator: ${cause.message}`, cause })
          )
        )
        return DataverseClient.layer({
          url: running.info.url,
          credentials: Credentials.staticToken(running.info.accessToken),
          ...settings
        })
      })
    )
  }
  if (Option.isNone(args.url)) {
    return Layer.fail(
      new CliError({ message: "No Dataverse URL: pass --url <org url> or set DATAVERSE_URL (or use --emulator)." })
    )
  }
  if (Option.isNone(args.accessToken)) {
    return Layer.fail(
      new CliError({ message: "No credentials: pass --access-token <token> or set DATAVERSE_ACCESS_TOKEN." })
    )
  }
  return DataverseClient.layer({
    url: args.url.value,
    credentials: Credentials.staticToken(args.accessToken.value),
    ...settings
  })
}

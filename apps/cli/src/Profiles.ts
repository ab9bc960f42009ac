/**
 * Named connection profiles (`dv-effect auth login`): the org URL, the sign-in flow and its ids,
 * kept in `profiles.json` in the user's config directory (mode 0600, directory 0700), with each
 * profile's cached sign-in in a token cache file of its own. Secrets are kept only when the user
 * asked for it (`--store-secret`).
 *
 * @since 0.1.0
 */
import * as Metadata from "@dv-effect/core/Metadata"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "./CliError.js"

/**
 * The sign-in flows a profile can name.
 *
 * @since 0.1.0
 */
export const flows = [
  "client-secret",
  "certificate",
  "workload-identity",
  "device-code",
  "username-password",
  "managed-identity",
  "connection-string"
] as const

/**
 * A sign-in flow.
 *
 * @since 0.1.0
 */
export type Flow = typeof flows[number]

/**
 * A saved profile. `secret` is present only when the user passed `--store-secret`: the client
 * secret, the certificate password, the user's password or the connection string of the flow.
 *
 * @since 0.1.0
 */
export const Profile = Schema.Struct({
  name: Schema.String,
  url: Schema.String,
  flow: Schema.Literal(...flows),
  tenantId: Schema.optional(Schema.String),
  clientId: Schema.optional(Schema.String),
  authority: Schema.optional(Schema.String),
  caFile: Schema.optional(Schema.String),
  certificate: Schema.optional(Schema.String),
  federatedTokenFile: Schema.optional(Schema.String),
  username: Schema.optional(Schema.String),
  allowHttp: Schema.optional(Schema.Boolean),
  secret: Schema.optional(Schema.String)
})

/**
 * A saved profile.
 *
 * @since 0.1.0
 */
export type Profile = typeof Profile.Type

/**
 * The contents of `profiles.json`.
 *
 * @since 0.1.0
 */
export const ProfileFile = Schema.Struct({
  version: Schema.Literal(1),
  selected: Schema.optional(Schema.String),
  profiles: Schema.Array(Profile)
})

/**
 * The contents of `profiles.json`.
 *
 * @since 0.1.0
 */
export type ProfileFile = typeof ProfileFile.Type

const empty: ProfileFile = { version: 1, profiles: [] }

/**
 * The user's dv-effect config directory: `DV_EFFECT_CONFIG_DIR`, else `%APPDATA%\dv-effect` on
 * Windows, else `$XDG_CONFIG_HOME/dv-effect`, else `~/.config/dv-effect`.
 *
 * @since 0.1.0
 */
export const configDir = (env: NodeJS.ProcessEnv = process.env): string => {
  const override = env.DV_EFFECT_CONFIG_DIR
  if (override !== undefined && override !== "") return Path.resolve(override)
  if (process.platform === "win32" && env.APPDATA !== undefined && env.APPDATA !== "") {
    return Path.join(env.APPDATA, "dv-effect")
  }
  const xdg = env.XDG_CONFIG_HOME
  return Path.join(xdg !== undefined && xdg !== "" ? xdg : Path.join(Os.homedir(), ".config"), "dv-effect")
}

/**
 * Where the profiles are kept.
 *
 * @since 0.1.0
 */
export const profilesFile = (): string => Path.join(configDir(), "profiles.json")

/**
 * The token cache of a profile's interactive sign-ins (mode 0600).
 *
 * @since 0.1.0
 */
export const tokenCacheFile = (name: string): string => Path.join(configDir(), "tokens", `${name}.json`)

const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/**
 * Checks a profile name: letters, digits, `.`, `_` and `-`, at most 64, starting with a letter
 * or digit (it names a file).
 *
 * @since 0.1.0
 */
export const validateName = (flag: string, name: string): Effect.Effect<string, CliError> =>
  namePattern.test(name)
    ? Effect.succeed(name)
    : Effect.fail(
      new CliError({
        message:
          `${flag} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; got '${name}'.`
      })
    )

const decode = Schema.decodeUnknownEither(Schema.parseJson(ProfileFile))

/**
 * Reads the profile file; no file is no profile.
 *
 * @since 0.1.0
 */
export const load: Effect.Effect<ProfileFile, CliError> = Effect.suspend(() => {
  const file = profilesFile()
  let text: string
  try {
    text = Fs.readFileSync(file, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return Effect.succeed(empty)
    return Effect.fail(new CliError({ message: `Cannot read ${file}: ${(error as Error).message}`, cause: error }))
  }
  return Either.match(decode(text), {
    onLeft: (error) =>
      Effect.fail(
        new CliError({
          message: `${file} is not a dv-effect profile file (${
            ParseResult.TreeFormatter.formatErrorSync(error).split("\n").slice(-1)[0]?.trim()
          }); fix or delete it.`
        })
      ),
    onRight: Effect.succeed
  })
})

/** Creates the config directory with mode 0700 (and tightens it when it already exists). */
const ensureDir = (dir: string) => {
  Fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (process.platform !== "win32") Fs.chmodSync(dir, 0o700)
}

/**
 * Writes the profile file atomically with mode 0600, in a directory of mode 0700.
 *
 * @since 0.1.0
 */
export const save = (contents: ProfileFile): Effect.Effect<void, CliError> =>
  Effect.try({
    try: () => {
      const file = profilesFile()
      ensureDir(Path.dirname(file))
      const temporary = `${file}.${process.pid}.tmp`
      Fs.writeFileSync(temporary, `${JSON.stringify(contents, null, 2)}\n`, { mode: 0o600 })
      if (process.platform !== "win32") Fs.chmodSync(temporary, 0o600)
      Fs.renameSync(temporary, file)
    },
    catch: (error) =>
      new CliError({ message: `Cannot write ${profilesFile()}: ${(error as Error).message}`, cause: error })
  })

/**
 * Prepares the directory of a profile's token cache (mode 0700).
 *
 * @since 0.1.0
 */
export const ensureTokenDir = (): Effect.Effect<void, CliError> =>
  Effect.try({
    try: () => {
      ensureDir(configDir())
      ensureDir(Path.dirname(tokenCacheFile("x")))
    },
    catch: (error) =>
      new CliError({ message: `Cannot create ${configDir()}: ${(error as Error).message}`, cause: error })
  })

const noProfile = (name: string, names: ReadonlyArray<string>) => {
  const hint = Metadata.didYouMean(name, names)
  return `No profile '${name}'${hint === undefined ? "" : `; ${hint}`} (there are: ${
    names.join(", ")
  }); see dv-effect auth list.`
}

/**
 * A profile by name, failing with a line that says how to list them (and the closest name).
 *
 * @since 0.1.0
 */
export const find = (contents: ProfileFile, name: string): Effect.Effect<Profile, CliError> => {
  const profile = contents.profiles.find((p) => p.name === name)
  return profile !== undefined
    ? Effect.succeed(profile)
    : Effect.fail(
      new CliError({
        message: contents.profiles.length === 0
          ? `No profile '${name}': there are none yet; create one with dv-effect auth login --name ${name} ...`
          : noProfile(name, contents.profiles.map((p) => p.name))
      })
    )
}

/**
 * The file with `profile` added, or replacing the one of the same name.
 *
 * @since 0.1.0
 */
export const upsert = (contents: ProfileFile, profile: Profile): ProfileFile => {
  const index = contents.profiles.findIndex((p) => p.name === profile.name)
  const profiles = index === -1
    ? [...contents.profiles, profile]
    : contents.profiles.map((p, i) => (i === index ? profile : p))
  return { ...contents, profiles }
}

/**
 * The file without the profile `name`; the selection is cleared when it was that one.
 *
 * @since 0.1.0
 */
export const remove = (contents: ProfileFile, name: string): ProfileFile => {
  const { selected: _selected, ...rest } = contents
  const profiles = contents.profiles.filter((p) => p.name !== name)
  return contents.selected === name ? { ...rest, profiles } : { ...contents, profiles }
}

/**
 * Deletes a file if it exists.
 *
 * @since 0.1.0
 */
export const removeFile = (file: string): Effect.Effect<boolean, CliError> =>
  Effect.try({
    try: () => {
      try {
        Fs.unlinkSync(file)
        return true
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return false
        throw error
      }
    },
    catch: (error) => new CliError({ message: `Cannot delete ${file}: ${(error as Error).message}`, cause: error })
  })

/**
 * A profile as it may be shown: everything but the secret, and whether one is stored.
 *
 * @since 0.1.0
 */
export const display = (
  profile: Profile,
  selected: boolean
): Omit<Profile, "secret"> & { readonly selected: boolean; readonly secretStored: boolean } => {
  const { secret, ...rest } = profile
  return { ...rest, selected, secretStored: secret !== undefined }
}

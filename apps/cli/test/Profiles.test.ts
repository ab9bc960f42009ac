import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterEach, beforeEach } from "vitest"
import * as Profiles from "../src/Profiles.js"

let dir: string
const saved = process.env.DV_EFFECT_CONFIG_DIR

beforeEach(() => {
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-profiles-"))
  process.env.DV_EFFECT_CONFIG_DIR = Path.join(dir, "config")
})
afterEach(() => {
  if (saved === undefined) delete process.env.DV_EFFECT_CONFIG_DIR
  else process.env.DV_EFFECT_CONFIG_DIR = saved
  Fs.rmSync(dir, { recursive: true, force: true })
})

const dev: Profiles.Profile = { name: "dev", url: "https://dev.crm.dynamics.com", flow: "device-code", clientId: "c" }
const ci: Profiles.Profile = {
  name: "ci",
  url: "https://ci.crm.dynamics.com",
  flow: "client-secret",
  tenantId: "t",
  clientId: "c",
  secret: "s3cret"
}

describe("Profiles", () => {
  it("finds the config directory: DV_EFFECT_CONFIG_DIR, then XDG_CONFIG_HOME, then ~/.config", () => {
    expect(Profiles.configDir({ DV_EFFECT_CONFIG_DIR: "/x/y" })).toBe(Path.resolve("/x/y"))
    if (process.platform !== "win32") {
      expect(Profiles.configDir({ XDG_CONFIG_HOME: "/xdg" })).toBe("/xdg/dv-effect")
      expect(Profiles.configDir({})).toBe(Path.join(Os.homedir(), ".config", "dv-effect"))
      expect(Profiles.configDir({ XDG_CONFIG_HOME: "" })).toBe(Path.join(Os.homedir(), ".config", "dv-effect"))
    }
  })

  it.effect("no file is no profile; saves with mode 0600 in a 0700 directory and reads back", () =>
    Effect.gen(function*() {
      expect(yield* Profiles.load).toEqual({ version: 1, profiles: [] })
      const contents = Profiles.upsert(Profiles.upsert({ version: 1, profiles: [] }, dev), ci)
      yield* Profiles.save({ ...contents, selected: "ci" })
      expect(yield* Profiles.load).toEqual({ version: 1, selected: "ci", profiles: [dev, ci] })
      if (process.platform !== "win32") {
        expect(Fs.statSync(Profiles.profilesFile()).mode & 0o777).toBe(0o600)
        expect(Fs.statSync(Profiles.configDir()).mode & 0o777).toBe(0o700)
      }
      yield* Profiles.ensureTokenDir()
      if (process.platform !== "win32") {
        expect(Fs.statSync(Path.dirname(Profiles.tokenCacheFile("dev"))).mode & 0o777).toBe(0o700)
      }
      // No temporary file is left behind.
      expect(Fs.readdirSync(Profiles.configDir()).sort()).toEqual(["profiles.json", "tokens"])
    }))

  it("replaces a profile of the same name; removing the selected one clears the selection", () => {
    const contents = Profiles.upsert({ version: 1, selected: "dev", profiles: [dev, ci] }, {
      ...dev,
      url: "https://new"
    })
    expect(contents.profiles.map((p) => [p.name, p.url])).toEqual([["dev", "https://new"], ["ci", ci.url]])
    expect(Profiles.remove(contents, "dev")).toEqual({ version: 1, profiles: [ci] })
    expect(Profiles.remove(contents, "ci")).toEqual({ version: 1, selected: "dev", profiles: [contents.profiles[0]] })
  })

  it.effect("a corrupt file is one line naming it; an unknown name lists the known ones, the closest first", () =>
    Effect.gen(function*() {
      Fs.mkdirSync(Profiles.configDir(), { recursive: true })
      Fs.writeFileSync(Profiles.profilesFile(), "{\"version\":2}")
      const error = yield* Effect.flip(Profiles.load)
      expect(error.message).toContain(`${Profiles.profilesFile()} is not a dv-effect profile file`)
      expect(error.message).not.toContain("\n")
      const missing = yield* Effect.flip(Profiles.find({ version: 1, profiles: [dev, ci] }, "prod"))
      expect(missing.message).toBe("No profile 'prod' (there are: dev, ci); see dv-effect auth list.")
      const misspelt = yield* Effect.flip(Profiles.find({ version: 1, profiles: [dev, ci] }, "dve"))
      expect(misspelt.message).toBe(
        "No profile 'dve'; did you mean 'dev'? (there are: dev, ci); see dv-effect auth list."
      )
    }))

  it.effect("names are file-safe", () =>
    Effect.gen(function*() {
      expect(yield* Profiles.validateName("--name", "dev-1.eu_west")).toBe("dev-1.eu_west")
      for (const bad of ["", "../x", "a/b", ".hidden", "a b", "x".repeat(65)]) {
        const exit = yield* Effect.exit(Profiles.validateName("--name", bad))
        expect(Exit.isFailure(exit)).toBe(true)
      }
    }))

  it("display never carries the secret", () => {
    const shown = Profiles.display(ci, true)
    expect(shown).toEqual({ ...ci, secret: undefined, selected: true, secretStored: true })
    expect(JSON.stringify(shown)).not.toContain("s3cret")
    expect("secret" in shown).toBe(false)
  })
})

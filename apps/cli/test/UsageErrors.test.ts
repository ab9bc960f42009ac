import { describe, expect, it } from "vitest"
import { unknownFlag } from "../src/UsageErrors.js"

describe("unknownFlag: the pass before @effect/cli parses", () => {
  it("refuses a --flag the command does not take, with the closest one", () => {
    expect(unknownFlag(["auth", "logout", "--al"])).toBe("Unknown flag --al for auth logout; did you mean --all?")
    expect(unknownFlag(["query", "--selct", "lastname", "contact"])).toBe(
      "Unknown flag --selct for query; did you mean --select?"
    )
    expect(unknownFlag(["whoami", "--bogus-flag"])).toBe(
      "Unknown flag --bogus-flag for whoami; see dv-effect whoami --help."
    )
  })

  it("refuses a flag that would be read as the value of the flag before it", () => {
    // `--tag --dry-run` would tag the requests "--dry-run" and write for real.
    expect(unknownFlag(["create", "contact", "--tag", "--dry-run", "-f", "rows.csv"])).toBe(
      "--tag needs a value, and '--dry-run' is a flag; a value that begins with -- goes as --tag=<value>."
    )
    expect(unknownFlag(["create", "contact", "-f", "--dry-run"])).toBe(
      "-f needs a value, and '--dry-run' is a flag; a value that begins with -- goes as --file=<value>."
    )
    expect(unknownFlag(["create", "contact", "--tag=--dry-run", "--dry-run"])).toBeUndefined()
  })

  it("explains a short flag joined to its value", () => {
    expect(unknownFlag(["query", "contact", "-o=csv"])).toBe("-o=csv: write -o csv or --output=csv.")
    expect(unknownFlag(["create", "contact", "-frows.csv"])).toBe("-frows.csv: write -f rows.csv or --file=rows.csv.")
    // A long flag with one dash is that flag, not a short one joined to the rest.
    expect(unknownFlag(["create", "contact", "-file", "rows.csv"])).toBe("-file: long flags take two dashes: --file.")
    expect(unknownFlag(["query", "contact", "-output=csv"])).toBe("-output=csv: long flags take two dashes: --output.")
  })

  it("lets through every spelling @effect/cli reads", () => {
    const valid: ReadonlyArray<ReadonlyArray<string>> = [
      // Values apart from their flag, whatever they begin with; after `--`, nothing is a flag.
      ["query", "contact", "--filter", "--x", "--top", "-1"],
      ["query", "contact", "--filter=--x"],
      ["create", "contact", "-f", "--in.csv"],
      ["create", "contact", "--", "--weird"],
      // Any case, as @effect/cli reads flags.
      ["query", "contact", "--FILTER", "lastname eq 'x'"],
      // Flags of every command, and those @effect/cli and main.ts add.
      ["emulator", "--port", "0", "--host", "::1"],
      ["auth", "login", "--name", "dev", "--url", "https://contoso.crm.dynamics.com", "--device-code"],
      ["query", "contact", "--log-level", "debug", "--verbose"],
      ["--version"],
      ["create", "contact", "--profile", "a", "--profile", "b", "--smart"]
    ]
    for (const args of valid) expect(unknownFlag(args), args.join(" ")).toBeUndefined()
  })
})

import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { CliError } from "../src/CliError.js"
import * as ExitCode from "../src/ExitCode.js"

describe("exit codes, decided in one place", () => {
  const rejected = Exit.fail(new ExitCode.RowsRejected({ rejected: 3 }))
  const interrupted = Exit.failCause(Cause.interrupt(FiberId.none))

  it("0 done, 2 rows rejected, 130 interrupted (143 terminated), 1 anything else", () => {
    expect(ExitCode.of(Exit.void, "create")).toBe(0)
    expect(ExitCode.of(rejected, "create")).toBe(2)
    expect(ExitCode.of(interrupted, "create")).toBe(130)
    expect(ExitCode.of(interrupted, "create", "SIGINT")).toBe(130)
    expect(ExitCode.of(interrupted, "create", "SIGTERM")).toBe(143)
    expect(ExitCode.of(interrupted, "emulator", "SIGTERM")).toBe(0)
    expect(ExitCode.of(Exit.fail(new CliError({ message: "bad flag" })), "create")).toBe(1)
    expect(ExitCode.of(Exit.die(new Error("bug")), "query")).toBe(1)
    // Rejected rows beside a defect: the defect decides.
    expect(
      ExitCode.of(
        Exit.failCause(Cause.parallel(Cause.fail(new ExitCode.RowsRejected({ rejected: 1 })), Cause.die("x"))),
        "create"
      )
    )
      .toBe(1)
  })

  it("an emulator stops on Ctrl-C: 0", () => {
    expect(ExitCode.of(interrupted, "emulator")).toBe(0)
  })

  it("prints a line for a failure, not for rejected rows (the summary said it) nor an interrupt", () => {
    expect(ExitCode.needsReport(Cause.fail(new CliError({ message: "x" })))).toBe(true)
    expect(ExitCode.needsReport(Cause.fail(new ExitCode.RowsRejected({ rejected: 1 })))).toBe(false)
    expect(ExitCode.needsReport(Cause.interrupt(FiberId.none))).toBe(false)
    expect(new ExitCode.RowsRejected({ rejected: 2 }).message).toBe("2 rows rejected")
  })
})

#!/usr/bin/env node
// The compiled CLI lives in ../dist (built by `npm install`, which runs `tsc -b`).
import("../dist/bundle/dv-effect.js").catch((error) => {
  if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/bundle/dv-effect.js")) {
    process.stderr.write(
      "dv-effect: the CLI is not built yet; run `npm install` (or `npm run build`) at the repository root.\n"
    )
  } else {
    process.stderr.write(`dv-effect: ${error?.stack ?? error}\n`)
  }
  process.exitCode = 1
})

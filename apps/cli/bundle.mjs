// Bundles the compiled CLI (dist/*.js) into dist/bundle: one tree-shaken file for the commands
// plus lazily loaded chunks (the emulator). Loading a few files instead of the ~1,000 modules of
// the Effect packages is what keeps `dv-effect --help` well under a second.
import * as esbuild from "esbuild"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL(".", import.meta.url))
await esbuild.build({
  absWorkingDir: root,
  entryPoints: { "dv-effect": "dist/main.js" },
  outdir: "dist/bundle",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
  // CommonJS dependencies inside an ESM bundle need a `require`.
  banner: {
    js:
      "import { createRequire as __dvCreateRequire } from 'node:module'; const require = __dvCreateRequire(import.meta.url);"
  }
})

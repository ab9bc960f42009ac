// Bundles the compiled CLI (dist/*.js) into dist/bundle: one minified, tree-shaken file for the
// commands plus lazily loaded chunks (the emulator, msal-node, node-forge). Loading a few files
// instead of the ~1,000 modules of the Effect packages is what keeps `dv-effect --help` fast, and
// it makes the published `dv-effect` package self-contained: it has no runtime dependencies.
import * as esbuild from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL(".", import.meta.url))
const outdir = Path.join(root, "dist/bundle")
const { version } = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { "dv-effect": "dist/main.js" },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Less source to compile at start: about 30 ms off `dv-effect --help` on two cores.
  minify: true,
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
  metafile: true,
  // `dv-effect --version` and the overview print package.json's version, fixed at bundle time.
  define: { DV_EFFECT_VERSION: JSON.stringify(version) },
  // CommonJS dependencies inside an ESM bundle need a `require`.
  banner: {
    js:
      "import { createRequire as __dvCreateRequire } from 'node:module'; const require = __dvCreateRequire(import.meta.url);"
  }
})

const outputs = result.metafile.outputs
const relative = (file) => Path.relative(outdir, Path.resolve(root, file))

// Chunk names are content hashes: remove those of earlier builds, so that the package ships only
// what this build loads.
const current = new Set(Object.keys(outputs).map(relative))
for (const file of Fs.readdirSync(outdir)) {
  if (!current.has(file)) Fs.rmSync(Path.join(outdir, file), { force: true })
}

// What `dv-effect` loads before it runs any command: the entry and its static imports. The
// emulator (its small performance model aside), msal-node and node-forge must stay out of it:
// they load on demand.
const eager = new Set()
const visit = (file) => {
  if (eager.has(file)) return
  eager.add(file)
  for (const imported of outputs[file].imports) {
    if (imported.kind === "import-statement" && !imported.external) visit(imported.path)
  }
}
const entry = Object.keys(outputs).find((file) => outputs[file].entryPoint === "dist/main.js")
visit(entry)
const lazy = [
  /node_modules\/@azure\/msal-/,
  /node_modules\/node-forge\//,
  /node_modules\/(jose|fast-xml-parser|ws)\//,
  /packages\/emulator\/dist\/(Emulator|WebApi|Store|Identity|IdentityServer)\.js$/
]
const misplaced = [...eager].flatMap((file) =>
  Object.keys(outputs[file].inputs).filter((input) => lazy.some((pattern) => pattern.test(input)))
)
if (misplaced.length > 0) {
  console.error(`bundle: loaded at start but meant to load on demand:\n  ${misplaced.slice(0, 10).join("\n  ")}`)
  process.exit(1)
}

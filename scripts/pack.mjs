// Builds the three publishable tarballs (`npm run pack`): @dv-effect/core, @dv-effect/emulator and
// the self-contained `dv-effect` CLI, into dist/pack (or `--out <dir>`), and checks what each one
// holds: built JS and declarations, a README, no tests, and no runtime dependency for the CLI.
//
//   npm run pack                          build, then pack into dist/pack
//   node scripts/pack.mjs --out <dir>     pack elsewhere (scripts/pack-check.mjs does)
//   node scripts/pack.mjs --no-build      pack what is built
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const root = fileURLToPath(new URL("..", import.meta.url))
export const workspaces = ["packages/core", "packages/emulator", "apps/cli"]
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

/**
 * Removes compiled files whose source is gone (`tsc -b` never deletes them), so that a tarball
 * ships only what the sources build.
 */
const pruneStale = (workspace) => {
  const dist = Path.join(root, workspace, "dist")
  if (!Fs.existsSync(dist)) return
  for (const entry of Fs.readdirSync(dist, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const file = Path.join(entry.parentPath ?? entry.path, entry.name)
    const stem = /^(.*)\.(js|js\.map|d\.ts|d\.ts\.map)$/.exec(Path.relative(dist, file))?.[1]
    if (stem !== undefined && !Fs.existsSync(Path.join(root, workspace, "src", `${stem}.ts`))) Fs.rmSync(file)
  }
}

/** What a tarball must (and must not) hold; throws with every problem found. */
const verify = (pack) => {
  const manifest = JSON.parse(Fs.readFileSync(Path.join(root, pack.workspace, "package.json"), "utf8"))
  const files = pack.files.map((file) => file.path)
  const problems = []
  const need = (condition, what) => {
    if (!condition) problems.push(what)
  }
  need(files.includes("package.json") && files.includes("README.md"), "package.json and README.md")
  for (const field of ["description", "license", "engines"]) need(manifest[field] !== undefined, `the ${field} field`)
  need(!files.some((file) => /(^|\/)test\/|\.test\.[cm]?[jt]s$/.test(file)), "no tests")
  if (pack.workspace === "apps/cli") {
    need(Object.keys(manifest.dependencies ?? {}).length === 0, "no runtime dependencies (the bundle carries them)")
    need(files.includes("bin/dv-effect.js") && files.includes("dist/bundle/dv-effect.js"), "bin and dist/bundle")
    need(
      files.every((file) =>
        file === "package.json" || file === "README.md" || file.startsWith("bin/") || file.startsWith("dist/bundle/")
      ),
      "only bin, dist/bundle and README.md"
    )
  } else {
    need(files.includes("dist/index.js") && files.includes("dist/index.d.ts"), "dist/index.js and dist/index.d.ts")
    need(Object.keys(manifest.peerDependencies ?? {}).includes("effect"), "effect as a peer dependency")
    need(
      !["effect", "@effect/platform", "@effect/platform-node"].some((name) => name in (manifest.dependencies ?? {})),
      "no Effect package among the dependencies"
    )
  }
  if (problems.length > 0) throw new Error(`${pack.filename} lacks: ${problems.join("; ")}`)
}

/**
 * Packs every workspace into `out`; returns `{ workspace, name, version, file, size, entries }`
 * for each tarball.
 */
export const pack = ({ out = Path.join(root, "dist/pack"), build = true, quiet = false } = {}) => {
  const log = quiet ? () => {} : (line) => console.log(line)
  for (const workspace of workspaces.slice(0, 2)) pruneStale(workspace)
  if (build) execFileSync(npm, ["run", "build"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] })
  Fs.mkdirSync(out, { recursive: true })
  const args = ["pack", "--json", "--pack-destination", out, ...workspaces.flatMap((w) => ["--workspace", w])]
  let packs
  try {
    packs = JSON.parse(execFileSync(npm, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }))
  } catch (error) {
    process.stderr.write(error.stderr ?? "")
    throw error
  }
  const nameOf = (workspace) => JSON.parse(Fs.readFileSync(Path.join(root, workspace, "package.json"), "utf8")).name
  return packs.map((entry) => {
    const pack = { ...entry, workspace: workspaces.find((workspace) => nameOf(workspace) === entry.name) }
    verify(pack)
    const file = Path.join(out, entry.filename)
    log(
      `${entry.filename.padEnd(32)} ${(entry.size / 1024).toFixed(0).padStart(6)} kB packed, ${
        (entry.unpackedSize / 1024).toFixed(0).padStart(6)
      } kB unpacked, ${String(entry.entryCount).padStart(4)} files`
    )
    return { workspace: pack.workspace, name: entry.name, version: entry.version, file, size: entry.size }
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf("--out")
  const out = at === -1 ? undefined : Path.resolve(process.argv[at + 1])
  const packs = pack({ out, build: !process.argv.includes("--no-build") })
  console.log(`tarballs in ${Path.dirname(packs[0].file)}`)
}

// The packed-tarball checks of CI (.ci/run): what a user gets from `npm install`, away from this
// repository's node_modules. Needs the npm registry (a, b).
//
//   (a) a fresh app installs effect@3, @effect/platform, @effect/platform-node and the packed core
//       and emulator; a strict TypeScript program (no skipLibCheck) type-checks, then runs: the
//       packed emulator as a layer, a client signing in through msal-node, a bulk create of 100
//       rows, a streamed query that counts them back
//   (b) the packed core beside effect@4 fails at install time with npm's peer error (ERESOLVE)
//   (c) the CLI tarball alone, installed into an empty prefix, runs --version, demo, and an msal
//       sign-in (whoami) against its own emulator
//
// node scripts/pack-check.mjs [--no-build] [--keep]
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { clearTimeout, setTimeout } from "node:timers"
import { pack, root } from "./pack.mjs"

const npm = process.platform === "win32" ? "npm.cmd" : "npm"
const started = Date.now()
const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-pack-"))
const keep = process.argv.includes("--keep")
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`
const step = (title) => console.log(`\n-- ${title} (${elapsed()})`)
const fail = (message) => {
  throw new Error(message)
}

/**
 * A user's environment: nothing of this repository's, no NODE_PATH; npm keeps its configuration
 * (registry, CA) and cache. The CLI also gets a HOME of its own for its profiles and journals.
 */
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) =>
    !/^(NODE_PATH|NODE_OPTIONS|INIT_CWD|npm_.*|DATAVERSE_.*|AZURE_.*|DV_EFFECT_.*|XDG_.*)$/i.test(key)
  )
)
const home = Path.join(work, "home")
Fs.mkdirSync(home)
const cliEnv = { ...env, HOME: home, USERPROFILE: home, APPDATA: home, LOCALAPPDATA: home }

/** Runs a command to completion; returns its output, throwing with stderr when it fails. */
const run = (command, args, options = {}) => {
  const result = spawnSync(command, args, { env, encoding: "utf8", ...options })
  if (options.allowFailure !== true && result.status !== 0) {
    fail(`${command} ${args.join(" ")} exited ${result.status}:\n${result.stdout}\n${result.stderr}`)
  }
  return result
}
const npmInstall = (cwd, args, options = {}) =>
  run(npm, ["install", "--no-audit", "--no-fund", "--loglevel=error", ...args], { cwd, ...options })

// Nothing above the temporary folders may hold packages that Node would find by walking up.
for (let dir = work; dir !== Path.dirname(dir); dir = Path.dirname(dir)) {
  if (Fs.existsSync(Path.join(Path.dirname(dir), "node_modules"))) {
    fail(`${Path.join(Path.dirname(dir), "node_modules")} exists: the checks would not be isolated`)
  }
}

step("pack")
const packs = pack({ out: Path.join(work, "packs"), build: !process.argv.includes("--no-build") })
const tarball = (name) => packs.find((p) => p.name === name)?.file ?? fail(`no tarball for ${name}`)
const core = tarball("@dv-effect/core")
const emulator = tarball("@dv-effect/emulator")
const cli = packs.find((p) => p.name === "dv-effect") ?? fail("no tarball for dv-effect")

// ---------------------------------------------------------------------------------------------
step("(a) a fresh app: effect@3 with the packed core and emulator, strict type-check, run")
const app = Path.join(work, "app")
Fs.mkdirSync(Path.join(app, "src"), { recursive: true })
Fs.writeFileSync(
  Path.join(app, "package.json"),
  JSON.stringify({ name: "packed-app", private: true, type: "module" }, null, 2)
)
npmInstall(app, [
  "effect@3",
  "@effect/platform@0.97",
  "@effect/platform-node@0.108",
  "@types/node@20",
  core,
  emulator
])
const effects = run(npm, ["ls", "effect", "--all", "--parseable"], { cwd: app }).stdout.trim().split("\n")
  .filter((line) => line.endsWith(`${Path.sep}effect`))
if (new Set(effects).size !== 1) fail(`the app holds ${new Set(effects).size} copies of effect:\n${effects.join("\n")}`)
const effectVersion = JSON.parse(Fs.readFileSync(Path.join(app, "node_modules/effect/package.json"), "utf8")).version
console.log(`one copy of effect (${effectVersion}), the app's`)

Fs.writeFileSync(
  Path.join(app, "tsconfig.json"),
  JSON.stringify(
    {
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2022"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        types: ["node"],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: false,
        outDir: "build",
        rootDir: "src"
      },
      include: ["src"]
    },
    null,
    2
  )
)
Fs.writeFileSync(
  Path.join(app, "src/main.ts"),
  `import { Bulk, Credentials, DataverseClient, Query } from "@dv-effect/core"
import { Emulator } from "@dv-effect/emulator"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer, Redacted, Stream } from "effect"
import * as Fs from "node:fs"

// The packed emulator as a layer; a client that signs in through msal-node at its identity endpoint.
const Live = Layer.unwrapEffect(
  Effect.map(Emulator.Emulator, ({ info }) =>
    DataverseClient.layerNode({
      url: info.url,
      credentials: Credentials.clientSecret({
        tenantId: info.tenantId,
        clientId: info.clientId,
        clientSecret: Redacted.make(info.clientSecret ?? ""),
        ...(info.authority === undefined ? {} : { authority: info.authority }),
        ...(info.caFile === undefined ? {} : { ca: Fs.readFileSync(info.caFile, "utf8") })
      })
    }))
).pipe(Layer.provideMerge(Emulator.layer()))

const rows = Array.from({ length: 100 }, (_, i) => ({ firstname: "Packed", lastname: \`Row \${i + 1}\` }))

const program = Effect.gen(function*() {
  const me = yield* DataverseClient.whoAmI
  const summary = yield* Bulk.summarize(Bulk.createMany("contact", rows, { chunkSize: 25 }))
  const streamed = yield* Query.stream("contact", { select: ["lastname"], filter: "firstname eq 'Packed'", pageSize: 30 })
    .pipe(Stream.runCount)
  if (summary.created !== rows.length || summary.failed !== 0 || streamed !== rows.length) {
    return yield* Effect.fail(new Error(\`created \${summary.created}, failed \${summary.failed}, streamed \${streamed}\`))
  }
  yield* Console.log(JSON.stringify({ signedInAs: me.UserId.length > 0, created: summary.created, streamed }))
})

NodeRuntime.runMain(program.pipe(Effect.provide(Live)))
`
)
const tsc = Path.join(root, "node_modules/typescript/bin/tsc")
const typeCheck = run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app, allowFailure: true })
if (typeCheck.status !== 0) fail(`the app does not type-check:\n${typeCheck.stdout}${typeCheck.stderr}`)
console.log("type-checks (strict, exactOptionalPropertyTypes, no skipLibCheck)")
const ran = run(process.execPath, ["build/main.js"], { cwd: app })
const result = JSON.parse(ran.stdout.trim().split("\n").at(-1))
if (result.created !== 100 || result.streamed !== 100 || result.signedInAs !== true) fail(`unexpected: ${ran.stdout}`)
console.log(`ran: ${ran.stdout.trim()}`)

// ---------------------------------------------------------------------------------------------
step("(b) the packed core beside effect@4: refused at install time")
const app4 = Path.join(work, "app-effect4")
Fs.mkdirSync(app4)
Fs.writeFileSync(Path.join(app4, "package.json"), JSON.stringify({ name: "effect4-app", private: true }, null, 2))
/** The registry's version for a spec (a range or a dist-tag) when it is a 4.x, else undefined. */
const effect4Version = (spec) => {
  const viewed = run(npm, ["view", `effect@${spec}`, "version", "--json"], { cwd: app4, allowFailure: true })
  const versions = viewed.status === 0 && viewed.stdout.trim() !== "" ? [JSON.parse(viewed.stdout)].flat() : []
  return versions.filter((version) => version.startsWith("4.")).at(-1)
}
let effect4
for (const spec of ["4", "beta", "next"]) {
  effect4 ??= effect4Version(spec)
}
if (effect4 === undefined) {
  console.log("SKIPPED: the registry has no effect 4 (neither effect@4 nor a 4.x beta or next tag): nothing to refuse")
} else {
  npmInstall(app4, [`effect@${effect4}`])
  const version = JSON.parse(Fs.readFileSync(Path.join(app4, "node_modules/effect/package.json"), "utf8")).version
  const refused = npmInstall(app4, [core], { allowFailure: true })
  const output = `${refused.stdout}${refused.stderr}`
  if (refused.status === 0 || !output.includes("ERESOLVE")) {
    fail(`installing the packed core beside effect ${version} did not fail with ERESOLVE:\n${output}`)
  }
  const lines = output.split("\n").filter((line) =>
    /ERESOLVE unable|Found: effect|Could not resolve|peer \S+ from/.test(line)
  )
  console.log(`effect ${version} installed; then npm install <core.tgz> exits ${refused.status}:`)
  for (const line of lines.slice(0, 6)) console.log(`  ${line}`)
}

// ---------------------------------------------------------------------------------------------
step("(c) the CLI tarball alone in an empty prefix")
const prefix = Path.join(work, "prefix")
const cwd = Path.join(work, "cwd")
Fs.mkdirSync(cwd)
run(npm, ["install", "-g", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", prefix, cli.file], { cwd })
const installed = Path.join(prefix, process.platform === "win32" ? "node_modules" : "lib/node_modules", "dv-effect")
const entries = Fs.readdirSync(installed)
if (entries.includes("node_modules")) {
  fail(`the CLI installed dependencies: ${Fs.readdirSync(Path.join(installed, "node_modules"))}`)
}
console.log(`installed ${installed}: ${entries.join(", ")} (no node_modules)`)
const bin = Path.join(prefix, process.platform === "win32" ? "dv-effect.cmd" : "bin/dv-effect")
const dvEffect = (args, options = {}) => run(bin, args, { cwd, env: cliEnv, ...options })

const version = dvEffect(["--version"]).stdout.trim()
if (version !== cli.version) fail(`dv-effect --version printed '${version}', not ${cli.version}`)
console.log(`dv-effect --version: ${version}`)

const demo = dvEffect(["demo"]).stdout
const created = /contacts created\s+(\d+) of (\d+)/.exec(demo)
if (created === null || created[1] !== created[2]) fail(`the demo did not create every contact:\n${demo}`)
console.log(
  `dv-effect demo: ${created[1]} contacts created, ${/contact rows\/s\s+(\d+)/.exec(demo)?.[1]} rows/s, exit 0`
)

// `dv-effect emulator` (lazy emulator chunk, node-forge for its CA), then `whoami` signing in
// through msal-node (lazy chunk) with a client secret.
const server = spawn(bin, ["emulator"], { cwd, env: cliEnv, stdio: ["ignore", "pipe", "pipe"] })
try {
  const first = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("dv-effect emulator printed nothing in 30 s")), 30_000)
    Readline.createInterface({ input: server.stdout }).once("line", (line) => {
      clearTimeout(timer)
      resolve(line)
    })
    server.once("exit", (code) => reject(new Error(`dv-effect emulator exited ${code}`)))
  })
  const info = JSON.parse(first)
  const whoami = dvEffect(
    [
      "whoami",
      "--url",
      info.url,
      "--tenant-id",
      info.tenantId,
      "--client-id",
      info.clientId,
      "--authority",
      info.authority,
      "--ca-file",
      info.caFile
    ],
    { env: { ...cliEnv, AZURE_CLIENT_SECRET: info.clientSecret } }
  )
  if (JSON.parse(whoami.stdout).UserId !== info.userId) fail(`whoami answered ${whoami.stdout}`)
  console.log("dv-effect emulator + whoami with a client secret (msal-node): signed in as the emulator's user")
} finally {
  server.kill("SIGTERM")
}

console.log(`\npacked-tarball checks passed in ${elapsed()}`)
if (keep) console.log(`kept ${work}`)
else Fs.rmSync(work, { recursive: true, force: true })

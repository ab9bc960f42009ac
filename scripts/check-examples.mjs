// Type-checks the documentation's code: every ```ts block of a JSDoc comment (the `@example`s, and
// the few in a module's overview) in the public modules of packages/core/src and
// packages/emulator/src (not internal/), and every ```ts block of README.md and
// packages/*/README.md. Part of `npm run check` (after `tsc -b`), hence of CI (.ci/run).
//
// Each block becomes its own module in a temporary directory, and all of them are checked in one
// TypeScript program with the repository's compiler options (tsconfig.base.json), except that an
// example may declare values it does not use. Imports resolve as they would for a user of the
// published packages: through this repository's node_modules and each package's `exports`, i.e.
// the built dist/*.d.ts. So it needs a build first (`npm run build`, or `tsc -b`): without dist it
// stops with a one-line message; with a stale dist it checks against the old declarations.
//
// The README's typegen example imports "./dataverse/index.js", the modules `dv-effect typegen`
// writes; the temporary directory holds a stand-in of that output (a contact table) for it.
//
// A block that is deliberately not TypeScript (pseudo code) is skipped when its first line is
//   // not checked: <reason>
// Never use that for a real API example: give it the imports and `declare const x: T` it needs.
//
// node scripts/check-examples.mjs    prints `file:line (block N): TSxxxx: message` per error and
//                                    exits 1, or one line with the count
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")
const packages = ["core", "emulator"]
const skipMarker = /^\s*\/\/\s*not checked:/

for (const name of packages) {
  if (!Fs.existsSync(Path.join(root, "packages", name, "dist", "index.d.ts"))) {
    console.error(`check-examples: packages/${name}/dist is missing; run \`npm run build\` first`)
    process.exit(1)
  }
}

/** What `dv-effect typegen contact` writes (apps/cli/src/Typegen.ts), reduced to a few columns. */
const typegenStandIn = `import { Table } from "@dv-effect/core"
import { Schema } from "effect"
export const ContactGendercode = { Male: 1, Female: 2 } as const
export type ContactGendercode = typeof ContactGendercode[keyof typeof ContactGendercode]
export const Contact = Table.make({
  logicalName: "contact",
  primaryKey: "contactid",
  fields: {
    contactid: Schema.optional(Schema.UUID),
    lastname: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.maxLength(50)))),
    gendercode: Schema.optional(Schema.NullOr(Schema.Literal(1, 2))),
    creditlimit: Schema.optional(Schema.NullOr(Schema.Number))
  }
})
export type Contact = Schema.Schema.Type<typeof Contact.schema>
`

/** @typedef {{ file: string, line: number, index: number, code: string }} Block */

/** Every ```ts fence in `lines`; `line` is the 1-based line of the first line of code. */
const fences = (lines, file) => {
  /** @type {Array<Block>} */
  const blocks = []
  let open = -1
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i].trim()
    if (open < 0 && /^```(ts|typescript)$/.test(text)) open = i + 1
    else if (open >= 0 && text === "```") {
      blocks.push({ file, line: open + 1, index: blocks.length + 1, code: lines.slice(open, i).join("\n") })
      open = -1
    }
  }
  return blocks
}

/**
 * The ```ts blocks of a source file's JSDoc comments: a comment's lines lose their ` * ` prefix,
 * code lines become empty (so fences in code are not seen, and line numbers stay).
 */
const jsdocBlocks = (file) => {
  let inComment = false
  const lines = Fs.readFileSync(Path.join(root, file), "utf8").split("\n").map((line) => {
    if (!inComment && /^\s*\/\*\*/.test(line)) inComment = true
    if (!inComment) return ""
    if (line.includes("*/")) inComment = false
    return line.replace(/^\s*(\/\*\*|\*(?!\/))? ?/, "").replace(/\s*\*\/\s*$/, "")
  })
  return fences(lines, file)
}

const sourceFiles = (dir) =>
  Fs.readdirSync(Path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`
    if (entry.isDirectory()) return entry.name === "internal" ? [] : sourceFiles(path)
    return entry.name.endsWith(".ts") ? [path] : []
  })

const readmes = ["README.md", ...packages.map((name) => `packages/${name}/README.md`)]
  .filter((file) => Fs.existsSync(Path.join(root, file)))
const jsdoc = packages.flatMap((name) => sourceFiles(`packages/${name}/src`)).flatMap(jsdocBlocks)
const markdown = readmes.flatMap((file) => fences(Fs.readFileSync(Path.join(root, file), "utf8").split("\n"), file))
const all = [...jsdoc, ...markdown]
const checked = all.filter((block) => !skipMarker.test(block.code.split("\n")[0]))

// The node_modules link lets imports resolve from the temporary directory as from a user's app;
// the package.json makes every block an ES module, as in this repository.
const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "dv-effect-examples-"))
/** @type {Array<{ file: string, line: number, text: string }>} */
const errors = []
try {
  Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(work, "node_modules"), "junction")
  Fs.writeFileSync(Path.join(work, "package.json"), JSON.stringify({ type: "module" }))
  Fs.mkdirSync(Path.join(work, "dataverse"))
  Fs.writeFileSync(Path.join(work, "dataverse", "index.ts"), typegenStandIn)
  /** @type {Map<string, Block>} */
  const byPath = new Map()
  checked.forEach((block, i) => {
    const path = Path.join(work, `example${i}.ts`)
    Fs.writeFileSync(path, block.code + "\n")
    byPath.set(Fs.realpathSync(path), block)
  })

  const base = ts.parseJsonConfigFileContent(
    ts.readConfigFile(Path.join(root, "tsconfig.base.json"), ts.sys.readFile).config,
    ts.sys,
    root
  ).options
  const options = {
    ...base,
    composite: false,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    incremental: false,
    noEmit: true,
    noUnusedLocals: false, // an example may declare what it only shows
    moduleDetection: ts.ModuleDetectionKind.Force, // each block is a module of its own
    typeRoots: [Path.join(root, "node_modules", "@types")]
  }
  const program = ts.createProgram([...byPath.keys()], options)
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = `TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")}`
    const block = diagnostic.file && byPath.get(Fs.realpathSync(diagnostic.file.fileName))
    if (block === undefined) {
      errors.push({ file: "", line: 0, text: diagnostic.file ? `${diagnostic.file.fileName}: ${message}` : message })
      continue
    }
    const line = block.line + diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line
    errors.push({ file: block.file, line, text: `${block.file}:${line} (block ${block.index}): ${message}` })
  }
} finally {
  Fs.rmSync(work, { recursive: true, force: true })
}

if (errors.length > 0) {
  errors.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line)
  for (const error of errors) console.error(error.text)
  console.error(`check-examples: ${errors.length} error(s) in ${checked.length} examples`)
  process.exit(1)
}
const count = (blocks) => blocks.filter((block) => checked.includes(block)).length
console.log(
  `check-examples: ${checked.length} examples type-check (${count(jsdoc)} JSDoc, ${count(markdown)} README), ${
    all.length - checked.length
  } skipped`
)

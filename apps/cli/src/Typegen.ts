/**
 * `dv-effect typegen`, the pure part: table metadata in, TypeScript source out. One module per
 * table declaring a typed table (`Table.make` of `@dv-effect/core`, fields as Effect `Schema`s),
 * the choices of each option-set column as a const object and a literal union, and an index.
 *
 * @since 0.1.0
 */
import type { ColumnMetadata, TableMetadata } from "@dv-effect/core/Metadata"

/**
 * What the service may say of a column besides core's metadata (from the `Attributes` of the
 * table's definition): all optional, since not every service (the emulator) serves them.
 *
 * @since 0.1.0
 */
export interface ColumnExtras {
  readonly schemaName?: string | undefined
  readonly displayName?: string | undefined
  readonly description?: string | undefined
  /** The column this one is a part of (`parentcustomeridname` of `parentcustomerid`): not selectable. */
  readonly attributeOf?: string | undefined
  readonly isValidForRead?: boolean | undefined
}

/**
 * A table to generate: its metadata and what else the service said of it.
 *
 * @since 0.1.0
 */
export interface TableInput {
  readonly metadata: TableMetadata
  readonly schemaName?: string | undefined
  readonly displayName?: string | undefined
  readonly description?: string | undefined
  readonly columns?: ReadonlyMap<string, ColumnExtras> | undefined
}

/**
 * A generated file, relative to the output directory.
 *
 * @since 0.1.0
 */
export interface GeneratedFile {
  readonly path: string
  readonly contents: string
}

const reserved = new Set(["Schema", "Table"])

/**
 * A PascalCase identifier from a schema or logical name: `dve_Product` → `DveProduct`.
 *
 * @since 0.1.0
 */
export const pascalCase = (name: string): string => {
  const parts = name.split(/[^\p{L}\p{N}]+/u).filter((part) => part !== "")
  const joined = parts.map((part) => part[0]!.toUpperCase() + part.slice(1)).join("")
  return joined === "" ? "_" : /^\p{N}/u.test(joined) ? `_${joined}` : joined
}

/**
 * The exported name of a table's module: PascalCase of its schema name, else of its logical name.
 *
 * @since 0.1.0
 */
export const tableIdentifier = (input: TableInput): string => {
  const id = pascalCase(input.schemaName ?? input.metadata.logicalName)
  return reserved.has(id) ? `${id}Table` : id
}

const property = (name: string) => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name))

/** Text safe inside a JSDoc comment, on one line. */
const doc = (text: string) => text.replace(/\*\//g, "*\\/").replace(/\s+/g, " ").trim()

const jsdoc = (lines: ReadonlyArray<string>, indent: string): string => {
  const kept = lines.map(doc).filter((line) => line !== "")
  if (kept.length === 0) return ""
  if (kept.length === 1) return `${indent}/** ${kept[0]} */\n`
  return `${indent}/**\n${kept.map((line) => `${indent} * ${line}`).join("\n")}\n${indent} */\n`
}

const isMultiSelect = (column: ColumnMetadata) => column.typeName === "MultiSelectPicklistType"
const isChoice = (column: ColumnMetadata) =>
  column.type === "Picklist" || column.type === "State" || column.type === "Status"
const isLookup = (column: ColumnMetadata) =>
  column.type === "Lookup" || column.type === "Customer" || column.type === "Owner"

const range = (column: ColumnMetadata) =>
  column.minValue !== undefined && column.maxValue !== undefined
    ? `.pipe(Schema.between(${column.minValue}, ${column.maxValue}))`
    : column.minValue !== undefined
    ? `.pipe(Schema.greaterThanOrEqualTo(${column.minValue}))`
    : column.maxValue !== undefined
    ? `.pipe(Schema.lessThanOrEqualTo(${column.maxValue}))`
    : ""

/** The Schema of a column's value (without null), or undefined for a type typegen leaves out. */
const valueSchema = (column: ColumnMetadata): { readonly code: string; readonly kind: string } | undefined => {
  if (isMultiSelect(column)) {
    return { code: "Schema.String", kind: "Choices (multi-select): the values, comma-separated, e.g. \"1,3\"" }
  }
  switch (column.type) {
    case "Uniqueidentifier":
      return { code: "Schema.UUID", kind: "Unique identifier" }
    case "String":
    case "Memo":
      return {
        code: `Schema.String${column.maxLength === undefined ? "" : `.pipe(Schema.maxLength(${column.maxLength}))`}`,
        kind: `${column.type === "Memo" ? "Multiline text" : "Text"}${
          column.maxLength === undefined ? "" : `, at most ${column.maxLength} characters`
        }`
      }
    case "Integer":
      return { code: `Schema.Int${range(column)}`, kind: "Whole number" }
    case "BigInt":
      return { code: "Schema.Int", kind: "Big integer (beyond 2^53 it loses precision as a JSON number)" }
    case "Decimal":
      return { code: `Schema.Number${range(column)}`, kind: "Decimal number" }
    case "Double":
      return { code: `Schema.Number${range(column)}`, kind: "Floating point number" }
    case "Money":
      return { code: `Schema.Number${range(column)}`, kind: "Currency" }
    case "Boolean":
      return { code: "Schema.Boolean", kind: "Yes/no" }
    case "DateTime":
      return column.dateTimeBehavior === "DateOnly"
        ? { code: "Schema.String", kind: "Date only, ISO 8601 (e.g. 2024-05-01; a date and time is refused)" }
        : { code: "Schema.String", kind: "Date and time, ISO 8601 (e.g. 2024-05-01T12:00:00Z)" }
    case "Picklist":
    case "State":
    case "Status": {
      const values = (column.options ?? []).map((o) => o.value)
      return {
        code: values.length === 0 ? "Schema.Int" : `Schema.Literal(${values.join(", ")})`,
        kind: column.type === "Picklist" ? "Choice" : column.type === "State" ? "Status (state)" : "Status reason"
      }
    }
    default:
      return undefined
  }
}

/** Keys for a const object of choices: identifiers from labels, unique. */
const choiceKeys = (column: ColumnMetadata): Array<readonly [string, number, string | undefined]> => {
  const used = new Set<string>()
  return (column.options ?? []).map((option) => {
    let key = option.label === undefined || option.label.trim() === ""
      ? `Value${option.value}`
      : pascalCase(option.label)
    if (key === "_") key = `Value${option.value}`
    if (used.has(key)) key = `${key}_${option.value}`
    used.add(key)
    return [key, option.value, option.label] as const
  })
}

/** Whether a column must be given on create and is never null on read. */
const isRequired = (column: ColumnMetadata) =>
  column.requiredLevel === "SystemRequired" && !column.isPrimaryId && column.isValidForCreate &&
  !isLookup(column) && !isChoice(column) && column.type !== "Boolean" && !isMultiSelect(column)

const access = (column: ColumnMetadata) =>
  !column.isValidForCreate && !column.isValidForUpdate
    ? "Read-only."
    : column.isValidForCreate && !column.isValidForUpdate && !column.isPrimaryId
    ? "Set on create only."
    : !column.isValidForCreate && column.isValidForUpdate
    ? "Set on update only."
    : ""

const requirement = (column: ColumnMetadata) =>
  isRequired(column)
    ? "Required."
    : column.requiredLevel === "SystemRequired" && !column.isPrimaryId
    ? "Required by the service (it sets a default when left out)."
    : column.requiredLevel === "ApplicationRequired"
    ? "Business required (forms ask for it; the Web API does not enforce it)."
    : ""

/**
 * The source of a table's module.
 *
 * @since 0.1.0
 */
export const tableModule = (input: TableInput): GeneratedFile => {
  const { metadata } = input
  const id = tableIdentifier(input)
  const extras = (name: string): ColumnExtras => input.columns?.get(name) ?? {}
  const columns = [...metadata.columns].sort((a, b) =>
    a.isPrimaryId !== b.isPrimaryId ? (a.isPrimaryId ? -1 : 1) : a.logicalName.localeCompare(b.logicalName)
  )
  const choices: Array<string> = []
  const fields: Array<string> = []
  const skipped: Array<string> = []
  const fieldNames = new Set<string>()

  for (const column of columns) {
    const extra = extras(column.logicalName)
    if (extra.attributeOf !== undefined && extra.attributeOf !== "") {
      skipped.push(`${column.logicalName} (part of ${extra.attributeOf})`)
      continue
    }
    if (extra.isValidForRead === false) {
      skipped.push(`${column.logicalName} (not readable)`)
      continue
    }
    const value = valueSchema(column)
    const about = [extra.displayName, extra.description].filter((s): s is string => s !== undefined && s !== "")
    if (isLookup(column)) {
      const targets = column.targets ?? []
      const navigations = [
        ...new Map(
          metadata.lookups.filter((l) => l.column === column.logicalName).map((l) => [l.navigationProperty, l])
        ).values()
      ]
      const readName = `_${column.logicalName}_value`
      fields.push(
        jsdoc([
          ...about,
          `Lookup \`${column.logicalName}\` to ${
            targets.length === 0 ? "another table" : targets.join(" or ")
          }: the id, to read.${
            navigations.length === 0
              ? ""
              : ` To set it, use ${navigations.map((n) => `\`${n.navigationProperty}@odata.bind\``).join(" or ")}.`
          }`,
          requirement(column)
        ], "    ") + `    ${property(readName)}: Schema.optional(Schema.NullOr(Schema.UUID)),\n`
      )
      fieldNames.add(readName)
      for (const navigation of navigations) {
        const bind = `${navigation.navigationProperty}@odata.bind`
        fields.push(
          jsdoc([
            `Sets \`${column.logicalName}\` to a record of ${navigation.target}: \`"/<entity set>(<id>)"\` (Records.bind) or by alternate key \`"/<entity set>(<key>='<value>')"\`; write only.`
          ], "    ") + `    ${property(bind)}: Schema.optional(Schema.String),\n`
        )
        fieldNames.add(bind)
      }
      continue
    }
    if (value === undefined) {
      skipped.push(`${column.logicalName} (${column.typeName ?? column.type})`)
      continue
    }
    let code = value.code
    const lines = [...about]
    if ((isChoice(column) || isMultiSelect(column)) && (column.options ?? []).length > 0) {
      const name = `${id}${pascalCase(extra.schemaName ?? column.logicalName)}`
      const keys = choiceKeys(column)
      choices.push(
        jsdoc([`The choices of \`${metadata.logicalName}.${column.logicalName}\`: label → value.`], "") +
          `export const ${name} = {\n${
            keys.map(([key, v, label]) =>
              `${label !== undefined && label !== key ? jsdoc([label], "  ") : ""}  ${property(key)}: ${v}`
            ).join(",\n")
          }\n} as const\n\n` +
          jsdoc([`A value of \`${metadata.logicalName}.${column.logicalName}\`.`], "") +
          `export type ${name} = typeof ${name}[keyof typeof ${name}]\n`
      )
      lines.push(
        `${value.kind}: one of ${name} (${keys.map(([, v, label]) => `${v} ${label ?? ""}`.trim()).join(", ")}).`
      )
    } else lines.push(`${value.kind}.`)
    lines.push(requirement(column), access(column))
    if (column.isPrimaryId) {
      lines.push("Primary key: leave it out to let the service assign one.")
      code = `Schema.optional(${code})`
    } else if (!isRequired(column)) code = `Schema.optional(Schema.NullOr(${code}))`
    fields.push(`${jsdoc(lines, "    ")}    ${property(column.logicalName)}: ${code},\n`)
    fieldNames.add(column.logicalName)
  }

  const keys = metadata.keys
    .filter((key) => key.status === "Active" && key.keyAttributes.every((a) => fieldNames.has(a)))
    .map((key) => `[${key.keyAttributes.map((a) => JSON.stringify(a)).join(", ")}]`)
  const messages = Object.entries({
    CreateMultiple: metadata.messages.createMultiple,
    UpdateMultiple: metadata.messages.updateMultiple,
    UpsertMultiple: metadata.messages.upsertMultiple,
    DeleteMultiple: metadata.messages.deleteMultiple
  }).filter(([, supported]) => supported).map(([name]) => name)
  const title = input.displayName === undefined || input.displayName === ""
    ? `\`${metadata.logicalName}\``
    : `${input.displayName} (\`${metadata.logicalName}\`)`

  const contents = [
    `// Generated by \`dv-effect typegen\` from the metadata of table ${metadata.logicalName}. Do not edit: generate it again.\n`,
    "import { Table } from \"@dv-effect/core\"\n",
    "import { Schema } from \"effect\"\n",
    "\n",
    choices.length === 0 ? "" : `${choices.join("\n")}\n`,
    jsdoc([
      `${title}: ${
        metadata.tableType === "Elastic" ? "an elastic" : "a standard"
      } table, entity set \`${metadata.entitySetName}\`.`,
      ...(input.description === undefined ? [] : [input.description]),
      `Bulk messages: ${messages.length === 0 ? "none (writes go through $batch)" : messages.join(", ")}.`,
      ...(skipped.length === 0 ? [] : [`Columns left out: ${skipped.join(", ")}.`]),
      "@example",
      "```ts",
      `import { Table } from "@dv-effect/core"`,
      `const rows = Table.query(${id}, { top: 10 })`,
      "```"
    ], ""),
    `export const ${id} = Table.make({\n`,
    `  logicalName: ${JSON.stringify(metadata.logicalName)},\n`,
    `  primaryKey: ${JSON.stringify(metadata.primaryIdAttribute)},\n`,
    keys.length === 0 ? "" : `  alternateKeys: [${keys.join(", ")}],\n`,
    "  fields: {\n",
    fields.join("").replace(/,\n$/, "\n"),
    "  }\n",
    "})\n",
    "\n",
    jsdoc([`A ${metadata.logicalName} record as code sees it (decoded).`], ""),
    `export type ${id} = Schema.Schema.Type<typeof ${id}.schema>\n`,
    "\n",
    jsdoc([`A ${metadata.logicalName} record as the Web API sees it (encoded).`], ""),
    `export type ${id}Encoded = Schema.Schema.Encoded<typeof ${id}.schema>\n`
  ].join("")
  return { path: `${metadata.logicalName}.ts`, contents }
}

const indexHeader = "// Generated by `dv-effect typegen`. Do not edit: generate it again.\n"

/**
 * The index module: re-exports every table module, those of `kept` too (tables an earlier run
 * generated into the same directory).
 *
 * @since 0.1.0
 */
export const indexModule = (inputs: ReadonlyArray<TableInput>, kept: ReadonlyArray<string> = []): GeneratedFile => ({
  path: "index.ts",
  contents: indexHeader +
    [...new Set([...inputs.map((input) => input.metadata.logicalName), ...kept])]
      .sort()
      .map((name) => `export * from "./${name}.js"\n`)
      .join("")
})

/**
 * The table modules an index this command generated re-exports; none for any other file (an
 * index written by hand is not read).
 *
 * @since 0.2.0
 */
export const indexedTables = (contents: string): Array<string> =>
  contents.startsWith(indexHeader.trimEnd())
    ? [...contents.matchAll(/^export \* from "\.\/([a-z0-9_]+)\.js"\r?$/gm)].map((match) => match[1]!)
    : []

/**
 * Every file for the tables: one module each and the index (which keeps re-exporting `kept`).
 *
 * @since 0.1.0
 */
export const generate = (inputs: ReadonlyArray<TableInput>, kept: ReadonlyArray<string> = []): Array<GeneratedFile> => [
  ...inputs.map(tableModule),
  indexModule(inputs, kept)
]

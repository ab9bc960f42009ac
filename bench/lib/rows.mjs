// Deterministic rows for the benchmark scenarios, built the same way in every process (the
// driver writes them to JSON lines for the CLI, the library contenders build them in memory,
// the emulator host seeds from them), so what landed can be checked row by row.
//
// Every row carries a marker in a column of its own (contact `jobtitle`, dve_product
// `dve_description`): `m<i>` for creates, `u<i>` for updates and upserts. After a run the
// emulator host counts the markers in its store: landed, lost, duplicated.

/**
 * Row i is invalid when the scenario says so: by default a lastname over the column's 50
 * characters (a client that checks the metadata never sends it); with `invalidKind: "lookup"` a
 * lookup to an account that does not exist (it passes every client check, and the service refuses
 * the whole bulk request that carries it).
 */
export const isInvalid = (i, invalidEvery) => invalidEvery > 0 && i % invalidEvery === invalidEvery - 1

/** An account no row's lookup finds. */
const missingAccount = "/accounts(00000000-0000-4000-8000-00000000dead)"

/** A stable primary key per row index, for the seeded records the update scenario changes. */
export const contactId = (i) => `b0000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`

export const sku = (i) => `SKU-${i}`

/** The rows of a scenario's job, in input order. */
export const jobRows = (scenario, count = scenario.rows) => {
  const rows = new Array(count)
  for (let i = 0; i < count; i++) {
    switch (scenario.op) {
      case "create": {
        const invalid = isInvalid(i, scenario.invalidEvery ?? 0)
        rows[i] = {
          firstname: `First${i}`,
          lastname: invalid && scenario.invalidKind !== "lookup" ? `Invalid${"x".repeat(60)}${i}` : `Last${i}`,
          emailaddress1: `person${i}@bench.example.com`,
          telephone1: "+1-206-555-0100",
          creditlimit: i % 50000,
          jobtitle: `m${i}`
        }
        if (invalid && scenario.invalidKind === "lookup") {
          rows[i]["parentcustomerid_account@odata.bind"] = missingAccount
        }
        break
      }
      case "update":
        rows[i] = { contactid: contactId(i), telephone1: "+1-425-555-0199", jobtitle: `u${i}` }
        break
      case "upsert":
        rows[i] = { dve_sku: sku(i), dve_name: `Product ${i}`, dve_price: i % 1000, dve_description: `u${i}` }
        break
      default:
        throw new Error(`unknown operation ${scenario.op}`)
    }
  }
  return rows
}

/** Records that must exist before the job: the contacts an update changes, half the products an upsert touches. */
export const seedRows = (scenario) => {
  if (scenario.op === "update") {
    return Array.from({ length: scenario.rows }, (_, i) => ({
      contactid: contactId(i),
      firstname: `First${i}`,
      lastname: `Last${i}`,
      jobtitle: `m${i}`
    }))
  }
  if (scenario.op === "upsert") {
    // Even indices exist (the upsert updates them), odd ones are new (the upsert creates them).
    const rows = []
    for (let i = 0; i < scenario.rows; i += 2) {
      rows.push({ dve_sku: sku(i), dve_name: `Old product ${i}`, dve_price: 1, dve_description: `m${i}` })
    }
    return rows
  }
  return []
}

/** What the store must hold after a job of `count` rows. */
export const expectation = (scenario, count) => {
  const invalidEvery = scenario.op === "create" ? scenario.invalidEvery ?? 0 : 0
  let invalid = 0
  for (let i = 0; i < count; i++) if (isInvalid(i, invalidEvery)) invalid++
  return {
    table: scenario.table,
    column: scenario.op === "upsert" ? "dve_description" : "jobtitle",
    prefix: scenario.op === "create" ? "m" : "u",
    count,
    invalidEvery,
    valid: count - invalid
  }
}

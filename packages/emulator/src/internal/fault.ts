/**
 * Dataverse errors as the service reports them: the `Fault` class is public (`Store` returns it),
 * defined in `Store.ts`; here are the codes and the faults the emulator answers.
 */
import { Fault } from "../Store.js"

export { Fault }

export const isFault = (u: unknown): u is Fault => u instanceof Fault

/** The codes of section 5 of the wire reference. */
export const codes = {
  payload: "0x80048d19",
  maxLength: "0x80044331",
  optionValue: "0x8004431A",
  outOfRange: "0x8004432F",
  notFound: "0x80040217",
  segmentNotFound: "0x80060888",
  duplicateKey: "0x80040237",
  privilege: "0x80040220"
} as const

export const invalidProperty = (table: string, property: string, hint = ""): Fault =>
  new Fault(
    400,
    codes.payload,
    `An undeclared property '${property}' was found in entity 'Microsoft.Dynamics.CRM.${table}'.${hint}`
  )

export const badRequest = (message: string, code: string = codes.payload): Fault => new Fault(400, code, message)

export const recordNotFound = (table: string, id: string): Fault =>
  new Fault(404, codes.notFound, `${table} With Id = ${id} Does Not Exist`)

export const segmentNotFound = (segment: string): Fault =>
  new Fault(404, codes.segmentNotFound, `Resource not found for the segment '${segment}'.`)

export const methodNotAllowed = (method: string, path: string): Fault =>
  new Fault(405, codes.payload, `The HTTP method '${method}' is not allowed for the resource '${path}'.`)

export const duplicateKey = (message = "Cannot insert duplicate key."): Fault =>
  new Fault(412, codes.duplicateKey, message)

export const unauthorized = (reason: string, authorizationUri: string): Fault =>
  new Fault(401, "0x80072560", `The user is not authenticated: ${reason}`, {
    "WWW-Authenticate": `Bearer authorization_uri=${authorizationUri}`
  })

import { DataverseError } from "../DataverseError.js"

/** A caller's mistake, found before anything is sent: reason `InvalidInput`. */
export const invalid = (message: string): DataverseError => new DataverseError({ reason: "InvalidInput", message })

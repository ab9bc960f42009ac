/**
 * The one rule for annotations a record carries when it is read (`@odata.etag`, `@odata.context`,
 * `x@OData.Community.Display.V1.FormattedValue`, `_x_value@Microsoft.Dynamics.CRM.lookuplogicalname`):
 * they describe what was read, never what a write says. `@odata.type` and `x@odata.bind` are
 * part of a write and stay.
 */
export const isReadAnnotation = (name: string): boolean =>
  name.includes("@") && name !== "@odata.type" && !name.endsWith("@odata.bind")

/** The row without its read annotations; the row itself when it has none. */
export const withoutReadAnnotations = <A extends Readonly<Record<string, unknown>>>(row: A): A => {
  let clean: Record<string, unknown> | undefined
  for (const name in row) {
    if (isReadAnnotation(name)) {
      clean ??= { ...row }
      delete clean[name]
    }
  }
  return (clean ?? row) as A
}

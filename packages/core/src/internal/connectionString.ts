// Connection strings: fields, aliases, the tenant's discovery, and the credential they describe.
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { ConnectionStringOptions } from "../ConnectionString.js"
import * as Credentials from "../Credentials.js"
import { DataverseError } from "../DataverseError.js"
import { invalid } from "./invalidInput.js"
import { withSuggestion } from "./suggest.js"

const aliases: Readonly<Record<string, string>> = {
  authtype: "authtype",
  url: "url",
  serviceuri: "url",
  server: "url",
  clientid: "clientid",
  appid: "clientid",
  applicationid: "clientid",
  clientsecret: "clientsecret",
  secret: "clientsecret",
  tenantid: "tenantid",
  tenant: "tenantid",
  authority: "authority",
  username: "username",
  userid: "username",
  password: "password",
  thumbprint: "thumbprint",
  certthumbprint: "thumbprint",
  certificatefile: "certificatefile",
  certificatepassword: "certificatepassword",
  redirecturi: "redirecturi",
  loginprompt: "loginprompt",
  tokencachestorepath: "tokencachestorepath"
}

/** The names a user writes for the known keys, for suggestions. */
const knownKeys = [
  "AuthType",
  "Url",
  "ServiceUri",
  "ClientId",
  "AppId",
  "ClientSecret",
  "TenantId",
  "Authority",
  "Username",
  "Password",
  "Thumbprint",
  "CertificateFile",
  "CertificatePassword",
  "RedirectUri",
  "LoginPrompt",
  "TokenCacheStorePath"
]

/** The keys whose values are secrets. */
const secretKeys: ReadonlySet<string> = new Set(["clientsecret", "password", "certificatepassword"])

/** A key as written: a word, or words with spaces between (`Service Uri`). */
const looksLikeKey = (text: string): boolean => /^[A-Za-z][A-Za-z0-9_ ]*$/.test(text)

/**
 * Splits a connection string into lower-cased canonical keys and values. Values may be quoted
 * with `'` or `"` to hold `;`. An error never shows text that may be a value (a password with an
 * unquoted `;` reads as a part without `=` or as a key): it names the key before it instead.
 */
export const parseFields = (text: string): Map<string, string> | DataverseError => {
  const fields = new Map<string, string>()
  // The last key read, as written, and whether its value is a secret: where an error is,
  // without showing any value.
  let previous: string | undefined
  let afterSecret = false
  // Each key as written, by its canonical name.
  const written = new Map<string, string>()
  const unreadable = (what = "a part without '='") =>
    invalid(
      previous === undefined
        ? "The connection string does not start with a key and '=' (Url=...;AuthType=...)."
        : `The connection string has ${what} after ${previous}=: a value that holds ';' must be quoted (${previous}='a;b').`
    )
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf("=", i)
    if (eq < 0) {
      if (text.slice(i).trim() === "") break
      return unreadable()
    }
    const rawKey = text.slice(i, eq).trim().replace(/^;+/, "").trim()
    // A `;` before the `=`: the part before it had none.
    if (rawKey.includes(";")) return unreadable()
    const key = aliases[rawKey.toLowerCase().replace(/\s+/g, "")]
    if (key === undefined) {
      // After a secret, an unknown key may be a piece of it.
      if (afterSecret) return unreadable("a key dv-effect does not know")
      if (!looksLikeKey(rawKey)) return unreadable()
      return invalid(
        withSuggestion(`The connection string key '${rawKey}' is not one dv-effect knows`, rawKey, knownKeys, ".")
      )
    }
    const earlier = written.get(key)
    if (earlier !== undefined) {
      // After a secret, the key may be a piece of it (`Password=a;Secret=b`): not shown.
      if (afterSecret) return unreadable("a key given twice")
      return invalid(
        earlier.toLowerCase() === rawKey.toLowerCase()
          ? `The connection string gives ${rawKey}= twice.`
          : `The connection string gives ${earlier}= and ${rawKey}=, two names of one key.`
      )
    }
    let j = eq + 1
    while (text[j] === " ") j++
    let value: string
    const quote = text[j]
    if (quote === "'" || quote === "\"") {
      const end = text.indexOf(quote, j + 1)
      if (end < 0) return invalid(`The value of '${rawKey}' in the connection string has no closing ${quote}.`)
      value = text.slice(j + 1, end)
      const semicolon = text.indexOf(";", end)
      i = semicolon < 0 ? text.length : semicolon + 1
    } else {
      const semicolon = text.indexOf(";", j)
      value = text.slice(j, semicolon < 0 ? text.length : semicolon).trim()
      i = semicolon < 0 ? text.length : semicolon + 1
    }
    written.set(key, rawKey)
    fields.set(key, value)
    previous = rawKey
    afterSecret = secretKeys.has(key)
  }
  return fields
}

/** The public client id Microsoft's samples use in OAuth connection strings. */
const sampleClientId = "51f81489-12ee-4a9e-aaae-a2591f45987d"

/**
 * The tenant of an org, from the `WWW-Authenticate` challenge of an unauthenticated request:
 * `Bearer authorization_uri=https://login.microsoftonline.com/<tenant>/oauth2/authorize`. Returns
 * the authority (`https://login.microsoftonline.com/<tenant>`).
 */
export const discoverAuthority = (orgUrl: string): Effect.Effect<string, DataverseError> =>
  Effect.tryPromise({
    try: () => fetch(`${orgUrl.replace(/\/+$/, "")}/api/data/v9.2/`, { headers: { Authorization: "Bearer" } }),
    catch: (cause) =>
      new DataverseError({
        reason: "Unreachable",
        message: `Cannot reach ${orgUrl} to discover its tenant: ${String(cause)}`
      })
  }).pipe(
    Effect.flatMap((response) => {
      const challenge = response.headers.get("www-authenticate") ?? ""
      const uri = /authorization_uri="?([^",\s]+)/i.exec(challenge)?.[1]
      return uri === undefined
        ? Effect.fail(
          invalid(
            `${orgUrl} did not name its tenant (no WWW-Authenticate challenge); add TenantId= to the connection string.`
          )
        )
        : Effect.succeed(uri.replace(/\/oauth2\/(v2\.0\/)?authorize\/?$/i, ""))
    })
  )

/**
 * Reads a connection string into the org URL and a credential.
 */
export const parse = (
  connectionString: Redacted.Redacted<string>,
  options: ConnectionStringOptions = {}
): Effect.Effect<{ readonly url: string; readonly credentials: Credentials.Credential }, DataverseError> =>
  Effect.gen(function*() {
    const fields = parseFields(Redacted.value(connectionString))
    if (fields instanceof DataverseError) return yield* fields
    const url = fields.get("url")
    if (url === undefined || url === "") return yield* invalid("The connection string has no Url=.")
    const authType = (fields.get("authtype") ?? "").toLowerCase()
    const authorityOf = Effect.suspend(() => {
      const given = fields.get("authority") ?? options.authority
      if (given !== undefined) return Effect.succeed(given.replace(/\/+$/, ""))
      const tenant = fields.get("tenantid")
      return tenant !== undefined
        ? Effect.succeed(`https://login.microsoftonline.com/${tenant}`)
        : discoverAuthority(url)
    })
    const base = (authority: string) => ({
      authority,
      tenantId: authority.split("/").at(-1)!,
      ...(options.ca === undefined ? {} : { ca: options.ca })
    })
    const required = (key: string, label: string) => {
      const value = fields.get(key)
      return value === undefined || value === ""
        ? Effect.fail(invalid(`AuthType=${fields.get("authtype")} needs ${label}= in the connection string.`))
        : Effect.succeed(value)
    }
    switch (authType) {
      case "clientsecret": {
        const clientId = yield* required("clientid", "ClientId")
        const secret = yield* required("clientsecret", "ClientSecret")
        const authority = yield* authorityOf
        return {
          url,
          credentials: Credentials.clientSecret({ ...base(authority), clientId, clientSecret: Redacted.make(secret) })
        }
      }
      case "certificate": {
        const clientId = yield* required("clientid", "ClientId")
        const file = fields.get("certificatefile")
        if (file === undefined) {
          return yield* invalid(
            fields.has("thumbprint")
              ? "Thumbprint= names a certificate in the Windows certificate store, which dv-effect cannot read: give CertificateFile=<path to a .pem or .pfx> instead."
              : "AuthType=Certificate needs CertificateFile= in the connection string."
          )
        }
        const password = fields.get("certificatepassword")
        const certificate = yield* Credentials.readCertificateFile(
          file,
          password === undefined ? undefined : Redacted.make(password)
        )
        const authority = yield* authorityOf
        return { url, credentials: Credentials.clientCertificate({ ...base(authority), clientId, ...certificate }) }
      }
      case "oauth": {
        const authority = yield* authorityOf
        const user = {
          ...base(authority),
          clientId: fields.get("clientid") ?? sampleClientId,
          ...(options.cacheFile === undefined ? {} : { cacheFile: options.cacheFile })
        }
        const password = fields.get("password")
        const username = fields.get("username")
        if (password !== undefined && username !== undefined) {
          return {
            url,
            credentials: Credentials.usernamePassword({ ...user, username, password: Redacted.make(password) })
          }
        }
        if (options.onPrompt === undefined) {
          return yield* invalid(
            "AuthType=OAuth without Username= and Password= signs in with a device code, which needs a prompt."
          )
        }
        return { url, credentials: Credentials.deviceCode({ ...user, onPrompt: options.onPrompt }) }
      }
      case "":
        return yield* invalid("The connection string has no AuthType= (ClientSecret, Certificate or OAuth).")
      default:
        return yield* invalid(
          `AuthType=${
            fields.get("authtype")
          } is not supported (AD, IFD and Office365 are for on-premises or retired sign-ins); use ClientSecret, Certificate or OAuth.`
        )
    }
  })

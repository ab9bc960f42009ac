/**
 * Reading a client certificate file: PEM (certificate and private key) or PKCS#12 (PFX, through
 * node-forge, loaded when first needed).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as forgeModule from "node-forge"
import { createPrivateKey } from "node:crypto"
import * as Fs from "node:fs"
import type * as Credentials from "../Credentials.js"
import { DataverseError } from "../DataverseError.js"

// node-forge (for PFX files only) loads when first needed. It is CommonJS without exports Node's
// ESM loader can detect: its API is on `default` there.
const loadForge = (): Promise<typeof forgeModule> =>
  import("node-forge").then((module) =>
    (module as unknown as { readonly default?: typeof forgeModule }).default ?? module
  )

export const readCertificateFile: typeof Credentials.readCertificateFile = (path, password) =>
  Effect.tryPromise({
    try: async () => {
      const bytes = Fs.readFileSync(path)
      const text = bytes.toString("utf8")
      if (text.includes("-----BEGIN CERTIFICATE-----")) {
        const certificatePem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)![0]
        const keyMatch =
          /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/
            .exec(text)
        if (keyMatch === null) throw new Error("the PEM file holds a certificate but no private key")
        const key = createPrivateKey({
          key: keyMatch[0],
          ...(password === undefined ? {} : { passphrase: Redacted.value(password) })
        })
        return {
          certificatePem,
          privateKeyPem: Redacted.make(key.export({ type: "pkcs8", format: "pem" }).toString())
        }
      }
      return readPfx(await loadForge(), bytes, password)
    },
    catch: (cause) =>
      new DataverseError({
        reason: "InvalidInput",
        message: `Cannot use the certificate ${path}: ${(cause as Error).message}`
      })
  })

/** PKCS#12: the first certificate and the key that goes with it. */
const readPfx = (forge: typeof forgeModule, bytes: Buffer, password: Redacted.Redacted<string> | undefined) => {
  let p12: forgeModule.pkcs12.Pkcs12Pfx
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString("binary")))
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, password === undefined ? "" : Redacted.value(password))
  } catch (error) {
    throw new Error(
      /password|MAC/i.test(String(error))
        ? "the PFX password is wrong (or missing)"
        : "it is neither a PEM file with a certificate and key nor a PFX (PKCS#12) file"
    )
  }
  const certificate = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag]?.[0]?.cert
  const key =
    p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag]?.[0]?.key ??
      p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag]?.[0]?.key
  if (certificate === undefined || key === undefined) throw new Error("the PFX holds no certificate with a private key")
  return {
    certificatePem: forge.pki.certificateToPem(certificate),
    privateKeyPem: Redacted.make(
      forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key)))
    )
  }
}

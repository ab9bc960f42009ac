import { ConfidentialClientApplication, PublicClientApplication } from "@azure/msal-node"
import * as Fs from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/Emulator.js"

let emulator: Awaited<ReturnType<typeof Emulator.start>>
beforeAll(async () => {
  emulator = await Emulator.start()
})
afterAll(() => emulator.close())

const whoAmI = async (token: string) => {
  const response = await fetch(`${emulator.info.webApiUrl}WhoAmI`, { headers: { Authorization: `Bearer ${token}` } })
  expect(response.status).toBe(200)
  return ((await response.json()) as { UserId: string }).UserId
}

describe("the emulator's identity endpoint with msal-node", () => {
  it("puts the identity details in the start contract", () => {
    const { info } = emulator
    expect(info.authority).toBe(`${emulator.identity!.origin}/${info.tenantId}`)
    expect(info.authority).toMatch(/^https:\/\/127\.0\.0\.1:\d+\//)
    expect(Fs.readFileSync(info.caFile!, "utf8")).toContain("BEGIN CERTIFICATE")
    expect(info.clientSecret!.length).toBeGreaterThanOrEqual(32)
  })

  it("issues a client-credentials token that the Web API accepts as the application user", async () => {
    const app = new ConfidentialClientApplication({
      auth: {
        clientId: emulator.info.clientId,
        clientSecret: emulator.info.clientSecret!,
        authority: emulator.info.authority!,
        knownAuthorities: [...emulator.identity!.knownAuthorities]
      },
      system: { networkClient: emulator.identity!.msalNetworkClient }
    })
    const result = await app.acquireTokenByClientCredential({ scopes: [`${emulator.info.url}/.default`] })
    expect(await whoAmI(result!.accessToken)).toBe(emulator.info.userId)
  })

  it("issues a user token by username and password that the Web API maps to another system user", async () => {
    const app = new PublicClientApplication({
      auth: {
        clientId: emulator.info.publicClientId!,
        authority: emulator.info.authority!,
        knownAuthorities: [...emulator.identity!.knownAuthorities]
      },
      system: { networkClient: emulator.identity!.msalNetworkClient }
    })
    const result = await app.acquireTokenByUsernamePassword({
      username: emulator.info.username!,
      password: emulator.info.password!,
      scopes: [`${emulator.info.url}/user_impersonation`]
    })
    const userId = await whoAmI(result!.accessToken)
    expect(userId).not.toBe(emulator.info.userId)
    expect(userId).toMatch(/^[0-9a-f-]{36}$/)
  })
})

it("starts without the identity endpoint when asked, and says so in the contract", async () => {
  const bare = await Emulator.start({ identity: false })
  try {
    expect(bare.identity).toBeUndefined()
    expect(bare.info.authority).toBeUndefined()
    expect(
      await (await fetch(`${bare.info.webApiUrl}WhoAmI`, {
        headers: { Authorization: `Bearer ${bare.info.accessToken}` }
      })).status
    ).toBe(200)
  } finally {
    await bare.close()
  }
})

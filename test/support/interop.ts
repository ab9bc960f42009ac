/**
 * The third-party client of the interop tests: an emulator (static token, no identity endpoint)
 * and the npm package `dynamics-web-api` v2 pointed at it.
 */
import * as Emulator from "@dv-effect/emulator/Emulator"
import { DynamicsWebApi } from "dynamics-web-api"

export const startWithDynamicsWebApi = async () => {
  const emulator = await Emulator.start({ identity: false })
  const dwa = new DynamicsWebApi({
    serverUrl: emulator.info.url,
    dataApi: { version: "9.2" },
    onTokenRefresh: async () => emulator.info.accessToken
  })
  return { emulator, dwa }
}

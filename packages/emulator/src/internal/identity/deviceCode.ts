/**
 * The device code flow's endpoints: device authorization, and the verification URI where a user
 * code is approved (a form, or a scripted POST). The grant itself is in `tokenEndpoint.ts`.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import { randomBytes, randomInt } from "node:crypto"
import { findApp } from "./clientAuth.js"
import { missingParameter, refuse, type Reply } from "./protocol.js"
import { readForm, sameSecret } from "./request.js"
import { parseScopes } from "./scopes.js"
import type { IdentityState } from "./state.js"

const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ23456789"

const normaliseUserCode = (userCode: string) => userCode.replace(/[\s-]/g, "").toUpperCase()

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

const devicePage = (action: string, message: string | undefined) =>
  `<!doctype html>
<html><head><meta charset="utf-8"><title>dv-effect emulator: device sign-in</title></head>
<body>
<h1>Sign in to the dv-effect emulator</h1>
${message === undefined ? "" : `<p>${escapeHtml(message)}</p>`}
<form method="post" action="${escapeHtml(action)}">
<p><label>Code <input name="user_code" autocomplete="off" required></label></p>
<p><label>Username <input name="username" required></label></p>
<p><label>Password <input name="password" type="password"></label></p>
<p><button type="submit">Sign in</button></p>
</form>
</body></html>
`

const approveUrl = ({ origin }: IdentityState, tenantSegment: string) =>
  `${origin}/${tenantSegment}/oauth2/v2.0/devicecode/approve`

/** `POST oauth2/v2.0/devicecode`: the device authorization endpoint. */
export const deviceAuthorization = (
  state: IdentityState,
  tenantSegment: string,
  request: HttpServerRequest.HttpServerRequest
) =>
  Effect.gen(function*() {
    const { autoApprove, deviceCodes, deviceInterval, deviceLifetime, registeredUsers } = state
    const form = yield* readForm(request)
    const app = yield* findApp(state, form.get("client_id"))
    const scopes = yield* parseScopes(state, form.get("scope"), "user")
    const now = Date.now()
    for (const [key, code] of deviceCodes) if (now >= code.expiresAt) deviceCodes.delete(key)
    let userCode = ""
    do {
      userCode = Array.from({ length: 9 }, () => userCodeAlphabet[randomInt(userCodeAlphabet.length)]).join("")
    } while ([...deviceCodes.values()].some((code) => code.userCode === userCode))
    const deviceCode = randomBytes(48).toString("base64url")
    deviceCodes.set(deviceCode, {
      deviceCode,
      userCode,
      clientId: app.clientId,
      scopes,
      expiresAt: now + deviceLifetime * 1000,
      approvedFor: autoApprove ? registeredUsers[0] : undefined
    })
    const verificationUri = approveUrl(state, tenantSegment)
    return {
      status: 200,
      json: {
        user_code: userCode,
        device_code: deviceCode,
        verification_uri: verificationUri,
        expires_in: deviceLifetime,
        interval: deviceInterval,
        message:
          `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${userCode} to authenticate.`
      }
    } satisfies Reply
  })

/** Approves a device code; the reason when it cannot. */
export const approve = (
  { deviceCodes, tenantId, users }: IdentityState,
  userCode: string,
  username: string,
  password: string | undefined
): string | undefined => {
  const wanted = normaliseUserCode(userCode)
  const pending = [...deviceCodes.values()].find((code) => code.userCode === wanted)
  if (pending === undefined || Date.now() >= pending.expiresAt) return "The code is not valid or has expired."
  if (pending.approvedFor !== undefined) return "The code has already been approved."
  const user = users.get(username.toLowerCase())
  if (user === undefined) return `The user account ${username} does not exist in the ${tenantId} directory.`
  if (password !== undefined && !sameSecret(password, user.password)) {
    return "Error validating credentials due to invalid username or password."
  }
  pending.approvedFor = user
  return undefined
}

/** `GET|POST oauth2/v2.0/devicecode/approve`: the verification URI, a form and its approval. */
export const approveEndpoint = (
  state: IdentityState,
  tenantSegment: string,
  request: HttpServerRequest.HttpServerRequest
) =>
  Effect.gen(function*() {
    if (request.method === "GET") {
      return { status: 200, html: devicePage(approveUrl(state, tenantSegment), undefined) } satisfies Reply
    }
    const form = yield* readForm(request)
    const userCode = form.get("user_code")
    const username = form.get("username")
    if (userCode === null || userCode === "") return yield* missingParameter("user_code")
    if (username === null || username === "") return yield* missingParameter("username")
    const password = form.get("password")
    const reason = approve(state, userCode, username, password === null || password === "" ? undefined : password)
    const html = (request.headers["accept"] ?? "").includes("text/html")
    if (reason !== undefined) {
      if (html) return { status: 400, html: devicePage(approveUrl(state, tenantSegment), reason) } satisfies Reply
      return yield* refuse(400, "invalid_grant", 70000, reason)
    }
    if (html) {
      return {
        status: 200,
        html: devicePage(approveUrl(state, tenantSegment), `Signed in as ${username}. You may close this page.`)
      } satisfies Reply
    }
    return {
      status: 200,
      json: { approved: true, user_code: normaliseUserCode(userCode), username }
    } satisfies Reply
  })

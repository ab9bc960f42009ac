/**
 * The load balancer in front of the web servers (`Model.Balancer`).
 *
 * Documented (send-parallel-requests, "Server affinity"; wire reference, section 6): responses set
 * an affinity cookie; a client that sends it back is routed to the same server "unless capacity
 * management forces it to go to another server"; a client without it is routed to any eligible
 * server. Modelling choices (profile fields): in turn or at random (`spread`), whether a kept
 * cookie is honoured (`affinity`), one value per server or a fresh one per response (`cookies`).
 * Values mean nothing outside this emulator: a hash of a secret drawn at start, 64 hex characters
 * like the service's, so a client cannot forge one from a server's number.
 */
import { createHash, randomBytes } from "node:crypto"
import type { Balancer as Options } from "../Model.js"
import { seeded } from "./random.js"

/** Rotating cookie values still honoured: the most recent ones issued. */
const remembered = 10_000

export class Balancer {
  private readonly secret = randomBytes(32)
  private readonly stable: ReadonlyArray<string>
  /** Value → server, for the stable values or (rotating) the most recent ones issued, oldest first. */
  private readonly servers = new Map<string, number>()
  private readonly random: () => number
  private nextServer = 0
  private issued = 0

  constructor(private readonly options: Options, private readonly count: number) {
    this.random = seeded(options.seed)
    this.stable = Array.from({ length: count }, (_, server) => this.hash(`${server}`))
    if (options.cookies === "stable") this.stable.forEach((value, server) => this.servers.set(value, server))
  }

  /** The server a request goes to: the one its affinity cookie names, when honoured, else the next spread. */
  route(affinityCookie: string | undefined): number {
    if (this.options.affinity === "honoured" && affinityCookie !== undefined) {
      const pinned = this.servers.get(affinityCookie)
      if (pinned !== undefined) return pinned
    }
    if (this.options.spread === "random") return Math.min(this.count - 1, Math.floor(this.random() * this.count))
    const server = this.nextServer
    this.nextServer = (this.nextServer + 1) % this.count
    return server
  }

  /** The affinity cookie value a response from `server` sets. */
  cookie(server: number): string {
    if (this.options.cookies === "stable") return this.stable[server]!
    const value = this.hash(`${server}:${++this.issued}`)
    this.servers.set(value, server)
    if (this.servers.size > remembered) this.servers.delete(this.servers.keys().next().value!)
    return value
  }

  private hash(text: string): string {
    return createHash("sha256").update(this.secret).update(text).digest("hex")
  }
}

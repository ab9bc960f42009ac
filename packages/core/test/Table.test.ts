import * as Emulator from "@dv-effect/emulator/Emulator"
import { expect, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as S from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Credentials from "../src/Credentials.js"
import * as DataverseClient from "../src/DataverseClient.js"
import * as Table from "../src/Table.js"

const Contact = Table.make({
  logicalName: "contact",
  primaryKey: "contactid",
  fields: {
    contactid: S.optional(S.UUID),
    firstname: S.optional(S.NullOr(S.String.pipe(S.maxLength(50)))),
    lastname: S.String.pipe(S.maxLength(50)),
    creditlimit: S.optional(S.NullOr(S.Number))
  }
})

const Live = Layer.unwrapEffect(
  Effect.map(
    Emulator.Emulator,
    ({ info }) => DataverseClient.layerNode({ url: info.url, credentials: Credentials.staticToken(info.accessToken) })
  )
).pipe(Layer.provideMerge(Emulator.layer({ identity: false })))

layer(Live, { excludeTestServices: true })("typed tables", (it) => {
  it.effect("create and read back typed records; query selects the schema's columns", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const id = yield* Table.create(Contact, { firstname: "Ada", lastname: "Lovelace", creditlimit: 1000 })
      const read = yield* Table.retrieve(Contact, id)
      expect(read).toEqual({ contactid: id, firstname: "Ada", lastname: "Lovelace", creditlimit: 1000 })
      const all = Chunk.toReadonlyArray(yield* Stream.runCollect(Table.query(Contact)))
      expect(all).toEqual([read])
    }))

  it.effect("refuse a record that does not fit before sending it, naming the column", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const requests = emulator.counters.requests
      const error = yield* Effect.flip(Table.create(Contact, { lastname: "x".repeat(51) }))
      expect(error.reason).toBe("InvalidInput")
      expect(error.message).toMatch(/^A contact record does not fit its schema: lastname: /)
      expect(emulator.counters.requests).toBe(requests)
    }))

  it.effect("bulk-create typed records; a misfit fails alone at its position", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.Emulator
      emulator.reset()
      const outcomes = Chunk.toReadonlyArray(
        yield* Stream.runCollect(
          Table.createMany(Contact, [{ lastname: "A" }, { lastname: "x".repeat(60) }, { lastname: "C" }], {
            chunkSize: 10
          })
        )
      )
      expect(outcomes.map((o) => o.status)).toEqual(["created", "failed", "created"])
      expect(emulator.store.table("contact")!.size).toBe(2)
    }))

  it.effect("decoding reports a record that does not fit, with reason Decode", () =>
    Effect.sync(() => {
      const result = Table.decode(Contact, { contactid: "not-a-uuid", lastname: "x" })
      expect(Either.isLeft(result) && result.left.reason).toBe("Decode")
      expect(Either.isLeft(result) && result.left.message).toMatch(/contactid/)
    }))
})

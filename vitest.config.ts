import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  resolve: {
    // Unit and integration tests run against the sources; end-to-end tests spawn the built CLI.
    alias: [
      { find: /^@dv-effect\/core$/, replacement: src("packages/core/src/index.ts") },
      { find: /^@dv-effect\/core\/(.*)$/, replacement: src("packages/core/src/$1.ts") },
      { find: /^@dv-effect\/emulator$/, replacement: src("packages/emulator/src/index.ts") },
      { find: /^@dv-effect\/emulator\/(.*)$/, replacement: src("packages/emulator/src/$1.ts") }
    ]
  },
  test: {
    reporters: ["default", "./test/support/summary-reporter.ts"],
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: end-to-end files spawn processes of their own.
    maxWorkers: 2,
    minWorkers: 1
  }
})

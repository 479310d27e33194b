import { defineConfig } from "vitest/config";

// One run covers every package: unit specs beside the code (src/**/*.spec.ts)
// and integration suites (packages/*/test/**). Suites needing a real
// Firecracker skip themselves, saying so, unless FIRECRACKER_BIN is set.
export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.spec.ts", "packages/*/test/**/*.spec.ts", "test/**/*.spec.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
  },
});

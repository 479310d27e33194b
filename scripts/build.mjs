#!/usr/bin/env node
// Bundles each executable into one ESM file with esbuild, so that starting it
// costs one file read instead of resolving hundreds of modules (the daemon's
// startup and fc-sim's spawn time are measured). Skips entries not written yet.
import { chmodSync, existsSync } from "node:fs";
import { resolve } from "node:path";
import { build } from "esbuild";
import { buildConsole } from "../packages/vmm-console/build.mjs";

const root = resolve(import.meta.dirname, "..");
const entries = [
  ["packages/vmm-daemon/src/main.ts", "packages/vmm-daemon/dist/vmm-daemon.mjs"],
  ["packages/vmm-cli/src/main.ts", "packages/vmm-cli/dist/vmm.mjs"],
  ["packages/vmm-bench/src/main.ts", "packages/vmm-bench/dist/vmm-bench.mjs"],
  ["packages/fc-sim/src/main.ts", "packages/fc-sim/dist/fc-sim.mjs"],
  ["packages/fc-sim/src/jailer-main.ts", "packages/fc-sim/dist/jailer-sim.mjs"],
];

await Promise.all([
  // The web console's static files (packages/vmm-daemon/dist/console/), served at /ui/.
  buildConsole(),
  ...entries
    .filter(([src]) => existsSync(resolve(root, src)))
    .map(([src, out]) =>
      build({
        entryPoints: [resolve(root, src)],
        outfile: resolve(root, out),
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node22",
        sourcemap: "linked",
        logLevel: "warning",
        banner: {
          // Bundled CommonJS dependencies (pino) still call require().
          js: "#!/usr/bin/env node\nimport { createRequire as __vmmCreateRequire } from 'node:module'; const require = __vmmCreateRequire(import.meta.url);",
        },
        loader: { ".yaml": "text" },
      }).then(() => chmodSync(resolve(root, out), 0o755)),
    ),
]);

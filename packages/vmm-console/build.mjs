// Bundles the console for the daemon to serve: one JS file (the app, connect-web, the
// generated sandbox.v1 code, xterm.js) and one CSS file, both content-hashed (cached for a
// year by browsers), plus index.html naming them (revalidated on every load). Called by
// scripts/build.mjs; the output goes beside the daemon bundle, packages/vmm-daemon/dist/console/.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { build } from "esbuild";

const here = import.meta.dirname;

/** Builds the console into `outdir` (emptied first); returns the output files and their sizes. */
export async function buildConsole(outdir = resolve(here, "../vmm-daemon/dist/console")) {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const result = await build({
    entryPoints: [resolve(here, "src/main.ts")],
    outdir,
    entryNames: "console-[hash]",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome120", "firefox120", "safari17"],
    minify: true,
    // No source maps: they would be 5x the bundle in the daemon's memory; the sources are
    // in this package.
    sourcemap: false,
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((f) => f.endsWith(".js"));
  const css = outputs.find((f) => f.endsWith(".css"));
  if (!js || !css) throw new Error(`console build produced no JS or CSS: ${outputs.join(", ")}`);
  const html = readFileSync(resolve(here, "static/index.html"), "utf8")
    .replace("%JS%", `./${js}`)
    .replace("%CSS%", `./${css}`);
  writeFileSync(resolve(outdir, "index.html"), html);
  return { js, css, outputs: [...outputs, "index.html"] };
}

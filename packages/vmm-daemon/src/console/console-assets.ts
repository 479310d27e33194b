import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzip as gzipCallback } from "node:zlib";

const gzip = promisify(gzipCallback);

/** One static file of the console, held in memory. */
export interface ConsoleAsset {
  readonly body: Buffer;
  /**
   * `body` gzipped, when that is smaller (text files); undefined otherwise. Compressed on the
   * first request that accepts gzip, off the event loop, then kept: compressing the bundle at
   * load would add 60-170 ms to the daemon's startup on a loaded host (measured).
   */
  gzipped(): Promise<Buffer | undefined>;
  readonly contentType: string;
  /** Strong ETag: a hash of `body`. */
  readonly etag: string;
  /** Content-hashed name (`console-<hash>.js`): cached for a year; others revalidate. */
  readonly immutable: boolean;
}

/** The built console: file name (no directories) → asset. */
export type ConsoleAssets = ReadonlyMap<string, ConsoleAsset>;

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
};

/** esbuild's `console-[hash]` entry names (8 characters of base32) and files named after them. */
const HASHED_NAME = /^console-[A-Z0-9]{8}\./;

/**
 * Where `node scripts/build.mjs` puts the console: `dist/console/` beside the daemon bundle
 * (`dist/vmm-daemon.mjs`), or, when this module runs from source (tests, tsx), the package's
 * `dist/console/`.
 */
export function defaultConsoleAssetsDir(): string {
  const candidates = [
    fileURLToPath(new URL("./console/", import.meta.url)),
    fileURLToPath(new URL("../../dist/console/", import.meta.url)),
  ];
  return candidates.find((d) => existsSync(join(d, "index.html"))) ?? candidates[0]!;
}

/**
 * Reads every file of `dir` (flat: the build writes no subdirectories) into memory, so serving never touches the disk and a half-replaced dist dir during an
 * upgrade cannot mix versions. An absent dir gives an empty map (the mount then says how to
 * build the console).
 */
export function loadConsoleAssets(dir: string): ConsoleAssets {
  const assets = new Map<string, ConsoleAsset>();
  if (!existsSync(dir)) return assets;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const body = readFileSync(join(dir, entry.name));
    const contentType = CONTENT_TYPES[extname(entry.name)] ?? "application/octet-stream";
    const compressible = /^(text\/|application\/json|image\/svg)/.test(contentType);
    let gzipped: Promise<Buffer | undefined> | undefined;
    assets.set(entry.name, {
      body,
      gzipped() {
        gzipped ??= compressible
          ? gzip(body, { level: 9 }).then((z) => (z.length < body.length ? z : undefined))
          : Promise.resolve(undefined);
        return gzipped;
      },
      contentType,
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
      immutable: HASHED_NAME.test(entry.name),
    });
  }
  return assets;
}

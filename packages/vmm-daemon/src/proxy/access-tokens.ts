import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { link, open, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";

const KEY_FILE = "proxy-token.key";
const KEY_BYTES = 32;

/**
 * Per-sandbox access tokens of the HTTP proxy: HMAC-SHA256 under a key the
 * daemon keeps in `<data_dir>/proxy-token.key` (created once, mode 0600), over
 * the sandbox id and its creation time. Nothing is stored per sandbox, a token
 * survives daemon restarts, covers every port the sandbox exposes, dies with
 * the sandbox (a new sandbox that reuses the id has another creation time,
 * so another token) and all of them are revoked by deleting the key file.
 */
export class AccessTokens {
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
  }

  /** Reads the key under `dataDir`, creating it the first time. */
  static async open(dataDir: string): Promise<AccessTokens> {
    const path = join(dataDir, KEY_FILE);
    const existing = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    if (existing !== undefined) return new AccessTokens(checked(existing, path));
    // Written whole under a temporary name, then linked: a crash never leaves a short key, and
    // a key that appeared meanwhile wins (link refuses to replace it).
    const temp = `${path}.${process.pid}.tmp`;
    const key = randomBytes(KEY_BYTES);
    const fh = await open(temp, "w", 0o600);
    try {
      await fh.writeFile(key);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      return new AccessTokens(checked(await readFile(path), path));
    } finally {
      await unlink(temp);
    }
    return new AccessTokens(key);
  }

  /** The access token of the sandbox `id` created at `createdAt` (43 base64url characters). */
  tokenFor(id: string, createdAt: Date): string {
    return createHmac("sha256", this.#key)
      .update(`vmm-proxy-access\n${id}\n${createdAt.getTime()}`)
      .digest("base64url");
  }

  /** True when `token` is the access token of that sandbox (constant-time comparison). */
  verify(token: string, id: string, createdAt: Date): boolean {
    return sameSecret(token, this.tokenFor(id, createdAt));
  }
}

/** Constant-time string comparison (the length is not secret). */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function checked(key: Buffer, path: string): Buffer {
  if (key.length !== KEY_BYTES)
    throw new Error(
      `${path} holds ${key.length} bytes, not a ${KEY_BYTES}-byte proxy token key; delete it (every proxy access token changes) and restart`,
    );
  return key;
}

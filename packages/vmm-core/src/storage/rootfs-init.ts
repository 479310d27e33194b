import { execFile } from "node:child_process";
import { posix } from "node:path";
import { promisify } from "node:util";
import type { ResolvedImage } from "./image.js";

const run = promisify(execFile);
const MAX_LINKS = 8;

/** What a rootfs holds at the init path: an executable file, or why it cannot start the agent. */
export type InitProgram = { ok: true; path: string } | { ok: false; why: string };

/**
 * Looks up `init` (an absolute path, symlinks followed) in an ext2/3/4 image without mounting it,
 * with e2fsprogs' `debugfs`. `undefined` when the image cannot be read that way (not ext*, no
 * debugfs): then nothing can be said before booting it.
 */
export async function findInitProgram(
  image: string,
  init = "/sbin/init",
): Promise<InitProgram | undefined> {
  let path = init;
  for (let hop = 0; hop <= MAX_LINKS; hop++) {
    const entry = await statInImage(image, path);
    if (entry === undefined) return undefined;
    if (entry.kind === "missing") {
      return {
        ok: false,
        why: path === init ? `no ${init}` : `${init} links to ${path}, which does not exist`,
      };
    }
    if (entry.kind === "symlink") {
      path = posix.resolve(posix.dirname(path), entry.target);
      continue;
    }
    if (entry.type !== "regular")
      return { ok: false, why: `${path} is a ${entry.type}, not a program` };
    if ((entry.mode & 0o111) === 0) {
      return { ok: false, why: `${path} is not executable (mode ${entry.mode.toString(8)})` };
    }
    return { ok: true, path };
  }
  return { ok: false, why: `${init}: more than ${MAX_LINKS} symbolic links` };
}

type Entry =
  | { kind: "missing" }
  | { kind: "symlink"; target: string }
  | { kind: "file"; type: string; mode: number };

async function statInImage(image: string, path: string): Promise<Entry | undefined> {
  let out: string;
  let err: string;
  try {
    ({ stdout: out, stderr: err } = await run("debugfs", ["-R", `stat "${path}"`, image], {
      timeout: 10_000,
      maxBuffer: 1 << 20,
    }));
  } catch {
    return undefined; // no debugfs, or it failed outright
  }
  if (/File not found by ext2_lookup/.test(err)) return { kind: "missing" };
  const head = /Type: (\S+)\s+Mode:\s+([0-7]+)/.exec(out);
  if (!head?.[1] || !head[2]) return undefined; // not an ext image debugfs could open
  if (head[1] === "symlink") {
    const fast = /Fast link dest: "(.*)"/.exec(out);
    if (fast?.[1] !== undefined) return { kind: "symlink", target: fast[1] };
    // A long target sits in a data block: read it.
    const slow = await run("debugfs", ["-R", `cat "${path}"`, image], { timeout: 10_000 }).catch(
      () => undefined,
    );
    return slow?.stdout ? { kind: "symlink", target: slow.stdout } : undefined;
  }
  return { kind: "file", type: head[1], mode: Number.parseInt(head[2], 8) };
}

/**
 * Checks rootfs images for the agent as init, once per file identity (path, size, mtime, inode):
 * Create calls it for every sandbox.
 */
export class RootfsInitCheck {
  readonly #cache = new Map<string, Promise<InitProgram | undefined>>();

  /** The init program of `rootfs` at `init` (see findInitProgram). */
  find(rootfs: ResolvedImage, init = "/sbin/init"): Promise<InitProgram | undefined> {
    const { path, identity } = rootfs;
    const key = `${path}\0${identity.size}\0${identity.mtimeMs}\0${identity.ino}\0${init}`;
    let result = this.#cache.get(key);
    if (!result) {
      result = findInitProgram(path, init);
      for (const old of this.#cache.keys())
        if (old.startsWith(`${path}\0`)) this.#cache.delete(old);
      this.#cache.set(key, result);
    }
    return result;
  }
}

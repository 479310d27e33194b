/**
 * Atomic directory deletion (containerd `core/runtime/v2/bundle.go` atomicDelete).
 *
 * `removeDirAtomic` first renames `<parent>/<name>` to
 * `<parent>/.<name>.deleting-<rand>` and fsyncs the parent: from then on the
 * entry is gone for every scanner (they all skip dot-names), even if the
 * recursive removal that follows is interrupted by a crash. At startup,
 * `removeDeletingLeftovers(parent)` finishes such interrupted deletions.
 */
import { randomBytes } from "node:crypto";
import { readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fsyncDir } from "./atomic-file.js";

const DELETING_RE = /^\..+\.deleting-[0-9a-f]+$/;

/** Reports whether a directory entry name is an interrupted atomic delete. */
export function isDeletingName(name: string): boolean {
  return DELETING_RE.test(name);
}

/**
 * Removes `dir` so that it disappears atomically, then frees its content.
 * A missing `dir` is not an error (returns false); returns true if it existed.
 */
export async function removeDirAtomic(dir: string): Promise<boolean> {
  const parent = dirname(dir);
  const hidden = join(parent, `.${basename(dir)}.deleting-${randomBytes(6).toString("hex")}`);
  try {
    await rename(dir, hidden);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  await fsyncDir(parent);
  await rm(hidden, { recursive: true, force: true });
  return true;
}

/**
 * The fast half of {@link removeDirAtomic}: renames `dir` to its deleting
 * name (gone for every scanner from now on) and returns that path, without
 * fsync, so the caller can free the content in the background. A crash
 * before the rename is durable brings the directory back; callers use it only
 * where that is harmless (a sandbox dir whose record says the VM is gone).
 * Returns undefined when `dir` does not exist.
 */
export async function moveAside(dir: string): Promise<string | undefined> {
  const hidden = join(dirname(dir), `.${basename(dir)}.deleting-${randomBytes(6).toString("hex")}`);
  try {
    await rename(dir, hidden);
    return hidden;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * Removes every `.<name>.deleting-<rand>` entry left in `parent` by an
 * interrupted {@link removeDirAtomic}; returns the names removed. A missing
 * `parent` yields an empty list.
 */
export async function removeDeletingLeftovers(parent: string): Promise<string[]> {
  return removeMatching(parent, isDeletingName);
}

/**
 * Removes every entry of `parent` whose name satisfies `match`
 * (recursively, files or dirs); returns the names removed.
 * @private shared by the startup scanners.
 */
export async function removeMatching(
  parent: string,
  match: (name: string) => boolean,
): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names.sort()) {
    if (!match(name)) continue;
    await rm(join(parent, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

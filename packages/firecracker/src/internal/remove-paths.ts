import { rm, rmdir, unlink } from "node:fs/promises";

/** Unlinks each file/socket, ignoring ones already gone. */
export async function removePaths(paths: readonly string[]): Promise<void> {
  for (const p of paths) {
    await unlink(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }
}

/** Removes a directory tree, ignoring a missing one. */
export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** Removes an empty directory (a cgroup), ignoring a missing one. */
export async function removeEmptyDir(path: string): Promise<void> {
  await rmdir(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

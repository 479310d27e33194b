import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { filesystemName } from "./filesystem.js";
import { tryReflink } from "./storage-reflink.js";

/** Whether a directory's filesystem can reflink, as found by {@link probeReflink}. */
export interface ReflinkProbe {
  supported: boolean;
  /** Filesystem name ("xfs", "ext4", …). */
  filesystem: string;
  /** Why not, when unsupported (errno code and message). */
  reason?: string;
}

/**
 * Tells whether files in `dir` can be reflinked to each other, by cloning a
 * 4 KiB temp file with FICLONE_FORCE (dot-named, removed afterwards). Use at
 * startup to log the clone method and to fail fast for `rootfs_clone = "reflink"`.
 * Errors other than "unsupported" (e.g. `dir` missing or read-only) are thrown.
 */
export async function probeReflink(dir: string): Promise<ReflinkProbe> {
  const filesystem = await filesystemName(dir);
  const base = join(dir, `.reflink-probe-${randomBytes(6).toString("hex")}`);
  const clone = `${base}.clone`;
  try {
    await writeFile(base, randomBytes(4096), { flag: "wx" });
    try {
      await tryReflink(base, clone);
      return { supported: true, filesystem };
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === "EEXIST" || e.code === "ENOSPC" || e.code === "EDQUOT" || e.code === "EACCES")
        throw err;
      return { supported: false, filesystem, reason: `${e.code ?? "error"}: ${e.message}` };
    }
  } finally {
    await rm(base, { force: true });
    await rm(clone, { force: true });
  }
}

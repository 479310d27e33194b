import { link } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { FailedPreconditionError } from "../errors.js";
import { mapDiskError } from "./disk-errors.js";
import { filesystemName } from "./filesystem.js";
import { tryReflink } from "./storage-reflink.js";

/** How {@link linkOrClone} made `dst`. */
export type LinkMethod = "link" | "reflink";

/**
 * Makes `dst` (which must not exist) refer to the content of the read-only,
 * possibly huge file `src` without copying it: a hard link (same inode), else
 * a reflink (new inode, shared extents). Never a full copy: if neither works
 * (different filesystems, no reflink support), throws FailedPreconditionError
 * with both reasons. Used for snapshot memory/vmstate files going into a
 * restored sandbox's directory, where a copy would cost GiBs per restore.
 */
export async function linkOrClone(src: string, dst: string): Promise<LinkMethod> {
  let linkErr: NodeJS.ErrnoException;
  try {
    await link(src, dst);
    return "link";
  } catch (err) {
    linkErr = err as NodeJS.ErrnoException;
    if (linkErr.code === "EEXIST" || linkErr.code === "ENOENT") throw err;
    if (linkErr.code === "ENOSPC" || linkErr.code === "EDQUOT")
      throw mapDiskError(err, "linking a snapshot file");
  }
  try {
    await tryReflink(src, dst);
    return "reflink";
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOSPC" || e.code === "EDQUOT")
      throw mapDiskError(err, "cloning a snapshot file");
    const [srcFs, dstFs] = await Promise.all([filesystemName(src), filesystemName(dirname(dst))]);
    throw new FailedPreconditionError(
      `cannot share the snapshot file ${basename(src)} (${srcFs}) with the sandbox directory (${dstFs}) without a full copy: ` +
        `hard link failed (${linkErr.code}), reflink failed (${e.code})`,
      {
        cause: new AggregateError([linkErr, err]),
        hint: "keep snapshots/ and sandboxes/ under one data_dir on one filesystem (hard links need that; XFS/btrfs also allow reflinks)",
      },
    );
  }
}

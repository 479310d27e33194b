import { constants } from "node:fs";
import { chmod, copyFile, rm, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { FailedPreconditionError } from "../errors.js";
import { isReflinkUnsupported, mapDiskError } from "./disk-errors.js";
import { filesystemName } from "./filesystem.js";
import type { CloneResult } from "./storage.js";

/**
 * Clones `src` to the new file `dst` by sharing extents (FICLONE), never by
 * copying. Fails fast with FailedPreconditionError when the filesystem cannot
 * (ext4, tmpfs, …) or `src` and `dst` are on different filesystems.
 */
export async function reflinkFile(
  src: string,
  dst: string,
  signal?: AbortSignal,
): Promise<CloneResult> {
  signal?.throwIfAborted();
  const size = (await stat(src)).size;
  try {
    await tryReflink(src, dst);
  } catch (err) {
    if (isReflinkUnsupported(err)) throw await reflinkUnsupportedError(src, dst, err);
    throw mapDiskError(err, "cloning a disk image");
  }
  return { method: "reflink", sizeBytes: size, writtenBytes: 0 };
}

/**
 * One FICLONE attempt creating `dst` exclusively (mode 0600); removes `dst` if
 * the attempt created it and failed. Rethrows the raw errno error.
 * @private for storage-auto and link-or-clone.
 */
export async function tryReflink(src: string, dst: string): Promise<void> {
  try {
    await copyFile(src, dst, constants.COPYFILE_FICLONE_FORCE | constants.COPYFILE_EXCL);
    // copyFile gives dst the source's mode (an image may be 0644): clones are owner-only.
    await chmod(dst, 0o600);
  } catch (err) {
    // With COPYFILE_EXCL, dst did not exist before unless the error is EEXIST.
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") await rm(dst, { force: true });
    throw err;
  }
}

/** Builds the fail-fast error for reflink mode, naming the filesystems involved. */
export async function reflinkUnsupportedError(
  src: string,
  dst: string,
  cause: unknown,
): Promise<FailedPreconditionError> {
  const code = (cause as NodeJS.ErrnoException).code;
  const dstFs = await filesystemName(dirname(dst));
  if (code === "EXDEV") {
    const srcFs = await filesystemName(src);
    return new FailedPreconditionError(
      `cannot reflink ${basename(src)} (${srcFs}) into the sandbox directory (${dstFs}): they are on different filesystems`,
      {
        cause,
        hint: 'keep images/ and sandboxes/ on one XFS/btrfs filesystem, or set rootfs_clone = "copy"',
      },
    );
  }
  return new FailedPreconditionError(
    `cannot reflink ${basename(src)}: the ${dstFs} filesystem of the sandbox directory does not support reflinks (${code})`,
    {
      cause,
      hint: 'set rootfs_clone = "copy" (or "auto"), or put data_dir on XFS (mkfs.xfs -m reflink=1) or btrfs',
    },
  );
}

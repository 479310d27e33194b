import { stat } from "node:fs/promises";
import { isReflinkUnsupported, mapDiskError } from "./disk-errors.js";
import type { CloneResult } from "./storage.js";
import { copyFileSparse } from "./storage-copy.js";
import { tryReflink } from "./storage-reflink.js";

/**
 * Reflinks `src` to `dst` when the filesystem allows it, else falls back to a
 * full sparse copy. Unlike `COPYFILE_FICLONE` (which falls back silently), the
 * result says which method was used.
 */
export async function cloneAuto(
  src: string,
  dst: string,
  signal?: AbortSignal,
): Promise<CloneResult> {
  signal?.throwIfAborted();
  const size = (await stat(src)).size;
  try {
    await tryReflink(src, dst);
    return { method: "reflink", sizeBytes: size, writtenBytes: 0 };
  } catch (err) {
    if (!isReflinkUnsupported(err)) throw mapDiskError(err, "cloning a disk image");
  }
  return copyFileSparse(src, dst, signal);
}

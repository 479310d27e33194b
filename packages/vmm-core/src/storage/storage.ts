/**
 * Cloning a sandbox's writable disk from a read-only base image.
 *
 * Three modes (config `rootfs_clone`):
 * - `auto`: reflink when the filesystem shares extents (XFS with reflink=1,
 *   btrfs, bcachefs), otherwise a full sparse copy. The result says which.
 * - `reflink`: reflink or fail fast (FailedPreconditionError naming the
 *   filesystem) — for hosts where a silent multi-GiB copy per Create would be
 *   a bug.
 * - `copy`: always a full, sparse-preserving copy (never shares extents).
 *
 * Variants live in `storage-reflink.ts`, `storage-copy.ts`, `storage-auto.ts`.
 */
import { cloneAuto } from "./storage-auto.js";
import { copyFileSparse } from "./storage-copy.js";
import { reflinkFile } from "./storage-reflink.js";

/** How a disk clone is made; see the module comment. */
export type CloneMode = "auto" | "reflink" | "copy";

/** What a clone actually did. */
export type CloneMethod = "reflink" | "copy";

/** Outcome of one clone. */
export interface CloneResult {
  /** `reflink`: extents shared, O(1) time and space; `copy`: data copied. */
  method: CloneMethod;
  /** Apparent size of the clone, in bytes. */
  sizeBytes: number;
  /** Bytes actually written (0 for a reflink; less than size for a sparse copy). */
  writtenBytes: number;
  /** The clone was made ahead of time (see `spare-clones.ts`): the request did not wait for it. */
  spare?: boolean;
}

/** Clones disk images with one fixed {@link CloneMode}. */
export interface DiskCloner {
  readonly mode: CloneMode;
  /**
   * Creates `dst` (which must not exist) as a clone of `src`. On failure `dst`
   * is removed. Errors: ResourceExhaustedError when the disk fills up,
   * FailedPreconditionError when mode `reflink` is impossible there.
   */
  clone(src: string, dst: string, signal?: AbortSignal): Promise<CloneResult>;
  /**
   * Hint: `src` will be cloned again soon, a clone may be made ahead of time.
   * Resolves when that is done or skipped; never rejects.
   */
  prepare(src: string): Promise<void>;
  /** `src` is going away: drop whatever was made ahead of time from it. */
  discard(src: string): Promise<void>;
}

/** Returns a {@link DiskCloner} for `mode`. */
export function createDiskCloner(mode: CloneMode): DiskCloner {
  return {
    mode,
    clone: (src, dst, signal) => cloneFile(src, dst, mode, signal),
    prepare: async () => {},
    discard: async () => {},
  };
}

/** Clones `src` to the new file `dst` with `mode`; see {@link DiskCloner.clone}. */
export function cloneFile(
  src: string,
  dst: string,
  mode: CloneMode,
  signal?: AbortSignal,
): Promise<CloneResult> {
  switch (mode) {
    case "auto":
      return cloneAuto(src, dst, signal);
    case "reflink":
      return reflinkFile(src, dst, signal);
    case "copy":
      return copyFileSparse(src, dst, signal);
  }
}

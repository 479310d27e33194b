/**
 * An ext4 image of a directory tree, made by `mkfs.ext4 -d` (e2fsprogs ≥
 * 1.43; no mount, no loop device): ownership, modes, xattrs, hard links,
 * symlinks and device nodes are copied as they are in the tree. Sized to the
 * content plus headroom; the file is sparse, so the headroom costs no disk
 * until the guest writes.
 */
import { execFile } from "node:child_process";
import { lstat, readdir, rm, statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { ResourceExhaustedError } from "../errors.js";

const run = promisify(execFile);
const MIB = 1024 * 1024;

/** What is in a tree, for sizing its filesystem. */
export interface TreeUsage {
  /** Bytes of data blocks (4 KiB rounded, hard links counted once). */
  readonly dataBytes: number;
  /** Files, directories, links and nodes (hard links counted once). */
  readonly inodes: number;
}

/** Measures a tree without following symlinks. */
export async function treeUsage(root: string): Promise<TreeUsage> {
  const seen = new Set<number>();
  let dataBytes = 0;
  let inodes = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, ent.name);
      const st = await lstat(path);
      if (st.nlink > 1) {
        if (seen.has(st.ino)) continue;
        seen.add(st.ino);
      }
      inodes++;
      dataBytes += Math.ceil(st.size / 4096) * 4096;
      if (ent.isDirectory()) await walk(path);
    }
  };
  await walk(root);
  return { dataBytes, inodes: inodes + 1 };
}

/**
 * Writes an ext4 image of `dir` to `out` (replaced): content plus
 * `headroomBytes` of free space. A filesystem the estimate made too small is
 * retried larger (twice at most). ResourceExhaustedError when the host disk
 * is full.
 */
export async function makeExt4(
  dir: string,
  out: string,
  options: { headroomBytes: number; label?: string; signal?: AbortSignal },
): Promise<{ sizeBytes: number; usage: TreeUsage }> {
  const usage = await treeUsage(dir);
  // Metadata: inode tables (256 B per inode, twice the inodes we need), the
  // journal (≤ 64 MiB) and bitmaps/group descriptors (~3 %).
  const inodes = usage.inodes * 2 + Math.ceil(options.headroomBytes / 65536) + 1024;
  let size =
    usage.dataBytes * 1.03 + inodes * 256 + Math.min(64 * MIB, usage.dataBytes / 8 + 4 * MIB);
  size = Math.ceil((size + options.headroomBytes) / MIB + 8) * MIB;
  for (let attempt = 1; ; attempt++) {
    await rm(out, { force: true });
    try {
      await run(
        "mkfs.ext4",
        [
          "-q",
          "-F",
          "-L",
          options.label ?? "vmm-rootfs",
          "-N",
          String(inodes),
          "-E",
          "root_owner=0:0",
          "-d",
          dir,
          out,
          `${size / 1024}k`,
        ],
        { signal: options.signal, maxBuffer: 4 << 20 },
      );
      return { sizeBytes: size, usage };
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? "";
      const free = await statfs(dirname(out)).then(
        (s) => s.bavail * s.bsize,
        () => Number.POSITIVE_INFINITY,
      );
      if (
        free < usage.dataBytes + 64 * MIB ||
        (/No space left on device/i.test(stderr) && free < size)
      ) {
        await rm(out, { force: true });
        throw new ResourceExhaustedError(
          `disk full while writing a rootfs image (${Math.round(free / MIB)} MiB free, ~${Math.round(usage.dataBytes / MIB)} MiB needed)`,
          {
            cause: err,
            hint: "free space in data_dir (remove images, snapshots or stopped sandboxes)",
          },
        );
      }
      const tooSmall = /Could not allocate|No space left|too small|inode/i.test(stderr);
      if (!tooSmall || attempt >= 3) {
        await rm(out, { force: true });
        throw new Error(
          `mkfs.ext4 -d failed: ${stderr.trim().split("\n").at(-1) ?? (err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      size = Math.ceil((size * 1.5) / MIB) * MIB;
    }
  }
}

import type { FileHandle } from "node:fs/promises";
import { open, rm } from "node:fs/promises";
import { mapDiskError } from "./disk-errors.js";
import { copyWithGnuCp, gnuCpAvailable } from "./gnu-cp.js";
import type { CloneResult } from "./storage.js";

const CHUNK = 1 << 20; // read size, bytes
const BLOCK = 4096; // hole granularity, bytes (the ext4/XFS block size)
const ZERO = Buffer.alloc(BLOCK);
/** Mode of every clone: owner-only, whatever the source's mode (clones live under data_dir). */
export const CLONE_MODE = 0o600;

/**
 * Copies `src` to the new file `dst` (never sharing extents), leaving a hole
 * wherever a 4 KiB block of the source reads as zeros — holes stay holes, and
 * zero-filled blocks become holes, which is what disk images want. The new
 * file is owner-only ({@link CLONE_MODE}), whatever the source's mode. On any failure `dst` is removed. Uses GNU cp where present
 * (it skips holes without reading them), else {@link copyFileSparseInProcess}.
 */
export async function copyFileSparse(
  src: string,
  dst: string,
  signal?: AbortSignal,
): Promise<CloneResult> {
  return (await gnuCpAvailable())
    ? copyWithGnuCp(src, dst, signal)
    : copyFileSparseInProcess(src, dst, signal);
}

/**
 * The portable copy: reads every byte (holes included, as zeros) and writes
 * only the non-zero 4 KiB blocks. `writtenBytes` counts the bytes written.
 */
export async function copyFileSparseInProcess(
  src: string,
  dst: string,
  signal?: AbortSignal,
): Promise<CloneResult> {
  signal?.throwIfAborted();
  const input = await open(src, "r");
  let output: FileHandle | undefined;
  try {
    output = await open(dst, "wx", CLONE_MODE);
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    let written = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await input.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) break;
      let i = 0;
      while (i < bytesRead) {
        if (isZero(buf, i, Math.min(i + BLOCK, bytesRead))) {
          i += BLOCK;
          continue;
        }
        let j = Math.min(i + BLOCK, bytesRead);
        while (j < bytesRead && !isZero(buf, j, Math.min(j + BLOCK, bytesRead))) {
          j = Math.min(j + BLOCK, bytesRead);
        }
        await writeAll(output, buf, i, j - i, pos + i);
        written += j - i;
        i = j;
      }
      pos += bytesRead;
    }
    await output.truncate(pos);
    await output.close();
    output = undefined;
    return { method: "copy", sizeBytes: pos, writtenBytes: written };
  } catch (err) {
    if (output !== undefined) {
      await output.close().catch(() => {});
      await rm(dst, { force: true });
    }
    throw mapDiskError(err, "copying a disk image");
  } finally {
    await input.close();
  }
}

function isZero(buf: Buffer, start: number, end: number): boolean {
  return buf.compare(ZERO, 0, end - start, start, end) === 0;
}

async function writeAll(
  fh: FileHandle,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
) {
  while (length > 0) {
    const { bytesWritten } = await fh.write(buf, offset, length, position);
    offset += bytesWritten;
    length -= bytesWritten;
    position += bytesWritten;
  }
}

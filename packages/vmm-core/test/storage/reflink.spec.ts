import { createHash, randomBytes } from "node:crypto";
import { open, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FailedPreconditionError, ResourceExhaustedError } from "../../src/errors.js";
import { cloneFile, linkOrClone, probeReflink } from "../../src/storage/index.js";
import {
  freeBytes,
  hasSharedExtents,
  type LoopFs,
  loopUnavailableReason,
  mountLoopFs,
} from "./loop-fs.js";

const sha = async (p: string) =>
  createHash("sha256")
    .update(await readFile(p))
    .digest("hex");
const MiB = 1 << 20;

const xfsSkip = loopUnavailableReason("mkfs.xfs") ?? loopUnavailableReason("mkfs.ext4");
if (xfsSkip) console.warn(`skipping loop-device reflink tests: ${xfsSkip}`);

describe.skipIf(xfsSkip !== undefined)("clone modes on loop XFS (reflink=1) and ext4", () => {
  let xfs: LoopFs | undefined;
  let ext4: LoopFs | undefined;
  beforeAll(() => {
    xfs = mountLoopFs("xfs", 512);
    ext4 = mountLoopFs("ext4", 48);
  });
  afterAll(() => {
    xfs?.dispose();
    ext4?.dispose();
  });

  it("probeReflink: xfs yes, ext4 and tmpfs no", async () => {
    expect(await probeReflink(xfs!.mnt)).toEqual({ supported: true, filesystem: "xfs" });
    const e = await probeReflink(ext4!.mnt);
    expect(e).toMatchObject({ supported: false, filesystem: "ext4" });
    expect(e.reason).toMatch(/^(EOPNOTSUPP|ENOTSUP)/);
    expect(await probeReflink("/dev/shm")).toMatchObject({ supported: false, filesystem: "tmpfs" });
  });

  it("reflink on xfs shares extents, costs no space, and copy-on-write isolates the clone", async () => {
    const base = join(xfs!.mnt, "base.ext4");
    await writeFile(base, randomBytes(64 * MiB));
    const baseSum = await sha(base);
    const before = freeBytes(xfs!.mnt);
    const r = await cloneFile(base, join(xfs!.mnt, "clone.ext4"), "reflink");
    expect(r).toEqual({ method: "reflink", sizeBytes: 64 * MiB, writtenBytes: 0 });
    expect(before - freeBytes(xfs!.mnt)).toBeLessThan(4 * MiB);
    expect(hasSharedExtents(join(xfs!.mnt, "clone.ext4"))).toBe(true);
    expect(await sha(join(xfs!.mnt, "clone.ext4"))).toBe(baseSum);
    const fh = await open(join(xfs!.mnt, "clone.ext4"), "r+");
    await fh.write(Buffer.alloc(MiB, 0xab), 0, MiB, 10 * MiB);
    await fh.close();
    expect(await sha(base)).toBe(baseSum);
    expect(await sha(join(xfs!.mnt, "clone.ext4"))).not.toBe(baseSum);
  });

  it("auto reflinks on xfs; copy never shares extents", async () => {
    const base = join(xfs!.mnt, "b2");
    await writeFile(base, randomBytes(8 * MiB));
    expect((await cloneFile(base, join(xfs!.mnt, "auto"), "auto")).method).toBe("reflink");
    expect(hasSharedExtents(join(xfs!.mnt, "auto"))).toBe(true);
    const c = await cloneFile(base, join(xfs!.mnt, "copy"), "copy");
    expect(c).toEqual({ method: "copy", sizeBytes: 8 * MiB, writtenBytes: 8 * MiB });
    expect(await sha(join(xfs!.mnt, "copy"))).toBe(await sha(base));
  });

  it("ext4: reflink fails fast with a hint, auto falls back to copy", async () => {
    const base = join(ext4!.mnt, "base");
    await writeFile(base, randomBytes(MiB));
    const err = await cloneFile(base, join(ext4!.mnt, "r"), "reflink").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toContain("the ext4 filesystem");
    expect((err as FailedPreconditionError).hint).toMatch(/rootfs_clone = "copy".*XFS/);
    await expect(stat(join(ext4!.mnt, "r"))).rejects.toMatchObject({ code: "ENOENT" });
    expect((await cloneFile(base, join(ext4!.mnt, "a"), "auto")).method).toBe("copy");
    expect(await sha(join(ext4!.mnt, "a"))).toBe(await sha(base));
  });

  it("reflink across filesystems says so", async () => {
    const base = join(xfs!.mnt, "cross");
    await writeFile(base, "x");
    const err = await cloneFile(base, join(ext4!.mnt, "cross"), "reflink").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(
      /\(xfs\) .* \(ext4\): they are on different filesystems/,
    );
  });

  it("disk full while copying → ResourceExhaustedError, partial clone removed", async () => {
    const base = join(xfs!.mnt, "big");
    await writeFile(base, randomBytes(64 * MiB));
    const err = await cloneFile(base, join(ext4!.mnt, "big"), "auto").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect((err as Error).message).toMatch(/^disk full while copying .* \(ENOSPC\)$/);
    await expect(stat(join(ext4!.mnt, "big"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("linkOrClone: hard link on one fs, never a copy across filesystems", async () => {
    const mem = join(xfs!.mnt, "mem");
    await writeFile(mem, randomBytes(MiB));
    expect(await linkOrClone(mem, join(xfs!.mnt, "mem-link"))).toBe("link");
    expect((await stat(mem)).nlink).toBe(2);
    const err = await linkOrClone(mem, join(ext4!.mnt, "mem")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(/hard link failed \(EXDEV\), reflink failed \(EXDEV\)/);
    await expect(stat(join(ext4!.mnt, "mem"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

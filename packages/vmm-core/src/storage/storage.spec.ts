import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../errors.js";
import { filesystemName } from "./filesystem.js";
import { cloneFile } from "./storage.js";

// Rootless unit tests on whatever filesystem tmpdir() is. Reflink behaviour on
// real XFS/ext4 is covered by test/storage/reflink.spec.ts (loop devices).
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vmm-clone-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function sparseImage(path: string): Promise<void> {
  // 32 MiB apparent: 1 MiB data at 0, 4 KiB at 20 MiB, a zero-filled MiB at 8 MiB, holes elsewhere.
  const fh = await open(path, "w");
  await fh.write(randomBytes(1 << 20), 0, 1 << 20, 0);
  await fh.write(Buffer.alloc(1 << 20), 0, 1 << 20, 8 << 20);
  await fh.write(randomBytes(4096), 0, 4096, 20 << 20);
  await fh.write(randomBytes(5), 0, 5, (32 << 20) - 5);
  await fh.close();
}

describe("cloneFile copy", () => {
  it("copies content, keeps holes, turns zero blocks into holes", async () => {
    const src = join(dir, "base.ext4");
    await sparseImage(src);
    const r = await cloneFile(src, join(dir, "clone.ext4"), "copy");
    expect(r.method).toBe("copy");
    expect(r.sizeBytes).toBe(32 << 20);
    expect(r.writtenBytes).toBe((1 << 20) + 4096 + 4096);
    expect(sha(await readFile(join(dir, "clone.ext4")))).toBe(sha(await readFile(src)));
    const st = await stat(join(dir, "clone.ext4"));
    expect(st.size).toBe(32 << 20);
    if ((await filesystemName(dir)) !== "tmpfs" || st.blocks > 0) {
      expect(st.blocks * 512).toBeLessThan(2 << 20);
    }
  });

  it("refuses to overwrite dst", async () => {
    await writeFile(join(dir, "a"), "a");
    await writeFile(join(dir, "b"), "b");
    await expect(cloneFile(join(dir, "a"), join(dir, "b"), "copy")).rejects.toMatchObject({
      code: "EEXIST",
    });
    await expect(cloneFile(join(dir, "a"), join(dir, "b"), "auto")).rejects.toMatchObject({
      code: "EEXIST",
    });
    expect(await readFile(join(dir, "b"), "utf8")).toBe("b");
  });

  it("honours an aborted signal", async () => {
    await writeFile(join(dir, "a"), "a");
    await expect(
      cloneFile(join(dir, "a"), join(dir, "b"), "copy", AbortSignal.abort()),
    ).rejects.toThrow();
  });
});

describe.runIf(["ext4", "tmpfs"].includes(await filesystemName(tmpdir())))(
  "cloneFile on a non-reflink tmpdir",
  () => {
    it("auto falls back to copy", async () => {
      await writeFile(join(dir, "a"), randomBytes(10000));
      expect((await cloneFile(join(dir, "a"), join(dir, "b"), "auto")).method).toBe("copy");
      expect(sha(await readFile(join(dir, "b")))).toBe(sha(await readFile(join(dir, "a"))));
    });
    it("reflink fails fast naming the filesystem and the config knob; leaves no dst", async () => {
      await writeFile(join(dir, "a"), randomBytes(10000));
      const err = await cloneFile(join(dir, "a"), join(dir, "b"), "reflink").catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FailedPreconditionError);
      expect((err as Error).message).toMatch(
        /(ext4|tmpfs) filesystem .* does not support reflinks/,
      );
      expect((err as FailedPreconditionError).hint).toContain('rootfs_clone = "copy"');
      await expect(stat(join(dir, "b"))).rejects.toMatchObject({ code: "ENOENT" });
    });
  },
);

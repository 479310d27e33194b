import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../errors.js";
import { filesystemName } from "./filesystem.js";
import { copyWithGnuCp, gnuCpAvailable } from "./gnu-cp.js";
import { type CloneResult, cloneFile } from "./storage.js";
import { copyFileSparseInProcess } from "./storage-copy.js";

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

const hasGnuCp = await gnuCpAvailable();
const engines: [
  string,
  (src: string, dst: string, signal?: AbortSignal) => Promise<CloneResult>,
][] = [
  ["cloneFile copy", (src, dst, signal) => cloneFile(src, dst, "copy", signal)],
  ["in-process copy", copyFileSparseInProcess],
  ...(hasGnuCp ? [["GNU cp copy", copyWithGnuCp] as (typeof engines)[number]] : []),
];

describe.each(engines)("%s", (_name, copy) => {
  it("copies content, keeps holes, turns zero blocks into holes", async () => {
    const src = join(dir, "base.ext4");
    await sparseImage(src);
    const r = await copy(src, join(dir, "clone.ext4"));
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

  it("makes an owner-only clone of a world-readable image", async () => {
    await writeFile(join(dir, "img"), randomBytes(10000), { mode: 0o644 });
    await chmod(join(dir, "img"), 0o644);
    await copy(join(dir, "img"), join(dir, "clone"));
    expect((await stat(join(dir, "clone"))).mode & 0o777).toBe(0o600);
  });

  it("refuses to overwrite dst", async () => {
    await writeFile(join(dir, "a"), "a");
    await writeFile(join(dir, "b"), "b");
    await expect(copy(join(dir, "a"), join(dir, "b"))).rejects.toMatchObject({
      code: "EEXIST",
    });
    await expect(cloneFile(join(dir, "a"), join(dir, "b"), "auto")).rejects.toMatchObject({
      code: "EEXIST",
    });
    expect(await readFile(join(dir, "b"), "utf8")).toBe("b");
  });

  it("honours an aborted signal", async () => {
    await writeFile(join(dir, "a"), "a");
    await expect(copy(join(dir, "a"), join(dir, "b"), AbortSignal.abort())).rejects.toThrow();
    await expect(stat(join(dir, "b"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("stops and removes dst when aborted mid-copy", async () => {
    const src = join(dir, "big");
    const fh = await open(src, "w");
    const chunk = randomBytes(8 << 20);
    for (let i = 0; i < 32; i++) await fh.write(chunk, 0, chunk.length, i * chunk.length);
    await fh.close();
    const ac = new AbortController();
    const copying = copy(src, join(dir, "b"), ac.signal);
    setTimeout(() => ac.abort(new Error("stop")), 5);
    const outcome = await copying.then(
      () => "finished",
      () => "aborted",
    );
    // A fast disk may finish 256 MiB within 5 ms; either way nothing partial is left.
    if (outcome === "aborted") {
      await expect(stat(join(dir, "b"))).rejects.toMatchObject({ code: "ENOENT" });
    } else {
      expect((await stat(join(dir, "b"))).size).toBe(256 << 20);
    }
  });

  it("names the source when it is missing", async () => {
    await expect(copy(join(dir, "nope"), join(dir, "b"))).rejects.toMatchObject({
      code: "ENOENT",
    });
    await expect(stat(join(dir, "b"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe.runIf(hasGnuCp)("copy engine choice", () => {
  it("cloneFile copy uses GNU cp when it is on PATH (allocated bytes, not a byte count)", async () => {
    // 10000 bytes: the in-process copy reports 10000 written, cp the 3 blocks it allocated.
    await writeFile(join(dir, "a"), randomBytes(10000));
    const r = await cloneFile(join(dir, "a"), join(dir, "b"), "copy");
    expect(r.writtenBytes).toBe((await stat(join(dir, "b"))).blocks * 512);
    expect(r.writtenBytes).not.toBe(10000);
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

import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openSpareCloner, type SpareCloner } from "./spare-clones.js";
import { type CloneResult, createDiskCloner, type DiskCloner } from "./storage.js";

let dir: string;
let spares: string;
let cloner: SpareCloner | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vmm-spares-"));
  spares = join(dir, "spares");
});
afterEach(async () => {
  await cloner?.close();
  cloner = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A copy cloner that counts its clones. */
function countingCopy(): DiskCloner & { clones: string[] } {
  const inner = createDiskCloner("copy");
  const clones: string[] = [];
  return {
    ...inner,
    clones,
    clone(src, dst, signal): Promise<CloneResult> {
      clones.push(dst);
      return inner.clone(src, dst, signal);
    },
  };
}

async function open(inner: DiskCloner, maxSpares = 4) {
  cloner = await openSpareCloner({ inner, dir: spares, maxSpares, delayMs: 0 });
  return cloner;
}

/** A cloner holding one spare of `base.ext4` (written with `content`). */
async function withSpare(content: string | Buffer) {
  const c = await open(countingCopy());
  const src = join(dir, "base.ext4");
  await writeFile(src, content);
  await c.prepare(src);
  expect(await readdir(spares)).toHaveLength(1);
  return { c, src };
}

describe("openSpareCloner", () => {
  it("empties a spares dir left by an earlier daemon", async () => {
    await rm(spares, { recursive: true, force: true });
    await import("node:fs/promises").then((fs) => fs.mkdir(spares));
    await writeFile(join(spares, "old.img"), "x");
    await open(countingCopy());
    expect(await readdir(spares)).toEqual([]);
  });

  it("hands out a prepared clone once, then copies again", async () => {
    const inner = countingCopy();
    const c = await open(inner);
    const src = join(dir, "base.ext4");
    const content = randomBytes(64 << 10);
    await writeFile(src, content);
    await c.prepare(src);
    expect(await readdir(spares)).toHaveLength(1);

    const a = await c.clone(src, join(dir, "a.ext4"));
    expect(a.spare).toBe(true);
    expect(await readFile(join(dir, "a.ext4"))).toEqual(content);
    expect(await readdir(spares)).toEqual([]); // moved, not shared

    const b = await c.clone(src, join(dir, "b.ext4"));
    expect(b.spare).toBeUndefined();
    expect(await readFile(join(dir, "b.ext4"))).toEqual(content);
    // Two distinct files: writing one leaves the other alone.
    expect((await stat(join(dir, "a.ext4"))).ino).not.toBe((await stat(join(dir, "b.ext4"))).ino);
    expect((await stat(join(dir, "a.ext4"))).nlink).toBe(1);
  });

  it("never gives one spare to two concurrent clones", async () => {
    const { c, src } = await withSpare(randomBytes(4096));
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => c.clone(src, join(dir, `c${i}.ext4`))),
    );
    expect(results.filter((r) => r.spare).length).toBe(1);
    const inodes = await Promise.all(results.map((_, i) => stat(join(dir, `c${i}.ext4`))));
    expect(new Set(inodes.map((s) => s.ino)).size).toBe(5);
  });

  it("drops a spare whose source changed and copies the new content", async () => {
    const { c, src } = await withSpare("old content");
    await rm(src);
    await writeFile(src, "new content");
    const r = await c.clone(src, join(dir, "a.ext4"));
    expect(r.spare).toBeUndefined();
    expect(await readFile(join(dir, "a.ext4"), "utf8")).toBe("new content");
    expect(await readdir(spares)).toEqual([]);
  });

  it("refuses an existing dst and keeps it intact (the spare is dropped)", async () => {
    await writeFile(join(dir, "taken"), "mine");
    const { c, src } = await withSpare("image");
    await expect(c.clone(src, join(dir, "taken"))).rejects.toMatchObject({ code: "EEXIST" });
    expect(await readFile(join(dir, "taken"), "utf8")).toBe("mine");
    expect(await readdir(spares)).toEqual([]);
  });

  it("keeps at most maxSpares, dropping the least recently prepared", async () => {
    const c = await open(countingCopy(), 2);
    const srcs = ["a", "b", "c"].map((n) => join(dir, `${n}.ext4`));
    for (const s of srcs) await writeFile(s, s);
    for (const s of srcs) await c.prepare(s);
    expect(await readdir(spares)).toHaveLength(2);
    expect((await c.clone(srcs[0]!, join(dir, "x0"))).spare).toBeUndefined();
    expect((await c.clone(srcs[1]!, join(dir, "x1"))).spare).toBe(true);
    expect((await c.clone(srcs[2]!, join(dir, "x2"))).spare).toBe(true);
  });

  it("discard frees the disk space of a source's spare, also while it is being made", async () => {
    const c = await open(countingCopy());
    const src = join(dir, "base.ext4");
    await writeFile(src, randomBytes(1 << 20));
    const making = c.prepare(src);
    await c.discard(src); // mid-copy
    await making;
    expect(await readdir(spares)).toEqual([]);
    expect((await c.clone(src, join(dir, "a.ext4"))).spare).toBeUndefined();
  });

  it("makes nothing with maxSpares 0 or a reflink-only cloner", async () => {
    const src = join(dir, "base.ext4");
    await writeFile(src, "image");
    const off = countingCopy();
    const c = await open(off, 0);
    await c.prepare(src);
    expect(off.clones).toEqual([]);
    await c.close();
    const reflinkOnly = countingCopy();
    const r = await open({ ...reflinkOnly, mode: "reflink" });
    await r.prepare(src);
    expect(reflinkOnly.clones).toEqual([]);
  });

  it("close removes every spare and the directory", async () => {
    const { c } = await withSpare("image");
    await c.close();
    cloner = undefined;
    await expect(stat(spares)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

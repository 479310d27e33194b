import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isDeletingName, removeDeletingLeftovers, removeDirAtomic } from "./atomic-delete.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vmm-adel-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("removeDirAtomic", () => {
  it("removes a tree and reports whether it existed", async () => {
    await mkdir(join(dir, "sb-1", "deep"), { recursive: true });
    await writeFile(join(dir, "sb-1", "deep", "f"), "x");
    expect(await removeDirAtomic(join(dir, "sb-1"))).toBe(true);
    expect(await readdir(dir)).toEqual([]);
    expect(await removeDirAtomic(join(dir, "sb-1"))).toBe(false);
  });
});

describe("removeDeletingLeftovers", () => {
  it("removes only interrupted deletions", async () => {
    for (const n of [
      ".sb-1.deleting-0a1b",
      ".snap.x.deleting-ff",
      "sb-2",
      ".tmp-x",
      "a.deleting-00",
    ]) {
      await mkdir(join(dir, n));
    }
    expect(await removeDeletingLeftovers(dir)).toEqual([
      ".sb-1.deleting-0a1b",
      ".snap.x.deleting-ff",
    ]);
    expect((await readdir(dir)).sort()).toEqual([".tmp-x", "a.deleting-00", "sb-2"]);
  });
  it("treats a missing parent as empty", async () => {
    expect(await removeDeletingLeftovers(join(dir, "none"))).toEqual([]);
  });
  it.each([
    [".a.deleting-12ab", true],
    ["a.deleting-12", false],
    [".a.deleting-", false],
    [".a.deleting-xyz", false],
  ])("isDeletingName(%j) = %s", (name, want) => {
    expect(isDeletingName(name)).toBe(want);
  });
});

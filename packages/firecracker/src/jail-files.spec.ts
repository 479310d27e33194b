import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { linkIntoJail } from "./jail-files.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "jailfiles-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("linkIntoJail", () => {
  it("creates owner-only directories and keeps the file's mode without an owner", async () => {
    const root = join(dir, "root");
    await mkdir(root);
    await writeFile(join(dir, "disk"), "d", { mode: 0o600 });
    await linkIntoJail(root, [{ source: join(dir, "disk"), target: "a/b/disk" }]);
    expect((await stat(join(root, "a"))).mode & 0o777).toBe(0o700);
    expect((await stat(join(root, "a/b"))).mode & 0o777).toBe(0o700);
    expect((await stat(join(root, "a/b/disk"))).mode & 0o777).toBe(0o600);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "gives the jail uid/gid the file and the directories it created, owner-only",
    async () => {
      const root = join(dir, "root");
      await mkdir(root);
      await writeFile(join(dir, "disk"), "d", { mode: 0o644 });
      const owner = { uid: 23456, gid: 23457 };
      await linkIntoJail(root, [{ source: join(dir, "disk"), target: "img/disk" }], owner);
      for (const p of ["img", "img/disk"]) {
        const st = await stat(join(root, p));
        expect([st.uid, st.gid], p).toEqual([owner.uid, owner.gid]);
        expect(st.mode & 0o077, p).toBe(0);
      }
      // The jail root itself is the jailer's, not ours to change.
      expect((await stat(root)).uid).toBe(0);
    },
  );
});

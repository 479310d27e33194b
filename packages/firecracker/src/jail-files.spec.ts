import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { linkIntoJail, linkOutOfJail } from "./jail-files.js";

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

describe("linkOutOfJail", () => {
  it("hard-links snapshot files out of the jail (same inode, no copy)", async () => {
    const root = join(dir, "root");
    await mkdir(join(root, "snap"), { recursive: true });
    await writeFile(join(root, "snap/vmstate"), "state", { mode: 0o600 });
    await writeFile(join(root, "mem"), "memory", { mode: 0o600 });
    await mkdir(join(dir, "catalog"));
    await linkOutOfJail(root, [
      { source: "snap/vmstate", target: join(dir, "catalog/vmstate") },
      { source: "mem", target: join(dir, "catalog/mem") },
    ]);
    for (const [inJail, out] of [
      ["snap/vmstate", "catalog/vmstate"],
      ["mem", "catalog/mem"],
    ] as const) {
      expect((await stat(join(dir, out))).ino).toBe((await stat(join(root, inJail))).ino);
    }
    expect(await readFile(join(dir, "catalog/mem"), "utf8")).toBe("memory");
  });

  it("refuses a symlink, a symlinked directory and a path leaving the jail", async () => {
    const root = join(dir, "root");
    await mkdir(root);
    await writeFile(join(dir, "host-secret"), "secret", { mode: 0o600 });
    await symlink(join(dir, "host-secret"), join(root, "mem"));
    await symlink(dir, join(root, "up"));
    const out = join(dir, "out");
    await expect(linkOutOfJail(root, [{ source: "mem", target: out }])).rejects.toThrow(
      /not a regular file inside the jail/,
    );
    await expect(linkOutOfJail(root, [{ source: "up/host-secret", target: out }])).rejects.toThrow(
      /not a regular file inside the jail/,
    );
    await expect(linkOutOfJail(root, [{ source: "../host-secret", target: out }])).rejects.toThrow(
      /relative to the jail root/,
    );
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "snapshot round trip: into a jail owned by its uid, out, and into the next jail for its uid",
    async () => {
      // Restore stages the catalog's files into a new jail: the same inode, owned by that jail's uid.
      const first = join(dir, "jail1");
      const second = join(dir, "jail2");
      await mkdir(first);
      await mkdir(second);
      await writeFile(join(first, "mem"), "m", { mode: 0o600 });
      await linkOutOfJail(first, [{ source: "mem", target: join(dir, "mem") }]);
      const owner = { uid: 23456, gid: 23457 };
      await linkIntoJail(second, [{ source: join(dir, "mem"), target: "snap/mem" }], owner);
      const st = await stat(join(second, "snap/mem"));
      expect(st.ino).toBe((await stat(join(first, "mem"))).ino);
      expect([st.uid, st.gid, st.mode & 0o777]).toEqual([owner.uid, owner.gid, 0o600]);
    },
  );
});

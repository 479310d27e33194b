import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findInitProgram } from "./rootfs-init.js";

/** An ext4 image of `tree` built the way guest/rootfs does (mkfs.ext4 -d, no mount). */
async function ext4Of(dir: string, name: string, tree: (root: string) => Promise<void>) {
  const root = join(dir, `${name}.d`);
  await mkdir(join(root, "sbin"), { recursive: true });
  await tree(root);
  const image = join(dir, `${name}.ext4`);
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", root, image, "4M"], { stdio: "ignore" });
  return image;
}

describe("findInitProgram (debugfs, no mount)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "rootfs-init-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const program = async (root: string, path: string, mode = 0o755) => {
    await writeFile(join(root, path), "#!/bin/sh\n");
    await chmod(join(root, path), mode);
  };

  it("follows relative and absolute links to an executable", async () => {
    const image = await ext4Of(dir, "ok", async (root) => {
      await program(root, "sbin/vmm-agent");
      await symlink("vmm-agent", join(root, "sbin/init"));
      await symlink("/sbin/init", join(root, "sbin/init2"));
    });
    expect(await findInitProgram(image)).toEqual({ ok: true, path: "/sbin/vmm-agent" });
    expect(await findInitProgram(image, "/sbin/init2")).toEqual({
      ok: true,
      path: "/sbin/vmm-agent",
    });
  });

  it("says what is wrong: missing, dangling link, not executable, a directory, a link loop", async () => {
    const image = await ext4Of(dir, "bad", async (root) => {
      await symlink("gone", join(root, "sbin/init"));
      await program(root, "sbin/plain", 0o644);
      await mkdir(join(root, "sbin/adir"));
      await symlink("loop2", join(root, "sbin/loop1"));
      await symlink("loop1", join(root, "sbin/loop2"));
    });
    expect(await findInitProgram(image)).toEqual({
      ok: false,
      why: "/sbin/init links to /sbin/gone, which does not exist",
    });
    expect(await findInitProgram(image, "/sbin/none")).toEqual({ ok: false, why: "no /sbin/none" });
    expect(await findInitProgram(image, "/sbin/plain")).toEqual({
      ok: false,
      why: "/sbin/plain is not executable (mode 644)",
    });
    expect(await findInitProgram(image, "/sbin/adir")).toMatchObject({
      ok: false,
      why: /is a directory/,
    });
    expect(await findInitProgram(image, "/sbin/loop1")).toMatchObject({
      ok: false,
      why: /symbolic links/,
    });
  });

  it("cannot judge what is not an ext image: undefined", async () => {
    const raw = join(dir, "raw.img");
    await writeFile(raw, Buffer.alloc(1 << 20));
    expect(await findInitProgram(raw)).toBeUndefined();
    expect(await findInitProgram(join(dir, "absent.img"))).toBeUndefined();
  });
});

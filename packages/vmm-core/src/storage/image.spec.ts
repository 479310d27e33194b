import { execFileSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { type ResolveImageOptions, resolveImage, sameImageIdentity } from "./image.js";

let root: string;
let images: string;
let extra: string;
let dataDir: string;
beforeAll(async () => {
  root = realpathSync(await mkdtemp(join(tmpdir(), "vmm-img-")));
  images = join(root, "images");
  extra = join(root, "extra");
  dataDir = join(root, "data");
  await mkdir(join(images, "kernels"), { recursive: true });
  await mkdir(extra);
  await mkdir(join(dataDir, "snapshots", "snap-1"), { recursive: true });
  await mkdir(join(dataDir, "images"));
  await writeFile(join(images, "base.ext4"), "disk");
  await writeFile(join(images, "kernels", "vmlinux"), "kernel");
  await writeFile(join(extra, "allowed.ext4"), "ext");
  await writeFile(join(root, "outside.ext4"), "out");
  await writeFile(join(dataDir, "snapshots", "snap-1", "mem"), "guest memory");
  await writeFile(join(dataDir, "images", "in-data.ext4"), "img");
  await symlink("/etc/passwd", join(images, "passwd.ext4"));
  await symlink(join(root, "outside.ext4"), join(images, "link.ext4"));
  await symlink("base.ext4", join(images, "alias.ext4"));
  await symlink(root, join(images, "up"));
  await mkdir(join(images, "adir"));
  execFileSync("mkfifo", [join(images, "fifo.ext4")]);
  execFileSync("mkfifo", [join(root, "fifo.ext4")]);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const refusal = async (value: string, options: ResolveImageOptions = {}, field = "rootfs") => {
  const err = await resolveImage(images, value, field, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${value} must be refused`).toBeInstanceOf(InvalidArgumentError);
  const e = err as InvalidArgumentError;
  expect(e.field).toBe(field);
  expect(e.message).toContain("is not an image under the allowed roots");
  // Everything but the value typed is the same for every refusal: no existence oracle.
  return e.message.replace(JSON.stringify(value), "<value>");
};

describe("resolveImage", () => {
  it("resolves a name, a nested name, an absolute path under images_dir and an inside symlink", async () => {
    const a = await resolveImage(images, "base.ext4", "rootfs");
    expect(a.path).toBe(join(images, "base.ext4"));
    expect(a.identity.size).toBe(4);
    expect((await resolveImage(images, "kernels/vmlinux", "kernel")).path).toBe(
      join(images, "kernels", "vmlinux"),
    );
    expect((await resolveImage(images, join(images, "base.ext4"), "rootfs")).identity.size).toBe(4);
    // A symlink that stays inside resolves to its target: the checked file is the one used.
    expect((await resolveImage(images, "alias.ext4", "rootfs")).path).toBe(
      join(images, "base.ext4"),
    );
  });

  it("accepts an absolute path under storage.allowed_image_roots", async () => {
    const r = await resolveImage(images, join(extra, "allowed.ext4"), "rootfs", {
      allowedRoots: [extra],
    });
    expect(r.path).toBe(join(extra, "allowed.ext4"));
    await refusal(join(extra, "allowed.ext4"));
  });

  const hostile = [
    "/etc/shadow",
    "/etc/passwd",
    "/root/.ssh/id_rsa",
    "/nonexistent/x",
    "/proc/self/environ",
    "/proc/1/mem",
    "/dev/zero",
    "/dev/sda",
    "/sys/kernel/notes",
    "../../etc/passwd",
    "../outside.ext4",
    "kernels/../../outside.ext4",
    "passwd.ext4",
    "link.ext4",
    "up/outside.ext4",
    "up/no-such-file",
    "up/images/../../../etc/shadow",
    "./base.ext4",
    "a//b",
    "kernels/",
    "a\\b",
    "..",
  ];
  it.each(hostile)("refuses %j with the one refusal (kernel and rootfs)", async (value) => {
    await refusal(value);
    await refusal(value, {}, "kernel");
  });

  it("gives byte-identical errors for present and absent files outside the roots", async () => {
    const present = await refusal("/etc/shadow");
    expect(existsSync("/etc/shadow")).toBe(true);
    expect(existsSync("/root/.ssh/id_rsa_vmm_absent")).toBe(false);
    expect(await refusal("/root/.ssh/id_rsa_vmm_absent")).toBe(present);
    // Through a symlinked directory inside images_dir: present vs absent target.
    expect(await refusal("up/outside.ext4")).toBe(present);
    expect(await refusal("up/no-such-file")).toBe(present);
    // A FIFO or a directory outside says nothing more either.
    expect(await refusal(join(root, "fifo.ext4"))).toBe(present);
    expect(await refusal(root)).toBe(present);
  });

  it("never allows /proc, /sys, /dev, even under a root that contains them", async () => {
    for (const v of ["/proc/self/environ", "/dev/zero", "/sys/kernel/notes", "/dev/null"]) {
      await refusal(v, { allowedRoots: ["/"] });
    }
  });

  it("keeps data_dir private under a wide root, except images_dir inside it", async () => {
    const opts = { allowedRoots: [root], privateDirs: [dataDir] };
    await refusal(join(dataDir, "snapshots", "snap-1", "mem"), opts);
    expect(
      (await resolveImage(images, join(root, "outside.ext4"), "rootfs", opts)).identity.size,
    ).toBe(3);
    const inData = await resolveImage(join(dataDir, "images"), "in-data.ext4", "rootfs", opts);
    expect(inData.identity.size).toBe(3);
  });

  it("trusts config values outside the roots, but still never /proc, /sys, /dev", async () => {
    const r = await resolveImage(images, join(root, "outside.ext4"), "rootfs", { trusted: true });
    expect(r.identity.size).toBe(3);
    await refusal("/proc/self/environ", { trusted: true });
    await refusal("/dev/zero", { trusted: true });
  });

  it("reports a missing image inside the roots as NotFoundError naming the value, not the host path", async () => {
    for (const v of ["nope.ext4", "kernels/nope", join(images, "nope.ext4")]) {
      const err = await resolveImage(images, v, "rootfs").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as Error).message).toBe(`rootfs image ${JSON.stringify(v)} not found`);
    }
  });

  it("rejects a directory and a FIFO inside the roots (without blocking on the FIFO)", async () => {
    for (const v of ["adir", "fifo.ext4", "kernels"]) {
      const err = await resolveImage(images, v, "rootfs").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FailedPreconditionError);
      expect((err as Error).message).toContain("is not a regular file");
      expect((err as Error).message).not.toContain(root);
    }
  });

  it.each(["", "x\0y"])("rejects %j with InvalidArgumentError naming the field", async (v) => {
    const err = await resolveImage(images, v, "rootfs_image").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe("rootfs_image");
  });

  it.skipIf(process.getuid?.() === 0)("rejects an unreadable file", async () => {
    await writeFile(join(images, "secret.ext4"), "x");
    await chmod(join(images, "secret.ext4"), 0);
    await expect(resolveImage(images, "secret.ext4", "rootfs")).rejects.toBeInstanceOf(
      FailedPreconditionError,
    );
  });

  it("changes identity when the file is replaced", async () => {
    const before = (await resolveImage(images, "base.ext4", "rootfs")).identity;
    expect(sameImageIdentity(before, { ...before })).toBe(true);
    await writeFile(join(images, "base.ext4.new"), "disk2");
    await rename(join(images, "base.ext4.new"), join(images, "base.ext4"));
    const after = (await resolveImage(images, "base.ext4", "rootfs")).identity;
    expect(sameImageIdentity(before, after)).toBe(false);
  });
});

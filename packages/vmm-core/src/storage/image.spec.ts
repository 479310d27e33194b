import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import { resolveImage, sameImageIdentity } from "./image.js";

let root: string;
let images: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vmm-img-"));
  images = join(root, "images");
  await mkdir(join(images, "kernels"), { recursive: true });
  await writeFile(join(images, "base.ext4"), "disk");
  await writeFile(join(images, "kernels", "vmlinux"), "kernel");
  await writeFile(join(root, "outside.ext4"), "out");
  await symlink(join(root, "outside.ext4"), join(images, "link.ext4"));
  await mkdir(join(images, "adir"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("resolveImage", () => {
  it("resolves a name, a nested name, an absolute path and a symlink", async () => {
    const a = await resolveImage(images, "base.ext4", "rootfs");
    expect(a.path).toBe(join(images, "base.ext4"));
    expect(a.identity.size).toBe(4);
    expect((await resolveImage(images, "kernels/vmlinux", "kernel")).path).toBe(
      join(images, "kernels", "vmlinux"),
    );
    expect((await resolveImage(images, join(root, "outside.ext4"), "rootfs")).identity.size).toBe(
      3,
    );
    expect((await resolveImage(images, "link.ext4", "rootfs")).identity.size).toBe(3);
  });

  it.each([
    "",
    "../outside.ext4",
    "kernels/../base.ext4",
    "./base.ext4",
    "a//b",
    "kernels/",
    "a\\b",
    "x\0y",
    "..",
  ])("rejects name %j with InvalidArgumentError naming the field", async (name) => {
    const err = await resolveImage(images, name, "rootfs_image").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe("rootfs_image");
  });

  it("reports a missing image as NotFoundError", async () => {
    await expect(resolveImage(images, "nope.ext4", "rootfs")).rejects.toBeInstanceOf(NotFoundError);
    await expect(resolveImage(images, "/nonexistent/x", "rootfs")).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it("rejects a directory", async () => {
    await expect(resolveImage(images, "adir", "rootfs")).rejects.toBeInstanceOf(
      FailedPreconditionError,
    );
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
    await import("node:fs/promises").then((fs) =>
      fs.rename(join(images, "base.ext4.new"), join(images, "base.ext4")),
    );
    const after = (await resolveImage(images, "base.ext4", "rootfs")).identity;
    expect(sameImageIdentity(before, after)).toBe(false);
  });
});

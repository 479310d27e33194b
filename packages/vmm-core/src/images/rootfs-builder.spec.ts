import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import {
  chmod,
  chown,
  copyFile,
  link,
  mkdir,
  mkdtemp,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import { OciLayoutImageSource, writeOciLayoutImage } from "./oci-layout-source.js";
import { ImageRootfsBuilder } from "./rootfs-builder.js";

// Layers are built here (GNU tar of trees made as root, Python's tarfile for hostile archives),
// written as blobs of an OCI layout, converted, and the ext4 result read with debugfs (no mount).
const tools = ["umoci", "debugfs", "mkfs.ext4", "tar", "python3", "zstd"].every((t) => {
  try {
    execFileSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
});
const canBuild = process.geteuid?.() === 0 && tools && existsSync("/bin/busybox");

function debugfs(image: string, cmd: string): string {
  return execFileSync("debugfs", ["-R", cmd, image], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}
function statIn(image: string, path: string): string | undefined {
  const out = debugfs(image, `stat "${path}"`);
  return out.includes("Inode:") ? out : undefined;
}
function tarOf(dir: string): Buffer {
  return execFileSync(
    "tar",
    ["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", dir, "-cf", "-", "."],
    {
      maxBuffer: 64 << 20,
    },
  );
}
/** A tar written by Python's tarfile from a list of [type, name, linkname|content]. */
function craftedTar(entries: readonly [string, string, string][]): Buffer {
  const script = `
import io, json, sys, tarfile
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
    for kind, name, extra in json.loads(sys.argv[1]):
        info = tarfile.TarInfo(name)
        data = None
        if kind == "file":
            data = extra.encode(); info.size = len(data)
        elif kind == "dir":
            info.type = tarfile.DIRTYPE; info.mode = 0o755
        elif kind == "symlink":
            info.type = tarfile.SYMTYPE; info.linkname = extra
        elif kind == "hardlink":
            info.type = tarfile.LNKTYPE; info.linkname = extra
        t.addfile(info, io.BytesIO(data) if data is not None else None)
sys.stdout.buffer.write(out.getvalue())
`;
  return execFileSync("python3", ["-c", script, JSON.stringify(entries)], { maxBuffer: 16 << 20 });
}

describe.skipIf(!canBuild)("ImageRootfsBuilder (root, umoci, e2fsprogs)", () => {
  let dir: string;
  let layout: string;
  let source: OciLayoutImageSource;
  let builder: ImageRootfsBuilder;
  let dataDir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "rootfs-builder-"));
    layout = join(dir, "layout");
    dataDir = join(dir, "data");
    source = new OciLayoutImageSource(layout);
    builder = new ImageRootfsBuilder({ dataDir, agent: { path: "/bin/busybox" }, headroomMib: 8 });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const cacheLeftovers = () =>
    readdirSync(builder.cache.dir).filter((n) => n.startsWith(".build-") || n.startsWith(".tmp-"));

  it("applies layers in order: whiteouts, opaque dirs, modes, owners, links, devices, xattrs, gzip and zstd", async () => {
    const base = join(dir, "base");
    await mkdir(join(base, "bin"), { recursive: true });
    await copyFile("/bin/busybox", join(base, "bin/busybox"));
    await symlink("busybox", join(base, "bin/sh"));
    await mkdir(join(base, "etc"));
    await writeFile(join(base, "etc/removed.txt"), "gone\n");
    await writeFile(join(base, "etc/kept.txt"), "kept\n");
    await mkdir(join(base, "opq"));
    await writeFile(join(base, "opq/old.txt"), "old\n");
    await mkdir(join(base, "sbin"));
    await writeFile(join(base, "sbin/init"), "#!/bin/sh\necho image init\n");
    await chmod(join(base, "sbin/init"), 0o755);
    await writeFile(join(base, "bin/suid"), "x");
    await chmod(join(base, "bin/suid"), 0o4755);
    await writeFile(join(base, "etc/owned"), "o");
    await chown(join(base, "etc/owned"), 1234, 5678);
    await chmod(join(base, "etc/owned"), 0o640);
    await mkdir(join(base, "data"));
    await writeFile(join(base, "data/a"), "linked\n");
    await link(join(base, "data/a"), join(base, "data/b"));
    await mkdir(join(base, "dev"));
    execFileSync("mknod", [join(base, "dev/mynull"), "c", "1", "3"]);
    execFileSync("python3", [
      "-c",
      `import os; os.setxattr(${JSON.stringify(join(base, "etc/kept.txt"))}, "user.vmm", b"hello")`,
    ]);
    const upper = join(dir, "upper");
    await mkdir(join(upper, "etc"), { recursive: true });
    await writeFile(join(upper, "etc/.wh.removed.txt"), "");
    await mkdir(join(upper, "opq"));
    await writeFile(join(upper, "opq/.wh..wh..opq"), "");
    await writeFile(join(upper, "opq/new.txt"), "new\n");
    const top = join(dir, "top");
    await mkdir(join(top, "zst"), { recursive: true });
    await writeFile(join(top, "zst/file"), "zstd layer\n");
    const digest = await writeOciLayoutImage(layout, "local/full:1", [
      { data: tarOf(base) },
      { data: gzipSync(tarOf(upper)), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip" },
      {
        data: execFileSync("zstd", ["-q", "-c"], { input: tarOf(top) }),
        mediaType: "application/vnd.oci.image.layer.v1.tar+zstd",
      },
    ]);
    const image = await source.lookup("local/full:1");
    if (!image) throw new Error("fixture image missing");
    const built = await builder.rootfs(image, source);
    expect(built).toMatchObject({ outcome: "built", manifestDigest: digest });
    const img = built.path;
    expect(statIn(img, "/etc/removed.txt")).toBeUndefined();
    expect(statIn(img, "/etc/.wh.removed.txt")).toBeUndefined();
    expect(debugfs(img, "cat /etc/kept.txt")).toBe("kept\n");
    expect(statIn(img, "/opq/old.txt")).toBeUndefined();
    expect(debugfs(img, "cat /opq/new.txt")).toBe("new\n");
    expect(debugfs(img, "cat /zst/file")).toBe("zstd layer\n");
    expect(statIn(img, "/bin/suid")).toMatch(/Mode:\s+04755/);
    expect(statIn(img, "/etc/owned")).toMatch(/User:\s+1234\s+Group:\s+5678/);
    expect(statIn(img, "/etc/owned")).toMatch(/Mode:\s+0640/);
    const inode = (p: string) => /Inode: (\d+)/.exec(statIn(img, p) ?? "")?.[1];
    expect(inode("/data/a")).toBe(inode("/data/b"));
    expect(statIn(img, "/data/a")).toMatch(/Links: 2/);
    expect(statIn(img, "/dev/mynull")).toMatch(/Type: character special/);
    expect(statIn(img, "/dev/mynull")).toMatch(/Device major\/minor number: 01:03/);
    expect(debugfs(img, "ea_list /etc/kept.txt")).toMatch(/user\.vmm.*hello/);
    expect(statIn(img, "/bin/sh")).toMatch(/Fast link dest: "busybox"/);
    // The agent is init; the image's own /sbin/init is gone.
    expect(statIn(img, "/sbin/init")).toMatch(/Fast link dest: "vmm-agent"/);
    expect(statIn(img, "/sbin/vmm-agent")).toMatch(/Mode:\s+0755/);
    const agentHash = createHash("sha256").update(readFileSync("/bin/busybox")).digest("hex");
    const dumped = join(dir, "agent-out");
    debugfs(img, `dump /sbin/vmm-agent ${dumped}`);
    expect(createHash("sha256").update(readFileSync(dumped)).digest("hex")).toBe(agentHash);
    for (const mp of ["/proc", "/sys", "/tmp", "/run"])
      expect(statIn(img, mp)).toMatch(/Type: directory/);
    // Sized to the content plus headroom: far from a fixed large size, with the headroom free.
    const free = /Free blocks:\s+(\d+)/.exec(
      execFileSync("dumpe2fs", ["-h", img], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }),
    )?.[1];
    expect(Number(free) * 4096).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(built.sizeBytes).toBeLessThan(64 * 1024 * 1024);
    expect(cacheLeftovers()).toEqual([]);
  });

  it("reuses the cached rootfs: the second build does no work", async () => {
    const image = await source.lookup("local/full:1");
    if (!image) throw new Error("fixture image missing");
    const before = await stat(builder.cache.imagePath(image.manifestDigest));
    const again = await builder.rootfs(image, source);
    expect(again).toMatchObject({ outcome: "cached", buildMs: 0 });
    const after = await stat(again.path);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
  });

  it("dedupes concurrent builds of one digest", async () => {
    const tree = join(dir, "small");
    await mkdir(join(tree, "etc"), { recursive: true });
    await writeFile(join(tree, "etc/hello"), "hi\n");
    await writeOciLayoutImage(layout, "local/small:1", [{ data: tarOf(tree) }]);
    const image = await source.lookup("local/small:1");
    if (!image) throw new Error("fixture image missing");
    const results = await Promise.all([1, 2, 3].map(() => builder.rootfs(image, source)));
    expect(results.map((r) => r.outcome).sort()).toEqual(["built", "joined", "joined"]);
    expect(new Set(results.map((r) => r.path)).size).toBe(1);
    expect(debugfs(results[0]?.path ?? "", "cat /etc/hello")).toBe("hi\n");
  });

  it("refuses a layer media type it cannot read, naming it", async () => {
    await writeOciLayoutImage(layout, "local/bzip:1", [
      { data: Buffer.from("x"), mediaType: "application/vnd.oci.image.layer.v1.tar+bzip2" },
    ]);
    const image = await source.lookup("local/bzip:1");
    if (!image) throw new Error("fixture image missing");
    const err = await builder.rootfs(image, source).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toContain("application/vnd.oci.image.layer.v1.tar+bzip2");
  });

  it("rejects a layer whose uncompressed digest is not the config's diff_id, naming both", async () => {
    const tree = await mkdtemp(join(tmpdir(), "rootfs-builder-diff-"));
    try {
      await writeFile(join(tree, "hello"), "world");
      const tar = tarOf(tree);
      const forged = `sha256:${"ab".repeat(32)}`;
      await writeOciLayoutImage(layout, "local/forged:1", [
        { data: gzipSync(tar), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip" },
        { data: tar, diffId: forged },
      ]);
      const image = await source.lookup("local/forged:1");
      if (!image) throw new Error("fixture image missing");
      const err = await builder.rootfs(image, source).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(
        new RegExp(
          `layer 1 .* decompresses to sha256:[0-9a-f]{64} but the image config lists diff_id ${forged}`,
        ),
      );
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  describe("hostile layers: the whole image is rejected, nothing is written outside it", () => {
    let hostDir: string;
    let passwdHash: string;
    beforeAll(async () => {
      hostDir = await mkdtemp(join(tmpdir(), "rootfs-builder-host-"));
      passwdHash = createHash("sha256").update(readFileSync("/etc/passwd")).digest("hex");
    });
    afterAll(async () => {
      await rm(hostDir, { recursive: true, force: true });
      expect(createHash("sha256").update(readFileSync("/etc/passwd")).digest("hex")).toBe(
        passwdHash,
      );
    });

    const cases: [string, (host: string) => [string, string, string][][]][] = [
      ["a '..' entry", () => [[["file", "../../../../../../../../../../tmp/vmm-escape", "pwned"]]]],
      ["an absolute entry", (host) => [[["file", `${host}/pwned`, "pwned"]]]],
      [
        "a symlink then a write through it",
        () => [
          [
            ["symlink", "esc", "../../../../../../../../../../tmp"],
            ["file", "esc/vmm-escape", "pwned"],
          ],
        ],
      ],
      [
        "a symlink in one layer, written through in the next",
        () => [
          [
            ["dir", "a", ""],
            ["symlink", "a/esc", "../../../../../../../../../../../tmp"],
          ],
          [["file", "a/esc/vmm-escape", "pwned"]],
        ],
      ],
      ["a hard link to /etc/passwd", () => [[["hardlink", "passwd", "/etc/passwd"]]]],
      [
        "a hard link with '..' to /etc/passwd",
        () => [[["hardlink", "passwd", "../../../../../../../../etc/passwd"]]],
      ],
      [
        "a hard link through an escaping symlink",
        () => [
          [
            ["symlink", "up", "../../../../../../../../../.."],
            ["hardlink", "passwd", "up/etc/passwd"],
          ],
        ],
      ],
    ];
    it.each(cases)("%s", async (name, layers) => {
      const ref = `local/hostile:${name.replace(/[^a-z]+/g, "-")}`;
      await writeOciLayoutImage(
        layout,
        ref,
        layers(hostDir).map((l) => ({ data: craftedTar(l) })),
      );
      const image = await source.lookup(ref);
      if (!image) throw new Error("fixture image missing");
      const err = await builder.rootfs(image, source).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(/^image: local\/hostile.*the image is rejected/);
      expect(existsSync(builder.cache.imagePath(image.manifestDigest))).toBe(false);
      expect(readdirSync(hostDir)).toEqual([]);
      expect(existsSync("/tmp/vmm-escape")).toBe(false);
      expect(cacheLeftovers()).toEqual([]);
    });

    it("accepts links that stay inside: an absolute symlink written through resolves in the image", async () => {
      const ref = "local/inside:1";
      await writeOciLayoutImage(layout, ref, [
        {
          data: craftedTar([
            ["dir", "usr", ""],
            ["dir", "usr/lib", ""],
            ["symlink", "lib", "/usr/lib"],
            ["file", "lib/x", "in"],
            ["hardlink", "usr/y", "lib/x"],
          ]),
        },
      ]);
      const image = await source.lookup(ref);
      if (!image) throw new Error("fixture image missing");
      const built = await builder.rootfs(image, source);
      expect(debugfs(built.path, "cat /usr/lib/x")).toBe("in");
      expect(debugfs(built.path, "cat /usr/y")).toBe("in");
    });
  });
});

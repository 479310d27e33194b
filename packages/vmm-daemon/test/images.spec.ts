import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { copyFile, link, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { gzipSync } from "node:zlib";
import { ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OciRegistry, REGISTRY_BIN, startOciRegistry } from "../../../test/oci-registry.js";
import { type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";

// Create with `image` end to end: images built here (busybox-static layers, a whiteout, an
// image config), pushed to a real registry (Debian's docker-registry on loopback), pulled by
// the daemon on first use, converted, booted by fc-sim with the guest inside its disk — what
// the image holds is what Run sees.

const canRun =
  process.geteuid?.() === 0 &&
  existsSync("/dev/loop-control") &&
  existsSync("/bin/busybox") &&
  existsSync(REGISTRY_BIN) &&
  ["umoci", "debugfs", "mkfs.ext4"].every((t) => {
    try {
      execFileSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });

const sections = "[limits]\nmax_concurrent_creates = 16\n[agent]\nboot_timeout_ms = 60000";
const APPLETS = ["sh", "cat", "env", "pwd", "id", "test", "ls", "echo", "true"];

/** Layers of a small busybox image: base (busybox, passwd, files), then a whiteout and /app. */
async function buildImage(dir: string, registry: OciRegistry): Promise<void> {
  const base = join(dir, "base");
  await mkdir(join(base, "bin"), { recursive: true });
  await copyFile("/bin/busybox", join(base, "bin/busybox"));
  for (const a of APPLETS) await symlink("busybox", join(base, `bin/${a}`));
  await mkdir(join(base, "etc"));
  await writeFile(
    join(base, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n",
  );
  await writeFile(join(base, "etc/group"), "root:x:0:\napp:x:1000:\n");
  await writeFile(join(base, "etc/release"), "image-release\n");
  await link(join(base, "etc/release"), join(base, "etc/release-link")); // a hard link in the layer
  await writeFile(join(base, "etc/gone"), "whited out\n");
  await mkdir(join(base, "sbin"));
  await writeFile(join(base, "sbin/init"), "#!/bin/sh\necho the image's own init\n", {
    mode: 0o755,
  });
  const top = join(dir, "top");
  await mkdir(join(top, "etc"), { recursive: true });
  await writeFile(join(top, "etc/.wh.gone"), "");
  await mkdir(join(top, "app"));
  await writeFile(join(top, "app/data.txt"), "app data\n");
  execFileSync("chown", ["-R", "1000:1000", join(top, "app")]);
  const tar = (d: string) =>
    execFileSync("tar", ["--numeric-owner", "-C", d, "-cf", "-", "."], { maxBuffer: 64 << 20 });
  const layers = [gzipSync(tar(base)), gzipSync(tar(top))];
  await registry.pushImage("local/busybox", "1", {
    layers,
    env: ["PATH=/bin", "IMAGE_VAR=from-image"],
    cmd: [],
    workingDir: "/app",
    user: "app",
  });
  await registry.pushImage("local/busybox-cmd", "1", {
    layers,
    env: ["PATH=/bin"],
    cmd: ["cat", "/etc/release"],
  });
}

async function run(
  d: SimDaemon,
  id: string,
  req: { cmd: string[]; env?: Record<string, string>; workingDir?: string; user?: string },
): Promise<{ out: string; exit: number }> {
  let out = "";
  let exit = -1;
  for await (const o of d.sandboxes.run({ id, ...req })) {
    if (o.done) exit = o.exitCode;
    else out += Buffer.from(o.data).toString();
  }
  return { out, exit };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return ConnectError.from(err).code.toString();
  }
}

describe.skipIf(!canRun)("Create with image (fc-sim, guest inside its disk)", () => {
  let dir: string;
  let registry: OciRegistry;
  let d: SimDaemon;
  let ref: (name: string) => string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vmm-images-e2e-"));
    registry = await startOciRegistry();
    ref = (name) => `${registry.host}/${name}`;
    await buildImage(dir, registry);
    d = await startSimDaemon({
      sections: `${sections}\n[images]\ninsecure_registries = ["${registry.host}"]`,
      env: { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" },
    });
  }, 120_000);
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("boots the image: its files, Env, WorkingDir and User; a whiteout honoured; the request overrides", async () => {
    await d.sandboxes.create({ id: "img-a", image: ref("local/busybox:1") });
    const created = await d.sandboxes.inspect({ id: "img-a" });
    expect(created.image).toBe(ref("local/busybox:1"));
    expect(created.imageDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Under data_dir (named relative to it unless host details are exposed, as in this suite).
    expect(created.rootfs).toMatch(/(^|\/)images\/rootfs\/[0-9a-f]{64}\.ext4$/);
    await waitForState(d, "img-a", "ready", 60_000);
    // The layer's hard link is still one inode with two names.
    const inodes = await run(d, "img-a", {
      cmd: ["ls", "-i", "/etc/release", "/etc/release-link"],
    });
    const [i1, i2] = inodes.out
      .trim()
      .split("\n")
      .map((l) => l.trim().split(/\s+/)[0]);
    expect(i1).toMatch(/^\d+$/);
    expect(i2).toBe(i1);
    expect(await run(d, "img-a", { cmd: ["cat", "/etc/release", "/app/data.txt"] })).toEqual({
      out: "image-release\napp data\n",
      exit: 0,
    });
    const env = await run(d, "img-a", { cmd: ["env"] });
    expect(env.out).toContain("IMAGE_VAR=from-image\n");
    expect(env.out).toContain("PATH=/bin\n");
    expect(
      await run(d, "img-a", {
        cmd: ["sh", "-c", "pwd; id -u; test -e /etc/gone; echo $?; ls -a /etc"],
      }),
    ).toEqual({
      out: "/app\n1000\n1\n.\n..\ngroup\npasswd\nrelease\nrelease-link\nresolv.conf\n",
      exit: 0,
    });
    // The agent is init: the image's own /sbin/init was replaced.
    expect((await run(d, "img-a", { cmd: ["sh", "-c", "ls -l /sbin/init"] })).out).toMatch(
      /-> vmm-agent/,
    );
    // A request's own values win over the image's.
    const mine = await run(d, "img-a", {
      cmd: ["sh", "-c", "echo $IMAGE_VAR; pwd; id -u"],
      env: { IMAGE_VAR: "mine" },
      workingDir: "/",
      user: "root",
    });
    expect(mine).toEqual({ out: "mine\n/\n0\n", exit: 0 });
    // No cmd, and the image has none: the request is refused.
    expect(await code(run(d, "img-a", { cmd: [] }))).toBe("3"); // INVALID_ARGUMENT
  });

  it("a second Create reuses the cached rootfs; the image's Cmd is the default command", async () => {
    const first = await d.sandboxes.inspect({ id: "img-a" });
    const cached = isAbsolute(first.rootfs) ? first.rootfs : join(d.dataDir, first.rootfs);
    const before = statSync(cached);
    await d.sandboxes.create({ id: "img-b", image: ref("local/busybox:1") });
    await waitForState(d, "img-b", "ready", 60_000);
    const after = statSync(cached);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect((await d.sandboxes.inspect({ id: "img-b" }))?.rootfs).toBe(first?.rootfs);
    // Each sandbox has its own clone: a write in one is not seen by the other.
    expect((await run(d, "img-b", { cmd: ["sh", "-c", "echo b > /app/own"] })).exit).toBe(0);
    expect((await run(d, "img-a", { cmd: ["test", "-e", "/app/own"] })).exit).toBe(1);

    // Same layers, other config: the same rootfs content, its own cache entry; its Cmd runs
    // as the initial workload and as Run's default.
    await d.sandboxes.create({ id: "img-c", image: ref("local/busybox-cmd:1") });
    await waitForState(d, "img-c", "ready", 60_000);
    for (let i = 0; ; i++) {
      const s = await d.sandboxes.inspect({ id: "img-c" });
      if (s?.state === "ready" && s.lastExitedAt > 0n) break;
      if (i > 200) throw new Error("the image's Cmd never ran as the initial workload");
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await run(d, "img-c", { cmd: [] })).toEqual({ out: "image-release\n", exit: 0 });
  });

  it("a snapshot records the image digest; its restore keeps the image's defaults", async () => {
    const info = await d.sandboxes.inspect({ id: "img-a" });
    const cp = await d.snapshots.checkpoint({ sandboxId: "img-a", name: "img" });
    const listed = await d.snapshots.listSnapshots({});
    expect(listed.snapshots.find((s) => s.id === cp.snapshotId)?.imageDigest).toBe(
      info?.imageDigest,
    );
    const restored = await d.snapshots.restore({ snapshotId: cp.snapshotId, id: "img-r" });
    expect((await d.sandboxes.inspect({ id: restored.id })).imageDigest).toBe(info?.imageDigest);
    expect(await run(d, "img-r", { cmd: ["sh", "-c", "echo $IMAGE_VAR; pwd"] })).toEqual({
      out: "from-image\n/app\n",
      exit: 0,
    });
  });

  it("ListImages shows the pulled image; RemoveImage is refused while sandboxes and snapshots use it, then frees its cached rootfs", async () => {
    const listed = await d.images.listImages({});
    const mine = listed.images.find((i) => i.reference === ref("local/busybox:1"));
    expect(mine?.digest).toBe((await d.sandboxes.inspect({ id: "img-a" })).imageDigest);
    const refused = await d.images
      .removeImage({ reference: ref("local/busybox:1") })
      .catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(9); // FAILED_PRECONDITION
    expect((refused as ConnectError).rawMessage).toMatch(/sandbox img-|snapshot /);
    // busybox-cmd shares the layers but not the manifest: once nothing uses it, it goes.
    const cmdInfo = await d.sandboxes.inspect({ id: "img-c" });
    const cached = isAbsolute(cmdInfo.rootfs) ? cmdInfo.rootfs : join(d.dataDir, cmdInfo.rootfs);
    expect(existsSync(cached)).toBe(true);
    await d.sandboxes.remove({ id: "img-c" });
    await d.images.removeImage({ reference: ref("local/busybox-cmd:1") });
    expect(existsSync(cached)).toBe(false);
    expect(
      (await d.images.listImages({})).images
        .map((i) => i.reference)
        .includes(ref("local/busybox-cmd:1")),
    ).toBe(false);
  });

  it("a Create whose caller goes away stops the pull it waits for; the next Create pulls and registers", async () => {
    const img = await registry.pushImage("local/slow", "1", {
      layers: [gzipSync(Buffer.alloc(10_240))],
      env: ["PATH=/bin"],
    });
    const layer = img.layers[0]!.digest;
    registry.faults.stall.add(layer);
    try {
      const ac = new AbortController();
      const create = d.sandboxes.create(
        { id: "img-slow", image: ref("local/slow:1") },
        { signal: ac.signal },
      );
      await expect.poll(() => registry.openStalls(), { timeout: 20_000 }).toBe(1);
      ac.abort();
      expect(await code(create)).toBe("1"); // CANCELED
      // The daemon abandoned the download (its only waiter left): the stalled response is closed.
      await expect.poll(() => registry.openStalls(), { timeout: 10_000 }).toBe(0);
      expect((await d.sandboxes.list({})).sandboxes.map((s) => s.id)).not.toContain("img-slow");
    } finally {
      registry.faults.stall.delete(layer);
    }
    // Not bootable (no busybox), but the pull and conversion go through and the sandbox registers.
    await d.sandboxes.create({ id: "img-slow", image: ref("local/slow:1") });
    expect((await d.sandboxes.inspect({ id: "img-slow" })).imageDigest).toBe(img.manifestDigest);
    await d.sandboxes.remove({ id: "img-slow", force: true });
  });

  it("bad inputs: image with rootfs, an unknown image", async () => {
    expect(
      await code(d.sandboxes.create({ image: ref("local/busybox:1"), rootfs: "rootfs.ext4" })),
    ).toBe("3"); // INVALID_ARGUMENT
    expect(await code(d.sandboxes.create({ image: ref("local/none:1") }))).toBe("5"); // NOT_FOUND
    expect(await code(d.sandboxes.create({ image: "bad ref" }))).toBe("3");
  });
});

describe.skipIf(!canRun)("Create with image, [images] pull = never", () => {
  let d: SimDaemon;
  beforeAll(async () => {
    d = await startSimDaemon({ sections, env: { VMM_IMAGES_PULL: "never" } });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("an image never pulled fails fast with FAILED_PRECONDITION and the pull command", async () => {
    // No registry listens there: "never" must not try one.
    const image = "127.0.0.1:9/local/busybox:1";
    const err = await d.sandboxes.create({ image }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(9); // FAILED_PRECONDITION
    expect((err as ConnectError).rawMessage).toContain("not pulled");
    expect(
      JSON.stringify((err as ConnectError).details) + (err as ConnectError).rawMessage,
    ).toContain(`vmm image pull ${image}`);
    expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
  });
});

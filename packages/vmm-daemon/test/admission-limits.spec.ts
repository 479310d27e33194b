import { chmodSync, linkSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { bestOfMs } from "./responsiveness.js";
import { IMAGES_DIR, type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";

// Attacks on the limits of issue 14: limits bypassed by concurrency, TTL overflow,
// disk and snapshot quotas, host details in answers.

const code = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: unknown) => (e instanceof ConnectError ? Code[e.code] : String(e)),
  );

async function removeAll(d: SimDaemon | undefined): Promise<void> {
  if (!d) return;
  const { sandboxes } = await d.sandboxes.list({});
  await Promise.all(sandboxes.map((s) => d.sandboxes.remove({ id: s.id, force: true })));
  for (const s of (await d.snapshots.listSnapshots({})).snapshots)
    await d.snapshots.deleteSnapshot({ snapshotId: s.id });
}

// fc-sim is a Node process: several starting at once on a busy 2-core host take seconds.
const slowHost = { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000", VMM_AGENT_BOOT_TIMEOUT_MS: "60000" };

describe("admission holds under concurrency", () => {
  let d: SimDaemon;
  beforeAll(async () => {
    d = await startSimDaemon({
      sections: "[limits]\nmax_sandboxes = 3",
      env: slowHost,
    });
  });
  afterEach(() => removeAll(d));
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("20 parallel Creates against max_sandboxes = 3 → exactly 3, the rest RESOURCE_EXHAUSTED", async () => {
    const calls = Array.from({ length: 20 }, (_, i) =>
      code(d.sandboxes.create({ id: `par-${i}` })),
    );
    const latency = bestOfMs(() => d.sandboxes.list({}));
    const codes = await Promise.all(calls);
    expect(codes.filter((c) => c === "ok")).toHaveLength(3);
    expect(codes.filter((c) => c === "ResourceExhausted")).toHaveLength(17);
    expect(await latency).toBeLessThan(100);
    expect((await d.sandboxes.list({})).sandboxes).toHaveLength(3);
  });

  it("10 parallel Restores with 1 sandbox and max_sandboxes = 3 → exactly 2", async () => {
    await d.sandboxes.create({ id: "origin" });
    await waitForState(d, "origin", "ready");
    const cp = await d.snapshots.checkpoint({ sandboxId: "origin" });
    const codes = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        code(d.snapshots.restore({ id: `rst-${i}`, snapshotId: cp.snapshotId })),
      ),
    );
    expect(codes.filter((c) => c === "ok")).toHaveLength(2);
    expect(codes.filter((c) => c === "ResourceExhausted")).toHaveLength(8);
    expect((await d.sandboxes.list({})).sandboxes).toHaveLength(3);
  });

  it("10 parallel Creates of one id and spec → one sandbox, every call answered with it", async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => d.sandboxes.create({ id: "same", labels: { a: "b" } })),
    );
    expect(new Set(answers.map((a) => a.id))).toEqual(new Set(["same"]));
    expect((await d.sandboxes.list({})).sandboxes.map((s) => s.id)).toEqual(["same"]);
  });
});

describe("memory limit under concurrency", () => {
  let d: SimDaemon;
  beforeAll(async () => {
    d = await startSimDaemon({
      sections: "[limits]\nmax_total_memory_mib = 512",
      env: slowHost,
    });
  });
  afterEach(() => removeAll(d));
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("8 parallel 256 MiB Creates with max_total_memory_mib = 512 → exactly 2 become ready", async () => {
    const codes = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        code(d.sandboxes.create({ id: `mem-${i}`, limits: { memoryMib: 256n } })),
      ),
    );
    expect(codes.filter((c) => c === "ok")).toHaveLength(2);
    const { sandboxes } = await d.sandboxes.list({});
    for (const s of sandboxes) await waitForState(d, s.id, "ready");
    expect(sandboxes).toHaveLength(2);
  });
});

describe("timers built from input", () => {
  let d: SimDaemon;
  beforeAll(async () => {
    d = await startSimDaemon({ env: slowHost });
  });
  afterEach(() => removeAll(d));
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("ttl_seconds = 2,200,000 (over Node's 2^31 ms timer limit) does not remove the sandbox at once", async () => {
    await d.sandboxes.create({ id: "long-ttl", ttlSeconds: 2_200_000 });
    const info = await waitForState(d, "long-ttl", "ready");
    await sleep(1500);
    const later = await d.sandboxes.inspect({ id: "long-ttl" });
    expect(later.state).toBe("ready");
    expect(Number(later.expiresAt) - Number(info.createdAt)).toBe(2_200_000);
  });

  it("the largest ttl_seconds (2^32-1) is accepted and keeps the sandbox", async () => {
    await d.sandboxes.create({ id: "max-ttl", ttlSeconds: 4_294_967_295 });
    await waitForState(d, "max-ttl", "ready");
    await sleep(500);
    expect((await d.sandboxes.inspect({ id: "max-ttl" })).state).toBe("ready");
  });

  it("Stop with timeout_seconds above 3600 is INVALID_ARGUMENT and leaves the sandbox ready", async () => {
    await d.sandboxes.create({ id: "stop-big" });
    await waitForState(d, "stop-big", "ready");
    const err = await d.sandboxes
      .stop({ id: "stop-big", timeoutSeconds: 4_000_000 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toMatch(/timeout_seconds: must be from 0 to 3600/);
    expect((await d.sandboxes.inspect({ id: "stop-big" })).state).toBe("ready");
  });
});

describe("disk quota and snapshots per sandbox", () => {
  let d: SimDaemon;
  let images: string;
  beforeAll(async () => {
    // A sparse 900 MiB image: it costs nothing here but counts at its apparent size.
    images = mkdtempSync(join(tmpdir(), "vmm-quota-images-"));
    linkSync(join(IMAGES_DIR, "vmlinux"), join(images, "vmlinux"));
    linkSync(join(IMAGES_DIR, "rootfs.ext4"), join(images, "rootfs.ext4"));
    writeFileSync(join(images, "big.ext4"), "");
    truncateSync(join(images, "big.ext4"), 900 * 2 ** 20);
    d = await startSimDaemon({
      sections: "[limits]\nmax_total_disk_gib = 1\nmax_snapshots_per_sandbox = 2",
      env: { ...slowHost, VMM_STORAGE_IMAGES_DIR: images },
    });
  });
  afterEach(() => removeAll(d));
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    rmSync(images, { recursive: true, force: true });
  });

  it("refuses Create and Checkpoint beyond max_total_disk_gib, and a third snapshot of one sandbox", async () => {
    await d.sandboxes.create({ id: "big-1", rootfs: "big.ext4" });
    const second = await d.sandboxes.create({ id: "big-2", rootfs: "big.ext4" }).catch((e) => e);
    expect((second as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((second as ConnectError).rawMessage).toMatch(/limits\.max_total_disk_gib/);

    await d.sandboxes.create({ id: "small" }); // 64 MiB: fits beside big-1
    await waitForState(d, "small", "ready");
    // 128 MiB of memory + a 64 MiB disk copy no longer fit.
    expect(await code(d.snapshots.checkpoint({ sandboxId: "small" }))).toBe("ResourceExhausted");

    await d.sandboxes.remove({ id: "big-1", force: true });
    const a = await d.snapshots.checkpoint({ sandboxId: "small" });
    await d.snapshots.checkpoint({ sandboxId: "small" });
    const third = await d.snapshots.checkpoint({ sandboxId: "small" }).catch((e) => e);
    expect((third as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((third as ConnectError).rawMessage).toMatch(/limits\.max_snapshots_per_sandbox/);
    await d.snapshots.deleteSnapshot({ snapshotId: a.snapshotId });
    await d.snapshots.checkpoint({ sandboxId: "small" });
  });
});

describe("host details stay out of default answers", () => {
  let d: SimDaemon;
  beforeAll(async () => {
    d = await startSimDaemon({ env: { ...slowHost, VMM_GRPC_EXPOSE_HOST_DETAILS: "false" } });
  });
  afterEach(() => removeAll(d));
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("Inspect has no pid and names images under images_dir; snapshot dirs are relative to data_dir", async () => {
    await d.sandboxes.create({ id: "quiet" });
    const info = await waitForState(d, "quiet", "ready");
    expect(info.pid).toBe(0n);
    expect(info.kernel).toBe("vmlinux");
    expect(info.rootfs).toBe("rootfs.ext4");
    const cp = await d.snapshots.checkpoint({ sandboxId: "quiet" });
    expect(cp.snapshotDir).toBe(`snapshots/${cp.snapshotId}`);
    const listed = (await d.snapshots.listSnapshots({})).snapshots[0];
    expect(listed?.snapshotDir).toBe(`snapshots/${cp.snapshotId}`);
    for (const answer of [
      JSON.stringify(info, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
    ]) {
      expect(answer).not.toContain(d.dataDir);
      expect(answer).not.toContain(IMAGES_DIR);
    }
  });

  it("a boot failure's error is one line without Firecracker's console output or host paths", async () => {
    const bin = mkdtempSync(join(tmpdir(), "vmm-fake-fc-"));
    const fake = join(bin, "firecracker");
    writeFileSync(
      fake,
      '#!/bin/sh\necho "console line 1 with a host secret"\necho "console line 2 in $PWD"\nexit 3\n',
    );
    chmodSync(fake, 0o755);
    try {
      await using broken = await startSimDaemon({
        firecracker: fake,
        env: { ...slowHost, VMM_GRPC_EXPOSE_HOST_DETAILS: "false" },
      });
      await broken.sandboxes.create({ id: "no-boot" });
      const info = await waitForState(broken, "no-boot", "failed");
      expect(info.error).toMatch(/^boot failed: /);
      expect(info.error).not.toContain("\n");
      expect(info.error).not.toContain("host secret");
      expect(info.error).not.toContain(broken.dataDir);
      // The operator still has all of it in the log.
      expect(broken.stderr()).toContain("host secret");
      await broken.sandboxes.remove({ id: "no-boot", force: true });
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

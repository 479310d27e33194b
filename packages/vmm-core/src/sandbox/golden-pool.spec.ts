import { describe, expect, it } from "vitest";
import { silentLogger } from "../internal/index.js";
import type { SnapshotCatalog, SnapshotEntry } from "../snapshot/index.js";
import type { ResolvedImage } from "../storage/index.js";
import { type GoldenBuilder, GoldenPool, type GoldenSpec } from "./golden-pool.js";

const image = (path: string, mtimeMs = 1): ResolvedImage => ({
  path,
  identity: { size: 10, mtimeMs, ino: 1 },
});
const kernel = image("/images/vmlinux");
const rootfs = image("/images/rootfs.ext4");
const spec = (memoryMib: number): GoldenSpec => ({
  vcpus: 1,
  memoryMib,
  bootArgs: "console=ttyS0",
  network: "none",
});

/**
 * An in-memory stand-in for the catalog's golden entries and a builder that
 * "boots" by adding one (or fails when told to).
 */
function fixture(options: { maxSnapshots?: number; maxConcurrentBuilds?: number } = {}) {
  const entries: SnapshotEntry[] = [];
  let n = 0;
  let failing = false;
  let release: () => void = () => {};
  let gate: Promise<void> | undefined;
  const built: string[] = [];
  let bootedKernel = kernel;
  const tracked: Promise<unknown>[] = [];
  const catalog = {
    findGolden: (key: string) =>
      entries.filter((e) => e.state === "usable" && e.meta.goldenKey === key),
    list: () => entries,
  } as unknown as SnapshotCatalog;
  const builder: GoldenBuilder = {
    boot: async (id, _spec, k) => {
      built.push(id);
      bootedKernel = k;
      if (gate) await gate;
      if (failing) throw new Error("boot failed");
    },
    checkpoint: async (_id, goldenKey) => {
      const id = `snap-${n++}`;
      entries.push({
        state: "usable",
        id,
        dir: `/snapshots/${id}`,
        paths: {} as never,
        meta: {
          hidden: true,
          goldenKey,
          createdAt: new Date(Date.now() + n).toISOString(),
          kernel: { path: bootedKernel.path, identity: bootedKernel.identity },
          rootfsBase: { path: rootfs.path, identity: rootfs.identity },
        } as never,
      });
      return id;
    },
    remove: async () => {},
    deleteSnapshot: async (id) => {
      entries.splice(
        entries.findIndex((e) => e.id === id),
        1,
      );
    },
  };
  const pool = new GoldenPool({
    budget: {
      maxSnapshots: options.maxSnapshots ?? 4,
      maxConcurrentBuilds: options.maxConcurrentBuilds ?? 1,
    },
    catalog: () => catalog,
    builder,
    agentPort: 1024,
    track: (p) => tracked.push(p),
    log: silentLogger,
  });
  const ensure = (memoryMib: number, k = kernel) => {
    const { key, snapshot } = pool.lookup(spec(memoryMib), k, rootfs);
    if (key !== undefined && !snapshot) pool.ensure(key, spec(memoryMib), k, rootfs);
    return snapshot;
  };
  return {
    pool,
    entries,
    built,
    ensure,
    settle: () => Promise.all(tracked),
    fail: (v: boolean) => {
      failing = v;
    },
    hold: () => {
      gate = new Promise((r) => {
        release = r;
      });
    },
    release: () => release(),
  };
}

describe("GoldenPool", () => {
  it("builds one golden per spec and finds it afterwards", async () => {
    const f = fixture();
    expect(f.ensure(128)).toBeUndefined();
    await f.settle();
    expect(f.ensure(128)?.id).toBe("snap-0");
    expect(f.built).toHaveLength(1);
  });

  it("runs at most maxConcurrentBuilds builds at once; the spec left out is built on a later call", async () => {
    const f = fixture({ maxConcurrentBuilds: 1 });
    f.hold();
    f.ensure(128);
    f.ensure(160);
    f.ensure(128); // already building
    expect(f.built).toHaveLength(1);
    f.release();
    await f.settle();
    f.ensure(160);
    await f.settle();
    expect(f.built).toHaveLength(2);
  });

  it("does not rebuild a spec whose build just failed", async () => {
    const f = fixture();
    f.fail(true);
    f.ensure(128);
    await f.settle();
    f.fail(false);
    f.ensure(128);
    await f.settle();
    expect(f.built).toHaveLength(1);
    expect(f.entries).toHaveLength(0);
  });

  it("keeps maxSnapshots goldens and evicts the least recently used", async () => {
    const f = fixture({ maxSnapshots: 2 });
    for (const m of [128, 160]) {
      f.ensure(m);
      await f.settle();
    }
    f.pool.used(f.ensure(128)!.id); // 128 served a Create after 160 was built
    f.ensure(192);
    await f.settle();
    expect(f.entries).toHaveLength(2);
    expect(f.ensure(128)).toBeDefined();
    expect(f.ensure(192)).toBeDefined();
    expect(f.entries.map((e) => e.id)).not.toContain("snap-1"); // 160's golden went
  });

  it("drops goldens of an image file that changed since", async () => {
    const f = fixture();
    f.ensure(128);
    await f.settle();
    f.ensure(128, image(kernel.path, 2)); // same path, new mtime: a new key
    await f.settle();
    expect(f.entries.map((e) => e.id)).toEqual(["snap-1"]);
  });

  it("starts no build after close()", async () => {
    const f = fixture();
    f.pool.close();
    f.ensure(128);
    await f.settle();
    expect(f.built).toHaveLength(0);
  });
});

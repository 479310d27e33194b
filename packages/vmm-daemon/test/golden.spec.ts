import { utimesSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { IMAGES_DIR, startSimDaemon, subscribe, waitForState } from "./sim-daemon.js";

describe("golden snapshots", () => {
  it("builds a golden snapshot of the defaults at startup, then Create restores it and fixes the identity", async () => {
    await using d = await startSimDaemon({ sections: "[golden]\nenabled = true" });
    // Create right away: the golden build is in progress, so this one boots (never waits).
    await d.sandboxes.create({ id: "g-early" });
    expect((await waitForState(d, "g-early", "ready")).createdFrom).toBe("boot");
    // Wait for the hidden golden snapshot: it is not listed, but the log says when it is ready.
    for (let i = 0; i < 300 && !d.stderr().includes("golden snapshot ready"); i++) await sleep(50);
    expect(d.stderr()).toContain("golden snapshot ready");
    expect((await d.snapshots.listSnapshots({})).snapshots).toEqual([]);
    expect((await d.sandboxes.list({})).sandboxes.map((s) => s.id)).toEqual(["g-early"]);

    const sub = await subscribe(d, { id: "g-fast" });
    const created = await d.sandboxes.create({ id: "g-fast", labels: { k: "v" } });
    expect(created.state).toBe("starting");
    const info = await waitForState(d, "g-fast", "ready");
    expect(info.createdFrom).toBe("golden");
    expect(info.snapshotId).toMatch(/^snap-/);
    await sub.waitFor((a) => a.includes("ready"));
    sub.close();
    const ready = sub.events.find((e) => e.action === "ready");
    expect(ready?.attributes).toMatchObject({ created_from: "golden", identity: "simulated" });
    let out = "";
    for await (const o of d.sandboxes.run({ id: "g-fast", cmd: ["echo", "from golden"] })) {
      if (!o.done) out += Buffer.from(o.data).toString();
    }
    expect(out).toBe("from golden\n");

    // A changed rootfs (new mtime) invalidates the golden snapshot: the next Create boots.
    const rootfs = join(IMAGES_DIR, "rootfs.ext4");
    const now = new Date();
    utimesSync(rootfs, now, now);
    await d.sandboxes.create({ id: "g-after-change" });
    expect((await waitForState(d, "g-after-change", "ready")).createdFrom).toBe("boot");
    for (const id of ["g-early", "g-fast", "g-after-change"])
      await d.sandboxes.remove({ id, force: true });
  }, 60_000);

  it("keeps a golden snapshot per spec: requests alternating two specs do not evict each other", async () => {
    await using d = await startSimDaemon({
      sections: "[golden]\nenabled = true\nmax_snapshots = 2",
      env: { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" },
    });
    let n = 0;
    /** Creates sandboxes of `memoryMib` until one comes from its golden snapshot. */
    const untilGolden = async (memoryMib: bigint): Promise<void> => {
      for (let tries = 0; tries < 100; tries++) {
        const id = `alt-${n++}`;
        await d.sandboxes.create({ id, limits: { memoryMib } });
        const from = (await waitForState(d, id, "ready")).createdFrom;
        await d.sandboxes.remove({ id, force: true });
        if (from === "golden") return;
        await sleep(100);
      }
      throw new Error(`no golden snapshot for ${memoryMib} MiB`);
    };
    await untilGolden(128n); // the defaults' golden (built at startup)
    await untilGolden(160n); // built on first use; before, it evicted the 128 MiB one
    for (const memoryMib of [128n, 160n, 128n, 160n]) {
      const id = `alt-${n++}`;
      await d.sandboxes.create({ id, limits: { memoryMib } });
      expect((await waitForState(d, id, "ready")).createdFrom).toBe("golden");
      await d.sandboxes.remove({ id, force: true });
    }
    // A third spec is built and the least recently used golden (128 MiB) makes room for it.
    await untilGolden(192n);
    await d.sandboxes.create({ id: "lru-kept", limits: { memoryMib: 160n } });
    expect((await waitForState(d, "lru-kept", "ready")).createdFrom).toBe("golden");
    await d.sandboxes.create({ id: "lru-evicted", limits: { memoryMib: 128n } });
    expect((await waitForState(d, "lru-evicted", "ready")).createdFrom).toBe("boot");
    for (const id of ["lru-kept", "lru-evicted"]) await d.sandboxes.remove({ id, force: true });
  }, 120_000);
});

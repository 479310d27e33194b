import { existsSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvmUnavailable } from "./kvm.js";
import { leftovers, type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";

const FIRECRACKER_BIN = process.env.FIRECRACKER_BIN;
const noKvm = kvmUnavailable();
if (FIRECRACKER_BIN && noKvm)
  process.stderr.write(
    `real-firecracker-snapshots.spec: skipping (needs a started VM): ${noKvm}\n`,
  );

// The guest kernel cannot boot here (no nested virtualization), so readiness is "vmm": the
// sandbox is ready when InstanceStart / snapshot load returned. Every VM is removed promptly:
// a started VM whose guest cannot boot spins a core.
describe.skipIf(!FIRECRACKER_BIN)(
  FIRECRACKER_BIN
    ? "snapshots against the real Firecracker"
    : "real-Firecracker snapshots (skipped: FIRECRACKER_BIN not set)",
  () => {
    let d: SimDaemon;
    beforeAll(async () => {
      d = await startSimDaemon({
        firecracker: FIRECRACKER_BIN!,
        sections: '[agent]\nreadiness = "vmm"',
      });
    });
    afterAll(async () => {
      await d?.[Symbol.asyncDispose]();
    });

    it.skipIf(noKvm !== undefined)(
      noKvm
        ? `checkpoints a sandbox and restores two clones of it side by side (skipped: ${noKvm})`
        : "checkpoints a sandbox and restores two clones of it side by side",
      async () => {
        await d.sandboxes.create({ id: "rfc-src" });
        const src = await waitForState(d, "rfc-src", "ready");
        expect(readlinkSync(`/proc/${src.pid}/exe`)).toBe(FIRECRACKER_BIN);
        const cp = await d.snapshots.checkpoint({ sandboxId: "rfc-src", name: "real" });
        expect((await d.sandboxes.inspect({ id: "rfc-src" })).state).toBe("ready");
        await d.sandboxes.remove({ id: "rfc-src", force: true });
        for (const f of ["vmstate", "mem", "rootfs.ext4", "meta.json"])
          expect(existsSync(join(cp.snapshotDir, f))).toBe(true);

        const [a, b] = await Promise.all([
          d.snapshots.restore({ snapshotId: cp.snapshotId, id: "rfc-a" }),
          d.snapshots.restore({ snapshotId: cp.snapshotId, id: "rfc-b" }),
        ]);
        const ia = await d.sandboxes.inspect({ id: a.id });
        const ib = await d.sandboxes.inspect({ id: b.id });
        expect([ia.state, ib.state]).toEqual(["ready", "ready"]);
        expect(ia.pid).not.toBe(ib.pid);
        for (const i of [ia, ib]) {
          expect(readlinkSync(`/proc/${i.pid}/exe`)).toBe(FIRECRACKER_BIN);
          // Each clone bound the vsock socket in its own directory (relative paths).
          expect(existsSync(join(d.dataDir, "sandboxes", i.id, "vsock.sock"))).toBe(true);
        }
        await Promise.all([a.id, b.id].map((id) => d.sandboxes.remove({ id, force: true })));
        expect(
          leftovers(
            d,
            ["rfc-src", a.id, b.id],
            [src, ia, ib].map((i) => Number(i.pid)),
          ),
        ).toEqual([]);
        await d.snapshots.deleteSnapshot({ snapshotId: cp.snapshotId });
      },
      60_000,
    );
  },
);

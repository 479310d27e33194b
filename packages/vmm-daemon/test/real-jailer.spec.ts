import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvmUnavailable } from "./kvm.js";
import {
  leftovers,
  processesMatching,
  type SimDaemon,
  startSimDaemon,
  waitForState,
} from "./sim-daemon.js";

const FIRECRACKER_BIN = process.env.FIRECRACKER_BIN;
const JAILER_BIN = process.env.JAILER_BIN;
const noKvm = kvmUnavailable();
const JAIL_UID = 64123;
const JAIL_GID = 64124;

/** `it` for a test that needs a started VM: skipped with "needs /dev/kvm" without KVM. */
const itStartsVm = (name: string, fn: () => Promise<void>, timeoutMs?: number) =>
  noKvm ? it.skip(`${name} [needs /dev/kvm]`, fn) : it(name, fn, timeoutMs);

// The daemon with [firecracker.jailer] enabled, driving the real jailer and Firecracker. Without
// KVM, InstanceStart fails: everything before it (jail, uid/gid, staged kernel and rootfs that the
// jailed Firecracker opens at PUT /boot-source and PUT /drives, the vsock socket) must work, and
// the failure must leave nothing behind.
describe.skipIf(!FIRECRACKER_BIN || !JAILER_BIN)(
  FIRECRACKER_BIN && JAILER_BIN
    ? `the daemon under the real jailer (${JAILER_BIN}, ${FIRECRACKER_BIN})`
    : "the daemon under the real jailer (skipped: JAILER_BIN and FIRECRACKER_BIN not both set)",
  () => {
    let d: SimDaemon;
    let chrootBase: string;
    beforeAll(async () => {
      d = await startSimDaemon({
        firecracker: FIRECRACKER_BIN!,
        sections: [
          "[firecracker.jailer]",
          "enabled = true",
          `binary = "${JAILER_BIN}"`,
          // Relative to the config file: beside data_dir, on the same filesystem (hard links).
          'chroot_base_dir = "j"',
          `uid = ${JAIL_UID}`,
          `gid = ${JAIL_GID}`,
          "[agent]",
          'readiness = "vmm"',
        ].join("\n"),
      });
      chrootBase = join(d.dir, "j");
      expect(d.stderr()).not.toMatch(/SIMULATED/);
    });
    afterAll(async () => {
      await d?.[Symbol.asyncDispose]();
    });

    /** The jails left under the chroot base (`<base>/firecracker/<id>`). */
    const jails = () => {
      const dir = join(chrootBase, "firecracker");
      return existsSync(dir) ? readdirSync(dir) : [];
    };

    it.skipIf(noKvm === undefined)(
      "create: jailed Firecracker opens the staged kernel and rootfs, InstanceStart fails without KVM, nothing is left",
      async () => {
        const id = "rj-nokvm";
        try {
          await d.sandboxes.create({ id });
          const info = await waitForState(d, id, "failed", 30_000);
          // The configuration calls that open the staged files (as the jail uid, in the chroot)
          // passed: the first refusal is KVM's.
          expect(info.error).toMatch(/Kvm error/);
          expect(info.error).not.toMatch(
            /boot-source|drives|vsock|No such file|Permission denied/i,
          );
          expect(jails()).toEqual([]);
          await d.sandboxes.remove({ id, force: true });
          expect(leftovers(d, [id], [])).toEqual([]);
          expect(processesMatching(chrootBase)).toEqual([]);
        } finally {
          await d.sandboxes.remove({ id, force: true }).catch(() => {});
        }
      },
      60_000,
    );

    itStartsVm(
      "create → ready jailed (uid/gid, chroot, vsock linked) → checkpoint out of the jail → restore into a new jail → remove, nothing left",
      async () => {
        const ids = ["rj-src", "rj-clone"];
        try {
          await d.sandboxes.create({ id: "rj-src" });
          const src = await waitForState(d, "rj-src", "ready", 20_000);
          const pid = Number(src.pid);
          expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(
            new RegExp(`^Uid:\\s+${JAIL_UID}\\b`, "m"),
          );
          const root = join(chrootBase, "firecracker", "rj-src", "root");
          expect(statSync(join(root, "rootfs.ext4")).uid).toBe(JAIL_UID);
          expect(
            statSync(join(root, "rootfs.ext4")).ino,
            "the rootfs is hard-linked into the jail",
          ).toBe(statSync(join(d.dataDir, "sandboxes", "rj-src", "rootfs.ext4")).ino);
          expect(readlinkSync(join(d.dataDir, "sandboxes", "rj-src", "vsock.sock"))).toBe(
            join(root, "vsock.sock"),
          );

          const cp = await d.snapshots.checkpoint({ sandboxId: "rj-src", name: "jailed" });
          // Taken out of the jail by hard link: the catalog's memory file is Firecracker's.
          expect(statSync(join(cp.snapshotDir, "mem")).size).toBe(128 * 2 ** 20);
          expect(existsSync(join(root, "snapshot.mem"))).toBe(false);
          await d.sandboxes.remove({ id: "rj-src", force: true });

          const clone = await d.snapshots.restore({ snapshotId: cp.snapshotId, id: "rj-clone" });
          const info = await d.sandboxes.inspect({ id: clone.id });
          expect(info.state).toBe("ready");
          const cloneRoot = join(chrootBase, "firecracker", "rj-clone", "root");
          expect(statSync(join(cloneRoot, "mem")).ino).toBe(
            statSync(join(cp.snapshotDir, "mem")).ino,
          );
          expect(statSync(join(cloneRoot, "mem")).uid).toBe(JAIL_UID);
          await d.sandboxes.remove({ id: clone.id, force: true });
          expect(jails()).toEqual([]);
          expect(leftovers(d, ids, [pid, Number(info.pid)])).toEqual([]);
          await d.snapshots.deleteSnapshot({ snapshotId: cp.snapshotId });
        } finally {
          for (const id of ids) await d.sandboxes.remove({ id, force: true }).catch(() => {});
        }
      },
      60_000,
    );

    itStartsVm(
      "a jailed Firecracker killed from outside: the sandbox fails, its jail is removed",
      async () => {
        const id = "rj-crash";
        try {
          await d.sandboxes.create({ id });
          const info = await waitForState(d, id, "ready", 20_000);
          process.kill(Number(info.pid), "SIGKILL");
          await waitForState(d, id, "failed", 5000);
          await d.sandboxes.remove({ id, force: true });
          expect(jails()).toEqual([]);
        } finally {
          await d.sandboxes.remove({ id, force: true }).catch(() => {});
        }
      },
    );
  },
);

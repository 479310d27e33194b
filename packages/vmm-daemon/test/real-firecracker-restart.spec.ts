import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { kvmUnavailable } from "./kvm.js";
import {
  FC_SIM_BIN,
  killDaemon,
  leftovers,
  pidAlive,
  processesMatching,
  startSimDaemon,
  subscribe,
  waitForState,
} from "./sim-daemon.js";

const FIRECRACKER_BIN = process.env.FIRECRACKER_BIN;
const noKvm = kvmUnavailable();
if (FIRECRACKER_BIN && noKvm) {
  process.stderr.write(
    `real-firecracker-restart.spec: skipping the re-adoption of real VMs: ${noKvm}\n`,
  );
}

// Readiness "vmm" (the dev kernel has our agent, but a real VM is only asked to start here):
// ready once InstanceStart returned. A started VM whose guest cannot boot may spin a core, so
// the scenario keeps three VMs and removes them as soon as it is done.
const sections = '[agent]\nreadiness = "vmm"';

/** Kills every process using `dir` and removes it (the test's last resort, on failure too). */
function cleanupDir(dir: string): void {
  for (const pid of processesMatching(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Three live VMs, the daemon SIGKILLed (its Firecracker children live on), a new daemon on
 * the same data_dir: each VM is re-adopted (same pid, same binary, same timestamps), then Stop,
 * Checkpoint and Remove work on them and nothing of them is left.
 */
async function readoptAfterSigkill(firecracker: string): Promise<void> {
  // The program a pid runs: Firecracker's executable, or fc-sim's script under node.
  const program = (pid: number) =>
    firecracker === FC_SIM_BIN
      ? readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1]
      : readlinkSync(`/proc/${pid}/exe`);
  const expected = firecracker === FC_SIM_BIN ? FC_SIM_BIN : realpathSync(firecracker);
  const d1 = await startSimDaemon({ firecracker, sections });
  try {
    const ids = ["rfa-stop", "rfa-cp", "rfa-rm"];
    const readyEvents = await subscribe(d1, { action: "ready" });
    for (const id of ids) await d1.sandboxes.create({ id, labels: { suite: "readopt" } });
    // The kill comes after the `ready` events: the daemon writes a state to the record before
    // it announces it (an Inspect answering `ready` does not promise that yet:
    // the in-memory state changes before the record is written).
    await readyEvents.waitFor((a) => a.length === ids.length, 30_000);
    readyEvents.close();
    const before = new Map<string, Awaited<ReturnType<typeof waitForState>>>();
    for (const id of ids) before.set(id, await waitForState(d1, id, "ready", 30_000));
    const pids = ids.map((id) => Number(before.get(id)!.pid));
    for (const pid of pids) expect(program(pid)).toBe(expected);

    await killDaemon(d1);
    expect(pids.filter((p) => !pidAlive(p))).toEqual([]);

    await using d2 = await startSimDaemon({ firecracker, sections, reuseDir: d1.dir });
    for (const id of ids) {
      const old = before.get(id)!;
      expect(await d2.sandboxes.inspect({ id })).toMatchObject({
        state: "ready",
        pid: old.pid,
        createdAt: old.createdAt,
        readyAt: old.readyAt,
        labels: { suite: "readopt" },
        error: "",
      });
      expect(program(Number(old.pid))).toBe(expected);
    }
    const sub = await subscribe(d2, {});
    try {
      // Stop: the re-adopted process is stopped and gone.
      await d2.sandboxes.stop({ id: "rfa-stop", timeoutSeconds: 1 });
      expect((await d2.sandboxes.inspect({ id: "rfa-stop" })).state).toBe("stopped");
      expect(pidAlive(pids[0]!)).toBe(false);
      expect(processesMatching(resolve(d2.dataDir, "sandboxes", "rfa-stop"))).toEqual([]);

      // Checkpoint: Firecracker of the re-adopted VM writes a complete snapshot, and the VM
      // runs on afterwards.
      const cp = await d2.snapshots.checkpoint({ sandboxId: "rfa-cp", name: "readopted" });
      for (const f of ["vmstate", "mem", "rootfs.ext4", "meta.json"])
        expect(existsSync(join(cp.snapshotDir, f)), f).toBe(true);
      expect(await d2.sandboxes.inspect({ id: "rfa-cp" })).toMatchObject({
        state: "ready",
        pid: before.get("rfa-cp")!.pid,
      });
      expect(
        (await d2.snapshots.listSnapshots({ sandboxId: "rfa-cp" })).snapshots.map((s) => [
          s.id,
          s.usable,
        ]),
      ).toEqual([[cp.snapshotId, true]]);

      // Remove: a ready one (no force needed), the checkpointed one and the stopped one.
      for (const id of ["rfa-rm", "rfa-cp", "rfa-stop"]) await d2.sandboxes.remove({ id });
      await sub.waitFor((a) => a.filter((x) => x === "removed").length === 3);
      expect(sub.events.map((e) => `${e.sandboxId}:${e.action}`)).toEqual([
        "rfa-stop:stopping",
        "rfa-stop:stopped",
        "rfa-cp:checkpointed",
        "rfa-rm:stopping",
        "rfa-rm:stopped",
        "rfa-rm:removed",
        "rfa-cp:stopping",
        "rfa-cp:stopped",
        "rfa-cp:removed",
        "rfa-stop:removed",
      ]);
    } finally {
      sub.close();
    }
    expect((await d2.sandboxes.list({})).sandboxes).toEqual([]);
    expect(leftovers(d2, ids, pids)).toEqual([]);
    expect(readdirSync(resolve(d2.dataDir, "sandboxes")).filter((n) => !n.startsWith("."))).toEqual(
      [],
    );
    for (const s of (await d2.snapshots.listSnapshots({})).snapshots)
      await d2.snapshots.deleteSnapshot({ snapshotId: s.id });
    expect(await d2.stop()).toBe(0);
  } finally {
    cleanupDir(d1.dir);
  }
}

describe.skipIf(!FIRECRACKER_BIN)(
  FIRECRACKER_BIN
    ? "restart against the real Firecracker"
    : "real-Firecracker restart (skipped: FIRECRACKER_BIN not set)",
  () => {
    it.skipIf(noKvm !== undefined)(
      noKvm
        ? `re-adopts live real VMs after a daemon SIGKILL (skipped: ${noKvm})`
        : "re-adopts live real VMs after a daemon SIGKILL: Stop, Checkpoint and Remove work on them, nothing left",
      () => readoptAfterSigkill(FIRECRACKER_BIN!),
      120_000,
    );
  },
);

// The same scenario with fc-sim as Firecracker, in every run: it keeps the test above honest
// on hosts without KVM (where it cannot run) and covers Stop of a re-adopted sandbox.
describe("restart with fc-sim as Firecracker (the real-Firecracker scenario)", () => {
  it(
    "re-adopts live VMs after a daemon SIGKILL: Stop, Checkpoint and Remove work on them, nothing left",
    () => readoptAfterSigkill(FC_SIM_BIN),
    120_000,
  );
});

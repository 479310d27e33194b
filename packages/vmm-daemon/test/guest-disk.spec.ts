import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  killDaemon,
  leftovers,
  loopDevicesUnder,
  processesMatching,
  runShell,
  type SimDaemon,
  startSimDaemon,
  waitForState,
} from "./sim-daemon.js";

// fc-sim's guest lives inside its own disk (packages/fc-sim/src/guest-disk.ts): the sandbox's
// rootfs.ext4 loop-mounted in private mount/PID/UTS namespaces, the image's /sbin/init chrooted.
// Needs root, loop devices and debugfs (e2fsprogs); elsewhere fc-sim falls back to a host process.

const canLoopMount =
  process.geteuid?.() === 0 &&
  existsSync("/dev/loop-control") &&
  (() => {
    try {
      execFileSync("debugfs", ["-V"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

const sections = "[limits]\nmax_concurrent_creates = 16\n[agent]\nboot_timeout_ms = 60000";
const env = { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" };

/** A file of an ext4 image as debugfs reads it (no mount), or undefined when absent. */
function debugfsCat(image: string, path: string): string | undefined {
  const out = execFileSync("debugfs", ["-R", `cat ${path}`, image], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stat = execFileSync("debugfs", ["-R", `stat ${path}`, image], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return stat.includes("Inode:") ? out : undefined;
}

/** Waits until `check` returns no findings (teardown of a killed guest is asynchronous). */
async function settles(check: () => string[], timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = check();
    if (found.length === 0 || Date.now() > deadline) return found;
    await sleep(50);
  }
}

/**
 * Disk-guest leftovers: loop devices on the sandboxes' files, and mounts on fc-sim's guest
 * root in any process's mount namespace (a leaked namespace would keep them).
 */
function diskLeftovers(d: SimDaemon, ids: readonly string[], fcPids: readonly number[]): string[] {
  const found = loopDevicesUnder(d.dataDir)
    .filter((l) => ids.some((id) => l.includes(`/${id}/`) || l.includes(`/.${id}.`)))
    .map((l) => `loop device ${l}`);
  const roots = fcPids.map((pid) => ` /tmp/fcsim-${pid}/root`);
  for (const e of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let mounts = "";
    try {
      mounts = readFileSync(`/proc/${e}/mountinfo`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    for (const line of mounts.split("\n")) {
      if (roots.some((r) => line.includes(r))) found.push(`mount seen by pid ${e}: ${line}`);
    }
  }
  return found;
}

describe.skipIf(!canLoopMount)("fc-sim: the guest inside its own disk (through the daemon)", () => {
  let d: SimDaemon;
  const marker = `fcsim-disk-${process.pid}-${Date.now()}`;
  beforeAll(async () => {
    d = await startSimDaemon({ sections, env });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("a file the guest writes is inside the sandbox's rootfs.ext4, not on the host; the guest sees the image", async () => {
    await d.sandboxes.create({ id: "disk-a" });
    const info = await waitForState(d, "disk-a", "ready", 60_000);
    const image = join(d.dataDir, "sandboxes", "disk-a", "rootfs.ext4");
    expect(diskLeftovers(d, ["disk-a"], [])).toHaveLength(1);
    expect(existsSync(`/root/${marker}`)).toBe(false);

    expect(await runShell(d, "disk-a", `echo x > /root/${marker}`)).toEqual({ out: "", exit: 0 });
    expect(existsSync(`/root/${marker}`)).toBe(false);
    // What the image contains is what the guest sees; commands are the image's busybox.
    expect(
      await runShell(d, "disk-a", "cat /etc/hostname; readlink /sbin/init; readlink /bin/sh"),
    ).toEqual({
      out: "sandbox\nvmm-agent\n/bin/busybox\n",
      exit: 0,
    });
    // Own PID and UTS namespaces; /tmp is the guest's tmpfs, not the host's.
    const ps = await runShell(d, "disk-a", "hostname; cat /proc/1/comm; ls /tmp");
    expect(ps.out).toBe(`disk-a\nsh\nfcsim-${info.pid}\n`); // hostname: vmm.hostname= (the id)

    // Stopping the VM unmounts its disk: the image is clean and holds the file.
    await d.sandboxes.stop({ id: "disk-a" });
    await waitForState(d, "disk-a", "stopped");
    expect(await settles(() => diskLeftovers(d, ["disk-a"], [Number(info.pid)]))).toEqual([]);
    expect(debugfsCat(image, `/root/${marker}`)).toBe("x\n");
    execFileSync("e2fsck", ["-fn", image], { stdio: "ignore" }); // throws unless clean
    await d.sandboxes.remove({ id: "disk-a" });
    expect(leftovers(d, ["disk-a"], [Number(info.pid)])).toEqual([]);
  });

  it("checkpoint → write more → restore shows the snapshot's disk", async () => {
    await d.sandboxes.create({ id: "disk-src" });
    const src = await waitForState(d, "disk-src", "ready", 60_000);
    expect((await runShell(d, "disk-src", "echo one > /root/a")).exit).toBe(0);
    const cp = await d.snapshots.checkpoint({ sandboxId: "disk-src", name: "disk" });
    // The pause before the snapshot flushed the guest's writes into the live image, consistently.
    const live = join(d.dataDir, "sandboxes", "disk-src", "rootfs.ext4");
    expect(debugfsCat(live, "/root/a")).toBe("one\n");
    expect(debugfsCat(join(cp.snapshotDir, "rootfs.ext4"), "/root/a")).toBe("one\n");

    expect((await runShell(d, "disk-src", "echo two > /root/a; echo new > /root/b")).exit).toBe(0);
    await d.snapshots.restore({ snapshotId: cp.snapshotId, id: "disk-restored" });
    const restored = await waitForState(d, "disk-restored", "ready", 60_000);
    expect(await runShell(d, "disk-restored", "cat /root/a; test -e /root/b; echo $?")).toEqual({
      out: "one\n1\n",
      exit: 0,
    });
    // The origin keeps its own, newer disk.
    expect(await runShell(d, "disk-src", "cat /root/a /root/b")).toEqual({
      out: "two\nnew\n",
      exit: 0,
    });

    const pids = [Number(src.pid), Number(restored.pid)];
    await d.sandboxes.remove({ id: "disk-restored" });
    await d.sandboxes.remove({ id: "disk-src" });
    await d.snapshots.deleteSnapshot({ snapshotId: cp.snapshotId });
    expect(await settles(() => diskLeftovers(d, ["disk-src", "disk-restored"], pids))).toEqual([]);
    expect(leftovers(d, ["disk-src", "disk-restored"], pids)).toEqual([]);
  });

  it("SIGKILL of fc-sim releases the guest's mounts and loop device", async () => {
    await d.sandboxes.create({ id: "disk-kill" });
    const info = await waitForState(d, "disk-kill", "ready", 60_000);
    const pid = Number(info.pid);
    const live = diskLeftovers(d, ["disk-kill"], [pid]);
    expect(live.filter((l) => l.startsWith("loop device"))).toHaveLength(1);
    expect(live.filter((l) => l.startsWith("mount seen by")).length).toBeGreaterThan(0);
    expect(processesMatching(`/tmp/fcsim-${pid}`).length).toBeGreaterThan(0);
    process.kill(pid, "SIGKILL");
    expect(await settles(() => diskLeftovers(d, ["disk-kill"], [pid]))).toEqual([]);
    expect(
      await settles(() => processesMatching(`/tmp/fcsim-${pid}`).map((p) => `guest process ${p}`)),
    ).toEqual([]);
    await d.sandboxes.remove({ id: "disk-kill", force: true });
    expect(await settles(() => leftovers(d, ["disk-kill"], [pid]))).toEqual([]);
  });
});

describe.skipIf(!canLoopMount)("fc-sim disk guests across a daemon SIGKILL", () => {
  it("the guest and its disk live on with fc-sim, are re-adopted, and removing releases them", async () => {
    const d1 = await startSimDaemon({ sections, env });
    let d2: SimDaemon | undefined;
    try {
      await d1.sandboxes.create({ id: "disk-survivor" });
      const info = await waitForState(d1, "disk-survivor", "ready", 60_000);
      expect((await runShell(d1, "disk-survivor", "echo kept > /root/k")).exit).toBe(0);
      await killDaemon(d1);
      expect(loopDevicesUnder(d1.dataDir)).toHaveLength(1);
      d2 = await startSimDaemon({ sections, env, reuseDir: d1.dir });
      await waitForState(d2, "disk-survivor", "ready", 30_000);
      expect(await runShell(d2, "disk-survivor", "cat /root/k")).toEqual({
        out: "kept\n",
        exit: 0,
      });
      await d2.sandboxes.remove({ id: "disk-survivor" });
      expect(
        await settles(() => diskLeftovers(d2!, ["disk-survivor"], [Number(info.pid)])),
      ).toEqual([]);
      expect(leftovers(d2, ["disk-survivor"], [Number(info.pid)])).toEqual([]);
    } finally {
      await (d2 ?? d1)[Symbol.asyncDispose]();
    }
  });
});

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import {
  killDaemon,
  leftovers,
  pidAlive,
  processesMatching,
  runShell,
  type SimDaemon,
  startSimDaemon,
  subscribe,
  waitForState,
} from "./sim-daemon.js";
import { links, nftTables, testNetns } from "./test-netns.js";

// Restart semantics (docs/architecture.md "Restarts"). Everything this file creates is named
// after `tag`: slot namespaces "<tag>-<n>", host veths "<tag>-h<n>", host namespaces
// "<tag>host<k>". Nothing is created in the root namespace.
const { prefix, octet, ours: netnsNames, makeHostNetns } = testNetns("vr");
const POOL = 2;

const slotNamespaces = () => netnsNames().filter((n) => n.startsWith(prefix));
const hostVeths = (hostNetns: string) => links(hostNetns).filter((n) => n.startsWith(prefix));

function sections(hostNetns: string, extra = ""): string {
  return [
    "[network]",
    'mode = "tap"',
    `host_cidr = "10.232.${octet}.0/24"`,
    `netns_prefix = "${prefix}"`,
    `host_netns = "${hostNetns}"`,
    `pool_size = ${POOL}`,
    "[limits]",
    "max_concurrent_creates = 64",
    "max_sandboxes = 64",
    "[agent]",
    "boot_timeout_ms = 60000",
    extra,
  ].join("\n");
}
const env = { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" };

/** Polls `f` until it returns true (or `ms` pass). */
async function eventually(f: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Polls List (gently: many node guests share 2 cores) until every one of `ids` is ready. */
async function waitAllReady(d: SimDaemon, ids: readonly string[], ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const states = new Map((await d.sandboxes.list({})).sandboxes.map((s) => [s.id, s.state]));
    const notReady = ids.filter((id) => states.get(id) !== "ready");
    if (notReady.length === 0) return;
    if (notReady.some((id) => states.get(id) === "failed") || Date.now() > deadline)
      throw new Error(`not ready: ${notReady.map((id) => `${id}=${states.get(id)}`).join(", ")}`);
    await sleep(250);
  }
}

function runEcho(d: SimDaemon, id: string): Promise<{ out: string; exit: number }> {
  return runShell(d, id, `echo hello-${id}`);
}

/** Removes every sandbox, then checks that nothing of them is left but the idle pool. */
async function removeAllAndCheck(
  d: SimDaemon,
  hostNetns: string,
  ids: readonly string[],
  pids: readonly number[],
): Promise<void> {
  await Promise.all(ids.map((id) => d.sandboxes.remove({ id, force: true })));
  expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
  expect(leftovers(d, ids, pids)).toEqual([]);
  expect(readdirSync(resolve(d.dataDir, "sandboxes")).filter((n) => !n.startsWith("."))).toEqual(
    [],
  );
  // Only the idle pool remains (refills run in the background).
  const settled = await eventually(
    () => slotNamespaces().length === POOL && hostVeths(hostNetns).length === POOL,
  );
  expect({ settled, ns: slotNamespaces(), veths: hostVeths(hostNetns) }).toMatchObject({
    settled: true,
  });
  // A clean stop (on_shutdown = stop) leaves no namespace, veth or table at all.
  expect(await d.stop()).toBe(0);
  expect(slotNamespaces()).toEqual([]);
  expect(hostVeths(hostNetns)).toEqual([]);
  expect(nftTables(hostNetns)).not.toMatch(/vmm/);
}

describe.skipIf(process.getuid?.() !== 0)(
  "daemon restart re-adopts live sandboxes (fc-sim, tap networking in test namespaces)",
  () => {
    const cleanups: (() => void)[] = [];
    afterAll(() => {
      // Whatever happened: no process, namespace or directory of this suite survives it.
      for (const c of cleanups.reverse()) c();
      for (const n of netnsNames()) spawnSync("ip", ["netns", "del", n]);
      expect(netnsNames()).toEqual([]);
    });
    /** Kills every process using `dir` and removes it (the suite's last resort). */
    const cleanupDir = (dir: string) => () => {
      for (const pid of processesMatching(dir)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    };

    it("after a SIGKILL of the daemon, a new daemon re-adopts 20 live sandboxes: listed, Run, Checkpoint, exit watch, Remove frees everything", async () => {
      const hostNetns = makeHostNetns();
      const d1 = await startSimDaemon({ sections: sections(hostNetns), env });
      cleanups.push(cleanupDir(d1.dir));
      const ids = Array.from({ length: 20 }, (_, i) => `rs-${i}`);
      await Promise.all(ids.map((id) => d1.sandboxes.create({ id, labels: { n: id } })));
      await d1.sandboxes.create({ id: "rs-failed", ttlSeconds: 3600 });
      await waitAllReady(d1, [...ids, "rs-failed"]);
      // One sandbox fails before the restart (its Firecracker killed underneath).
      process.kill(Number((await d1.sandboxes.inspect({ id: "rs-failed" })).pid), "SIGKILL");
      await waitForState(d1, "rs-failed", "failed", 5000);
      const before = new Map(
        await Promise.all(ids.map(async (id) => [id, await d1.sandboxes.inspect({ id })] as const)),
      );
      const pids = ids.map((id) => Number(before.get(id)!.pid));

      await killDaemon(d1);
      expect(pids.filter((p) => !pidAlive(p))).toEqual([]);

      const d2 = await startSimDaemon({ sections: sections(hostNetns), env, reuseDir: d1.dir });
      const list = (await d2.sandboxes.list({})).sandboxes;
      expect(list.map((s) => s.id).sort()).toEqual([...ids, "rs-failed"].sort());
      for (const id of ids) {
        const info = await d2.sandboxes.inspect({ id });
        const old = before.get(id)!;
        expect(info).toMatchObject({
          state: "ready",
          pid: old.pid,
          createdAt: old.createdAt,
          readyAt: old.readyAt,
          labels: { n: id },
          error: "",
        });
        expect(info.network?.ipAddress).toBe(old.network?.ipAddress);
        expect(info.network?.netns).toBe(old.network?.netns);
      }
      const failed = await d2.sandboxes.inspect({ id: "rs-failed" });
      expect(failed.state).toBe("failed");
      expect(failed.error).toMatch(/firecracker killed by SIGKILL/);

      // Run works in each re-adopted sandbox (the agent is re-dialed).
      for (const id of ids)
        await expect(runEcho(d2, id)).resolves.toEqual({
          out: `hello-${id}\n`,
          exit: 0,
        });
      // Checkpoint works on one.
      const cp = await d2.snapshots.checkpoint({ sandboxId: "rs-0", name: "after-restart" });
      expect(cp.snapshotId).not.toBe("");
      await d2.snapshots.deleteSnapshot({ snapshotId: cp.snapshotId });
      // Its exit watch is armed: a killed Firecracker is `failed`, with its event, within 1 s.
      const sub = await subscribe(d2, { id: "rs-1" });
      const killedAt = Date.now();
      process.kill(pids[1]!, "SIGKILL");
      await sub.waitFor((a) => a.includes("failed"), 1000);
      expect(Date.now() - killedAt).toBeLessThan(1000);
      sub.close();
      const dead = await d2.sandboxes.inspect({ id: "rs-1" });
      expect(dead.state).toBe("failed");
      expect(dead.network).toBeUndefined();

      await removeAllAndCheck(d2, hostNetns, [...ids, "rs-failed"], pids);
      spawnSync("ip", ["netns", "del", hostNetns]);
    }, 300_000);

    it("a sandbox whose Firecracker died while the daemon was down is failed and listed; failed records survive a second restart", async () => {
      const hostNetns = makeHostNetns();
      const d1 = await startSimDaemon({ sections: sections(hostNetns), env });
      cleanups.push(cleanupDir(d1.dir));
      await d1.sandboxes.create({ id: "down-live" });
      await d1.sandboxes.create({ id: "down-dead" });
      await waitAllReady(d1, ["down-live", "down-dead"]);
      const live = await d1.sandboxes.inspect({ id: "down-live" });
      const dead = await d1.sandboxes.inspect({ id: "down-dead" });
      await killDaemon(d1);
      process.kill(Number(dead.pid), "SIGKILL");
      await eventually(() => !pidAlive(Number(dead.pid)));

      const d2 = await startSimDaemon({ sections: sections(hostNetns), env, reuseDir: d1.dir });
      expect(await d2.sandboxes.inspect({ id: "down-live" })).toMatchObject({ state: "ready" });
      const info = await d2.sandboxes.inspect({ id: "down-dead" });
      expect(info.state).toBe("failed");
      expect(info.error).toMatch(/exited while the daemon was down/);
      expect(info.network).toBeUndefined();
      // Its namespace was deleted at startup (the pool may re-create one under that name, and
      // a freed namespace inode is soon reused, so the daemon's report is the evidence).
      const recovered = d2
        .stderr()
        .split("\n")
        .find((l) => l.includes('"msg":"network recovered"'));
      expect(JSON.parse(recovered ?? "{}").removedNamespaces).toContain(dead.network!.netns);

      await killDaemon(d2);
      const d3 = await startSimDaemon({ sections: sections(hostNetns), env, reuseDir: d1.dir });
      expect(await d3.sandboxes.inspect({ id: "down-dead" })).toMatchObject({
        state: "failed",
        error: info.error,
      });
      expect(await runEcho(d3, "down-live")).toEqual({ out: "hello-down-live\n", exit: 0 });
      await removeAllAndCheck(d3, hostNetns, ["down-live", "down-dead"], [Number(live.pid)]);
      spawnSync("ip", ["netns", "del", hostNetns]);
    }, 300_000);

    it("a paused sandbox keeps its namespace and address across a daemon SIGKILL, resumes there, and Remove frees its slot", async () => {
      const hostNetns = makeHostNetns();
      const d1 = await startSimDaemon({ sections: sections(hostNetns), env });
      cleanups.push(cleanupDir(d1.dir));
      await d1.sandboxes.create({ id: "rp-1", labels: {} });
      await waitAllReady(d1, ["rp-1"]);
      const before = await d1.sandboxes.inspect({ id: "rp-1" });
      const netns = before.network?.netns ?? "";
      expect(netns.startsWith(prefix)).toBe(true);
      const paused = await d1.sandboxes.pause({ id: "rp-1" });
      expect(paused.network).toEqual(before.network);
      expect(pidAlive(Number(before.pid))).toBe(false);
      expect(slotNamespaces()).toContain(netns);
      await killDaemon(d1);
      const d2 = await startSimDaemon({ sections: sections(hostNetns), env, reuseDir: d1.dir });
      const after = await d2.sandboxes.inspect({ id: "rp-1" });
      expect(after).toMatchObject({ state: "paused", network: before.network });
      const resumed = await d2.sandboxes.resume({ id: "rp-1" });
      expect(resumed).toMatchObject({ state: "ready", network: before.network });
      expect(await runEcho(d2, "rp-1")).toEqual({ out: "hello-rp-1\n", exit: 0 });
      await removeAllAndCheck(d2, hostNetns, ["rp-1"], [Number(resumed.pid)]);
    }, 300_000);

    it('with on_shutdown = "keep", a clean stop leaves sandboxes running and the next daemon re-adopts them', async () => {
      const hostNetns = makeHostNetns();
      const keep = sections(hostNetns, '[daemon]\non_shutdown = "keep"');
      const d1 = await startSimDaemon({ sections: keep, env });
      cleanups.push(cleanupDir(d1.dir));
      const ids = ["keep-0", "keep-1", "keep-2"];
      await Promise.all(ids.map((id) => d1.sandboxes.create({ id })));
      await waitAllReady(d1, ids);
      await d1.sandboxes.stop({ id: "keep-2", timeoutSeconds: 0 });
      await waitForState(d1, "keep-2", "stopped");
      const pids = await Promise.all(
        ids.slice(0, 2).map(async (id) => Number((await d1.sandboxes.inspect({ id })).pid)),
      );
      expect(await d1.stop()).toBe(0);
      expect(pids.filter((p) => !pidAlive(p))).toEqual([]);

      const d2 = await startSimDaemon({ sections: sections(hostNetns), env, reuseDir: d1.dir });
      expect((await d2.sandboxes.list({})).sandboxes.map((s) => [s.id, s.state]).sort()).toEqual([
        ["keep-0", "ready"],
        ["keep-1", "ready"],
        ["keep-2", "stopped"],
      ]);
      for (const id of ids.slice(0, 2))
        expect(await runEcho(d2, id)).toEqual({ out: `hello-${id}\n`, exit: 0 });
      await removeAllAndCheck(d2, hostNetns, ids, pids);
      spawnSync("ip", ["netns", "del", hostNetns]);
    }, 300_000);
  },
);

import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAEMON_BIN } from "./daemon-process.js";
import {
  FC_SIM_BIN,
  IMAGES_DIR,
  leftovers,
  processesMatching,
  type SimDaemon,
  startSimDaemon,
  waitForState,
} from "./sim-daemon.js";
import { links, netnsNames, nftTables, testNetns } from "./test-netns.js";

// Everything this file creates is named after a random tag (see testNetns).
const { tag, prefix, octet, ours, makeHostNetns } = testNetns("vt");

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" });
/** The nsfs inode of a named namespace (its identity), or undefined when it is gone. */
const netnsInode = (name: string) => {
  try {
    return statSync(`/run/netns/${name}`).ino;
  } catch {
    return undefined;
  }
};
const allNetnsInodes = () => new Set(netnsNames().map(netnsInode));

function networkSection(hostNetns: string, cidr: string, extra = "", poolSize = 2): string {
  return [
    "[network]",
    'mode = "tap"',
    `host_cidr = "${cidr}"`,
    `netns_prefix = "${prefix}"`,
    `host_netns = "${hostNetns}"`,
    `pool_size = ${poolSize}`,
    extra,
  ].join("\n");
}

async function expectCode(p: Promise<unknown>, code: Code): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(err, `expected ${Code[code]}`).toBeInstanceOf(ConnectError);
  expect(Code[err!.code]).toBe(Code[code]);
  return err!;
}

/** Polls `f` until it returns true (or `ms` pass); returns its last value. */
async function eventually(f: () => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Our host veth ends in `hostNetns` by name, with their ifindex (a re-created link gets a new one). */
const vethIfindexes = (hostNetns: string) =>
  new Map(
    (JSON.parse(sh("ip", ["-n", hostNetns, "-j", "link"])) as { ifname: string; ifindex: number }[])
      .filter((l) => l.ifname.startsWith(prefix))
      .map((l) => [l.ifname, l.ifindex]),
  );
/** Live processes ("pid cmdline") whose network namespace has one of `inodes`. */
function processesInNetns(inodes: ReadonlySet<number | undefined>): string[] {
  const found: string[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (inodes.has(statSync(`/proc/${e}/ns/net`).ino))
        found.push(`${e} ${readFileSync(`/proc/${e}/cmdline`, "utf8").replaceAll("\0", " ")}`);
    } catch {
      // Gone meanwhile, or a kernel thread.
    }
  }
  return found;
}

/** Polls List (gently: 50 node guests share 2 cores) until every one of `ids` is ready. */
async function waitAllReady(d: SimDaemon, ids: readonly string[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const states = new Map((await d.sandboxes.list({})).sandboxes.map((s) => [s.id, s.state]));
    const notReady = ids.filter((id) => states.get(id) !== "ready");
    if (notReady.length === 0) return;
    const failed = notReady.filter((id) => states.get(id) === "failed");
    if (failed.length > 0 || Date.now() > deadline) {
      const why = await Promise.all(
        (failed.length > 0 ? failed : notReady)
          .slice(0, 5)
          .map(async (id) => `${id}: ${(await d.sandboxes.inspect({ id })).error}`),
      );
      throw new Error(`${notReady.length} not ready (${why.join("; ")})`);
    }
    await sleep(250);
  }
}

/**
 * After every sandbox is removed only the idle pool may remain: exactly
 * `poolSize` slot namespaces, each with its host veth end and nothing else.
 * Waits for the pool to settle (refills run in the background).
 */
async function onlyThePoolRemains(
  hostNetns: string,
  poolSize: number,
): Promise<{ veths: Map<string, number>; inodes: Set<number | undefined> }> {
  const state = () => {
    const slots = netnsNames().filter((n) => n.startsWith(prefix));
    const veths = vethIfindexes(hostNetns);
    return { slots, veths };
  };
  // Settled = the idle state held for 300 ms (a slot's setup commands run one
  // after another, with short gaps in which nothing runs in its namespace).
  let since: number | undefined;
  await eventually(() => {
    const { slots, veths } = state();
    const idle =
      slots.length === poolSize &&
      veths.size === poolSize &&
      processesInNetns(new Set(slots.map(netnsInode))).length === 0;
    since = idle ? (since ?? Date.now()) : undefined;
    return since !== undefined && Date.now() - since >= 300;
  }, 10_000);
  const { slots, veths } = state();
  expect(slots).toHaveLength(poolSize);
  expect([...veths.keys()].sort()).toEqual(
    slots.map((n) => `${prefix}h${n.slice(prefix.length)}`).sort(),
  );
  // An idle slot runs nothing.
  const inodes = new Set(slots.map(netnsInode));
  expect(processesInNetns(inodes)).toEqual([]);
  return { veths, inodes };
}

/**
 * Processes still in one of the (removed) sandbox namespaces `nsInodes`. A
 * live namespace keeps its inode number, but a freed one may be reused by a
 * pool namespace created since: those (`poolInodes`) are not sandboxes'.
 */
const processesInRemoved = (
  nsInodes: ReadonlySet<number | undefined>,
  poolInodes: ReadonlySet<number | undefined>,
) => processesInNetns(new Set([...nsInodes].filter((i) => !poolInodes.has(i))));

/** Lines the daemon logged at level error or fatal (e.g. a slot whose release failed). */
const loggedErrors = (d: SimDaemon) =>
  d
    .stderr()
    .split("\n")
    .filter((l) => /"level":(50|60)/.test(l));

/** Stops the daemon (which tears its network down), then checks nothing of it is left. */
async function stopAndCheckClean(d: SimDaemon, hostNetns: string): Promise<void> {
  const code = await d.stop();
  expect(code).toBe(0);
  expect(netnsNames().filter((n) => n.startsWith(prefix))).toEqual([]);
  expect(links(hostNetns).filter((n) => n.startsWith(tag))).toEqual([]);
  expect(nftTables(hostNetns)).not.toMatch(/vmm/);
  expect(links().filter((n) => n.startsWith(tag))).toEqual([]);
}

describe.skipIf(process.getuid?.() !== 0)(
  "tap networking with fc-sim (host side in a test namespace)",
  () => {
    afterAll(() => {
      // Whatever happened: no namespace or link of ours may survive the suite.
      for (const n of ours()) spawnSync("ip", ["netns", "del", n]);
      for (const l of links().filter((n) => n.startsWith(tag))) spawnSync("ip", ["link", "del", l]);
      expect(ours()).toEqual([]);
    });

    describe("one daemon, a /24", () => {
      let d: SimDaemon;
      let hostNetns: string;
      beforeAll(async () => {
        hostNetns = makeHostNetns();
        d = await startSimDaemon({
          sections: networkSection(hostNetns, `10.231.${octet}.0/24`),
        });
      });
      afterAll(async () => {
        await d?.[Symbol.asyncDispose]();
        spawnSync("ip", ["netns", "del", hostNetns]);
      });

      it("gives a sandbox an address at once, a namespace with its TAP, and runs Firecracker in it", async () => {
        const id = "net-1";
        const created = await d.sandboxes.create({ id });
        expect(created.state).toBe("starting");
        expect(created.ipAddress).toMatch(new RegExp(`^10\\.231\\.${octet}\\.\\d+$`));
        const early = await d.sandboxes.inspect({ id });
        expect(early.network?.ipAddress).toBe(created.ipAddress);

        const info = await waitForState(d, id, "ready");
        const net = info.network!;
        expect(net.ipAddress).toBe(created.ipAddress);
        expect(net.gateway).toBe("172.16.0.1");
        expect(net.guestIp).toBe("172.16.0.2");
        expect(net.tapName).not.toBe("");
        expect(net.netns).toMatch(new RegExp(`^${prefix}\\d+$`));
        const summary = (await d.sandboxes.list({})).sandboxes.find((s) => s.id === id);
        expect(summary?.ipAddress).toBe(created.ipAddress);

        // The slot namespace holds the TAP (as reported) and the sandbox IP on veth0.
        expect(netnsNames()).toContain(net.netns);
        expect(links(net.netns)).toContain(net.tapName);
        const addrs = sh("ip", ["-n", net.netns, "-o", "-4", "addr"]);
        expect(addrs).toMatch(new RegExp(`${net.tapName}\\s+inet 172\\.16\\.0\\.1/30`));
        expect(addrs).toContain(`inet ${net.ipAddress}/30`);
        // The host end lives in our host namespace, not in the root namespace.
        const index = net.netns.slice(prefix.length);
        expect(links(hostNetns)).toContain(`${prefix}h${index}`);
        expect(links()).not.toContain(`${prefix}h${index}`);
        // Firecracker runs inside the slot namespace (it must, to open the TAP) ...
        const pid = Number(info.pid);
        expect(statSync(`/proc/${pid}/ns/net`).ino).toBe(netnsInode(net.netns));
        // ... and the guest got its address on the kernel command line.
        const agents = processesMatching(`/tmp/fcsim-${pid}`);
        expect(agents.length).toBeGreaterThan(0);
        const cmdline = readFileSync(`/proc/${agents[0]}/cmdline`, "utf8");
        expect(cmdline).toContain("ip=172.16.0.2::172.16.0.1:255.255.255.252");

        // Ports: this daemon runs outside its host_netns, so it cannot dial sandbox IPs, and says so.
        const noPorts = await expectCode(
          d.sandboxes.exposePort({ id, guestPort: 80 }),
          Code.FailedPrecondition,
        );
        expect(noPorts.rawMessage).toContain("network.host_netns");

        // Remove releases the slot: that namespace and the host veth end are gone.
        const nsIno = netnsInode(net.netns);
        const vethIndex = sh("ip", ["-n", hostNetns, "-j", "link", "show", `${prefix}h${index}`]);
        const ifindex = (JSON.parse(vethIndex) as { ifindex: number }[])[0]?.ifindex;
        await d.sandboxes.remove({ id });
        expect(allNetnsInodes().has(nsIno)).toBe(false);
        const veth = spawnSync(
          "ip",
          ["-n", hostNetns, "-j", "link", "show", `${prefix}h${index}`],
          {
            encoding: "utf8",
          },
        );
        // The pool may refill the same index at once; then it is a new link.
        if (veth.status === 0) {
          expect((JSON.parse(veth.stdout) as { ifindex: number }[])[0]?.ifindex).not.toBe(ifindex);
        }
        expect(leftovers(d, [id], [pid])).toEqual([]);
      });

      it("gives two sandboxes distinct addresses and namespaces; mode none works alongside", async () => {
        const ids = ["net-a", "net-b", "net-none"];
        try {
          const a = await d.sandboxes.create({ id: "net-a" });
          const b = await d.sandboxes.create({ id: "net-b" });
          const none = await d.sandboxes.create({ id: "net-none", network: { mode: "none" } });
          expect(a.ipAddress).not.toBe("");
          expect(b.ipAddress).not.toBe("");
          expect(a.ipAddress).not.toBe(b.ipAddress);
          expect(none.ipAddress).toBe("");
          const [ia, ib, inone] = await Promise.all(ids.map((id) => waitForState(d, id, "ready")));
          expect(ia!.network!.netns).not.toBe(ib!.network!.netns);
          expect(inone!.network).toBeUndefined();
          // The NIC-less sandbox's Firecracker stays in the daemon's namespace.
          expect(statSync(`/proc/${Number(inone!.pid)}/ns/net`).ino).toBe(
            statSync(`/proc/${d.child.pid}/ns/net`).ino,
          );
          let exit = -1;
          for await (const o of d.sandboxes.run({ id: "net-none", cmd: ["true"] }))
            if (o.done) exit = o.exitCode;
          expect(exit).toBe(0);
        } finally {
          await Promise.all(
            ids.map((id) => d.sandboxes.remove({ id, force: true }).catch(() => {})),
          );
        }
        expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
      });

      it("releases the slot of a sandbox whose Firecracker dies underneath", async () => {
        const id = "net-kill";
        try {
          await d.sandboxes.create({ id });
          const info = await waitForState(d, id, "ready");
          const nsIno = netnsInode(info.network!.netns);
          expect(nsIno).toBeDefined();
          process.kill(Number(info.pid), "SIGKILL");
          const failed = await waitForState(d, id, "failed", 3000);
          expect(failed.network).toBeUndefined();
          expect(await eventually(() => !allNetnsInodes().has(nsIno))).toBe(true);
        } finally {
          await d.sandboxes.remove({ id, force: true }).catch(() => {});
        }
      });

      it("leaves no namespace, veth or nft table once the daemon stops", async () => {
        expect(nftTables(hostNetns)).toMatch(/inet vmm/); // it was there while serving
        await stopAndCheckClean(d, hostNetns);
      });
    });

    it("fails the third Create on a /29 (2 slots) with RESOURCE_EXHAUSTED naming the network", async () => {
      const hostNetns = makeHostNetns();
      const d = await startSimDaemon({
        sections: networkSection(hostNetns, `10.231.${octet}.8/29`),
      });
      try {
        const a = await d.sandboxes.create({ id: "ex-1" });
        const b = await d.sandboxes.create({ id: "ex-2" });
        expect(a.ipAddress).not.toBe(b.ipAddress);
        const err = await expectCode(d.sandboxes.create({ id: "ex-3" }), Code.ResourceExhausted);
        expect(err.rawMessage).toMatch(/network/);
        expect(err.rawMessage).toContain("host_cidr");
        await expect(d.sandboxes.inspect({ id: "ex-3" })).rejects.toThrow(/not found/i);
        // A NIC-less sandbox needs no slot.
        const none = await d.sandboxes.create({ id: "ex-none", network: { mode: "none" } });
        expect(none.ipAddress).toBe("");
        await waitForState(d, "ex-1", "ready");
        // Releasing one slot makes room again.
        await d.sandboxes.remove({ id: "ex-1", force: true });
        const c = await d.sandboxes.create({ id: "ex-3" });
        expect(c.ipAddress).not.toBe("");
        await waitForState(d, "ex-3", "ready");
        for (const id of ["ex-2", "ex-3", "ex-none"]) await d.sandboxes.remove({ id, force: true });
        await stopAndCheckClean(d, hostNetns);
      } finally {
        await d[Symbol.asyncDispose]();
        spawnSync("ip", ["netns", "del", hostNetns]);
      }
    });

    it("prints the network commands with --check-config --dry-run and creates nothing", () => {
      const hostNetns = makeHostNetns();
      const dir = mkdtempSync(join(tmpdir(), "vmmd-dry-"));
      try {
        const config = join(dir, "vmm.toml");
        writeFileSync(
          config,
          [
            "[grpc]",
            `unix_socket = "${join(dir, "vmm.sock")}"`,
            "[firecracker]",
            `binary = "${FC_SIM_BIN}"`,
            `data_dir = "${join(dir, "d")}"`,
            "[storage]",
            `images_dir = "${IMAGES_DIR}"`,
            networkSection(hostNetns, `10.231.${octet}.0/24`),
          ].join("\n"),
        );
        // Only our own names: other work on the machine may add or remove its own meanwhile.
        const ours = (names: string[]) => names.filter((n) => n.startsWith(prefix)).sort();
        const beforeNs = ours(netnsNames());
        const beforeLinks = links(hostNetns).sort();
        const beforeRootLinks = ours(links());
        const out = execFileSync(
          process.execPath,
          [DAEMON_BIN, "--config", config, "--check-config", "--dry-run"],
          { encoding: "utf8" },
        );
        expect(out).toMatch(/nft -f -/);
        expect(out).toContain(`ip netns add ${prefix}0`);
        expect(out).toContain(`link add ${prefix}h0 type veth peer name veth0 netns ${prefix}0`);
        expect(out).toContain(`ip -n ${hostNetns}`);
        expect(out).toContain("table inet vmm");
        expect(out).toContain("tuntap add tap0 mode tap");
        expect(ours(netnsNames())).toEqual(beforeNs);
        expect(links(hostNetns).sort()).toEqual(beforeLinks);
        expect(ours(links())).toEqual(beforeRootLinks);
        expect(nftTables(hostNetns)).not.toMatch(/vmm/);
        expect(existsSync(join(dir, "vmm.sock"))).toBe(false);
        expect(existsSync(join(dir, "d"))).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
        spawnSync("ip", ["netns", "del", hostNetns]);
      }
    });

    // fc-sim and its guest agent are Node processes: dozens starting at once on
    // 2 cores take seconds, hence the long start and boot timeouts.
    const manySections = (hostNetns: string, cidr: string) =>
      [
        networkSection(hostNetns, cidr, "", 8),
        "[limits]",
        "max_concurrent_creates = 64",
        "[agent]",
        "boot_timeout_ms = 60000",
      ].join("\n");
    const manyEnv = { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" };

    it("creates 50 tap sandboxes concurrently, each in its own namespace, and removes them leaving nothing", async () => {
      const hostNetns = makeHostNetns();
      // A /24 holds 64 slots: 50 sandboxes plus the pool of 8 fit.
      const net = `10.232.${octet}`;
      const d = await startSimDaemon({
        sections: manySections(hostNetns, `${net}.0/24`),
        env: manyEnv,
      });
      const ids = Array.from({ length: 50 }, (_, i) => `many-${i}`);
      try {
        const created = await Promise.all(ids.map((id) => d.sandboxes.create({ id })));
        const ips = created.map((c) => c.ipAddress);
        for (const ip of ips)
          expect(ip).toMatch(new RegExp(`^${net.replaceAll(".", "\\.")}\\.\\d+$`));
        expect(new Set(ips).size).toBe(50);

        await waitAllReady(d, ids, 35_000);
        const infos = await Promise.all(ids.map((id) => d.sandboxes.inspect({ id })));
        expect(infos.map((i) => i.network?.ipAddress)).toEqual(ips);
        const namespaces = infos.map((i) => i.network!.netns);
        expect(new Set(namespaces).size).toBe(50);
        const veths = vethIfindexes(hostNetns);
        const sandboxVeths = new Map<string, number>();
        for (const info of infos) {
          const { netns, tapName } = info.network!;
          expect(netns).toMatch(new RegExp(`^${prefix}\\d+$`));
          expect(links(netns)).toContain(tapName);
          expect(statSync(`/proc/${Number(info.pid)}/ns/net`).ino).toBe(netnsInode(netns));
          const veth = `${prefix}h${netns.slice(prefix.length)}`;
          expect(veths.has(veth)).toBe(true);
          sandboxVeths.set(veth, veths.get(veth)!);
        }
        const pids = infos.map((i) => Number(i.pid));
        expect(new Set(pids).size).toBe(50);
        const nsInodes = new Set(namespaces.map(netnsInode));
        expect(nsInodes.size).toBe(50);

        await Promise.all(ids.map((id) => d.sandboxes.remove({ id })));
        expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
        expect(leftovers(d, ids, pids)).toEqual([]);
        expect(readdirSync(join(d.dataDir, "sandboxes")).filter((n) => !n.startsWith("."))).toEqual(
          [],
        );
        // Of our slots only the idle pool remains, with new host links (not a
        // sandbox's old one), and no process is left in a sandbox's namespace.
        const pool = await onlyThePoolRemains(hostNetns, 8);
        for (const [name, ifindex] of pool.veths) expect(sandboxVeths.get(name)).not.toBe(ifindex);
        expect(processesInRemoved(nsInodes, pool.inodes)).toEqual([]);
        expect(nftTables(hostNetns)).toMatch(/inet vmm/);
        expect(loggedErrors(d)).toEqual([]);
        await stopAndCheckClean(d, hostNetns);
      } finally {
        await Promise.all(ids.map((id) => d.sandboxes.remove({ id, force: true }).catch(() => {})));
        await d[Symbol.asyncDispose]();
        spawnSync("ip", ["netns", "del", hostNetns]);
      }
    }, 120_000); // ~22 s alone; fifty fc-sim Node processes on two busy cores take longer

    it("restores 20 clones of one tap snapshot concurrently: 20 addresses, 20 namespaces, each answering", async () => {
      const hostNetns = makeHostNetns();
      const net = `10.233.${octet}`;
      const d = await startSimDaemon({
        sections: manySections(hostNetns, `${net}.0/24`),
        env: manyEnv,
      });
      const ids = Array.from({ length: 20 }, (_, i) => `clone-${i}`);
      let snapshotId = "";
      try {
        const origin = await d.sandboxes.create({ id: "fan-origin" });
        await waitForState(d, "fan-origin", "ready");
        const cp = await d.snapshots.checkpoint({ sandboxId: "fan-origin", name: "net-fan" });
        snapshotId = cp.snapshotId;
        await d.sandboxes.remove({ id: "fan-origin" });

        const restored = await Promise.all(
          ids.map((id) => d.snapshots.restore({ snapshotId: cp.snapshotId, id })),
        );
        expect(restored.map((r) => r.id)).toEqual(ids);
        const ips = restored.map((r) => r.ipAddress);
        for (const ip of ips)
          expect(ip).toMatch(new RegExp(`^${net.replaceAll(".", "\\.")}\\.\\d+$`));
        expect(new Set(ips).size).toBe(20);
        // The origin's address went back to the pool; a clone may get it again.
        expect(origin.ipAddress).not.toBe("");

        const infos = await Promise.all(ids.map((id) => d.sandboxes.inspect({ id })));
        expect(infos.map((i) => i.state)).toEqual(ids.map(() => "ready"));
        expect(infos.map((i) => i.network?.ipAddress)).toEqual(ips);
        const namespaces = infos.map((i) => i.network!.netns);
        expect(new Set(namespaces).size).toBe(20);
        const veths = vethIfindexes(hostNetns);
        const sandboxVeths = new Map<string, number>();
        for (const info of infos) {
          const { netns, tapName } = info.network!;
          expect(links(netns)).toContain(tapName);
          expect(statSync(`/proc/${Number(info.pid)}/ns/net`).ino).toBe(netnsInode(netns));
          const veth = `${prefix}h${netns.slice(prefix.length)}`;
          expect(veths.has(veth)).toBe(true);
          sandboxVeths.set(veth, veths.get(veth)!);
        }
        const pids = infos.map((i) => Number(i.pid));
        expect(new Set(pids).size).toBe(20);
        const nsInodes = new Set(namespaces.map(netnsInode));

        const outs = await Promise.all(
          ids.map(async (id) => {
            let out = "";
            let exit = -1;
            for await (const o of d.sandboxes.run({ id, cmd: ["echo", id] })) {
              if (o.done) exit = o.exitCode;
              else out += Buffer.from(o.data).toString();
            }
            return `${exit}:${out.trim()}`;
          }),
        );
        expect(outs).toEqual(ids.map((id) => `0:${id}`));

        await Promise.all(ids.map((id) => d.sandboxes.remove({ id })));
        expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
        expect(leftovers(d, [...ids, "fan-origin"], pids)).toEqual([]);
        const pool = await onlyThePoolRemains(hostNetns, 8);
        for (const [name, ifindex] of pool.veths) expect(sandboxVeths.get(name)).not.toBe(ifindex);
        expect(processesInRemoved(nsInodes, pool.inodes)).toEqual([]);
        await d.snapshots.deleteSnapshot({ snapshotId });
        expect(existsSync(cp.snapshotDir)).toBe(false);
        snapshotId = "";
        expect(loggedErrors(d)).toEqual([]);
        await stopAndCheckClean(d, hostNetns);
      } finally {
        await Promise.all(
          [...ids, "fan-origin"].map((id) =>
            d.sandboxes.remove({ id, force: true }).catch(() => {}),
          ),
        );
        if (snapshotId) await d.snapshots.deleteSnapshot({ snapshotId }).catch(() => {});
        await d[Symbol.asyncDispose]();
        spawnSync("ip", ["netns", "del", hostNetns]);
      }
    }, 120_000);

    it("leaves no namespace of this suite behind", async () => {
      expect(await eventually(() => ours().length === 0)).toBe(true);
    });
  },
);

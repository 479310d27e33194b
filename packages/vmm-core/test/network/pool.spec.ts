import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FailedPreconditionError, ResourceExhaustedError } from "../../src/errors.js";
import {
  createDryRunCommandRunner,
  createExecCommandRunner,
  createNetworkManager,
  createRecordingCommandRunner,
  type NetworkManager,
  type TapSlot,
} from "../../src/network/index.js";
import {
  createTestHost,
  listLinks,
  listNetns,
  listTables,
  sh,
  type TestHost,
} from "./netns-fixture.js";

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)("network pool (in a private host namespace)", () => {
  let host: TestHost;
  let managers: NetworkManager[];

  beforeEach(async () => {
    host = await createTestHost();
    managers = [];
  });

  afterEach(async () => {
    try {
      for (const m of managers) await m.close();
    } finally {
      await host.dispose();
    }
    expect(await host.leftovers()).toEqual([]);
  });

  function manager(options: Parameters<typeof createNetworkManager>[0] = {}): NetworkManager {
    const m = createNetworkManager({
      hostNetns: host.hostNetns,
      namePrefix: host.prefix,
      hostCidr: "10.200.0.0/24",
      poolSize: 2,
      ...options,
    });
    managers.push(m);
    return m;
  }

  async function ours(): Promise<string[]> {
    const re = new RegExp(`^${host.prefix}[0-9]+$`);
    return (await listNetns()).filter((n) => re.test(n)).sort();
  }

  async function hostVeths(): Promise<string[]> {
    return (await listLinks(host.hostNetns)).filter((n) => n.startsWith(`${host.prefix}h`)).sort();
  }

  async function poolSettles(expected: number): Promise<void> {
    await expect.poll(ours, { timeout: 15_000, interval: 50 }).toHaveLength(expected);
  }

  it("builds the pool, hands out a wired slot, and close() leaves nothing", async () => {
    const recording = createRecordingCommandRunner(createExecCommandRunner());
    const m = manager({ runner: recording, maxParallelSetups: 1 }); // slots become ready in order
    await expect(m.acquire()).rejects.toBeInstanceOf(FailedPreconditionError);
    const report = await m.recover([]);
    expect(report).toMatchObject({ kept: [], removedNamespaces: [], replacedHostTable: false });
    await poolSettles(2);
    expect(await listTables(host.hostNetns)).toEqual(["table inet vmm"]);

    const commandsBefore = recording.commands.length;
    const started = performance.now();
    const slot = (await m.acquire()) as TapSlot;
    expect(performance.now() - started).toBeLessThan(20); // typically well under 1 ms
    expect(recording.commands.length).toBe(commandsBefore); // no command on the acquire path
    expect(slot).toMatchObject({
      mode: "tap",
      index: 0,
      netns: `${host.prefix}0`,
      netnsPath: `/run/netns/${host.prefix}0`,
      tapName: "tap0",
      guestIp: "172.16.0.2",
      gatewayIp: "172.16.0.1",
      hostIp: "10.200.0.2",
      vethHostIp: "10.200.0.1",
      vethHost: `${host.prefix}h0`,
      vethNs: "veth0",
    });
    expect(slot.kernelIpArg()).toBe("ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off");
    const inside = await listLinks(slot.netns);
    expect(inside).toEqual(expect.arrayContaining(["lo", "tap0", "veth0"]));
    const tap = await sh(["ip", "-n", slot.netns, "-d", "-j", "link", "show", "tap0"]);
    expect(tap).toContain('"tun"');
    // The NAT/filter table and the egress policy table (the default policy until one is applied).
    expect(await listTables(slot.netns)).toEqual(["table inet vmm", "table inet vmm_egress"]);
    expect(
      (await sh(["ip", "netns", "exec", slot.netns, "sysctl", "-n", "net.ipv4.ip_forward"])).trim(),
    ).toBe("1");
    await poolSettles(3); // refilled: 1 allocated + 2 ready

    await m.release(slot);
    await expect(m.release(slot)).rejects.toBeInstanceOf(FailedPreconditionError);
    await m.close();
    expect(await ours()).toEqual([]);
    expect(await hostVeths()).toEqual([]);
    expect(await listTables(host.hostNetns)).toEqual([]);
  });

  it("throws ResourceExhaustedError when every slot is in use", async () => {
    const m = manager({ hostCidr: "10.200.0.0/28", poolSize: 1 }); // 4 slots
    await m.recover([]);
    const slots = await Promise.all([m.acquire(), m.acquire(), m.acquire(), m.acquire()]);
    const err = await m.acquire().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResourceExhaustedError);
    expect((err as Error).message).toBe(
      "no free network slot: all 4 in use (network.host_cidr 10.200.0.0/28)",
    );
    const freed = slots[2] as TapSlot;
    await m.release(freed);
    const again = (await m.acquire()) as TapSlot; // the only free index
    expect(again.index).toBe(freed.index);
  });

  it("50 concurrent acquires get distinct slots; concurrent releases return them", async () => {
    const m = manager({ poolSize: 4, maxParallelSetups: 4 });
    await m.recover([]);
    const slots = (await Promise.all(Array.from({ length: 50 }, () => m.acquire()))) as TapSlot[];
    expect(new Set(slots.map((s) => s.index)).size).toBe(50);
    expect(new Set(slots.map((s) => s.hostIp)).size).toBe(50);
    await poolSettles(50 + 4); // 50 allocated + the pool refilled in the background
    await expect.poll(hostVeths, { timeout: 15_000, interval: 50 }).toHaveLength(54);
    await Promise.all(slots.map((s) => m.release(s)));
    await poolSettles(4);
    // and again, interleaved, with aborts mixed in
    const round = await Promise.allSettled(
      Array.from({ length: 50 }, async (_, i) => {
        const slot = await m.acquire(i % 10 === 0 ? AbortSignal.abort() : undefined);
        await m.release(slot);
        return slot;
      }),
    );
    expect(round.filter((r) => r.status === "fulfilled")).toHaveLength(45);
    await poolSettles(4);
  });

  it("recover() keeps live slots and removes every other leftover", async () => {
    const first = createNetworkManager({
      hostNetns: host.hostNetns,
      namePrefix: host.prefix,
      hostCidr: "10.200.0.0/24",
      poolSize: 3,
    });
    await first.recover([]);
    const a = (await first.acquire()) as TapSlot;
    const b = (await first.acquire()) as TapSlot;
    await poolSettles(5);
    await sh(["ip", "-n", a.netns, "tuntap", "add", "marker", "mode", "tap"]);
    // first "crashes": nothing closed. A new manager adopts slot b only.
    const second = manager({ poolSize: 1 });
    const report = await second.recover([b.index, 40]);
    expect(report.kept.map((s) => s.index)).toEqual([b.index]);
    expect(report.missing).toEqual([40]);
    expect(report.replacedHostTable).toBe(true);
    expect([...report.removedNamespaces].sort()).toEqual(
      [0, 1, 2, 3, 4]
        .filter((i) => i !== b.index)
        .map((i) => `${host.prefix}${i}`)
        .sort(),
    );
    expect(report.removedLinks).toHaveLength(4);
    expect(await listNetns()).toContain(b.netns);
    await poolSettles(2); // b + one ready, recreated under a free index
    for (const name of await ours()) expect(await listLinks(name)).not.toContain("marker");
    const next = (await second.acquire()) as TapSlot;
    expect(next.index).not.toBe(b.index);
    await second.release(report.kept[0]!);
    await second.close();
    expect(await ours()).toEqual([]);
    expect(await hostVeths()).toEqual([]);
  });

  it("dry-run prints the commands and runs none", async () => {
    const printed: string[] = [];
    const dry = createDryRunCommandRunner({ print: (t) => printed.push(t) });
    const m = manager({ runner: dry, poolSize: 2, hostNetns: `${host.prefix}absent` });
    await m.recover([]);
    const slot = (await m.acquire()) as TapSlot;
    await m.release(slot);
    await m.close();
    expect(await ours()).toEqual([]);
    expect(await listTables(host.hostNetns)).toEqual([]);
    expect(printed).toContain(`ip netns add ${host.prefix}0`);
    expect(printed.join("\n")).toContain(`ip netns exec ${host.prefix}absent nft -f - <<'EOF'`);
    expect(printed.join("\n")).toContain(`netns del ${host.prefix}0`);
    expect(dry.commands.filter((c) => c.readOnly === true).length).toBeGreaterThan(0);
    expect(m.describeCommands().slice(0, 1)[0]).toMatch(
      /^ip netns exec .* nft -f - <<'EOF'\ntable inet vmm\n/,
    );
  });

  it("every command goes through the runner", async () => {
    const recording = createRecordingCommandRunner(createExecCommandRunner({ timeoutMs: 10_000 }));
    const m = manager({ runner: recording, poolSize: 1 });
    await m.recover([]);
    await m.release(await m.acquire());
    await m.close();
    const programs = new Set(recording.commands.map((c) => c.argv[0]));
    expect(programs).toEqual(new Set(["ip"]));
    expect(recording.commands.some((c) => c.argv.includes("nft"))).toBe(true);
  });
});

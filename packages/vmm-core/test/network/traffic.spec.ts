/**
 * Real traffic through the slot rules. A TAP has no peer without a VM, so each
 * "guest" is a further namespace joined to the slot namespace by a veth pair
 * whose slot end is named like the TAP (tap0, 172.16.0.1/30) and whose guest
 * end holds 172.16.0.2 — the same addresses, names and therefore the same NAT
 * and filter rules a Firecracker guest goes through. An "outside" namespace
 * stands behind the host namespace's uplink.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createNetworkManager,
  DEFAULT_NETWORK_POLICY,
  type NetworkManager,
  type NetworkPolicy,
  resolveNetworkPolicy,
  type TapSlot,
} from "../../src/network/index.js";
import { createTestHost, probe, sh, type TestHost } from "./netns-fixture.js";

const isRoot = process.getuid?.() === 0;
const GUEST_PORT = 8080;
const HOST_PRIVATE_PORT = 9090;
const HOST_ALLOWED_PORT = 9091;
const OUTSIDE_PORT = 7070;
const METADATA_IP = "169.254.169.254";

/** Replaces the slot's TAP by a veth to a new "guest" namespace with the guest's address. */
async function attachGuest(host: TestHost, slot: TapSlot, suffix: string): Promise<string> {
  const guest = await host.addNetns(suffix);
  await sh(["ip", "-n", slot.netns, "link", "del", slot.tapName]);
  await sh(
    ["ip", "-n", slot.netns, "-batch", "-"],
    [
      `link add ${slot.tapName} type veth peer name eth0 netns ${guest}`,
      `addr add ${slot.gatewayIp}/${slot.prefixLength} dev ${slot.tapName}`,
      `link set ${slot.tapName} up`,
      "",
    ].join("\n"),
  );
  await sh(
    ["ip", "-n", guest, "-batch", "-"],
    [
      `addr add ${slot.guestIp}/${slot.prefixLength} dev eth0`,
      "link set eth0 up",
      `route add default via ${slot.gatewayIp}`,
      "",
    ].join("\n"),
  );
  return guest;
}

/** An "outside" namespace behind `up0` in the host namespace: 192.0.2.1 (host) ↔ 192.0.2.2, plus the metadata IP. */
async function attachOutside(host: TestHost): Promise<string> {
  const outside = await host.addNetns("out");
  await sh(
    ["ip", "-n", host.hostNetns, "-batch", "-"],
    [
      `link add up0 type veth peer name eth0 netns ${outside}`,
      "addr add 192.0.2.1/24 dev up0",
      "link set up0 up",
      `route add ${METADATA_IP}/32 via 192.0.2.2`,
      "",
    ].join("\n"),
  );
  await sh(
    ["ip", "-n", outside, "-batch", "-"],
    [
      "addr add 192.0.2.2/24 dev eth0",
      `addr add ${METADATA_IP}/32 dev lo`,
      "link set eth0 up",
      // Without masquerading, replies to sandbox addresses would still find their way back:
      // so a failed connection below is the host rules' doing, not a missing route.
      "route add 10.200.0.0/24 via 192.0.2.1",
      "",
    ].join("\n"),
  );
  await host.serve(outside, "0.0.0.0", OUTSIDE_PORT, "outside");
  await host.serve(outside, METADATA_IP, 80, "metadata");
  return outside;
}

/** How a connection from `netns` ends: `OK <first line>`, an errno code (ECONNREFUSED = reset), or TIMEOUT (3 s). */
async function connectOutcome(netns: string, host: string, port: number): Promise<string> {
  const script = `
const s = require("net").connect(Number(process.argv[2]), process.argv[1]);
const t = setTimeout(() => { console.log("TIMEOUT"); process.exit(0); }, 3000);
s.on("data", (d) => { clearTimeout(t); console.log("OK " + d.toString().trim()); s.destroy(); });
s.on("error", (e) => { clearTimeout(t); console.log(e.code); });`;
  const out = await sh([
    "ip",
    "netns",
    "exec",
    netns,
    process.execPath,
    "-e",
    script,
    host,
    String(port),
  ]);
  return out.trim();
}

describe.skipIf(!isRoot)("sandbox traffic with an uplink", () => {
  let host: TestHost;
  let network: NetworkManager;
  let a: TapSlot;
  let b: TapSlot;
  let guestA: string;

  beforeAll(async () => {
    host = await createTestHost();
    network = createNetworkManager({
      hostNetns: host.hostNetns,
      namePrefix: host.prefix,
      hostCidr: "10.200.0.0/24",
      poolSize: 2,
      uplink: "up0",
      allowHostServices: [{ protocol: "tcp", port: HOST_ALLOWED_PORT }],
    });
    await attachOutside(host);
    await network.recover([]);
    a = (await network.acquire()) as TapSlot;
    b = (await network.acquire()) as TapSlot;
    guestA = await attachGuest(host, a, "ga");
    const guestB = await attachGuest(host, b, "gb");
    await host.serve(guestA, "0.0.0.0", GUEST_PORT, "guest-a");
    await host.serve(guestB, "0.0.0.0", GUEST_PORT, "guest-b");
    await host.serve(host.hostNetns, "0.0.0.0", HOST_PRIVATE_PORT, "host-private");
    await host.serve(host.hostNetns, "0.0.0.0", HOST_ALLOWED_PORT, "host-allowed");
  });

  afterAll(async () => {
    try {
      await network?.close();
    } finally {
      await host?.dispose();
    }
    expect(await host.leftovers()).toEqual([]);
  });

  it("the host reaches each guest at its sandbox IP, with its own source address", async () => {
    expect(await probe(host.hostNetns, a.hostIp, GUEST_PORT)).toBe(`guest-a ${a.vethHostIp}`);
    expect(await probe(host.hostNetns, b.hostIp, GUEST_PORT)).toBe(`guest-b ${b.vethHostIp}`);
  });

  it("a guest cannot reach another sandbox, the host's services or the metadata IP: refused at once", async () => {
    // Sanity: the targets answer when asked from the host namespace itself.
    expect(await probe(host.hostNetns, "127.0.0.1", HOST_PRIVATE_PORT)).toMatch(/^host-private/);
    expect(await probe(host.hostNetns, METADATA_IP, 80)).toMatch(/^metadata/);
    // A reset, not a silent drop (connectOutcome would say TIMEOUT after 3 s).
    const [toB, toHostVeth, toHostUplink, toMetadata] = await Promise.all([
      connectOutcome(guestA, b.hostIp, GUEST_PORT),
      connectOutcome(guestA, a.vethHostIp, HOST_PRIVATE_PORT),
      connectOutcome(guestA, "192.0.2.1", HOST_PRIVATE_PORT),
      connectOutcome(guestA, METADATA_IP, 80),
    ]);
    expect({ toB, toHostVeth, toHostUplink, toMetadata }).toEqual({
      toB: "ECONNREFUSED",
      toHostVeth: "ECONNREFUSED",
      toHostUplink: "ECONNREFUSED",
      toMetadata: "ECONNREFUSED",
    });
  });

  it("a guest reaches an allow-listed host service", async () => {
    expect(await probe(guestA, a.vethHostIp, HOST_ALLOWED_PORT)).toBe(`host-allowed ${a.hostIp}`);
  });

  it("guest egress leaves through the uplink, masqueraded", async () => {
    expect(await probe(guestA, "192.0.2.2", OUTSIDE_PORT)).toBe("outside 192.0.2.1");
  });

  it("an egress policy holds a real guest's forwarded packets (tap0 → veth0): refused with a reset, replaced live", async () => {
    const apply = async (p: Partial<NetworkPolicy>) =>
      network.applyEgressPolicy(
        a,
        await resolveNetworkPolicy("p", { ...DEFAULT_NETWORK_POLICY, ...p }),
      );
    try {
      // Default policy: the metadata IP is refused at once (by the slot's egress chain).
      expect(await connectOutcome(guestA, METADATA_IP, 80)).toBe("ECONNREFUSED");
      await apply({ internet: false });
      expect(await connectOutcome(guestA, "192.0.2.2", OUTSIDE_PORT)).toBe("ECONNREFUSED");
      await apply({ internet: false, allowOut: ["192.0.2.2"] });
      expect(await connectOutcome(guestA, "192.0.2.2", OUTSIDE_PORT)).toBe("OK outside 192.0.2.1");
      await apply({ internet: true, denyOut: ["192.0.2.0/24"] });
      expect(await connectOutcome(guestA, "192.0.2.2", OUTSIDE_PORT)).toBe("ECONNREFUSED");
      // Ingress to the guest (replies leave tap0 → veth0 too) is never policed.
      expect(await probe(host.hostNetns, a.hostIp, GUEST_PORT)).toBe(`guest-a ${a.vethHostIp}`);
    } finally {
      await apply({});
    }
    expect(await connectOutcome(guestA, "192.0.2.2", OUTSIDE_PORT)).toBe("OK outside 192.0.2.1");
  });
});

describe.skipIf(!isRoot)("sandbox traffic without an uplink", () => {
  let host: TestHost;
  let network: NetworkManager;

  beforeAll(async () => {
    host = await createTestHost();
    network = createNetworkManager({
      hostNetns: host.hostNetns,
      namePrefix: host.prefix,
      hostCidr: "10.200.0.0/24",
      poolSize: 1,
    });
    await attachOutside(host);
    // Forwarding on, as on a real host: only vmm's rules stand in the way.
    await sh([
      "ip",
      "netns",
      "exec",
      host.hostNetns,
      "sysctl",
      "-q",
      "-w",
      "net.ipv4.ip_forward=1",
    ]);
    await network.recover([]);
  });

  afterAll(async () => {
    try {
      await network?.close();
    } finally {
      await host?.dispose();
    }
    expect(await host.leftovers()).toEqual([]);
  });

  it("guest egress is refused while ingress from the host still works", async () => {
    const slot = (await network.acquire()) as TapSlot;
    const guest = await attachGuest(host, slot, "g");
    await host.serve(guest, "0.0.0.0", GUEST_PORT, "guest");
    expect(await probe(host.hostNetns, slot.hostIp, GUEST_PORT)).toBe(`guest ${slot.vethHostIp}`);
    expect(await connectOutcome(guest, "192.0.2.2", OUTSIDE_PORT)).toBe("ECONNREFUSED");
    // The outside can reach the sandbox IP through the host (it routes 10.200.0.0/24 there) —
    // proof that the refusal above is the egress rule, not a missing path.
    const outside = `${host.prefix}out`;
    expect(await probe(outside, slot.hostIp, GUEST_PORT)).toBe("guest 192.0.2.2");
    await network.release(slot);
  });
});

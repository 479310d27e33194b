import { describe, expect, it } from "vitest";
import { parseIpv4Cidr } from "./ipv4.js";
import { kernelIpArg, type SlotLayout, slotAt } from "./slot.js";

const layout: SlotLayout = {
  hostCidr: parseIpv4Cidr("network.host_cidr", "10.200.0.0/16"),
  namePrefix: "vmm-",
  tapName: "tap0",
  guestDevice: "eth0",
  dnsServers: [],
};

describe("slotAt", () => {
  it("gives slot i the i-th /30 of the host CIDR and fixed guest addresses", () => {
    expect(slotAt(layout, 0)).toMatchObject({
      netns: "vmm-0",
      netnsPath: "/run/netns/vmm-0",
      vethHost: "vmm-h0",
      vethNs: "veth0",
      vethHostIp: "10.200.0.1",
      hostIp: "10.200.0.2",
      guestIp: "172.16.0.2",
      gatewayIp: "172.16.0.1",
      netmask: "255.255.255.252",
      guestMac: "06:00:AC:10:00:02",
    });
    const last = slotAt(layout, 16383);
    expect([last.vethHostIp, last.hostIp, last.vethHost]).toEqual([
      "10.200.255.253",
      "10.200.255.254",
      "vmm-h16383",
    ]);
    expect(Object.isFrozen(last)).toBe(true);
  });

  it("builds the kernel ip= argument, with DNS servers when given", () => {
    expect(slotAt(layout, 5).kernelIpArg()).toBe(
      "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off",
    );
    const withDns = slotAt({ ...layout, dnsServers: ["1.1.1.1", "9.9.9.9"] }, 0);
    expect(withDns.kernelIpArg()).toBe(
      "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off:1.1.1.1:9.9.9.9",
    );
    expect(kernelIpArg("10.0.0.2", "10.0.0.1", "255.255.255.0", "eth1")).toBe(
      "ip=10.0.0.2::10.0.0.1:255.255.255.0::eth1:off",
    );
  });
});

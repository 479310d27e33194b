/**
 * A network slot: one sandbox's network namespace and its addresses.
 *
 * Address layout (mode "tap"), documented here and nowhere else:
 *
 *   Inside every slot namespace `<prefix><index>` (identical in all of them, so
 *   a snapshot restored in another slot needs no readdressing):
 *     tap0   172.16.0.1/30   TAP, host side of the guest link (the guest's gateway)
 *     guest  172.16.0.2/30   configured by the kernel `ip=` argument, MAC 06:00:AC:10:00:02
 *     veth0  H+2/30          namespace end of the veth pair = the sandbox IP (`hostIp`)
 *
 *   In the host namespace (`hostNetns`, or the daemon's own):
 *     <prefix>h<index>  H+1/30  host end of the veth pair
 *
 *   where H = network(hostCidr) + 4 * index: slot i owns the i-th /30 block of
 *   `hostCidr` (default 10.200.0.0/16 → 16384 slots; slot 0 = 10.200.0.0/30 with
 *   host end 10.200.0.1 and sandbox IP 10.200.0.2, slot 1 = 10.200.0.4/30 …).
 *   Block addresses H+0 and H+3 are the /30's network and broadcast addresses.
 *
 *   NAT in the slot namespace: connections to hostIp arriving on veth0 are
 *   DNATed to 172.16.0.2; the guest's traffic leaving through veth0 is SNATed to
 *   hostIp. The host reaches hostIp through the connected route of H+1/30.
 *
 * Mode "none": no NIC; the slot carries no addresses.
 */
import type { Ipv4Cidr } from "./ipv4.js";
import { formatIpv4 } from "./ipv4.js";

export const GUEST_IP = "172.16.0.2";
export const GATEWAY_IP = "172.16.0.1";
export const GUEST_PREFIX_LENGTH = 30;
export const GUEST_NETMASK = "255.255.255.252";
export const GUEST_SUBNET = "172.16.0.0/30";
/** Locally administered unicast; saved in snapshots, so the same in every slot. */
export const GUEST_MAC = "06:00:AC:10:00:02";
/** Name of the namespace end of the veth pair, the same in every slot namespace. */
export const NS_VETH_NAME = "veth0";
/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
export const MAX_IFNAME_LENGTH = 15;

/** A slot with a NIC: everything needed to start Firecracker in its namespace. */
export interface TapSlot {
  readonly mode: "tap";
  /** Position in the pool; selects the /30 block of `hostCidr`. */
  readonly index: number;
  /** Network namespace name; Firecracker runs in it (`ip netns exec`, jailer `--netns`). */
  readonly netns: string;
  /** `/run/netns/<netns>`, for the jailer's `--netns`. */
  readonly netnsPath: string;
  /** TAP device inside the namespace, for `PUT /network-interfaces` `host_dev_name`. */
  readonly tapName: string;
  readonly guestIp: string;
  /** TAP host-side address, the guest's default gateway. */
  readonly gatewayIp: string;
  readonly netmask: string;
  readonly prefixLength: number;
  readonly guestMac: string;
  /** The sandbox IP reported to clients: `connect(hostIp:port)` reaches the guest. */
  readonly hostIp: string;
  /** Address of the host end of the veth pair (where the sandbox's traffic enters the host). */
  readonly vethHostIp: string;
  /** Host end of the veth pair, in the host namespace. */
  readonly vethHost: string;
  /** Namespace end of the veth pair, in `netns`. */
  readonly vethNs: string;
  /** Name the guest kernel gives the NIC, used in `ip=`. */
  readonly guestDevice: string;
  /** Resolvers passed to the guest in `ip=` (at most 2). */
  readonly dnsServers: readonly string[];
  /** The kernel boot argument configuring the guest NIC, e.g. `ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off`. */
  kernelIpArg(): string;
}

/** A slot without a NIC (mode "none"). */
export interface NoNetworkSlot {
  readonly mode: "none";
}

export type NetworkSlot = TapSlot | NoNetworkSlot;

/** What determines every slot's names and addresses. */
export interface SlotLayout {
  readonly hostCidr: Ipv4Cidr;
  readonly namePrefix: string;
  readonly tapName: string;
  readonly guestDevice: string;
  readonly dnsServers: readonly string[];
}

/**
 * The kernel `ip=` argument (Documentation/admin-guide/nfs/nfsroot.rst):
 * `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>`.
 * DNS servers end up in /proc/net/pnp (link /etc/resolv.conf to it in the guest).
 */
export function kernelIpArg(
  guestIp: string,
  gatewayIp: string,
  netmask: string,
  device: string,
  dnsServers: readonly string[] = [],
): string {
  const base = `ip=${guestIp}::${gatewayIp}:${netmask}::${device}:off`;
  return dnsServers.length === 0 ? base : `${base}:${dnsServers.slice(0, 2).join(":")}`;
}

export function netnsName(layout: Pick<SlotLayout, "namePrefix">, index: number): string {
  return `${layout.namePrefix}${index}`;
}

export function vethHostName(layout: Pick<SlotLayout, "namePrefix">, index: number): string {
  return `${layout.namePrefix}h${index}`;
}

/** The slot at `index` (pure: computes names and addresses, creates nothing). */
export function slotAt(layout: SlotLayout, index: number): TapSlot {
  const block = layout.hostCidr.network + 4 * index;
  const guestDevice = layout.guestDevice;
  const dnsServers = Object.freeze([...layout.dnsServers]);
  const netns = netnsName(layout, index);
  return Object.freeze({
    mode: "tap" as const,
    index,
    netns,
    netnsPath: `/run/netns/${netns}`,
    tapName: layout.tapName,
    guestIp: GUEST_IP,
    gatewayIp: GATEWAY_IP,
    netmask: GUEST_NETMASK,
    prefixLength: GUEST_PREFIX_LENGTH,
    guestMac: GUEST_MAC,
    hostIp: formatIpv4(block + 2),
    vethHostIp: formatIpv4(block + 1),
    vethHost: vethHostName(layout, index),
    vethNs: NS_VETH_NAME,
    guestDevice,
    dnsServers,
    kernelIpArg: () => kernelIpArg(GUEST_IP, GATEWAY_IP, GUEST_NETMASK, guestDevice, dnsServers),
  });
}

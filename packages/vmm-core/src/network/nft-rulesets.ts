/**
 * The nftables rule sets vmm loads, as `nft -f -` text. Every rule lives in a
 * table vmm owns (`table inet <table>` in the host namespace and in each slot
 * namespace), so removing vmm's rules is `delete table` and touches nothing else.
 * Loads replace the table atomically (`table …; delete table …; table … {…}` is
 * one transaction).
 */
import { formatIpv4Cidr, type Ipv4Cidr } from "./ipv4.js";
import { GUEST_IP, GUEST_SUBNET, type TapSlot } from "./slot.js";

/** A host service sandboxes may reach (everything else on the host is refused). */
export interface HostService {
  readonly protocol: "tcp" | "udp";
  readonly port: number;
  /** Only this host address; default: any host address. */
  readonly address?: string;
}

export interface HostRulesetOptions {
  readonly table: string;
  /** Matches every host-side veth: `<prefix>h*`. */
  readonly vethHostPattern: string;
  readonly hostCidr: Ipv4Cidr;
  readonly uplink: string | undefined;
  readonly allowHostServices: readonly HostService[];
  readonly blockedCidrs: readonly string[];
}

/**
 * Host namespace: isolation between sandboxes, host services, metadata; egress
 * masquerade. What a sandbox may not reach is refused (reset / ICMP), not dropped.
 */
export function hostRuleset(o: HostRulesetOptions): string {
  const veths = `iifname "${o.vethHostPattern}"`;
  const allow = o.allowHostServices.map(
    (s) =>
      `    ${veths}${s.address === undefined ? "" : ` ip daddr ${s.address}`} ${s.protocol} dport ${s.port} accept`,
  );
  const blocked =
    o.blockedCidrs.length === 0
      ? []
      : [`    ${veths} ip daddr { ${o.blockedCidrs.join(", ")} } goto refuse`];
  const egress = o.uplink === undefined ? [] : [`    ${veths} oifname "${o.uplink}" accept`];
  const masquerade =
    o.uplink === undefined
      ? []
      : [`    oifname "${o.uplink}" ip saddr ${formatIpv4Cidr(o.hostCidr)} masquerade`];
  return [
    `table inet ${o.table}`,
    `delete table inet ${o.table}`,
    `table inet ${o.table} {`,
    ...REFUSE_CHAIN,
    "  chain input {",
    "    type filter hook input priority filter; policy accept;",
    `    ${veths} ct state established,related accept`,
    ...allow,
    `    ${veths} goto refuse`,
    "  }",
    "  chain forward {",
    "    type filter hook forward priority filter; policy accept;",
    ...blocked,
    `    ${veths} ct state established,related accept`,
    `    ${veths} oifname "${o.vethHostPattern}" goto refuse`,
    ...egress,
    `    ${veths} goto refuse`,
    "  }",
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    ...masquerade,
    "  }",
    "}",
    "",
  ].join("\n");
}

/**
 * The `refuse` chain of a vmm table: rules `goto refuse` for what a sandbox may
 * not reach. A TCP reset (the guest sees ECONNREFUSED at once), ICMP
 * admin-prohibited for anything else; never a silent drop, which would leave a
 * sandbox's connect hanging until its own timeout.
 */
export const REFUSE_CHAIN: readonly string[] = [
  "  chain refuse {",
  "    meta l4proto tcp reject with tcp reset",
  "    reject with icmpx admin-prohibited",
  "  }",
];

/** Removes the table; succeeds whether or not it exists. */
export function deleteTableRuleset(table: string): string {
  return `table inet ${table}\ndelete table inet ${table}\n`;
}

/**
 * Slot namespace: DNAT hostIp → guest for connections from the host side, SNAT
 * the guest's egress to hostIp, forward nothing else, accept nothing locally.
 */
export function slotRuleset(table: string, slot: TapSlot): string {
  const tap = `"${slot.tapName}"`;
  const veth = `"${slot.vethNs}"`;
  return [
    `table inet ${table}`,
    `delete table inet ${table}`,
    `table inet ${table} {`,
    "  chain prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    `    iifname ${veth} ip daddr ${slot.hostIp} dnat ip to ${GUEST_IP}`,
    "  }",
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    `    oifname ${veth} ip saddr ${GUEST_SUBNET} snat ip to ${slot.hostIp}`,
    "  }",
    "  chain forward {",
    "    type filter hook forward priority filter; policy drop;",
    "    ct state established,related accept",
    `    iifname ${tap} oifname ${veth} ip saddr ${GUEST_IP} accept`,
    `    iifname ${veth} oifname ${tap} ct status dnat accept`,
    "  }",
    "  chain input {",
    "    type filter hook input priority filter; policy drop;",
    '    iifname "lo" accept',
    "    ct state established,related accept",
    // Only where the guest address is local: fc-sim's simulated guest runs in this namespace.
    `    iifname ${veth} ip daddr ${GUEST_IP} ct status dnat accept`,
    "  }",
    "}",
    "",
  ].join("\n");
}

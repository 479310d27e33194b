/**
 * The exact commands behind each network operation, as data. The manager runs
 * them through a `CommandRunner`; `describeCommands()` and docs/networking.md
 * print them.
 */
import { type Command, inNetns, ipArgv } from "./command-runner.js";
import {
  DEFAULT_NETWORK_POLICY,
  type EgressBase,
  egressRuleset,
  type ResolvedEgressPolicy,
} from "./egress-policy.js";
import {
  deleteTableRuleset,
  type HostRulesetOptions,
  hostRuleset,
  slotRuleset,
} from "./nft-rulesets.js";
import type { TapSlot } from "./slot.js";

export interface HostCommandOptions extends HostRulesetOptions {
  /** The namespace playing "the host"; undefined = the daemon's own. */
  readonly hostNetns: string | undefined;
  /** Write net.ipv4.ip_forward=1 in the host namespace (needed for uplink egress). */
  readonly enableIpForward: boolean;
}

function sysctlWrite(netns: string | undefined, key: string, value: string): Command {
  return { argv: inNetns(netns, ["sysctl", "-q", "-w", `${key}=${value}`]) };
}

/** Installs (atomically replaces) the host table; enables forwarding when asked. */
export function hostSetupCommands(o: HostCommandOptions): Command[] {
  const commands: Command[] = [
    { argv: inNetns(o.hostNetns, ["nft", "-f", "-"]), stdin: hostRuleset(o) },
  ];
  if (o.enableIpForward) commands.push(sysctlWrite(o.hostNetns, "net.ipv4.ip_forward", "1"));
  return commands;
}

export function hostTeardownCommands(
  o: Pick<HostCommandOptions, "hostNetns" | "table">,
): Command[] {
  return [{ argv: inNetns(o.hostNetns, ["nft", "-f", "-"]), stdin: deleteTableRuleset(o.table) }];
}

export interface SlotCommandOptions {
  readonly hostNetns: string | undefined;
  readonly table: string;
  /** `ip tuntap add … user <uid>`: only this uid may attach to the TAP. */
  readonly tapOwnerUid: number | undefined;
  /** What every egress policy adds (blocked destinations, host services). */
  readonly egress: EgressBase;
}

/** The default policy (internet on, nothing denied), as a new slot gets it. */
const DEFAULT_RESOLVED: ResolvedEgressPolicy = {
  allow: [],
  deny: [],
  internet: DEFAULT_NETWORK_POLICY.internet,
};

/** Replaces the slot's egress table (one `nft -f -` transaction). */
export function egressPolicyCommand(
  slot: TapSlot,
  o: Pick<SlotCommandOptions, "table" | "egress">,
  policy: ResolvedEgressPolicy,
): Command {
  return {
    argv: inNetns(slot.netns, ["nft", "-f", "-"]),
    stdin: egressRuleset(o.table, slot, o.egress, policy),
  };
}

/**
 * Creating a slot, in dependency order: `createNetns` first, then the three
 * groups of `parallel` (each group's commands in order; groups independent).
 */
export interface SlotSetupPlan {
  readonly createNetns: Command;
  readonly parallel: readonly (readonly Command[])[];
}

export function slotSetupPlan(slot: TapSlot, o: SlotCommandOptions): SlotSetupPlan {
  const prefix = `${slot.vethHostIp}/30`;
  const hostBatch = [
    `link add ${slot.vethHost} type veth peer name ${slot.vethNs} netns ${slot.netns}`,
    `addr add ${prefix} dev ${slot.vethHost}`,
    `link set ${slot.vethHost} up`,
  ];
  const nsBatch = [
    "link set lo up",
    `tuntap add ${slot.tapName} mode tap${o.tapOwnerUid === undefined ? "" : ` user ${o.tapOwnerUid}`}`,
    `addr add ${slot.gatewayIp}/${slot.prefixLength} dev ${slot.tapName}`,
    `link set ${slot.tapName} up`,
    `addr add ${slot.hostIp}/30 dev ${slot.vethNs}`,
    `link set ${slot.vethNs} up`,
    `route add default via ${slot.vethHostIp} dev ${slot.vethNs}`,
  ];
  return {
    createNetns: { argv: ["ip", "netns", "add", slot.netns] },
    parallel: [
      [
        { argv: ipArgv(o.hostNetns, "-batch", "-"), stdin: `${hostBatch.join("\n")}\n` },
        { argv: ipArgv(slot.netns, "-batch", "-"), stdin: `${nsBatch.join("\n")}\n` },
      ],
      [sysctlWrite(slot.netns, "net.ipv4.ip_forward", "1")],
      [
        {
          argv: inNetns(slot.netns, ["nft", "-f", "-"]),
          stdin:
            slotRuleset(o.table, slot) + egressRuleset(o.table, slot, o.egress, DEFAULT_RESOLVED),
        },
      ],
    ],
  };
}

/** Flattened, in an order that works when run one by one. */
export function slotSetupCommands(slot: TapSlot, o: SlotCommandOptions): Command[] {
  const plan = slotSetupPlan(slot, o);
  return [plan.createNetns, ...plan.parallel.flat()];
}

/**
 * Deletes host-side veths (synchronously, both ends) and then namespaces
 * (TAP, namespace end and the slot's table go with it). `-force` keeps going
 * past names already gone.
 */
export function removeCommands(
  hostNetns: string | undefined,
  vethHosts: readonly string[],
  netnsNames: readonly string[],
): Command[] {
  const commands: Command[] = [];
  if (vethHosts.length > 0) {
    commands.push({
      argv: ipArgv(hostNetns, "-force", "-batch", "-"),
      stdin: vethHosts.map((name) => `link del ${name}\n`).join(""),
    });
  }
  if (netnsNames.length > 0) {
    commands.push({
      argv: ["ip", "-force", "-batch", "-"],
      stdin: netnsNames.map((name) => `netns del ${name}\n`).join(""),
    });
  }
  return commands;
}

export function listNetnsCommand(): Command {
  return { argv: ["ip", "-j", "netns", "list"], readOnly: true };
}

export function listLinksCommand(hostNetns: string | undefined): Command {
  return { argv: ipArgv(hostNetns, "-j", "link", "show"), readOnly: true };
}

export function listTablesCommand(hostNetns: string | undefined): Command {
  return { argv: inNetns(hostNetns, ["nft", "-j", "list", "tables"]), readOnly: true };
}

/** Names from `ip -j netns list` (empty output when there are none). */
export function parseNetnsList(stdout: string): string[] {
  if (stdout.trim() === "") return [];
  return (JSON.parse(stdout) as { name: string }[]).map((n) => n.name);
}

/** Interface names from `ip -j link show`. */
export function parseLinkList(stdout: string): string[] {
  if (stdout.trim() === "") return [];
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname);
}

/** True when `nft -j list tables` lists `inet <table>`. */
export function hasInetTable(stdout: string, table: string): boolean {
  if (stdout.trim() === "") return false;
  const parsed = JSON.parse(stdout) as { nftables: { table?: { family: string; name: string } }[] };
  return parsed.nftables.some((e) => e.table?.family === "inet" && e.table.name === table);
}

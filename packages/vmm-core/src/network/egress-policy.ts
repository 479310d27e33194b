/**
 * A sandbox's egress policy (sandbox.v1 `NetworkPolicy`): what its guest may
 * connect to. Validated and resolved here; rendered as the slot namespace's
 * `table inet <table>_egress` (docs/networking.md "Egress policy").
 *
 * Evaluation order, first match wins, for every packet the guest sends in the
 * original direction of a connection (replies to connections made *to* the
 * guest always pass):
 *
 *   1. `deny_out`                          → refused
 *   2. the guest's DNS resolvers, port 53  → accepted
 *   3. `allow_host_services`               → accepted
 *   4. always-blocked (blocked_cidrs, link-local 169.254.0.0/16, the host end
 *      of the veth pair)                   → refused (allow_out cannot reopen them)
 *   5. `allow_out`                         → accepted
 *   6. `internet` ? accepted : refused
 *
 * Refused = TCP reset / ICMP admin-prohibited, so the guest fails fast.
 */
import { lookup } from "node:dns/promises";
import { InvalidArgumentError } from "../errors.js";
import { formatIpv4, parseIpv4, parseIpv4Cidr } from "./ipv4.js";
import { type HostService, REFUSE_CHAIN } from "./nft-rulesets.js";
import { GUEST_IP, type TapSlot } from "./slot.js";

/** The policy as the caller gave it (and as it is persisted and shown). */
export interface NetworkPolicy {
  /** CIDRs, addresses or host names the guest may reach even with `internet` off. */
  readonly allowOut: readonly string[];
  /** CIDRs, addresses or host names the guest may never reach (wins over everything). */
  readonly denyOut: readonly string[];
  /** false: no egress except `allowOut` (and the DNS resolvers). */
  readonly internet: boolean;
}

/** No policy given: internet on, nothing denied. */
export const DEFAULT_NETWORK_POLICY: NetworkPolicy = Object.freeze({
  allowOut: Object.freeze([]),
  denyOut: Object.freeze([]),
  internet: true,
});

/** At most this many entries in each of allow_out and deny_out. */
export const MAX_POLICY_ENTRIES = 256;
/** At most this many addresses one host name may add (a round-robin name can list many). */
const MAX_ADDRESSES_PER_NAME = 64;
/** How long resolving the host names of one policy may take. */
const RESOLVE_TIMEOUT_MS = 5000;

/** A policy with every host name resolved: IPv4 ranges as [first, last] address numbers. */
export interface ResolvedEgressPolicy {
  readonly allow: readonly (readonly [number, number])[];
  readonly deny: readonly (readonly [number, number])[];
  readonly internet: boolean;
}

/** What the daemon adds to every policy (config `[network]`). */
export interface EgressBase {
  /** Destinations refused in every mode (config blocked_cidrs; link-local is always added). */
  readonly blockedCidrs: readonly string[];
  /** Host services the guest may reach (config allow_host_services). */
  readonly allowHostServices: readonly HostService[];
}

type Entry = { kind: "range"; range: readonly [number, number] } | { kind: "name"; name: string };

const HOST_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** Parses one allow_out/deny_out entry: `a.b.c.d`, `a.b.c.d/n` or a host name. */
function parseEntry(field: string, text: string): Entry {
  if (text === "") throw new InvalidArgumentError(field, "must not be empty");
  if (text.includes(":")) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)}: IPv6 is not supported`, {
      hint: "sandboxes have IPv4 only; give an IPv4 address, CIDR or host name",
    });
  }
  if (/^[0-9./]+$/.test(text)) {
    if (text.includes("/")) {
      const c = parseIpv4Cidr(field, text);
      return { kind: "range", range: [c.network, c.network + 2 ** (32 - c.prefixLength) - 1] };
    }
    const a = parseIpv4(field, text);
    return { kind: "range", range: [a, a] };
  }
  if (!HOST_NAME.test(text)) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(text.slice(0, 300))} is neither an IPv4 address, a CIDR nor a host name`,
      { hint: "e.g. 10.0.0.0/8, 192.0.2.7 or pypi.org" },
    );
  }
  return { kind: "name", name: text.replace(/\.$/, "").toLowerCase() };
}

function parseList(field: string, list: readonly string[]): Entry[] {
  if (list.length > MAX_POLICY_ENTRIES) {
    throw new InvalidArgumentError(
      field,
      `has ${list.length} entries; at most ${MAX_POLICY_ENTRIES} are allowed`,
      { hint: "merge addresses into CIDRs" },
    );
  }
  return list.map((text, i) => parseEntry(`${field}[${i}]`, text));
}

/**
 * Checks a policy's syntax (no resolution); throws InvalidArgumentError naming
 * the field and entry. `field` prefixes the names (e.g. "network_policy").
 */
export function validateNetworkPolicy(field: string, p: NetworkPolicy): void {
  parseList(`${field}.allow_out`, p.allowOut);
  parseList(`${field}.deny_out`, p.denyOut);
}

/** Resolves a host name to its IPv4 addresses (injected in tests). */
export type HostResolver = (name: string) => Promise<readonly string[]>;

/** The system resolver (getaddrinfo, as the daemon's host sees names), IPv4 only. */
export const systemHostResolver: HostResolver = async (name) =>
  (await lookup(name, { all: true, family: 4 })).map((a) => a.address);

/**
 * Validates `p` and resolves its host names (all at once, bounded by 5 s).
 * An unresolvable name is INVALID_ARGUMENT naming it: a policy never silently
 * loses an entry.
 */
export async function resolveNetworkPolicy(
  field: string,
  p: NetworkPolicy,
  resolve: HostResolver = systemHostResolver,
): Promise<ResolvedEgressPolicy> {
  const lists = {
    allow: parseList(`${field}.allow_out`, p.allowOut),
    deny: parseList(`${field}.deny_out`, p.denyOut),
  };
  const names = new Set(
    [...lists.allow, ...lists.deny].flatMap((e) => (e.kind === "name" ? [e.name] : [])),
  );
  const resolved = new Map<string, number[]>();
  const deadline = AbortSignal.timeout(RESOLVE_TIMEOUT_MS);
  await Promise.all(
    [...names].map(async (name) => {
      let addresses: readonly string[];
      try {
        addresses = await Promise.race([
          resolve(name),
          new Promise<never>((_, reject) =>
            deadline.addEventListener("abort", () => reject(new Error("timed out")), {
              once: true,
            }),
          ),
        ]);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        throw new InvalidArgumentError(
          field,
          `host name ${JSON.stringify(name)} could not be resolved (${code})`,
          { hint: "check the name, or give its addresses as CIDRs" },
        );
      }
      if (addresses.length === 0) {
        throw new InvalidArgumentError(
          field,
          `host name ${JSON.stringify(name)} has no IPv4 address`,
        );
      }
      resolved.set(
        name,
        addresses.slice(0, MAX_ADDRESSES_PER_NAME).map((a) => parseIpv4(field, a)),
      );
    }),
  );
  const ranges = (entries: Entry[]) =>
    mergeRanges(
      entries.flatMap((e) =>
        e.kind === "range" ? [e.range] : (resolved.get(e.name) ?? []).map((a) => [a, a] as const),
      ),
    );
  return { allow: ranges(lists.allow), deny: ranges(lists.deny), internet: p.internet };
}

/** Sorted, overlapping and adjacent ranges merged (nft interval sets reject overlaps). */
export function mergeRanges(
  ranges: readonly (readonly [number, number])[],
): (readonly [number, number])[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: [number, number][] = [];
  for (const [first, last] of sorted) {
    const prev = out.at(-1);
    if (prev && first <= prev[1] + 1) prev[1] = Math.max(prev[1], last);
    else out.push([first, last]);
  }
  return out;
}

function formatRange([first, last]: readonly [number, number]): string {
  return first === last ? formatIpv4(first) : `${formatIpv4(first)}-${formatIpv4(last)}`;
}

function setOf(name: string, ranges: readonly (readonly [number, number])[]): string[] {
  return [
    `  set ${name} {`,
    "    type ipv4_addr; flags interval;",
    ...(ranges.length === 0 ? [] : [`    elements = { ${ranges.map(formatRange).join(", ")} }`]),
    "  }",
  ];
}

/** The name of the slot's egress table, beside `table inet <table>`. */
export function egressTableName(table: string): string {
  return `${table}_egress`;
}

/**
 * The slot namespace's egress table (`nft -f -` text that replaces it
 * atomically). Its chain `egress` is jumped to from two hooks, so one rule
 * set covers both ways a guest's packets leave the namespace:
 *
 * - `forward`, `tap0` → `veth0`: a real guest (Firecracker);
 * - `output`, oif `veth0`: processes running in the namespace itself, which
 *   is where fc-sim's simulated guest runs. A real guest's namespace has no
 *   such processes, so this adds nothing for it.
 */
export function egressRuleset(
  table: string,
  slot: TapSlot,
  base: EgressBase,
  policy: ResolvedEgressPolicy,
): string {
  const t = egressTableName(table);
  const blocked = mergeRanges(
    [...base.blockedCidrs, "169.254.0.0/16", slot.vethHostIp]
      .map((c) => parseEntry("network.blocked_cidrs", c) as Extract<Entry, { kind: "range" }>)
      .map((e) => e.range),
  );
  const dns = slot.dnsServers.flatMap((d) => [
    `    ip daddr ${d} udp dport 53 accept`,
    `    ip daddr ${d} tcp dport 53 accept`,
  ]);
  const services = base.allowHostServices.map(
    (s) => `    ip daddr ${s.address ?? slot.vethHostIp} ${s.protocol} dport ${s.port} accept`,
  );
  return [
    `table inet ${t}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    ...setOf("deny_out", policy.deny),
    ...setOf("blocked", blocked),
    ...setOf("allow_out", policy.allow),
    ...REFUSE_CHAIN,
    "  chain egress {",
    // Replies to connections made to the guest (sandbox IP, exposed ports), and ICMP errors.
    "    ct direction reply accept",
    "    ct state related accept",
    "    meta nfproto != ipv4 goto refuse",
    "    ip daddr @deny_out goto refuse",
    ...dns,
    ...services,
    "    ip daddr @blocked goto refuse",
    "    ip daddr @allow_out accept",
    policy.internet ? "    accept" : "    goto refuse",
    "  }",
    "  chain forward {",
    "    type filter hook forward priority filter - 1; policy accept;",
    `    iifname "${slot.tapName}" oifname "${slot.vethNs}" ip saddr ${GUEST_IP} jump egress`,
    "  }",
    "  chain output {",
    "    type filter hook output priority filter - 1; policy accept;",
    `    oifname "${slot.vethNs}" jump egress`,
    "  }",
    "}",
    "",
  ].join("\n");
}

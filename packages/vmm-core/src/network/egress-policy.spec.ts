import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import {
  DEFAULT_NETWORK_POLICY,
  egressRuleset,
  MAX_POLICY_ENTRIES,
  mergeRanges,
  type NetworkPolicy,
  resolveNetworkPolicy,
  validateNetworkPolicy,
} from "./egress-policy.js";
import { parseIpv4 } from "./ipv4.js";
import { slotRuleset } from "./nft-rulesets.js";
import { slotAt } from "./slot.js";

const slot = slotAt(
  {
    hostCidr: { network: parseIpv4("t", "10.200.0.0"), prefixLength: 16 },
    namePrefix: "vmm-",
    tapName: "tap0",
    guestDevice: "eth0",
    dnsServers: ["10.0.0.2"],
  },
  1,
);
const base = {
  blockedCidrs: ["169.254.0.0/16", "100.100.100.200"],
  allowHostServices: [{ protocol: "tcp" as const, port: 3128 }],
};
const names = new Map([
  ["mirror.example", ["192.0.2.10", "192.0.2.11"]],
  ["bad.example", ["203.0.113.9"]],
]);
const fakeResolver = async (name: string) => {
  const found = names.get(name);
  if (!found) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
  return found;
};
const policy = (p: Partial<NetworkPolicy>): NetworkPolicy => ({ ...DEFAULT_NETWORK_POLICY, ...p });

async function invalid(p: NetworkPolicy): Promise<InvalidArgumentError> {
  const err = await resolveNetworkPolicy("network_policy", p, fakeResolver).catch((e) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  return err as InvalidArgumentError;
}

describe("resolveNetworkPolicy", () => {
  it("turns addresses, CIDRs and host names into merged IPv4 ranges", async () => {
    const r = await resolveNetworkPolicy(
      "network_policy",
      policy({
        allowOut: ["10.1.0.0/16", "10.1.2.3", "mirror.example", "192.0.2.12"],
        denyOut: ["bad.example."],
        internet: false,
      }),
      fakeResolver,
    );
    const ip = (t: string) => parseIpv4("t", t);
    expect(r.allow).toEqual([
      [ip("10.1.0.0"), ip("10.1.255.255")],
      [ip("192.0.2.10"), ip("192.0.2.12")],
    ]);
    expect(r.deny).toEqual([[ip("203.0.113.9"), ip("203.0.113.9")]]);
    expect(r.internet).toBe(false);
  });

  it("rejects bad entries naming the field, the entry and the reason", async () => {
    expect((await invalid(policy({ allowOut: ["10.0.0.0/33"] }))).message).toMatch(
      /allow_out\[0\].*not an IPv4 CIDR/,
    );
    expect((await invalid(policy({ denyOut: ["10.0.0.1/8"] }))).message).toMatch(
      /deny_out\[0\].*host bits/,
    );
    expect((await invalid(policy({ allowOut: ["ok.example", ""] }))).message).toMatch(
      /allow_out\[1\].*empty/,
    );
    expect((await invalid(policy({ allowOut: ["2001:db8::/32"] }))).message).toMatch(/IPv6/);
    expect((await invalid(policy({ allowOut: ["no spaces"] }))).message).toMatch(
      /neither an IPv4 address/,
    );
    expect((await invalid(policy({ denyOut: ["nowhere.example"] }))).message).toMatch(
      /"nowhere.example" could not be resolved \(ENOTFOUND\)/,
    );
    const many = Array.from({ length: MAX_POLICY_ENTRIES + 1 }, (_, i) => `10.0.${i % 256}.0/24`);
    expect((await invalid(policy({ allowOut: many }))).message).toMatch(
      new RegExp(`at most ${MAX_POLICY_ENTRIES}`),
    );
    // Syntax is checked without resolving.
    expect(() =>
      validateNetworkPolicy("p", policy({ allowOut: ["nowhere.example"] })),
    ).not.toThrow();
    expect(() => validateNetworkPolicy("p", policy({ allowOut: ["1.2.3"] }))).toThrow(/1\.2\.3/);
  });

  it("merges overlapping and adjacent ranges", () => {
    expect(
      mergeRanges([
        [10, 20],
        [1, 3],
        [4, 5],
        [15, 30],
        [40, 40],
      ]),
    ).toEqual([
      [1, 5],
      [10, 30],
      [40, 40],
    ]);
  });
});

describe("egressRuleset", () => {
  it("puts deny first, then DNS and host services, then the always-blocked, allow_out, internet", async () => {
    const r = await resolveNetworkPolicy(
      "p",
      policy({ allowOut: ["mirror.example"], denyOut: ["10.9.0.0/16"], internet: false }),
      fakeResolver,
    );
    const text = egressRuleset("vmm", slot, base, r);
    expect(text.startsWith("table inet vmm_egress\ndelete table inet vmm_egress\n")).toBe(true);
    const chain = /chain egress \{\n([^}]*)\}/.exec(text)?.[1]?.trim().split(/\n\s*/);
    expect(chain).toEqual([
      "ct direction reply accept",
      "ct state related accept",
      "meta nfproto != ipv4 goto refuse",
      "ip daddr @deny_out goto refuse",
      "ip daddr 10.0.0.2 udp dport 53 accept",
      "ip daddr 10.0.0.2 tcp dport 53 accept",
      `ip daddr ${slot.vethHostIp} tcp dport 3128 accept`,
      "ip daddr @blocked goto refuse",
      "ip daddr @allow_out accept",
      "goto refuse",
    ]);
    expect(text).toContain("elements = { 10.9.0.0-10.9.255.255 }");
    expect(text).toContain("elements = { 192.0.2.10-192.0.2.11 }");
    // Link-local, the configured blocks and the host end of the veth, merged.
    expect(text).toContain(
      `elements = { ${slot.vethHostIp}, 100.100.100.200, 169.254.0.0-169.254.255.255 }`,
    );
    // Both paths out of the namespace: a real guest (forward) and fc-sim's (output).
    expect(text).toContain('iifname "tap0" oifname "veth0" ip saddr 172.16.0.2 jump egress');
    expect(text).toContain('oifname "veth0" jump egress');
    expect(text).toContain("meta l4proto tcp reject with tcp reset");
    expect(text).toContain("reject with icmpx admin-prohibited");
  });

  it("ends in accept with internet on; empty sets have no elements line", async () => {
    const r = await resolveNetworkPolicy("p", DEFAULT_NETWORK_POLICY, fakeResolver);
    const text = egressRuleset("vmm", slot, { blockedCidrs: [], allowHostServices: [] }, r);
    expect(/chain egress \{[^}]*\n {4}accept\n {2}\}/.test(text)).toBe(true);
    expect(text).toMatch(/set deny_out \{\n\s+type ipv4_addr; flags interval;\n\s+\}/);
  });

  it.skipIf(process.getuid?.() !== 0)(
    "is accepted by nft together with the slot table (checked in a throwaway namespace)",
    async () => {
      const r = await resolveNetworkPolicy(
        "p",
        policy({ allowOut: ["10.1.0.0/16", "mirror.example"], denyOut: ["bad.example"] }),
        fakeResolver,
      );
      const text = slotRuleset("vmm", slot) + egressRuleset("vmm", slot, base, r);
      const check = spawnSync("unshare", ["--net", "nft", "-c", "-f", "-"], {
        input: text,
        encoding: "utf8",
      });
      expect(check.stderr).toBe("");
      expect(check.status).toBe(0);
    },
  );
});

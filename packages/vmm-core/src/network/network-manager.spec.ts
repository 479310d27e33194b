import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { createDryRunCommandRunner } from "./command-runner-dry-run.js";
import { createNetworkManager } from "./network-manager.js";

describe("createNetworkManager", () => {
  it('mode "none" hands out a slot without a NIC and creates nothing', async () => {
    const m = createNetworkManager({ mode: "none" });
    await m.recover([]);
    const slot = await m.acquire();
    expect(slot).toEqual({ mode: "none" });
    await m.release(slot);
    expect(m.describeCommands()).toEqual([]);
    await m.close();
  });

  it("validates options before running anything", () => {
    const runner = createDryRunCommandRunner();
    const bad = [
      { hostCidr: "10.200.0.0/31" },
      { hostCidr: "10.200.0.0/24", maxSlots: 65 },
      { namePrefix: "a-very-long-prefix-" },
      { nftTable: "vmm; flush ruleset" },
      { uplink: 'eth0" accept' },
      { guestDnsServers: ["1.1.1.1", "8.8.8.8", "9.9.9.9"] },
      { allowHostServices: [{ protocol: "tcp" as const, port: 0 }] },
      { blockedCidrs: ["169.254.0.0/99"] },
    ];
    for (const options of bad) {
      expect(() => createNetworkManager({ ...options, runner }), JSON.stringify(options)).toThrow(
        InvalidArgumentError,
      );
    }
    expect(runner.commands).toEqual([]);
  });

  it("describes the host setup and each pool slot's commands", () => {
    const m = createNetworkManager({ poolSize: 2, runner: createDryRunCommandRunner() });
    const plan = m.describeCommands();
    expect(plan[0]).toMatch(/^nft -f - <<'EOF'\ntable inet vmm\ndelete table inet vmm\n/);
    expect(plan).toContain("ip netns add vmm-0");
    expect(plan).toContain("ip netns add vmm-1");
    expect(plan).toContain("ip netns exec vmm-1 sysctl -q -w net.ipv4.ip_forward=1");
    expect(plan.join("\n")).toContain("link add vmm-h1 type veth peer name veth0 netns vmm-1");
    expect(plan.join("\n")).toContain('iifname "veth0" ip daddr 10.200.0.6 dnat ip to 172.16.0.2');
  });
});

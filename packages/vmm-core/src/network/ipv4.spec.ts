import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { formatIpv4, netmaskOf, parseIpv4, parseIpv4Cidr, sizeOf } from "./ipv4.js";

describe("ipv4", () => {
  it("round-trips addresses", () => {
    for (const a of ["0.0.0.0", "10.200.0.1", "255.255.255.255", "172.16.0.2"]) {
      expect(formatIpv4(parseIpv4("f", a))).toBe(a);
    }
  });

  it("rejects malformed addresses and CIDRs, naming the field", () => {
    for (const bad of ["10.0.0", "10.0.0.256", "01.0.0.1", "a.b.c.d", ""]) {
      expect(() => parseIpv4("network.x", bad)).toThrow(InvalidArgumentError);
    }
    expect(() => parseIpv4Cidr("network.host_cidr", "10.200.0.1/16")).toThrow(/host bits set/);
    expect(() => parseIpv4Cidr("network.host_cidr", "10.200.0.0/33")).toThrow(/network.host_cidr/);
    expect(() => parseIpv4Cidr("network.host_cidr", "10.200.0.0")).toThrow(/not an IPv4 CIDR/);
  });

  it("computes sizes and netmasks", () => {
    expect(sizeOf(parseIpv4Cidr("f", "10.200.0.0/16"))).toBe(65536);
    expect(netmaskOf(30)).toBe("255.255.255.252");
    expect(netmaskOf(0)).toBe("0.0.0.0");
  });
});

import { InvalidArgumentError } from "../errors.js";

/** An IPv4 network: `network` is the first address as an unsigned 32-bit number. */
export interface Ipv4Cidr {
  readonly network: number;
  readonly prefixLength: number;
}

/** Parses a dotted-quad address; `field` names the option for the error. */
export function parseIpv4(field: string, text: string): number {
  const parts = text.split(".");
  if (
    parts.length !== 4 ||
    parts.some((p) => !/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255)
  ) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not an IPv4 address`, {
      hint: "write it as four decimal numbers, e.g. 10.200.0.1",
    });
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(address: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join(".");
}

/** Parses `a.b.c.d/n`; the address must be the network address (host bits zero). */
export function parseIpv4Cidr(field: string, text: string): Ipv4Cidr {
  const [addr, len, ...rest] = text.split("/");
  const prefixLength = Number(len);
  if (
    addr === undefined ||
    rest.length > 0 ||
    !/^[0-9]{1,2}$/.test(len ?? "") ||
    prefixLength > 32
  ) {
    throw new InvalidArgumentError(field, `${JSON.stringify(text)} is not an IPv4 CIDR`, {
      hint: "write it as address/prefix-length, e.g. 10.200.0.0/16",
    });
  }
  const network = parseIpv4(field, addr);
  if (network % 2 ** (32 - prefixLength) !== 0) {
    throw new InvalidArgumentError(field, `${text} has host bits set`, {
      hint: `use the network address, e.g. ${formatIpv4(network - (network % 2 ** (32 - prefixLength)))}/${prefixLength}`,
    });
  }
  return { network, prefixLength };
}

export function formatIpv4Cidr(cidr: Ipv4Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;
}

/** The dotted netmask of a prefix length (30 → 255.255.255.252). */
export function netmaskOf(prefixLength: number): string {
  return formatIpv4(2 ** 32 - 2 ** (32 - prefixLength));
}

/** How many addresses the network holds. */
export function sizeOf(cidr: Ipv4Cidr): number {
  return 2 ** (32 - cidr.prefixLength);
}

import { isIPv4, isIPv6 } from "node:net";

/** A parsed "host:port" listen address. */
export interface ListenAddress {
  /** Host without IPv6 brackets ("::1", "127.0.0.1", "localhost", "0.0.0.0"). */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

/**
 * Parses "host:port" (IPv6 hosts in brackets: "[::1]:9090"); undefined when
 * it is not one.
 */
export function parseListenAddress(address: string): ListenAddress | undefined {
  const m = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
  if (m[1]!.startsWith("[") && !isIPv6(host)) return undefined;
  return { host, port };
}

/**
 * True when a socket bound to `host` is reachable from this machine only:
 * "localhost", 127.0.0.0/8, ::1 (and ::ffff:127.x). The wildcard addresses
 * (0.0.0.0, ::) and every other address are not.
 */
export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  if (isIPv4(host)) return host.startsWith("127.");
  if (isIPv6(host)) {
    const h = host.toLowerCase();
    return h === "::1" || h === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(h);
  }
  return false;
}

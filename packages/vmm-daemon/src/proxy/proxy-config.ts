import { isIP } from "node:net";
import { ConfigError } from "../config/load-config.js";
import type { Config } from "../config/schema.js";

/** The HTTP proxy's settings, checked (`[proxy]`). */
export interface ProxySettings {
  readonly host: string;
  /** 0 = an ephemeral port. */
  readonly port: number;
  /** Lower case, no trailing dot. */
  readonly domain: string;
  readonly urlScheme: "http" | "https";
  /** 0 = the bound port (http) or 443 (https). */
  readonly urlPort: number;
  readonly maxConnections: number;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * `[proxy]`, checked; undefined when `listen` is empty (the proxy is off).
 * Throws a ConfigError naming the key for a malformed listen address or domain.
 */
export function proxyFromConfig(config: Config): ProxySettings | undefined {
  const p = config.proxy;
  if (p.listen === "") {
    if (p.domain !== "")
      throw new ConfigError(
        'proxy.domain is set but proxy.listen is empty: set listen (e.g. "127.0.0.1:8088") to turn the proxy on, or remove domain',
      );
    return undefined;
  }
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(p.listen);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || isIP(host) === 0 || port > 65535)
    throw new ConfigError(
      `proxy.listen must be "ip:port" (e.g. "127.0.0.1:8088", "0.0.0.0:80", "[::]:80"), got ${JSON.stringify(p.listen)}`,
    );
  const domain = p.domain.toLowerCase().replace(/\.$/, "");
  if (domain === "")
    throw new ConfigError(
      'proxy.listen is set but proxy.domain is empty: name the domain sandbox ports live under (e.g. "sandbox.example.com", with a wildcard DNS record *.sandbox.example.com)',
    );
  if (domain.length > 200 || !domain.split(".").every((l) => LABEL.test(l)))
    throw new ConfigError(
      `proxy.domain must be a DNS name (labels of letters, digits and '-', e.g. "sandbox.example.com"), got ${JSON.stringify(p.domain)}`,
    );
  return {
    host,
    port,
    domain,
    urlScheme: p.url_scheme === "https" ? "https" : "http",
    urlPort: p.url_port,
    maxConnections: p.max_connections,
  };
}

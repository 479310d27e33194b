/** Where a proxied request goes: a sandbox and one of its guest ports. */
export interface ProxyRoute {
  readonly id: string;
  readonly guestPort: number;
}

const ROUTE = /^([0-9]{1,5})-([a-z0-9][a-z0-9-]*)$/;

/**
 * Reads `Host: <guest port>-<sandbox id>.<domain>[:port]` (case-insensitive,
 * a trailing dot allowed). Undefined when the host is not one of ours: another
 * name, no port prefix, a port outside 1–65535.
 */
export function parseProxyHost(host: string | undefined, domain: string): ProxyRoute | undefined {
  if (host === undefined) return undefined;
  const name = host.toLowerCase().replace(/:\d*$/, "").replace(/\.$/, "");
  const suffix = `.${domain}`;
  if (!name.endsWith(suffix)) return undefined;
  const m = ROUTE.exec(name.slice(0, -suffix.length));
  if (!m) return undefined;
  const guestPort = Number(m[1]);
  if (guestPort < 1 || guestPort > 65535) return undefined;
  return { id: m[2]!, guestPort };
}

/** How ExposePort's URLs are written. */
export interface ProxyUrlBase {
  readonly scheme: "http" | "https";
  readonly domain: string;
  /** Left out when it is the scheme's default. */
  readonly port: number;
}

/** `<scheme>://<guest port>-<id>.<domain>[:port]/`, the authority the proxy routes by. */
export function proxyOrigin(base: ProxyUrlBase, route: ProxyRoute): string {
  const standard = base.scheme === "https" ? 443 : 80;
  const port = base.port === standard ? "" : `:${base.port}`;
  return `${base.scheme}://${route.guestPort}-${route.id}.${base.domain}${port}`;
}

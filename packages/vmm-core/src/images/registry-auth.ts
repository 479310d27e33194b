/** Credentials for one registry, from `[images.registries."host"]`. Immutable. */
export interface RegistryCredentials {
  /** With `password`: HTTP basic to the registry, or to its token endpoint (bearer flow). */
  readonly username?: string;
  readonly password?: string;
  /** A bearer token sent as is (`Authorization: Bearer <token>`), e.g. a registry access token. */
  readonly token?: string;
}

/** One parsed `WWW-Authenticate` challenge (RFC 7235). */
export interface AuthChallenge {
  /** Lower case: `bearer` or `basic`. */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Parses a `WWW-Authenticate` header value with one challenge, e.g.
 * `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`.
 * Returns undefined for a header it cannot read.
 */
export function parseAuthChallenge(header: string | null): AuthChallenge | undefined {
  if (header === null) return undefined;
  const m = /^\s*([A-Za-z][\w-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2]!;
  re.lastIndex = 0;
  while (re.lastIndex < rest.length) {
    const p = re.exec(rest);
    if (!p) break;
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3]!;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

/** `Authorization` header value for HTTP basic. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}

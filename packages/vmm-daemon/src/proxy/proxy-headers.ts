import type { IncomingMessage } from "node:http";
import { ACCESS_TOKEN_COOKIE, ACCESS_TOKEN_HEADER } from "./proxy-auth.js";

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1, plus the obsolete Keep-Alive and
 * Proxy-Connection, and Proxy-Authorization/-Authenticate, which belong to
 * the proxy); with the fields a Connection header names, they never cross the proxy.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authorization",
  "proxy-authenticate",
]);

/** What the proxy tells the guest about the original request. */
export interface ForwardedFor {
  readonly clientAddress: string;
  /** The scheme clients use (`proxy.url_scheme`: a TLS terminator in front makes it https). */
  readonly proto: "http" | "https";
  /** Drop Authorization too: it carried the proxy credential. */
  readonly dropAuthorization: boolean;
  /** An Upgrade request: Connection/Upgrade are kept for the guest, and the body passes raw. */
  readonly upgrade: boolean;
}

/**
 * The request's header fields for the guest, as a flat raw list (name, value, …):
 * hop-by-hop fields removed, the proxy's credentials removed (X-Vmm-Access-Token,
 * the access cookie, Authorization when it held the token), Expect removed (the
 * proxy answered 100-continue itself), X-Forwarded-For appended to,
 * X-Forwarded-Host and -Proto set, Via appended to. A body keeps its framing:
 * Content-Length as sent, a Transfer-Encoding becomes chunked (re-chunked by
 * Node) or, for an upgrade, passes as sent.
 */
export function forwardedRequestHeaders(req: IncomingMessage, f: ForwardedFor): string[] {
  const named = connectionTokens(req.rawHeaders);
  const out: string[] = [];
  let xff: string | undefined;
  let via: string | undefined;
  let chunked = false;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === "transfer-encoding") {
      if (f.upgrade) out.push(name, value);
      else chunked = true;
      continue;
    }
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    switch (lower) {
      case ACCESS_TOKEN_HEADER:
      case "expect":
      case "x-forwarded-host":
      case "x-forwarded-proto":
        continue;
      case "authorization":
        if (!f.dropAuthorization) out.push(name, value);
        continue;
      case "cookie": {
        const kept = withoutCookie(value, ACCESS_TOKEN_COOKIE);
        if (kept !== "") out.push(name, kept);
        continue;
      }
      case "x-forwarded-for":
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      case "via":
        via = via === undefined ? value : `${via}, ${value}`;
        continue;
      default:
        out.push(name, value);
    }
  }
  if (chunked) out.push("Transfer-Encoding", "chunked");
  if (f.upgrade) {
    out.push("Connection", "Upgrade", "Upgrade", req.headers.upgrade ?? "");
  }
  out.push(
    "X-Forwarded-For",
    xff === undefined ? f.clientAddress : `${xff}, ${f.clientAddress}`,
    "X-Forwarded-Host",
    req.headers.host ?? "",
    "X-Forwarded-Proto",
    f.proto,
    "Via",
    via === undefined ? "1.1 vmm" : `${via}, 1.1 vmm`,
  );
  return out;
}

/** The guest's response header fields for the client, hop-by-hop fields removed (flat raw list). */
export function forwardedResponseHeaders(rawHeaders: readonly string[]): string[] {
  const named = connectionTokens(rawHeaders);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  return out;
}

/** Field names listed in Connection headers (lower case). */
function connectionTokens(raw: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "connection") continue;
    for (const t of raw[i + 1]!.split(",")) {
      const token = t.trim().toLowerCase();
      if (token !== "") names.add(token);
    }
  }
  return names;
}

/** A Cookie header value without the cookie `name` ("" when nothing is left). */
export function withoutCookie(header: string, name: string): string {
  return header
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c !== "" && cookieName(c) !== name)
    .join("; ");
}

function cookieName(pair: string): string {
  const eq = pair.indexOf("=");
  return (eq === -1 ? pair : pair.slice(0, eq)).trim();
}

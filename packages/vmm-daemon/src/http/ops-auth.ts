import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isLoopbackHost } from "./listen-address.js";

/** WebSocket subprotocol prefix that carries the token (browsers cannot set headers on upgrades). */
export const TOKEN_SUBPROTOCOL_PREFIX = "vmm.token.";

/** Decides whether a request or upgrade to the ops listener may proceed. */
export interface OpsAuth {
  /** True when no token is configured (loopback-only listener) or the request carries it. */
  allowsRequest(req: IncomingMessage): boolean;
  /** As allowsRequest, but also accepts the `vmm.token.<token>` WebSocket subprotocol. */
  allowsUpgrade(req: IncomingMessage): boolean;
}

/**
 * The ops listener's authentication: `Authorization: Bearer <token>`, and
 * for upgrades also `Sec-WebSocket-Protocol: vmm.token.<token>` among the
 * offered subprotocols. Comparisons take constant time (SHA-256 of both
 * sides, then timingSafeEqual): the token's length and prefix do not leak.
 * Without a token (config refuses that unless the listener is loopback-only)
 * every request whose `Host` is a loopback name is allowed, and no other: a
 * web page the user visits could otherwise point its own DNS name at
 * 127.0.0.1 (DNS rebinding) and drive the API from the user's browser.
 */
export function createOpsAuth(token: string | undefined): OpsAuth {
  if (token === undefined || token === "") {
    const local = (req: IncomingMessage) => isLoopbackHost(hostnameOf(req.headers.host ?? ""));
    return { allowsRequest: local, allowsUpgrade: local };
  }
  const expected = digest(token);
  const matches = (candidate: string) => timingSafeEqual(digest(candidate), expected);
  const bearer = (req: IncomingMessage) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    return m !== null && matches(m[1]!);
  };
  return {
    allowsRequest: bearer,
    allowsUpgrade(req) {
      if (bearer(req)) return true;
      const offered = req.headers["sec-websocket-protocol"];
      if (offered === undefined) return false;
      let ok = false;
      for (const p of offered.split(",")) {
        const v = p.trim();
        // Every candidate is compared (no early exit): timing says nothing about which matched.
        if (v.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) {
          ok = matches(v.slice(TOKEN_SUBPROTOCOL_PREFIX.length)) || ok;
        }
      }
      return ok;
    },
  };
}

/** The host name of a Host header: `[::1]:80` → `::1`, `localhost:80` → `localhost`. */
function hostnameOf(host: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(host);
  if (bracketed) return bracketed[1]!;
  return host.replace(/:\d*$/, "").toLowerCase();
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

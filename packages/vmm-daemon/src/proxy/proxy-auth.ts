import type { IncomingMessage } from "node:http";

/** Header a client may carry an access token (or the API token) in. Lower case. */
export const ACCESS_TOKEN_HEADER = "x-vmm-access-token";
/** Query parameter of ExposePort's URL; the proxy turns it into the cookie below. */
export const ACCESS_TOKEN_PARAM = "vmm_access_token";
/** Host-only cookie a browser keeps the token in (one sandbox port per host name). */
export const ACCESS_TOKEN_COOKIE = "vmm_access_token";

/** Where a request carried a token. */
export type CredentialSource = "header" | "authorization" | "query" | "cookie";

/** The outcome of checking a request's credentials. */
export type Authorization =
  | {
      readonly ok: true;
      /** The token came in the URL: strip it and keep it in a cookie. */
      readonly fromQuery: boolean;
      readonly token: string;
      /** Authorization held the valid token: do not pass it to the guest. */
      readonly viaAuthorization: boolean;
    }
  | { readonly ok: false; readonly status: 401 | 403; readonly message: string };

/**
 * Checks every token the request carries (X-Vmm-Access-Token, Authorization:
 * Bearer, the `vmm_access_token` query parameter, then the cookie); the request
 * passes when one of them is valid. None → 401; only invalid ones → 403.
 */
export function authorize(req: IncomingMessage, valid: (token: string) => boolean): Authorization {
  const candidates = credentials(req);
  if (candidates.length === 0)
    return {
      ok: false,
      status: 401,
      message: `this sandbox port needs an access token: open the URL ExposePort answered (it carries ?${ACCESS_TOKEN_PARAM}=…), or send the header X-Vmm-Access-Token: <sandbox access token or API token>`,
    };
  const hit = candidates.find((c) => valid(c.token));
  if (!hit)
    return {
      ok: false,
      status: 403,
      message:
        "the access token is not valid for this sandbox (tokens belong to one sandbox and end with it): call ExposePort again for a fresh URL",
    };
  return {
    ok: true,
    token: hit.token,
    fromQuery: hit.source === "query",
    viaAuthorization: candidates.some((c) => c.source === "authorization" && valid(c.token)),
  };
}

function credentials(req: IncomingMessage): { source: CredentialSource; token: string }[] {
  const out: { source: CredentialSource; token: string }[] = [];
  const header = req.headers[ACCESS_TOKEN_HEADER];
  for (const v of Array.isArray(header) ? header : header === undefined ? [] : [header])
    if (v.trim() !== "") out.push({ source: "header", token: v.trim() });
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
  if (bearer) out.push({ source: "authorization", token: bearer[1]! });
  const query = tokenInQuery(req.url ?? "");
  if (query !== undefined) out.push({ source: "query", token: query });
  for (const pair of (req.headers.cookie ?? "").split(";")) {
    const eq = pair.indexOf("=");
    if (eq !== -1 && pair.slice(0, eq).trim() === ACCESS_TOKEN_COOKIE)
      out.push({ source: "cookie", token: pair.slice(eq + 1).trim() });
  }
  return out;
}

function tokenInQuery(url: string): string | undefined {
  const q = url.indexOf("?");
  if (q === -1) return undefined;
  for (const part of url.slice(q + 1).split("&")) {
    if (part.startsWith(`${ACCESS_TOKEN_PARAM}=`)) {
      try {
        return decodeURIComponent(part.slice(ACCESS_TOKEN_PARAM.length + 1));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The request target without the token parameter; every other byte as sent. */
export function withoutTokenParam(url: string): string {
  const q = url.indexOf("?");
  if (q === -1) return url;
  const kept = url
    .slice(q + 1)
    .split("&")
    .filter((p) => p !== ACCESS_TOKEN_PARAM && !p.startsWith(`${ACCESS_TOKEN_PARAM}=`));
  return kept.length === 0 ? url.slice(0, q) : `${url.slice(0, q)}?${kept.join("&")}`;
}

/** The Set-Cookie value that keeps a token for this host (HttpOnly, SameSite=Lax). */
export function accessCookie(token: string, secure: boolean): string {
  return `${ACCESS_TOKEN_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`;
}

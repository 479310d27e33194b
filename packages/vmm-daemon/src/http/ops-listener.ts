import * as http from "node:http";
import type * as net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { type ConnectionLimits, limitHttp1 } from "../connection-limits.js";
import type { Listener } from "../listeners.js";
import type { HttpMount } from "./http-mount.js";
import { parseListenAddress } from "./listen-address.js";
import { createOpsAuth } from "./ops-auth.js";

/** Path prefix of the Connect API on the ops listener. */
export const API_PREFIX = "/api";

/** Options of {@link listenOps}. */
export interface OpsListenOptions {
  /** "host:port" (`http.listen`); port 0 picks a free port. */
  readonly address: string;
  /** Bearer token (`http.auth_token`); undefined = none (config allows that on loopback only). */
  readonly token?: string;
  /** Renders /metrics. */
  readonly scrape: () => Promise<{ contentType: string; body: string }>;
  /** /readyz: undefined when ready, otherwise why not (answered 503). */
  readonly notReady: () => string | undefined;
  /** Serves `/api/…` (connect-node's adapter with requestPathPrefix "/api"). */
  readonly api: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Offered every other authenticated request and upgrade, in order (the web console). */
  readonly mounts?: readonly HttpMount[];
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
}

/**
 * The console's page and assets load without a token: the browser needs the
 * page to ask the user for one, and it holds no secret (every API call and
 * the terminal's WebSocket are authenticated).
 */
function isPublicPage(req: http.IncomingMessage, path: string): boolean {
  return (
    (req.method === "GET" || req.method === "HEAD") && (path === "/ui" || path.startsWith("/ui/"))
  );
}

function isApiPath(path: string): boolean {
  return path === API_PREFIX || path.startsWith(`${API_PREFIX}/`);
}

const UNAUTHORIZED_BODY =
  "missing or invalid bearer token: send Authorization: Bearer <http.auth_token>\n";

/**
 * The ops HTTP listener (HTTP/1.1): `/healthz` and `/readyz` (no token: load
 * balancers and probes often cannot send one), then, behind the token,
 * `/metrics`, the Connect API under `/api` and the mounts. Upgrades
 * (WebSocket) are authenticated, then offered to the mounts' handleUpgrade;
 * one no mount takes is answered 404 and closed.
 */
export async function listenOps(options: OpsListenOptions): Promise<Listener> {
  const addr = parseListenAddress(options.address);
  if (!addr) throw new Error(`http.listen ${JSON.stringify(options.address)} must be "host:port"`);
  const { logger } = options;
  const mounts = options.mounts ?? [];
  const auth = createOpsAuth(options.token);

  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    if (path === "/healthz" || path === "/readyz") {
      if (!getOrHead(req, res)) return;
      const why = path === "/readyz" ? options.notReady() : undefined;
      text(res, why === undefined ? 200 : 503, why === undefined ? "ok\n" : `not ready: ${why}\n`);
      return;
    }
    if (!auth.allowsRequest(req) && !isPublicPage(req, path)) {
      res.setHeader("www-authenticate", 'Bearer realm="vmm"');
      if (isApiPath(path)) {
        // The Connect protocol's error body, so Connect clients (the console) see code
        // `unauthenticated` with the message rather than a bare HTTP status.
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ code: "unauthenticated", message: UNAUTHORIZED_BODY.trim() }));
      } else {
        text(res, 401, UNAUTHORIZED_BODY);
      }
      return;
    }
    if (path === "/metrics") {
      if (!getOrHead(req, res)) return;
      options.scrape().then(
        ({ contentType, body }) => {
          res.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
          res.end(req.method === "HEAD" ? undefined : body);
        },
        (err: unknown) => {
          logger.error({ err }, "rendering /metrics failed");
          text(res, 500, "rendering the metrics failed (see the daemon log)\n");
        },
      );
      return;
    }
    if (isApiPath(path)) {
      options.api(req, res);
      return;
    }
    for (const m of mounts) {
      try {
        if (m.handleRequest(req, res)) return;
      } catch (err) {
        logger.error({ err, path }, "an ops HTTP mount failed on a request");
        if (!res.headersSent) text(res, 500, "internal error (see the daemon log)\n");
        else res.destroy();
        return;
      }
    }
    text(res, 404, `no such path: ${path}\n`);
  });
  limitHttp1(server, options.limits);
  server.maxConnections = options.limits.maxConnections;

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    if (!auth.allowsUpgrade(req)) {
      refuseUpgrade(socket, 401, "Unauthorized", { "WWW-Authenticate": 'Bearer realm="vmm"' });
      return;
    }
    for (const m of mounts) {
      try {
        if (m.handleUpgrade?.(req, socket, head)) return;
      } catch (err) {
        logger.error({ err, path: req.url }, "an ops HTTP mount failed on an upgrade");
        socket.destroy();
        return;
      }
    }
    refuseUpgrade(socket, 404, "Not Found", {});
  });

  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(addr.port, addr.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
  const host = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  let closing: Promise<void> | undefined;
  return {
    address: `http:${host}:${bound.port}`,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await Promise.all(
          mounts.map((m) =>
            m.close?.().catch((err: unknown) => logger.warn({ err }, "closing an ops HTTP mount")),
          ),
        );
        await stopped;
      })();
      return closing;
    },
    destroy() {
      for (const s of sockets) s.destroy();
    },
  };
}

function getOrHead(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  if (req.method === "GET" || req.method === "HEAD") return true;
  res.setHeader("allow", "GET, HEAD");
  text(res, 405, `method ${req.method} not allowed: use GET\n`);
  return false;
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
  });
  res.end(body);
}

function refuseUpgrade(
  socket: Duplex,
  status: number,
  reason: string,
  headers: Record<string, string>,
): void {
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "Connection: close",
    "Content-Length: 0",
    "",
    "",
  ];
  socket.end(lines.join("\r\n"));
  socket.once("finish", () => socket.destroy());
}

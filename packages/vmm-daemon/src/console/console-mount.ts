import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { isDimension, TERMINAL_PATH, TERMINAL_SUBPROTOCOL } from "@vmm/console/terminal-protocol";
import type { ProcessSpec } from "@vmm/core";
import type { SandboxApi } from "@vmm/grpc";
import type { Logger } from "pino";
import { type WebSocket, WebSocketServer } from "ws";
import type { HttpMount } from "../http/http-mount.js";
import {
  type ConsoleAsset,
  type ConsoleAssets,
  defaultConsoleAssetsDir,
  loadConsoleAssets,
} from "./console-assets.js";
import { bridgeTerminal, type TerminalRequest } from "./terminal-socket.js";

/** Options of `createConsoleMount`. */
export interface ConsoleMountOptions {
  /** Interactive Exec for the terminal: the daemon's sandbox backend (Backend.sandboxes). */
  readonly sandboxes: Pick<SandboxApi, "exec">;
  readonly logger: Logger;
  /** The built console; default `defaultConsoleAssetsDir()` (dist/console beside the daemon). */
  readonly assetsDir?: string;
  /** What a terminal runs when its URL names no `cmd`; default `["/bin/sh"]`. */
  readonly shell?: readonly string[];
  /** Terminals open at once; more are refused with 503. Default 32. */
  readonly maxTerminals?: number;
  /** Largest WebSocket message accepted from a browser, in bytes. Default 64 KiB. */
  readonly maxMessageBytes?: number;
}

/** Content-Security-Policy of every console response: nothing from elsewhere, no framing. */
const CSP = [
  "default-src 'self'",
  // 'self' covers same-origin ws:/wss: in CSP level 3 (Chromium, Firefox).
  "connect-src 'self'",
  // xterm.js sets its colours and cell sizes through a <style> element it writes.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/**
 * The web console as a mount of the ops HTTP listener: the static app under `/ui/` (from
 * memory, gzipped when the browser accepts it) and the terminal WebSocket at
 * `/ui/terminal?sandbox=<id>` (an interactive Exec with a TTY). Authentication is the
 * listener's; this mount only refuses cross-origin WebSockets, which no token check can catch
 * on a tokenless loopback listener (any web page could otherwise open a shell).
 */
export function createConsoleMount(options: ConsoleMountOptions): HttpMount {
  const assets = loadConsoleAssets(options.assetsDir ?? defaultConsoleAssetsDir());
  const log = options.logger.child({ component: "console" });
  const shell = options.shell ?? ["/bin/sh"];
  const maxTerminals = options.maxTerminals ?? 32;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxMessageBytes ?? 64 * 1024,
    perMessageDeflate: false,
    handleProtocols: (offered) =>
      offered.has(TERMINAL_SUBPROTOCOL) ? TERMINAL_SUBPROTOCOL : false,
  });
  const terminals = new Set<Promise<void>>();
  const sockets = new Set<WebSocket>();

  return {
    handleRequest(req, res) {
      const path = pathOf(req);
      if (path !== "/ui" && !path.startsWith("/ui/")) return false;
      serveStatic(req, res, path, assets);
      return true;
    },

    handleUpgrade(req, socket, head) {
      const url = new URL(req.url ?? "/", "http://console.invalid");
      if (url.pathname !== TERMINAL_PATH) return false;
      const refuse = (status: number, message: string) => refuseUpgrade(socket, status, message);
      if (!sameOrigin(req)) {
        return refuse(403, "cross-origin WebSocket refused: open the console from this listener");
      }
      const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
      if (!offered.includes(TERMINAL_SUBPROTOCOL)) {
        return refuse(400, `offer the WebSocket subprotocol ${TERMINAL_SUBPROTOCOL}`);
      }
      let request: TerminalRequest;
      try {
        request = terminalRequest(url.searchParams, shell);
      } catch (err) {
        return refuse(400, (err as Error).message);
      }
      if (terminals.size >= maxTerminals) {
        return refuse(503, `${maxTerminals} terminals are open (the console's limit); close one`);
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        sockets.add(ws);
        const termLog = log.child({ sandboxId: request.sandboxId, terminal: true });
        termLog.info({ cmd: request.spec.cmd }, "terminal opened");
        const done = bridgeTerminal(ws, options.sandboxes, request, termLog).finally(() => {
          terminals.delete(done);
          sockets.delete(ws);
          termLog.info("terminal closed");
        });
        terminals.add(done);
      });
      return true;
    },

    async close() {
      for (const ws of sockets) ws.close(1001, "the daemon is shutting down");
      // A browser that does not answer the close handshake is cut off.
      const cutOff = setTimeout(() => {
        for (const ws of sockets) ws.terminate();
      }, 2000);
      await Promise.all(terminals);
      clearTimeout(cutOff);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** The request's path, without the query. */
function pathOf(req: IncomingMessage): string {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}

function serveStatic(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  assets: ConsoleAssets,
): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
  if (path === "/ui") {
    res.writeHead(308, { location: "/ui/" }).end();
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
    res.end(`${req.method} is not allowed on the console; use GET\n`);
    return;
  }
  const name = assetName(path);
  if (name === undefined) {
    plain(res, 400, "bad console path: no '..', '.', empty or encoded-slash segments\n");
    return;
  }
  if (path === TERMINAL_PATH) {
    res.setHeader("upgrade", "websocket");
    plain(res, 426, "the terminal is a WebSocket: connect with Upgrade: websocket\n");
    return;
  }
  if (assets.size === 0) {
    plain(res, 503, "the console is not built: run `node scripts/build.mjs` and restart\n");
    return;
  }
  const asset = assets.get(name);
  if (asset === undefined) {
    plain(res, 404, `no console file ${JSON.stringify(name)}\n`);
    return;
  }
  sendAsset(req, res, asset);
}

/**
 * The file a `/ui/…` path names, or undefined for a path that tries to leave the console's
 * directory (assets are a flat in-memory map, so nothing outside could be served anyway; such
 * paths are refused outright rather than looked up).
 */
function assetName(path: string): string | undefined {
  const rest = path.slice("/ui/".length);
  if (rest === "") return "index.html";
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    return undefined;
  }
  if (/[\\\0]/.test(decoded) || decoded.includes("/")) {
    // Subdirectories do not exist; a slash (literal or %2F) or backslash is a traversal try.
    return undefined;
  }
  if (decoded === "." || decoded === ".." || decoded.startsWith(".")) return undefined;
  return decoded;
}

function sendAsset(req: IncomingMessage, res: ServerResponse, asset: ConsoleAsset): void {
  res.setHeader("content-type", asset.contentType);
  res.setHeader("etag", asset.etag);
  res.setHeader(
    "cache-control",
    asset.immutable ? "public, max-age=31536000, immutable" : "no-cache",
  );
  res.setHeader("vary", "accept-encoding");
  if (req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304).end();
    return;
  }
  const send = (gzipped: Buffer | undefined) => {
    const body = gzipped ?? asset.body;
    if (gzipped) res.setHeader("content-encoding", "gzip");
    res.setHeader("content-length", body.length);
    res.writeHead(200);
    res.end(req.method === "HEAD" ? undefined : body);
  };
  if (!acceptsGzip(req)) {
    send(undefined);
    return;
  }
  // zlib does not fail on a Buffer; the catch only keeps a bug from becoming a hung request.
  asset.gzipped().then(send, () => send(undefined));
}

function acceptsGzip(req: IncomingMessage): boolean {
  const accept = req.headers["accept-encoding"];
  if (typeof accept !== "string") return false;
  return accept.split(",").some((item) => {
    const [coding, ...params] = item.split(";").map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith("q="));
    return (coding === "gzip" || coding === "*") && (q === undefined || Number(q.slice(2)) > 0);
  });
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
  });
  res.end(text);
}

/**
 * True unless the browser says the page that opens the socket comes from another origin. Non-
 * browser clients send no Origin and pass (they have to hold the token anyway).
 */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** The process a terminal URL asks for; throws an Error saying what is wrong. */
function terminalRequest(params: URLSearchParams, shell: readonly string[]): TerminalRequest {
  const sandboxId = params.get("sandbox") ?? "";
  if (sandboxId === "") throw new Error("missing query parameter sandbox=<id>");
  const size = (name: "cols" | "rows", fallback: number) => {
    const raw = params.get(name);
    if (raw === null) return fallback;
    const n = Number(raw);
    if (!isDimension(n)) throw new Error(`${name} must be an integer 1..65535, got ${raw}`);
    return n;
  };
  const cmd = params.getAll("cmd");
  const spec: ProcessSpec = {
    cmd: cmd.length > 0 ? cmd : [...shell],
    env: { TERM: "xterm-256color" },
    tty: true,
    ttySize: { cols: size("cols", 80), rows: size("rows", 24) },
    timeoutSeconds: 0,
  };
  return { sandboxId, spec };
}

/** Answers an upgrade with a plain HTTP error and closes the connection; returns true (handled). */
function refuseUpgrade(socket: Duplex, status: number, message: string): true {
  const reason = { 400: "Bad Request", 403: "Forbidden", 503: "Service Unavailable" }[status];
  socket.end(
    `HTTP/1.1 ${status} ${reason ?? ""}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(message) + 1}\r\n\r\n${message}\n`,
  );
  return true;
}

import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  unlinkSync,
} from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type ConnectionLimits,
  closeWhenIdle,
  deadlineForFirstBytes,
  http2Settings,
  limitHttp1,
  openConnectionWindow,
} from "./connection-limits.js";

/** A request handler that accepts both HTTP/1.1 and HTTP/2 requests (connect-node's adapter). */
export type UniversalHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** One listening socket; `close` stops accepting and `destroy` drops what is left. */
export interface Listener {
  readonly address: string;
  /** Stops accepting new connections; resolves when all existing connections closed. */
  close(): Promise<void>;
  /** Ends every connection now (after the drain deadline). */
  destroy(): void;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** What every listener needs besides its address. */
export interface ListenOptions {
  readonly limits: ConnectionLimits;
  /** Called (rate-limited by the caller) when a connection beyond the cap was closed. */
  readonly onConnectionRefused?: () => void;
}

/**
 * Serves `handler` on a plain (non-TLS) socket that speaks both h2c (gRPC,
 * gRPC-Web, Connect) and HTTP/1.1 (Connect and gRPC-Web from curl or fetch):
 * the first bytes of each connection decide (HTTP/2 connections open with a
 * fixed preface).
 */
function createCleartextServer(
  handler: UniversalHandler,
  limits: ConnectionLimits,
): {
  server: net.Server;
  sockets: Set<net.Socket>;
  sessions: Set<http2.ServerHttp2Session>;
} {
  const h2 = http2.createServer({ settings: http2Settings(limits) }, handler as never);
  const h1 = http.createServer(handler as never);
  limitHttp1(h1, limits);
  // h1 never listens itself (connections are handed to it), but Node starts the
  // checker of requestTimeout/headersTimeout on "listening": start it.
  h1.emit("listening");
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    openConnectionWindow(s, limits);
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
    closeWhenIdle(s, limits.idleTimeoutMs);
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("error", () => socket.destroy());
    const spoke = deadlineForFirstBytes(socket, limits.requestTimeoutMs);
    socket.once("readable", function route() {
      const first: Buffer | null = socket.read();
      if (first === null) {
        socket.once("readable", route);
        return;
      }
      spoke();
      socket.unshift(first);
      const isH2 = first
        .subarray(0, Math.min(first.length, H2_PREFACE.length))
        .equals(H2_PREFACE.subarray(0, Math.min(first.length, H2_PREFACE.length)));
      (isH2 ? h2 : h1).emit("connection", socket);
    });
  });
  return { server, sockets, sessions };
}

function capConnections(server: net.Server, options: ListenOptions): void {
  // Node accepts and closes at once every connection beyond the cap ("drop"):
  // the new client sees a closed connection, existing ones are untouched.
  server.maxConnections = options.limits.maxConnections;
  server.on("drop", () => options.onConnectionRefused?.());
}

function listenerOf(
  server: net.Server,
  sockets: Set<net.Socket>,
  sessions: Set<http2.ServerHttp2Session>,
  address: string,
  onClosed: () => void,
): Listener {
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          onClosed();
          resolve();
        });
        // Ask HTTP/2 clients to stop opening streams; in-flight ones finish.
        for (const s of sessions) s.close();
      }),
    destroy: () => {
      for (const s of sessions) s.destroy();
      for (const s of sockets) s.destroy();
    },
  };
}

/** Options of `listenUnix`. */
export interface UnixListenOptions extends ListenOptions {
  readonly path: string;
  /** File mode of the socket, e.g. 0o660. */
  readonly mode: number;
  /** Group the socket is chowned to (`grpc.socket_group`); undefined = leave it. */
  readonly gid?: number;
}

/**
 * Listens on a Unix socket: creates the parent directory, removes a stale
 * socket left by a dead daemon, and refuses to start when a live daemon
 * answers on it.
 */
export async function listenUnix(
  handler: UniversalHandler,
  options: UnixListenOptions,
): Promise<Listener> {
  if (Buffer.byteLength(options.path) > 107) {
    throw new Error(
      `grpc.unix_socket ${options.path} is ${Buffer.byteLength(options.path)} bytes long; Unix socket paths are limited to 107 bytes: choose a shorter path`,
    );
  }
  mkdirSync(dirname(options.path), { recursive: true, mode: 0o755 });
  if (existsSync(options.path)) {
    if (!statSync(options.path).isSocket()) {
      throw new Error(
        `grpc.unix_socket ${options.path} exists and is not a socket; remove it or choose another path`,
      );
    }
    if (await isLive(options.path)) {
      throw new Error(
        `another daemon is already serving on ${options.path}; stop it first or set grpc.unix_socket`,
      );
    }
    unlinkSync(options.path);
  }
  const { server, sockets, sessions } = createCleartextServer(handler, options.limits);
  capConnections(server, options);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(options.path, options.mode);
  if (options.gid !== undefined) chownSync(options.path, -1, options.gid);
  return listenerOf(server, sockets, sessions, `unix:${options.path}`, () => {
    try {
      unlinkSync(options.path);
    } catch {
      // Already gone.
    }
  });
}

/**
 * Fails when a live daemon already serves `path` (checked before the daemon
 * touches its data dir, so a second daemon never interferes with the first).
 */
export async function assertSocketFree(path: string): Promise<void> {
  if (existsSync(path) && statSync(path).isSocket() && (await isLive(path))) {
    throw new Error(
      `another daemon is already serving on ${path}; stop it first or set grpc.unix_socket`,
    );
  }
}

async function isLive(path: string): Promise<boolean> {
  const attempt = new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
  return Promise.race([attempt, sleep(1000).then(() => false)]);
}

/** Options of `listenTcp`. */
export interface TcpListenOptions extends ListenOptions {
  /** "host:port"; port 0 picks a free port. */
  readonly address: string;
  readonly tls?: {
    readonly certFile: string;
    readonly keyFile: string;
    /** PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS). */
    readonly clientCaFile?: string;
  };
}

/**
 * Listens on TCP, with TLS (HTTP/2 and HTTP/1.1 via ALPN) or cleartext (h2c
 * and HTTP/1.1). With `tls.clientCaFile` the handshake fails for a client
 * without a certificate or with one no CA of the bundle signed.
 */
export async function listenTcp(
  handler: UniversalHandler,
  options: TcpListenOptions,
): Promise<Listener> {
  const m = /^(.*):(\d+)$/.exec(options.address);
  if (!m) throw new Error(`grpc.tcp_addr ${JSON.stringify(options.address)} must be "host:port"`);
  const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
  const port = Number(m[2]);
  let server: net.Server;
  let sockets: Set<net.Socket>;
  let sessions = new Set<http2.ServerHttp2Session>();
  if (options.tls) {
    const { clientCaFile } = options.tls;
    const secure = http2.createSecureServer(
      {
        allowHTTP1: true,
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
        ...(clientCaFile !== undefined && {
          ca: readFileSync(clientCaFile),
          requestCert: true,
          rejectUnauthorized: true,
        }),
        handshakeTimeout: options.limits.requestTimeoutMs,
        settings: http2Settings(options.limits),
      },
      handler as never,
    );
    limitHttp1(secure, options.limits);
    secure.on("session", (s) => {
      openConnectionWindow(s, options.limits);
      sessions.add(s);
      s.once("close", () => sessions.delete(s));
      closeWhenIdle(s, options.limits.idleTimeoutMs);
    });
    sockets = new Set();
    const tracked = sockets;
    secure.on("secureConnection", (s: net.Socket) => {
      tracked.add(s);
      s.once("close", () => tracked.delete(s));
    });
    server = secure;
  } else {
    const clear = createCleartextServer(handler, options.limits);
    server = clear.server;
    sockets = clear.sockets;
    sessions = clear.sessions;
  }
  capConnections(server, options);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  return listenerOf(server, sockets, sessions, `tcp:${addr.address}:${addr.port}`, () => {});
}

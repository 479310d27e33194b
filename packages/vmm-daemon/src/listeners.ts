import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

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

/**
 * Serves `handler` on a plain (non-TLS) socket that speaks both h2c (gRPC,
 * gRPC-Web, Connect) and HTTP/1.1 (Connect and gRPC-Web from curl or fetch):
 * the first bytes of each connection decide (HTTP/2 connections open with a
 * fixed preface).
 */
function createCleartextServer(handler: UniversalHandler): {
  server: net.Server;
  sockets: Set<net.Socket>;
  sessions: Set<http2.ServerHttp2Session>;
} {
  const h2 = http2.createServer({}, handler as never);
  const h1 = http.createServer(handler as never);
  h1.keepAliveTimeout = 5000;
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("error", () => socket.destroy());
    socket.once("readable", function route() {
      const first: Buffer | null = socket.read();
      if (first === null) {
        socket.once("readable", route);
        return;
      }
      socket.unshift(first);
      const isH2 = first
        .subarray(0, Math.min(first.length, H2_PREFACE.length))
        .equals(H2_PREFACE.subarray(0, Math.min(first.length, H2_PREFACE.length)));
      (isH2 ? h2 : h1).emit("connection", socket);
    });
  });
  return { server, sockets, sessions };
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
export interface UnixListenOptions {
  readonly path: string;
  /** File mode of the socket, e.g. 0o660. */
  readonly mode: number;
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
  const { server, sockets, sessions } = createCleartextServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(options.path, options.mode);
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
export interface TcpListenOptions {
  /** "host:port"; port 0 picks a free port. */
  readonly address: string;
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

/** Listens on TCP, with TLS (HTTP/2 and HTTP/1.1 via ALPN) or cleartext (h2c and HTTP/1.1). */
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
    const secure = http2.createSecureServer(
      {
        allowHTTP1: true,
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
      },
      handler as never,
    );
    secure.on("session", (s) => {
      sessions.add(s);
      s.once("close", () => sessions.delete(s));
    });
    sockets = new Set();
    const tracked = sockets;
    secure.on("secureConnection", (s: net.Socket) => {
      tracked.add(s);
      s.once("close", () => tracked.delete(s));
    });
    server = secure;
  } else {
    const clear = createCleartextServer(handler);
    server = clear.server;
    sockets = clear.sockets;
    sessions = clear.sessions;
  }
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

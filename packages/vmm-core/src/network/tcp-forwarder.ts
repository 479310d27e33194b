import * as net from "node:net";
import type { Logger } from "./logger.js";

/** A listening TCP forwarder: every connection accepted is relayed to one target. */
export interface TcpForwarder {
  /** Where it listens, `ip:port`. */
  readonly address: string;
  /**
   * Dials the target the way a forwarded connection does (`beforeConnect`
   * first, the same timeout) for an in-process relay such as the HTTP proxy;
   * the socket is cut by {@link close} like the forwarder's own. Rejects with
   * `beforeConnect`'s error, or the dial's (ECONNREFUSED, ETIMEDOUT), and
   * with ECONNABORTED once closed.
   */
  connect(): Promise<net.Socket>;
  /** Stops listening and cuts the connections it relays and the ones {@link connect} made. */
  close(): Promise<void>;
}

export interface TcpForwarderOptions {
  /** Listen address. */
  readonly host: string;
  /** Listen port; 0 = an ephemeral one. */
  readonly port: number;
  readonly targetHost: string;
  readonly targetPort: number;
  /**
   * Awaited before each connection is dialled (e.g. resume a paused sandbox);
   * a rejection closes the client connection.
   */
  readonly beforeConnect?: () => Promise<void>;
  /** How long dialling the target may take. Default 10 s. */
  readonly connectTimeoutMs?: number;
  readonly logger: Logger;
}

/**
 * Listens on `host:port` and relays each connection to `targetHost:targetPort`
 * (both directions, half-closes passed on, backpressure by `pipe`). Rejects
 * when the address cannot be bound (e.g. EADDRINUSE).
 */
export async function openTcpForwarder(o: TcpForwarderOptions): Promise<TcpForwarder> {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    client.on("error", () => {});
    void relay(client);
  });
  let closed = false;
  /** Connects to the target; the socket is tracked (cut by close). */
  function dial(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      if (closed) {
        reject(Object.assign(new Error("the forwarder is closed"), { code: "ECONNABORTED" }));
        return;
      }
      const upstream = net.connect({ host: o.targetHost, port: o.targetPort });
      track(upstream);
      upstream.setTimeout(o.connectTimeoutMs ?? 10_000, () =>
        upstream.destroy(
          Object.assign(new Error(`connect to ${o.targetHost}:${o.targetPort} timed out`), {
            code: "ETIMEDOUT",
          }),
        ),
      );
      const failed = (err: Error) => reject(err);
      upstream.once("error", failed);
      upstream.once("connect", () => {
        upstream.setTimeout(0);
        upstream.off("error", failed);
        // Errors after this surface as "close" to whoever uses the socket; none may crash the daemon.
        upstream.on("error", () => {});
        resolve(upstream);
      });
    });
  }
  async function relay(client: net.Socket): Promise<void> {
    try {
      await o.beforeConnect?.();
    } catch (err) {
      o.logger.warn({ err }, "forwarded connection refused");
      client.destroy();
      return;
    }
    if (client.destroyed) return;
    let upstream: net.Socket;
    try {
      upstream = await dial();
    } catch {
      // A refused or timed-out dial stays a reset for the client, not a hang.
      client.resetAndDestroy();
      return;
    }
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
    // Either side failing ends both: a reset stays a reset, not a hang.
    upstream.on("error", () => client.resetAndDestroy());
    upstream.once("close", () => client.destroy());
    client.once("close", () => upstream.destroy());
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: o.host, port: o.port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
  const host = bound.family === "IPv6" ? `[${bound.address}]` : bound.address;
  return {
    address: `${host}:${bound.port}`,
    async connect() {
      await o.beforeConnect?.();
      return dial();
    },
    async close() {
      closed = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}

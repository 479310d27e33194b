import * as net from "node:net";
import type { Logger } from "./logger.js";

/** A listening TCP forwarder: every connection accepted is relayed to one target. */
export interface TcpForwarder {
  /** Where it listens, `ip:port`. */
  readonly address: string;
  /** Stops listening and cuts the connections it relays. */
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
  async function relay(client: net.Socket): Promise<void> {
    try {
      await o.beforeConnect?.();
    } catch (err) {
      o.logger.warn({ err }, "forwarded connection refused");
      client.destroy();
      return;
    }
    if (client.destroyed) return;
    const upstream = net.connect({ host: o.targetHost, port: o.targetPort });
    track(upstream);
    upstream.setTimeout(o.connectTimeoutMs ?? 10_000, () => upstream.destroy());
    upstream.once("connect", () => {
      upstream.setTimeout(0);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
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
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

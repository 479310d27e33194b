import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/**
 * A part of the ops HTTP listener (`[http] listen`): the metrics and health
 * endpoints, the Connect API for the console (`/api/…`), the web console
 * (`/ui/…`). The listener authenticates every request and upgrade before it
 * reaches a mount (`Authorization: Bearer <token>`; for WebSocket upgrades,
 * which browsers cannot give headers, also the subprotocol
 * `vmm.token.<token>` in `Sec-WebSocket-Protocol`), then offers it to each
 * mount in turn until one handles it.
 */
export interface HttpMount {
  /** Handles the request and returns true, or returns false without touching it. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /** Handles an HTTP upgrade (WebSocket) and returns true, or returns false without touching it. */
  handleUpgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Closes what the mount holds (open WebSockets, timers) when the listener closes. */
  close?(): Promise<void>;
}

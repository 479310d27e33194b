import type * as http from "node:http";
import type * as http2 from "node:http2";
import type * as net from "node:net";

/**
 * Limits every listener applies to its connections (from `[grpc]`): how many
 * may be open, how long one may sit idle, how long a request may take to
 * arrive, and how many calls one HTTP/2 connection may carry at once.
 */
export interface ConnectionLimits {
  /** Open connections per listener; one more is closed at once (`net.Server.maxConnections`). */
  readonly maxConnections: number;
  /** A connection with no call in progress is closed after this long, ms. */
  readonly idleTimeoutMs: number;
  /** Time for the first bytes, the TLS handshake, HTTP/1.1 headers and request body, ms. */
  readonly requestTimeoutMs: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of every HTTP/2 connection. */
  readonly maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE: bytes a client may send on one stream ahead of the daemon reading them. */
  readonly streamWindowBytes: number;
  /** The connection's receive window: bytes ahead of the daemon on all its streams together. */
  readonly connectionWindowBytes: number;
  /** SETTINGS_MAX_FRAME_SIZE: the largest DATA frame a client may send. */
  readonly maxFrameBytes: number;
}

/**
 * HTTP/2 server settings: the stream limit and the flow-control window and
 * frame size. Node's defaults (64 KiB windows, 16 KiB frames) cost a
 * WINDOW_UPDATE round trip per 64 KiB and a frame per 16 KiB, which held file
 * uploads to a fraction of what the agent takes (docs/benchmarks.md, Files).
 */
export function http2Settings(limits: ConnectionLimits): http2.Settings {
  return {
    maxConcurrentStreams: limits.maxConcurrentStreams,
    initialWindowSize: limits.streamWindowBytes,
    maxFrameSize: limits.maxFrameBytes,
  };
}

/**
 * Opens a new server session's connection-level receive window (HTTP/2 has no
 * setting for it: a WINDOW_UPDATE on stream 0). The window bounds what one
 * connection can make the daemon hold unread.
 */
export function openConnectionWindow(
  session: http2.ServerHttp2Session,
  limits: ConnectionLimits,
): void {
  const grow = () => {
    if (!session.destroyed) session.setLocalWindowSize(limits.connectionWindowBytes);
  };
  // A TLS session is created before its socket connected; the window can only be sent after.
  if (session.connecting) session.once("connect", grow);
  else grow();
}

/**
 * Applies the limits to an HTTP/1.1 server (or an HTTP/2 secure server's
 * HTTP/1.1 fallback, which reads the same properties): headers and body
 * within `requestTimeoutMs` (Node answers 408 and closes otherwise), and a
 * kept-alive connection closed after `idleTimeoutMs` without a request.
 */
export function limitHttp1(
  server: http.Server | http2.Http2SecureServer,
  limits: ConnectionLimits,
) {
  const h1 = server as unknown as {
    headersTimeout: number;
    requestTimeout: number;
    keepAliveTimeout: number;
    connectionsCheckingInterval: number;
  };
  h1.requestTimeout = limits.requestTimeoutMs;
  h1.headersTimeout = limits.requestTimeoutMs;
  h1.keepAliveTimeout = limits.idleTimeoutMs;
  // Node checks both timeouts on this interval (default 30 s): check often enough.
  h1.connectionsCheckingInterval = Math.max(100, Math.min(1000, limits.requestTimeoutMs / 4));
}

/**
 * Closes an HTTP/2 session once it has had no open stream for
 * `idleTimeoutMs` (GOAWAY, then destroy after a second). Unlike Node's
 * activity timeout (`server.setTimeout`), a quiet but open stream (an Events
 * subscription with no events, an Exec waiting for output) keeps the session:
 * long-lived calls are legitimate, idle connections are not.
 */
export function closeWhenIdle(session: http2.ServerHttp2Session, idleTimeoutMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      if (session.closed || session.destroyed) return;
      session.close();
      setTimeout(() => session.destroy(), 1000).unref();
    }, idleTimeoutMs);
    timer.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once("close", () => {
      open--;
      if (open === 0 && !session.closed && !session.destroyed) arm();
    });
  });
  session.once("close", () => clearTimeout(timer));
  arm();
}

/**
 * Destroys `socket` after `timeoutMs` unless the returned function (call it
 * once the first bytes arrived) runs first: bounds how long a connection may
 * stay open without saying anything.
 */
export function deadlineForFirstBytes(socket: net.Socket, timeoutMs: number): () => void {
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  timer.unref();
  return () => clearTimeout(timer);
}

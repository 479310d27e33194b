import { createHash, timingSafeEqual } from "node:crypto";
import type * as http from "node:http";
import * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import type { ListenerKind } from "@vmm/grpc";
import { rejectCall } from "./early-response.js";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/** Options of `createCallGate`. */
export interface CallGateOptions {
  /** Bearer token required on TCP calls; undefined = none (mutual TLS authenticates). */
  readonly tcpToken?: string;
  /** Path of the Events RPC ("/sandbox.v1.SandboxService/Events"). */
  readonly eventsPath: string;
  /** Events streams open at once, all connections together. */
  readonly maxEventStreams: number;
  /** Events streams open at once on one connection. */
  readonly maxEventStreamsPerConnection: number;
  /** Paths whose request body is a stream (Exec, reflection): exempt from the body deadline. */
  readonly clientStreamingPaths: ReadonlySet<string>;
  /** How long the body of any other call may take to arrive, ms. */
  readonly requestTimeoutMs: number;
}

/** What the gate decided: pass the call to connect, or it was answered already. */
export type GateResult = "pass" | "rejected";

/**
 * Checks a call on its headers, before connect reads (and buffers, up to
 * grpc.max_message_bytes) its body:
 * - TCP calls need the bearer token (compared in constant time); a call
 *   without it is answered UNAUTHENTICATED at once and its body never read;
 * - Events streams are counted per connection and in total; one over either
 *   cap is answered RESOURCE_EXHAUSTED; a stream's slot is freed when it closes;
 * - over HTTP/2, the body of a call that is not client-streaming must arrive
 *   within requestTimeoutMs, or the stream is reset (CANCEL): a trickled body
 *   cannot hold a call open. (HTTP/1.1: Node's server.requestTimeout.)
 */
export function createCallGate(
  options: CallGateOptions,
): (req: Request, res: Response, listener: ListenerKind, pathPrefix?: string) => GateResult {
  const expected =
    options.tcpToken === undefined ? undefined : digest(`Bearer ${options.tcpToken}`);
  const eventsPerConnection = new WeakMap<object, number>();
  let events = 0;

  return (req, res, listener, pathPrefix = "") => {
    if (listener === "tcp" && expected !== undefined) {
      const got = req.headers.authorization;
      if (got === undefined) {
        rejectCall(
          req,
          res,
          Code.Unauthenticated,
          "missing bearer token (authorization: Bearer <token>)",
        );
        return "rejected";
      }
      if (!timingSafeEqual(digest(got), expected)) {
        rejectCall(req, res, Code.Unauthenticated, "invalid bearer token");
        return "rejected";
      }
    }
    const path = (req.url ?? "").split("?")[0]!.slice(pathPrefix.length);
    if (path === options.eventsPath) {
      const connection = "stream" in req ? req.stream.session : req.socket;
      const onConnection = eventsPerConnection.get(connection as object) ?? 0;
      if (events >= options.maxEventStreams) {
        rejectCall(
          req,
          res,
          Code.ResourceExhausted,
          `too many Events streams open on this daemon (grpc.max_event_streams = ${options.maxEventStreams}); close some or retry later`,
        );
        return "rejected";
      }
      if (onConnection >= options.maxEventStreamsPerConnection) {
        rejectCall(
          req,
          res,
          Code.ResourceExhausted,
          `too many Events streams open on this connection (grpc.max_event_streams_per_connection = ${options.maxEventStreamsPerConnection}); share one stream or close some`,
        );
        return "rejected";
      }
      events++;
      eventsPerConnection.set(connection as object, onConnection + 1);
      res.once("close", () => {
        events--;
        const n = (eventsPerConnection.get(connection as object) ?? 1) - 1;
        if (n === 0) eventsPerConnection.delete(connection as object);
        else eventsPerConnection.set(connection as object, n);
      });
    }
    if ("stream" in req && !req.complete && !options.clientStreamingPaths.has(path)) {
      const stream = req.stream;
      const timer = setTimeout(() => {
        if (!req.complete && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      }, options.requestTimeoutMs);
      timer.unref();
      stream.once("end", () => clearTimeout(timer));
      stream.once("close", () => clearTimeout(timer));
    }
    return "pass";
  };
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

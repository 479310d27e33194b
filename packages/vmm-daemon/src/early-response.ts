import type * as http from "node:http";
import * as http2 from "node:http2";
import type { Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Fails a call with `code` before connect sees it, in the shape its protocol
 * expects, without reading the request body:
 * - gRPC and gRPC-Web: HTTP 200, trailers-only (`grpc-status`, `grpc-message`
 *   in the headers, no body);
 * - Connect streaming: HTTP 200 and one end-stream message carrying the error;
 * - Connect unary (and anything else): the code's HTTP status with the JSON
 *   error body `{"code": "...", "message": "..."}`.
 * The unread body is then dropped: the HTTP/2 stream is reset with NO_ERROR
 * once the answer is out (RFC 9113 §8.1); over HTTP/1.1 Node discards it.
 */
export function rejectCall(req: Request, res: Response, code: Code, message: string): void {
  const contentType = String(req.headers["content-type"] ?? "");
  if (/^application\/grpc(-web)?(\+|;|$)/.test(contentType)) {
    send(req, res, 200, {
      "content-type": contentType.startsWith("application/grpc-web")
        ? "application/grpc-web+proto"
        : "application/grpc",
      "grpc-status": String(code),
      "grpc-message": encodeURIComponent(message),
    });
    return;
  }
  const error = { code: codeToString(code), message };
  if (/^application\/connect\+/.test(contentType)) {
    const json = Buffer.from(JSON.stringify({ error }));
    const frame = Buffer.alloc(5 + json.length);
    frame.writeUInt8(0b10, 0); // end-stream flag
    frame.writeUInt32BE(json.length, 1);
    json.copy(frame, 5);
    // The end-stream message is JSON whatever the codec (Connect protocol spec).
    send(req, res, 200, { "content-type": contentType }, frame);
    return;
  }
  send(
    req,
    res,
    codeToHttpStatus(code),
    { "content-type": "application/json" },
    Buffer.from(JSON.stringify(error)),
  );
}

function send(
  req: Request,
  res: Response,
  status: number,
  headers: Record<string, string>,
  body?: Buffer,
): void {
  if ("stream" in req) {
    // The core API: without a body, HEADERS carries END_STREAM (gRPC trailers-only),
    // which the compat response cannot express.
    const stream = req.stream;
    if (stream.destroyed) return;
    stream.respond({ ":status": status, ...headers }, { endStream: body === undefined });
    if (body !== undefined) stream.end(body);
    // Sent after the answer (Node queues it behind the pending writes).
    if (!req.complete) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    return;
  }
  // HTTP/1.1: Node discards (never buffers) the unread body; closing the connection
  // instead would race the client's body writes (EPIPE before it reads the answer).
  // A body that never completes is cut by requestTimeout (limitHttp1).
  const h1 = res as http.ServerResponse;
  h1.writeHead(status, headers);
  h1.end(body);
}

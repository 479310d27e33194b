import * as net from "node:net";

/** A parsed API request, as Firecracker's micro_http hands it to the API layer. */
export type HttpRequest = {
  method: "GET" | "PUT" | "PATCH";
  /** Request target as sent (e.g. `/drives/root`). */
  path: string;
  /** Body bytes; `undefined` when there was no Content-Length (or it was 0). */
  body: Buffer | undefined;
};

/** What the API layer answers. `body` is serialized as JSON when present. */
export type HttpResponse = { status: number; body?: unknown };

/** Options of {@link createMicroHttpServer}. */
export type MicroHttpOptions = {
  /** Largest accepted body, in bytes. Default 51200 (`--http-api-max-payload-size`). */
  maxPayloadBytes?: number;
  /** Concurrent connections served; further ones get 503 and are closed. Default 10. */
  maxConnections?: number;
  /** Called once per parsed request, in order per connection. Must not throw. */
  handle: (req: HttpRequest) => Promise<HttpResponse>;
};

const maxLineBytes = 1024;
const methods = new Set(["GET", "PUT", "PATCH"]);

class ParseError extends Error {}

/**
 * An HTTP/1.1 server with the observable behaviour of Firecracker's micro_http
 * (checked against v1.14.2): bodies only by Content-Length (chunked → "Invalid
 * request."), parser errors answered with `{ "error": ... }` and every unanswered
 * request on the connection dropped, keep-alive and pipelining, empty reason
 * phrases, and a connection cap answered with 503 "Too many open connections".
 */
export function createMicroHttpServer(options: MicroHttpOptions): net.Server {
  const maxPayload = options.maxPayloadBytes ?? 51200;
  const maxConns = options.maxConnections ?? 10;
  let open = 0;
  return net.createServer((sock) => {
    if (open >= maxConns) {
      const body = '{ "error": "Too many open connections" }';
      sock.end(
        `HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      sock.on("error", () => {});
      return;
    }
    open++;
    sock.on("close", () => {
      open--;
    });
    sock.on("error", () => {});
    let buf = Buffer.alloc(0);
    let busy = false;
    const pump = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          let parsed: { req: HttpRequest; used: number } | undefined;
          try {
            parsed = parseOne(buf, maxPayload);
          } catch (err) {
            buf = Buffer.alloc(0);
            const text = `${(err as Error).message}\nAll previous unanswered requests will be dropped.`;
            writeRaw(sock, 400, `{ "error": ${JSON.stringify(text).replace(/\\n/g, "\n")} }`);
            break;
          }
          if (!parsed) break;
          buf = buf.subarray(parsed.used);
          const res = await options.handle(parsed.req);
          if (sock.destroyed) return;
          writeRaw(sock, res.status, res.body === undefined ? undefined : JSON.stringify(res.body));
        }
      } finally {
        busy = false;
      }
    };
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      void pump().catch(() => sock.destroy());
    });
  });
}

function writeRaw(sock: net.Socket, status: number, body: string | undefined): void {
  if (sock.destroyed) return;
  let head = `HTTP/1.1 ${status} \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n`;
  if (body !== undefined) {
    head += `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  }
  sock.write(`${head}\r\n${body ?? ""}`);
}

/** Parses one request from the front of `buf`; undefined when more bytes are needed. */
function parseOne(buf: Buffer, maxPayload: number): { req: HttpRequest; used: number } | undefined {
  const headEnd = buf.indexOf("\r\n\r\n");
  if (headEnd < 0) {
    const firstLine = buf.indexOf("\r\n");
    if ((firstLine < 0 ? buf.length : firstLine) > maxLineBytes)
      throw new ParseError("Invalid request.");
    return undefined;
  }
  const lines = buf.subarray(0, headEnd).toString("latin1").split("\r\n");
  const requestLine = lines[0] ?? "";
  if (requestLine.length > maxLineBytes) throw new ParseError("Invalid request.");
  const parts = requestLine.split(" ");
  if (parts.length !== 3) throw new ParseError("Invalid request.");
  const [method, target, version] = parts as [string, string, string];
  if (!methods.has(method)) throw new ParseError("Invalid HTTP Method: Unsupported HTTP method.");
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") throw new ParseError("Invalid request.");
  if (!target.startsWith("/")) throw new ParseError("Invalid request.");
  let contentLength = 0;
  for (const line of lines.slice(1)) {
    if (line.length > maxLineBytes) throw new ParseError("Invalid request.");
    const colon = line.indexOf(":");
    if (colon <= 0) throw new ParseError("Invalid request.");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") {
      if (!/^\d+$/.test(value)) throw new ParseError("Invalid request.");
      contentLength = Number(value);
    } else if (name === "transfer-encoding") {
      // micro_http has no chunked decoder.
      throw new ParseError("Invalid request.");
    }
  }
  if (contentLength > maxPayload) {
    throw new ParseError(
      `Request payload with size ${contentLength} is larger than the limit of ${maxPayload} allowed by server.`,
    );
  }
  const bodyStart = headEnd + 4;
  if (buf.length < bodyStart + contentLength) return undefined;
  const body = contentLength > 0 ? buf.subarray(bodyStart, bodyStart + contentLength) : undefined;
  return {
    req: { method: method as HttpRequest["method"], path: target, body: body && Buffer.from(body) },
    used: bodyStart + contentLength,
  };
}

import * as http from "node:http";
import type * as net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { AccessTokens } from "./access-tokens.js";
import { sameSecret } from "./access-tokens.js";
import { type Authorization, accessCookie, authorize, withoutTokenParam } from "./proxy-auth.js";
import type { ProxySettings } from "./proxy-config.js";
import { forwardedRequestHeaders, forwardedResponseHeaders } from "./proxy-headers.js";
import { type ProxyRoute, parseProxyHost, proxyOrigin } from "./proxy-host.js";

/** What the proxy needs from the sandboxes (SandboxManager has it). */
export interface ProxyBackend {
  /** Throws an error of kind `not_found` for an unknown sandbox. */
  inspect(id: string): { readonly createdAt: Date };
  /**
   * A connection to a port the sandbox exposed (ExposePort), through its
   * forwarder's path: resumes a paused sandbox (auto_resume), cut at Remove.
   */
  connectExposedPort(id: string, guestPort: number): Promise<net.Socket>;
}

/** Options of {@link startHttpProxy}. */
export interface HttpProxyOptions {
  readonly settings: ProxySettings;
  readonly backend: ProxyBackend;
  readonly tokens: AccessTokens;
  /** `grpc.auth_token`: accepted for every sandbox. Absent = only access tokens. */
  readonly apiToken?: string;
  readonly logger: Logger;
  /** How long a request's headers may take (slowloris). Default 30 s. */
  readonly headersTimeoutMs?: number;
}

/** A listening proxy. */
export interface HttpProxy {
  /** Where it listens, `ip:port`. */
  readonly address: string;
  /** ExposePort's URL for a guest port: the route plus `?vmm_access_token=<sandbox token>`. */
  urlFor(id: string, guestPort: number): string;
  /** Stops listening and cuts every connection (upgraded ones included). */
  close(): Promise<void>;
}

type Refusal = { readonly status: number; readonly message: string };

/**
 * The HTTP reverse proxy for exposed ports (`[proxy]`, docs/networking.md):
 * `Host: <guest port>-<sandbox id>.<domain>` goes to that exposed port of that
 * sandbox over a connection from {@link ProxyBackend.connectExposedPort}, kept
 * alive per client connection (as the TCP forwarder keeps one guest connection
 * per client connection). Bodies stream both ways with
 * backpressure; an Upgrade (WebSocket) is relayed raw after its request head.
 */
export async function startHttpProxy(o: HttpProxyOptions): Promise<HttpProxy> {
  const { settings, backend, tokens, logger } = o;
  const apiToken = o.apiToken === "" ? undefined : o.apiToken;
  const sockets = new Set<Duplex>();
  const track = (s: Duplex) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  };

  /** 404 for a host that is not ours and for an unknown sandbox (never before auth: no id oracle). */
  function check(req: http.IncomingMessage): { route: ProxyRoute; auth: Authorization } | Refusal {
    const route = parseProxyHost(req.headers.host, settings.domain);
    if (!route)
      return {
        status: 404,
        message: `no sandbox port here: the Host header must be <guest port>-<sandbox id>.${settings.domain}, got ${JSON.stringify(req.headers.host ?? "")}`,
      };
    let createdAt: Date | undefined;
    try {
      createdAt = backend.inspect(route.id).createdAt;
    } catch (err) {
      if (kindOf(err) !== "not_found") throw err;
    }
    const auth = authorize(
      req,
      (t) =>
        (apiToken !== undefined && sameSecret(t, apiToken)) ||
        (createdAt !== undefined && tokens.verify(t, route.id, createdAt)),
    );
    if (auth.ok && createdAt === undefined)
      return { status: 404, message: `sandbox ${route.id} not found` };
    return { route, auth };
  }

  /** Dials the guest port; a refusal says why in HTTP terms. */
  async function dial(route: ProxyRoute): Promise<net.Socket | Refusal> {
    try {
      return await backend.connectExposedPort(route.id, route.guestPort);
    } catch (err) {
      return refusalFor(err, route, logger);
    }
  }

  function onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const checked = check(req);
    if ("status" in checked) {
      refuse(res, checked);
      return;
    }
    const { route, auth } = checked;
    if (!auth.ok) {
      refuse(res, auth);
      return;
    }
    const secure = settings.urlScheme === "https";
    const path = auth.fromQuery ? withoutTokenParam(req.url ?? "/") : (req.url ?? "/");
    if (auth.fromQuery && (req.method === "GET" || req.method === "HEAD")) {
      // Keep the token out of the app's URLs, logs and Referer headers: a cookie from now on.
      res.writeHead(302, {
        location: path,
        "set-cookie": accessCookie(auth.token, secure),
        "cache-control": "no-store",
        "content-type": "text/plain; charset=utf-8",
      });
      res.end("access token kept in a cookie; redirecting\n");
      return;
    }
    forward(req, res, route, auth, path);
  }

  /**
   * One keep-alive agent per (client connection, route), holding at most one
   * guest connection: requests on one client connection reuse one guest
   * connection, dialled through the exposure's forwarder like a forwarded
   * connection (so the pause check runs when it is made, as for the
   * forwarder), and closed with the client connection.
   */
  const agents = new WeakMap<net.Socket, Map<string, http.Agent>>();
  function agentFor(client: net.Socket, route: ProxyRoute): http.Agent {
    let byRoute = agents.get(client);
    if (!byRoute) {
      const mine = new Map<string, http.Agent>();
      byRoute = mine;
      agents.set(client, mine);
      client.once("close", () => {
        for (const a of mine.values()) a.destroy();
      });
    }
    const key = `${route.id}:${route.guestPort}`;
    let agent = byRoute.get(key);
    if (!agent) {
      agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      // Node's Agent accepts an asynchronous createConnection that answers through the callback.
      agent.createConnection = ((
        _options: unknown,
        done: (err: Error | null, s?: net.Socket) => void,
      ) => {
        backend.connectExposedPort(route.id, route.guestPort).then(
          (socket) => {
            track(socket);
            done(null, socket);
          },
          (err: Error) => done(err),
        );
        return undefined;
      }) as unknown as http.Agent["createConnection"];
      byRoute.set(key, agent);
    }
    return agent;
  }

  function forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    route: ProxyRoute,
    auth: Authorization & { ok: true },
    path: string,
  ): void {
    const upstream = http.request({
      agent: agentFor(req.socket, route),
      method: req.method,
      path,
      setHost: false,
      headers: forwardedRequestHeaders(req, {
        clientAddress: req.socket.remoteAddress ?? "",
        proto: settings.urlScheme,
        dropAuthorization: auth.viaAuthorization,
        upgrade: false,
      }),
    });
    upstream.on("response", (answer) => {
      const headers = forwardedResponseHeaders(answer.rawHeaders);
      if (auth.fromQuery)
        headers.push("Set-Cookie", accessCookie(auth.token, settings.urlScheme === "https"));
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
      answer.pipe(res);
      answer.once("error", () => res.destroy());
    });
    upstream.on("error", (err) => {
      if (!res.headersSent) refuse(res, refusalFor(err, route, logger));
      else res.destroy();
    });
    // The client went away mid-request or mid-response: the guest connection goes too.
    res.once("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    const hasBody =
      req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
    if (hasBody) req.pipe(upstream);
    else upstream.end();
  }

  async function onUpgrade(req: http.IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    track(client);
    client.on("error", () => {});
    const refuseRaw = (r: Refusal) => {
      const body = `${r.message}\n`;
      client.end(
        `HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    const checked = check(req);
    if ("status" in checked) return refuseRaw(checked);
    const { route, auth } = checked;
    if (!auth.ok) return refuseRaw(auth);
    const socket = await dial(route);
    if ("status" in socket) return refuseRaw(socket);
    track(socket);
    if (client.destroyed) {
      socket.destroy();
      return;
    }
    const headers = forwardedRequestHeaders(req, {
      clientAddress: req.socket.remoteAddress ?? "",
      proto: settings.urlScheme,
      dropAuthorization: auth.viaAuthorization,
      upgrade: true,
    });
    const path = auth.fromQuery ? withoutTokenParam(req.url ?? "/") : (req.url ?? "/");
    let text = `${req.method} ${path} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    socket.write(`${text}\r\n`);
    if (head.length > 0) socket.write(head);
    // From here on bytes pass raw both ways (the guest's 101 and the WebSocket frames).
    socket.pipe(client);
    client.pipe(socket);
    socket.once("close", () => client.destroy());
    client.once("close", () => socket.destroy());
  }

  const server = http.createServer({
    // Bodies stream for as long as they take (uploads, server-sent events); only headers are bounded.
    requestTimeout: 0,
    headersTimeout: o.headersTimeoutMs ?? 30_000,
  });
  server.maxConnections = settings.maxConnections;
  server.on("request", (req, res) => {
    try {
      onRequest(req, res);
    } catch (err) {
      logger.error({ err }, "proxy request failed");
      refuse(res, { status: 500, message: "internal proxy error (logged)" });
    }
  });
  server.on("upgrade", (req, client, head) => {
    onUpgrade(req, client, head).catch((err: unknown) => {
      logger.error({ err }, "proxy upgrade failed");
      client.destroy();
    });
  });
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: settings.host, port: settings.port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
  const address =
    bound.family === "IPv6" ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  const urlPort =
    settings.urlPort !== 0 ? settings.urlPort : settings.urlScheme === "https" ? 443 : bound.port;
  logger.info({ address, domain: settings.domain }, "http proxy for exposed ports listening");
  return {
    address,
    urlFor(id, guestPort) {
      const token = tokens.tokenFor(id, backend.inspect(id).createdAt);
      const origin = proxyOrigin(
        { scheme: settings.urlScheme, domain: settings.domain, port: urlPort },
        { id, guestPort },
      );
      return `${origin}/?vmm_access_token=${token}`;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function refuse(res: http.ServerResponse, r: Refusal): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(r.status, {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    ...(r.status === 401 && { "www-authenticate": 'Bearer realm="vmm sandbox port"' }),
  });
  res.end(`${r.message}\n`);
}

/** An error from the backend or the dial, in HTTP terms (docs/networking.md, "HTTP proxy"). */
function refusalFor(err: unknown, route: ProxyRoute, logger: Logger): Refusal {
  const where = `guest port ${route.guestPort} of sandbox ${route.id}`;
  const kind = kindOf(err);
  if (kind === "not_found")
    return {
      status: 404,
      message: `${errText(err)}: expose it with ExposePort (vmm port ${route.id} ${route.guestPort}) first`,
    };
  if (kind === "failed_precondition" || kind === "unavailable")
    return { status: 503, message: errText(err) };
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ECONNREFUSED")
    return { status: 502, message: `nothing listens on ${where} (connection refused)` };
  if (code === "ETIMEDOUT")
    return { status: 504, message: `${where} did not accept the connection in time` };
  if (code === "ECONNABORTED")
    return {
      status: 503,
      message: `${where} is no longer exposed (the sandbox stopped or was removed)`,
    };
  logger.warn({ err, sandboxId: route.id, guestPort: route.guestPort }, "proxy dial failed");
  return { status: 502, message: `${where} could not be reached: ${errText(err)}` };
}

function kindOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "kind" in err ? String(err.kind) : undefined;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

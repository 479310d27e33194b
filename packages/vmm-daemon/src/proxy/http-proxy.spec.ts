import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AccessTokens } from "./access-tokens.js";
import { type HttpProxy, type ProxyBackend, startHttpProxy } from "./http-proxy.js";

// The proxy over a fake backend whose "guest ports" are loopback servers: routing, auth,
// header handling, errors and upgrades, without sandboxes (test/proxy.spec.ts runs it e2e).

const DOMAIN = "sb.test";
const API_TOKEN = "api-secret";
const created = new Date("2026-11-30T10:00:00Z");

class NotFound extends Error {
  readonly kind = "not_found";
}
class Paused extends Error {
  readonly kind = "failed_precondition";
}

/** A guest HTTP server: echoes method, url and headers as JSON; /stream streams, /upgrade echoes raw. */
async function guestServer(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      if (req.url === "/keep") {
        res.end("kept");
        return;
      }
      res.setHeader("connection", "close, x-guest-hop");
      res.setHeader("x-guest-hop", "drop me");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  server.on("upgrade", (req, socket, head) => {
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\nx-seen-token: ${req.headers["x-vmm-access-token"] ?? "none"}\r\n\r\n`,
    );
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

describe("startHttpProxy", () => {
  let dir: string;
  let guest: http.Server;
  let proxy: HttpProxy;
  let tokens: AccessTokens;
  let paused = false;
  let dials = 0;
  const sandboxes = new Map([
    ["sb-1", created],
    ["sb-2", new Date(created.getTime() + 1)],
  ]);
  const exposed = new Set(["sb-1:8080", "sb-2:8080", "sb-1:9999"]);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "vmm-proxy-"));
    guest = await guestServer();
    const guestPort = (guest.address() as net.AddressInfo).port;
    const backend: ProxyBackend = {
      inspect(id) {
        const c = sandboxes.get(id);
        if (!c) throw new NotFound(`sandbox "${id}" not found`);
        return { createdAt: c };
      },
      async connectExposedPort(id, port) {
        dials++;
        this.inspect(id);
        if (!exposed.has(`${id}:${port}`))
          throw new NotFound(`exposed port "${port} of sandbox ${id}" not found`);
        if (paused) throw new Paused(`sandbox ${id} is paused (auto_resume is off)`);
        // 9999: nothing listens (a closed port on loopback).
        const target = port === 9999 ? 1 : guestPort;
        return new Promise((resolve, reject) => {
          const s = net.connect(target, "127.0.0.1");
          s.once("connect", () => resolve(s));
          s.once("error", reject);
        });
      },
    };
    tokens = await AccessTokens.open(dir);
    proxy = await startHttpProxy({
      settings: {
        host: "127.0.0.1",
        port: 0,
        domain: DOMAIN,
        urlScheme: "http",
        urlPort: 0,
        maxConnections: 100,
      },
      backend,
      tokens,
      apiToken: API_TOKEN,
      logger: pino({ level: "silent" }),
    });
  });
  afterEach(async () => {
    paused = false;
    await proxy.close();
    guest.closeAllConnections();
    await new Promise<void>((r) => guest.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const port = () => Number(proxy.address.split(":").at(-1));
  function get(
    host: string,
    path: string,
    headers: http.OutgoingHttpHeaders = {},
    method = "GET",
    body?: string,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: port(),
          path,
          method,
          headers: { host, ...headers },
          agent: false,
        },
        (res) => {
          let text = "";
          res.on("data", (d) => {
            text += d;
          });
          res.on("end", () =>
            resolve({ status: res.statusCode!, headers: res.headers, body: text }),
          );
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  it("answers a URL with the sandbox's token, stable across a reopened key", async () => {
    const url = proxy.urlFor("sb-1", 8080);
    const token = tokens.tokenFor("sb-1", created);
    expect(url).toBe(`http://8080-sb-1.${DOMAIN}:${port()}/?vmm_access_token=${token}`);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await AccessTokens.open(dir)).tokenFor("sb-1", created)).toBe(token);
    expect(tokens.tokenFor("sb-1", new Date(created.getTime() + 1))).not.toBe(token);
  });

  it("401 without a token, 403 with a wrong one or another sandbox's, 200 with the API token or its own", async () => {
    const host = `8080-sb-1.${DOMAIN}`;
    const none = await get(host, "/");
    expect(none.status).toBe(401);
    expect(none.body).toMatch(/needs an access token/);
    expect((await get(host, "/", { "x-vmm-access-token": "nope" })).status).toBe(403);
    const other = tokens.tokenFor("sb-2", sandboxes.get("sb-2")!);
    expect((await get(host, "/", { "x-vmm-access-token": other })).status).toBe(403);
    expect((await get(`8080-sb-2.${DOMAIN}`, "/", { "x-vmm-access-token": other })).status).toBe(
      200,
    );
    expect((await get(host, "/", { authorization: `Bearer ${API_TOKEN}` })).status).toBe(200);
    const own = tokens.tokenFor("sb-1", created);
    expect((await get(host, "/", { cookie: `a=1; vmm_access_token=${own}` })).status).toBe(200);
  });

  it("turns the URL's token into a cookie with a redirect, and strips every credential before the guest", async () => {
    const host = `8080-sb-1.${DOMAIN}`;
    const own = tokens.tokenFor("sb-1", created);
    const first = await get(host, `/app?x=1&vmm_access_token=${own}&y=2`);
    expect(first.status).toBe(302);
    expect(first.headers.location).toBe("/app?x=1&y=2");
    expect(first.headers["set-cookie"]?.[0]).toBe(
      `vmm_access_token=${own}; Path=/; HttpOnly; SameSite=Lax`,
    );
    const r = await get(host, "/app?x=1&y=2", {
      cookie: `theme=dark; vmm_access_token=${own}`,
      "x-vmm-access-token": own,
      connection: "keep-alive, x-client-hop",
      "x-client-hop": "1",
      "x-forwarded-for": "203.0.113.9",
      "keep-alive": "timeout=5",
    });
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body);
    expect(seen.url).toBe("/app?x=1&y=2");
    expect(seen.headers.cookie).toBe("theme=dark");
    expect(seen.headers["x-vmm-access-token"]).toBeUndefined();
    expect(seen.headers["x-client-hop"]).toBeUndefined();
    expect(seen.headers["keep-alive"]).toBeUndefined();
    expect(seen.headers.host).toBe(host);
    expect(seen.headers["x-forwarded-for"]).toBe("203.0.113.9, 127.0.0.1");
    expect(seen.headers["x-forwarded-host"]).toBe(host);
    expect(seen.headers["x-forwarded-proto"]).toBe("http");
    expect(seen.headers.via).toBe("1.1 vmm");
    // The guest's hop-by-hop fields stay on its side.
    expect(r.headers["x-guest-hop"]).toBeUndefined();
    // An app's own Authorization (not our token) passes; ours does not.
    const app = JSON.parse(
      (await get(host, "/", { "x-vmm-access-token": own, authorization: "Basic dTpw" })).body,
    );
    expect(app.headers.authorization).toBe("Basic dTpw");
    const ours = JSON.parse((await get(host, "/", { authorization: `Bearer ${API_TOKEN}` })).body);
    expect(ours.headers.authorization).toBeUndefined();
  });

  it("passes a POST body through (token in the URL: no redirect, the cookie set on the answer)", async () => {
    const own = tokens.tokenFor("sb-1", created);
    const big = "y".repeat(1 << 20);
    const r = await get(`8080-sb-1.${DOMAIN}`, `/up?vmm_access_token=${own}`, {}, "POST", big);
    expect(r.status).toBe(200);
    expect(r.headers["set-cookie"]?.[0]).toMatch(/^vmm_access_token=/);
    const seen = JSON.parse(r.body);
    expect([seen.url, seen.body.length]).toEqual(["/up", big.length]);
  });

  it.each([
    ["a host that is not ours", "example.com", 404, /Host header must be/],
    ["an unknown sandbox", `8080-nobody.${DOMAIN}`, 404, /sandbox nobody not found/],
    ["a port not exposed", `8081-sb-1.${DOMAIN}`, 404, /ExposePort/],
    ["a port nothing listens on", `9999-sb-1.${DOMAIN}`, 502, /connection refused/],
  ])("answers %s with %i", async (_what, host, status, body) => {
    const r = await get(host, "/", { "x-vmm-access-token": API_TOKEN });
    expect(r.status).toBe(status);
    expect(r.body).toMatch(body);
  });

  it("an unknown sandbox without a valid token is 401/403, not 404 (no existence oracle)", async () => {
    expect((await get(`8080-nobody.${DOMAIN}`, "/")).status).toBe(401);
    expect((await get(`8080-nobody.${DOMAIN}`, "/", { "x-vmm-access-token": "x" })).status).toBe(
      403,
    );
  });

  it("reuses one guest connection per keep-alive client connection, and closes it with the client's", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = dials;
    for (let i = 0; i < 3; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get(
            {
              host: "127.0.0.1",
              port: port(),
              path: "/keep",
              agent,
              headers: { host: `8080-sb-1.${DOMAIN}`, "x-vmm-access-token": API_TOKEN },
            },
            (r) => {
              let t = "";
              r.on("data", (d) => {
                t += d;
              });
              r.on("end", () => resolve(t));
            },
          )
          .on("error", reject);
      });
      expect(body).toBe("kept");
    }
    expect(dials - before).toBe(1);
    const count = () => new Promise<number>((r) => guest.getConnections((_e, n) => r(n)));
    expect(await count()).toBe(1);
    agent.destroy();
    const deadline = Date.now() + 3000;
    while ((await count()) > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(await count()).toBe(0);
  });

  it("a paused sandbox that cannot be resumed is 503", async () => {
    paused = true;
    const r = await get(`8080-sb-1.${DOMAIN}`, "/", { "x-vmm-access-token": API_TOKEN });
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/paused/);
  });

  it("relays an Upgrade both ways after the guest's 101, credentials stripped; close() cuts it", async () => {
    const s = net.connect(port(), "127.0.0.1");
    s.write(
      `GET /ws HTTP/1.1\r\nHost: 8080-sb-1.${DOMAIN}\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Vmm-Access-Token: ${API_TOKEN}\r\n\r\nearly`,
    );
    let got = "";
    s.on("data", (d) => {
      got += d;
    });
    await waitFor(() => got.includes("early"));
    expect(got).toMatch(/^HTTP\/1\.1 101 /);
    expect(got).toMatch(/x-seen-token: none/);
    s.write("later");
    await waitFor(() => got.includes("later"));
    const closed = once(s, "close");
    await proxy.close();
    await closed;
    // close() twice is harmless (afterEach closes again).
  });

  it("refuses an Upgrade without a token with a plain 401", async () => {
    const s = net.connect(port(), "127.0.0.1");
    s.write(
      `GET /ws HTTP/1.1\r\nHost: 8080-sb-1.${DOMAIN}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`,
    );
    let got = "";
    s.on("data", (d) => {
      got += d;
    });
    await once(s, "close");
    expect(got).toMatch(/^HTTP\/1\.1 401 Unauthorized/);
  });
});

async function waitFor(f: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

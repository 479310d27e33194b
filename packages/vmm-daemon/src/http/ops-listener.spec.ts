import * as http from "node:http";
import type { Duplex } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Listener } from "../listeners.js";
import type { HttpMount } from "./http-mount.js";
import { listenOps } from "./ops-listener.js";

const TOKEN = "t0ken";
const limits = {
  maxConnections: 16,
  idleTimeoutMs: 5000,
  requestTimeoutMs: 5000,
  maxConcurrentStreams: 16,
  streamWindowBytes: 65_535,
  connectionWindowBytes: 65_535,
  maxFrameBytes: 16_384,
};

/** A mount that takes /ui/… requests and /ui/ws upgrades, and records what reached it. */
function testMount() {
  const seen: string[] = [];
  let closed = false;
  const mount: HttpMount = {
    handleRequest(req, res) {
      seen.push(`request ${req.url}`);
      if (!req.url?.startsWith("/ui/")) return false;
      res.writeHead(200, { "content-type": "text/plain" }).end("console");
      return true;
    },
    handleUpgrade(req, socket: Duplex) {
      seen.push(`upgrade ${req.url}`);
      if (req.url !== "/ui/ws") return false;
      socket.end(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      );
      return true;
    },
    async close() {
      closed = true;
    },
  };
  return { mount, seen, closed: () => closed };
}

let listener: Listener | undefined;
afterEach(async () => {
  listener?.destroy();
  await listener?.close();
  listener = undefined;
});

async function start(options: { token?: string; ready?: boolean; mounts?: HttpMount[] }) {
  listener = await listenOps({
    address: "127.0.0.1:0",
    ...(options.token !== undefined && { token: options.token }),
    scrape: async () => ({ contentType: "text/plain; version=0.0.4", body: "up 1\n" }),
    notReady: () => (options.ready === false ? "recovering" : undefined),
    api: (_req, res) => {
      res.writeHead(200).end("api");
    },
    mounts: options.mounts ?? [],
    limits,
    logger: pino({ level: "silent" }),
  });
  return `http://${listener.address.slice("http:".length)}`;
}

/** Sends an upgrade request; resolves with the status line the server answered. */
function upgrade(base: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, {
      headers: { connection: "Upgrade", upgrade: "websocket", ...headers },
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode!);
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    req.end();
  });
}

describe("listenOps", () => {
  it("answers health without a token, everything else only with it", async () => {
    const base = await start({ token: TOKEN });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    for (const path of ["/metrics", "/api/x.Y/Z", "/anything"]) {
      const res = await fetch(`${base}${path}`);
      expect([path, res.status]).toEqual([path, 401]);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="vmm"');
    }
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect(await (await fetch(`${base}/metrics`, { headers: auth })).text()).toBe("up 1\n");
    expect(await (await fetch(`${base}/api/x.Y/Z`, { headers: auth })).text()).toBe("api");
    // Case of the scheme does not matter (RFC 9110 §11.1); the token itself must match exactly.
    expect(
      (await fetch(`${base}/metrics`, { headers: { authorization: `bearer ${TOKEN}` } })).status,
    ).toBe(200);
    expect(
      (
        await fetch(`${base}/metrics`, {
          headers: { authorization: `Bearer ${TOKEN.toUpperCase()}` },
        })
      ).status,
    ).toBe(401);
    expect((await fetch(`${base}/metrics`, { headers: { authorization: TOKEN } })).status).toBe(
      401,
    );
  });

  it("/readyz is 503 with the reason while not ready", async () => {
    const base = await start({ ready: false });
    const res = await fetch(`${base}/readyz`);
    expect([res.status, await res.text()]).toEqual([503, "not ready: recovering\n"]);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it("offers only authenticated requests to the mounts, in order, and 404s what none takes", async () => {
    const m = testMount();
    const base = await start({ token: TOKEN, mounts: [m.mount] });
    expect((await fetch(`${base}/elsewhere`)).status).toBe(401);
    expect((await fetch(`${base}/ui/`, { method: "POST" })).status).toBe(401);
    expect(m.seen).toEqual([]);
    const ok = await fetch(`${base}/ui/`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect([ok.status, await ok.text()]).toEqual([200, "console"]);
    const other = await fetch(`${base}/elsewhere`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(other.status).toBe(404);
    expect(m.seen).toEqual(["request /ui/", "request /elsewhere"]);
  });

  it("serves the console's page (GET /ui/…) without a token: it holds no secret", async () => {
    const m = testMount();
    const base = await start({ token: TOKEN, mounts: [m.mount] });
    const page = await fetch(`${base}/ui/`);
    expect([page.status, await page.text()]).toEqual([200, "console"]);
    expect((await fetch(`${base}/ui/x.js`, { method: "HEAD" })).status).toBe(200);
    expect(await upgrade(base, "/ui/ws", {})).toBe(401); // the terminal is not public
  });

  it("without a token, refuses a Host that is not a loopback name (DNS rebinding)", async () => {
    const m = testMount();
    const base = await start({ mounts: [m.mount] });
    const port = new URL(base).port;
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get(`${base}/metrics`, { headers: { host } }, (res) => {
            res.resume();
            resolve(res.statusCode!);
          })
          .on("error", reject);
      });
    expect(await status(`localhost:${port}`)).toBe(200);
    expect(await status(`127.0.0.1:${port}`)).toBe(200);
    expect(await status(`[::1]:${port}`)).toBe(200);
    expect(await status(`attacker.example:${port}`)).toBe(401);
    expect(await status(`127.0.0.1.attacker.example`)).toBe(401);
    expect(await upgrade(base, "/ui/ws", { host: "attacker.example" })).toBe(401);
  });

  it("authenticates upgrades by header or subprotocol before a mount sees them", async () => {
    const m = testMount();
    const base = await start({ token: TOKEN, mounts: [m.mount] });
    expect(await upgrade(base, "/ui/ws", {})).toBe(401);
    expect(await upgrade(base, "/ui/ws", { "sec-websocket-protocol": "vmm.token.wrong" })).toBe(
      401,
    );
    expect(m.seen).toEqual([]);
    expect(
      await upgrade(base, "/ui/ws", {
        "sec-websocket-protocol": `vmm.terminal, vmm.token.${TOKEN}`,
      }),
    ).toBe(101);
    expect(await upgrade(base, "/ui/ws", { authorization: `Bearer ${TOKEN}` })).toBe(101);
    expect(await upgrade(base, "/other", { authorization: `Bearer ${TOKEN}` })).toBe(404);
    expect(m.seen).toEqual(["upgrade /ui/ws", "upgrade /ui/ws", "upgrade /other"]);
  });

  it("is open without a token (loopback-only config), and closes its mounts", async () => {
    const m = testMount();
    const base = await start({ mounts: [m.mount] });
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    expect(await upgrade(base, "/ui/ws", {})).toBe(101);
    await listener!.close();
    listener = undefined;
    expect(m.closed()).toBe(true);
  });
});

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { leftovers, type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";
import { links, testNetns } from "./test-netns.js";

// The HTTP proxy for exposed ports, end to end with fc-sim (docs/networking.md, "HTTP proxy").
// The daemon runs in a namespace playing the host (<tag>host0); its proxy listens on 127.0.0.1
// there, so every client (curl, a WebSocket client) runs in that namespace too. Names resolve
// through /etc/netns/<host netns>/hosts (ip netns exec bind-mounts it over /etc/hosts).
const { tag, prefix, octet, ours, makeHostNetns } = testNetns("px");
const DOMAIN = "sb.test";
const API_TOKEN = "proxy-test-api-token";
const PROXY_PORT = 18_000 + Math.floor(Math.random() * 1000);

/** A WebSocket echo server (text frames < 126 bytes), run in the guest. */
const wsServer = `
const http = require("http"), crypto = require("crypto");
const s = http.createServer((q, r) => r.end("plain\\n"));
s.on("upgrade", (req, sock) => {
  sock.on("error", () => {});
  const accept = crypto.createHash("sha1").update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  sock.write("HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: " + accept + "\\r\\n\\r\\n");
  let buf = Buffer.alloc(0);
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 6) {
      const op = buf[0] & 15, len = buf[1] & 127;
      if (len > 125 || buf.length < 6 + len) return;
      const p = Buffer.from(buf.subarray(6, 6 + len));
      for (let i = 0; i < len; i++) p[i] ^= buf[2 + (i & 3)];
      buf = buf.subarray(6 + len);
      if (op === 8) { sock.end(Buffer.from([0x88, 0])); return; }
      if (op === 1) { const out = Buffer.from("echo: " + p); sock.write(Buffer.concat([Buffer.from([0x81, out.length]), out])); }
    }
  });
});
s.listen(Number(process.argv[1]), "0.0.0.0", () => console.log("up"));
`;

/** A WebSocket client (Node's global WebSocket): sends argv[2] every 200 ms, prints what happens. */
const wsClient = `
const ws = new WebSocket(process.argv[1]);
let n = 0;
ws.onopen = () => { console.log("OPEN"); setInterval(() => ws.send(process.argv[2] + " " + ++n), 200); };
ws.onmessage = (e) => console.log("MSG " + e.data);
ws.onerror = () => console.log("ERROR");
ws.onclose = (e) => { console.log("CLOSED " + e.code); process.exit(0); };
`;

async function until(f: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

describe.skipIf(process.getuid?.() !== 0)("HTTP proxy for exposed ports (fc-sim)", () => {
  let hostNetns: string;
  let d: SimDaemon | undefined;
  let webDir: string;
  const children: ChildProcess[] = [];
  // /etc/netns is removed again if this suite made it (and nothing else is in it).
  const madeEtcNetns = !existsSync("/etc/netns");

  /** curl in the daemon's namespace, to the proxy, with `Host: <host>`: status, headers, body. */
  function curl(host: string, path: string, headers: string[] = []) {
    const r = spawnSync(
      "ip",
      [
        ...["netns", "exec", hostNetns, "curl", "-s", "-i", "--max-time", "5"],
        ...["-H", `Host: ${host}`, ...headers.flatMap((h) => ["-H", h])],
        `http://127.0.0.1:${PROXY_PORT}${path}`,
      ],
      { encoding: "utf8" },
    );
    const [head = "", ...rest] = r.stdout.split("\r\n\r\n");
    return {
      status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? `-${r.status}`),
      head,
      body: rest.join("\r\n\r\n"),
    };
  }

  /** Starts a long-lived process in the daemon's namespace; killed at the end of the suite. */
  function inHost(args: string[]): { child: ChildProcess; out: () => string } {
    const child = spawn("ip", ["netns", "exec", hostNetns, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (b) => {
      out += b;
    });
    return { child, out: () => out };
  }

  /** Runs `cmd` in the guest until the test ends; resolves once its output includes `ready` (if given). */
  async function serve(id: string, cmd: string[], ready?: string): Promise<void> {
    const stop = new AbortController();
    let out = "";
    const done = (async () => {
      async function* input() {
        yield { payload: { case: "init" as const, value: { id, cmd } } };
        await new Promise((r) => stop.signal.addEventListener("abort", r));
      }
      for await (const o of d!.sandboxes.exec(input(), { signal: stop.signal }))
        if (!o.done) out += Buffer.from(o.data).toString();
    })().catch(() => {});
    onTestFinished(async () => {
      stop.abort();
      await done;
    });
    if (ready !== undefined) expect(await until(() => out.includes(ready), 10_000)).toBe(true);
  }

  async function sandbox(id: string): Promise<string> {
    onTestFinished(() =>
      d!.sandboxes.remove({ id, force: true }).then(
        () => undefined,
        () => undefined,
      ),
    );
    const { ipAddress } = await d!.sandboxes.create({ id });
    await waitForState(d!, id, "ready");
    return ipAddress;
  }

  beforeAll(async () => {
    hostNetns = makeHostNetns();
    webDir = mkdtempSync(join(tmpdir(), "vmm-px-web-"));
    writeFileSync(join(webDir, "index.html"), "hello from the guest\n");
    mkdirSync(`/etc/netns/${hostNetns}`, { recursive: true });
    writeFileSync(
      `/etc/netns/${hostNetns}/hosts`,
      `127.0.0.1 localhost\n127.0.0.1 8090-px-ws.${DOMAIN}\n`,
    );
    d = await startSimDaemon({
      grpc: `auth_token = "${API_TOKEN}"`,
      sections: [
        "[network]",
        'mode = "tap"',
        `host_cidr = "10.234.${octet}.0/24"`,
        `netns_prefix = "${prefix}"`,
        `host_netns = "${hostNetns}"`,
        "pool_size = 1",
        "[proxy]",
        `listen = "127.0.0.1:${PROXY_PORT}"`,
        `domain = "${DOMAIN}"`,
      ].join("\n"),
      env: { FC_SIM_GUEST: "host" },
      wrapper: ["ip", "netns", "exec", hostNetns],
    });
  });

  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    await d?.[Symbol.asyncDispose]();
    for (const n of ours()) spawnSync("ip", ["netns", "del", n]);
    rmSync(webDir, { recursive: true, force: true });
    rmSync(`/etc/netns/${hostNetns}`, { recursive: true, force: true });
    if (madeEtcNetns) {
      try {
        rmdirSync("/etc/netns");
      } catch {}
    }
    expect(ours()).toEqual([]);
    expect(links().filter((n) => n.startsWith(tag))).toEqual([]);
  });

  it("serves the guest's httpd through the proxy: URL token → cookie, API token, 401/403/404/502", async () => {
    const id = "px-web";
    await sandbox(id);
    await sandbox("px-other");
    await serve(id, ["busybox", "httpd", "-f", "-p", "8080", "-h", webDir]);
    const { url, hostAddress } = await d!.sandboxes.exposePort({ id, guestPort: 8080 });
    expect(hostAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const m = new RegExp(
      `^http://8080-px-web\\.sb\\.test:${PROXY_PORT}/\\?vmm_access_token=([A-Za-z0-9_-]{43})$`,
    ).exec(url);
    expect(m, url).not.toBeNull();
    const token = m![1]!;
    const host = `8080-${id}.${DOMAIN}`;

    // The API token (header): the file the guest serves.
    expect(
      await until(
        () => curl(host, "/", [`X-Vmm-Access-Token: ${API_TOKEN}`]).status === 200,
        10_000,
      ),
    ).toBe(true);
    expect(curl(host, "/index.html", [`Authorization: Bearer ${API_TOKEN}`]).body).toBe(
      "hello from the guest\n",
    );
    // The URL ExposePort answered: a redirect that sets the cookie, then the page with it.
    const first = curl(host, `/?vmm_access_token=${token}`);
    expect(first.status).toBe(302);
    expect(first.head).toMatch(/^location: \/$/im);
    const cookie = /^set-cookie: (vmm_access_token=[^;]+);/im.exec(first.head)?.[1];
    expect(cookie).toBe(`vmm_access_token=${token}`);
    expect(curl(host, "/index.html", [`Cookie: ${cookie}`]).body).toBe("hello from the guest\n");

    expect(curl(host, "/").status).toBe(401);
    expect(curl(host, "/", ["X-Vmm-Access-Token: wrong"]).status).toBe(403);
    // Another sandbox's token opens only that sandbox.
    const other = await d!.sandboxes.exposePort({ id: "px-other", guestPort: 8080 });
    const otherToken = /vmm_access_token=(.+)$/.exec(other.url)![1]!;
    expect(otherToken).not.toBe(token);
    expect(curl(host, "/", [`X-Vmm-Access-Token: ${otherToken}`]).status).toBe(403);
    // ... where nothing listens on 8080: 502.
    const refused = curl(`8080-px-other.${DOMAIN}`, "/", [`X-Vmm-Access-Token: ${otherToken}`]);
    expect([refused.status, refused.body]).toEqual([
      502,
      expect.stringMatching(/connection refused/),
    ]);
    // Unknown sandbox, port not exposed: 404.
    const unknown = curl(`8080-px-nobody.${DOMAIN}`, "/", [`X-Vmm-Access-Token: ${API_TOKEN}`]);
    expect([unknown.status, unknown.body]).toEqual([404, expect.stringMatching(/px-nobody/)]);
    const unexposed = curl(`8081-${id}.${DOMAIN}`, "/", [`X-Vmm-Access-Token: ${API_TOKEN}`]);
    expect([unexposed.status, unexposed.body]).toEqual([404, expect.stringMatching(/ExposePort/)]);
    const stranger = curl(`example.com`, "/", [`X-Vmm-Access-Token: ${API_TOKEN}`]);
    expect(stranger.status).toBe(404);
  });

  it("passes a WebSocket through both ways; Remove cuts it, then 404 and no socket left", async () => {
    const id = "px-ws";
    const ip = await sandbox(id);
    await serve(id, [process.execPath, "-e", wsServer, "8090"], "up");
    const { url } = await d!.sandboxes.exposePort({ id, guestPort: 8090 });
    const client = inHost([process.execPath, "-e", wsClient, url.replace(/^http/, "ws"), "ping"]);
    expect(await until(() => client.out().includes("MSG echo: ping 3"), 10_000), client.out()).toBe(
      true,
    );
    expect(client.out()).toMatch(/^OPEN\n/);
    // Remove while the socket is open: the proxy's connection into the sandbox is cut.
    await d!.sandboxes.remove({ id, force: true });
    expect(await until(() => /CLOSED|ERROR/.test(client.out()), 5000), client.out()).toBe(true);
    const after = curl(`8090-${id}.${DOMAIN}`, "/", [`X-Vmm-Access-Token: ${API_TOKEN}`]);
    expect(after.status).toBe(404);
    const sockets = spawnSync("ip", ["netns", "exec", hostNetns, "ss", "-Htna"], {
      encoding: "utf8",
    }).stdout;
    const stale = sockets
      .split("\n")
      .filter((l) => l.includes(`${ip}:`) || (l.includes(`:${PROXY_PORT} `) && !/LISTEN/.test(l)));
    // TIME-WAIT entries are kernel bookkeeping of closed connections, not open sockets.
    expect(stale.filter((l) => !l.startsWith("TIME-WAIT"))).toEqual([]);
    expect(leftovers(d!, [id], [])).toEqual([]);
  });
});

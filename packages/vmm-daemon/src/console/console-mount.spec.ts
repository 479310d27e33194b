import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  NotFoundError,
  type ProcessOutput,
  type ProcessSession,
  type ProcessSpec,
} from "@vmm/core";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { HttpMount } from "../http/http-mount.js";
import { createConsoleMount } from "./console-mount.js";

const JS = "console-ABCDEFGH.js";
const CSS = "console-IJKLMNOP.css";
const SCRIPT = `console.log(${JSON.stringify("x".repeat(2000))});\n`;

/** A fake interactive process: echoes stdin as output, exits with 3 on "exit\r". */
class FakeSession implements ProcessSession {
  readonly resizes: [number, number][] = [];
  readonly stdin: string[] = [];
  private readonly queue: ProcessOutput[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  readonly output: AsyncIterable<ProcessOutput>;
  constructor(signal: AbortSignal) {
    signal.addEventListener("abort", () =>
      this.push({ kind: "exit", exitCode: 137, signal: "SIGKILL", timedOut: false }),
    );
    const self = this;
    this.output = {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          const next = self.queue.shift();
          if (next) {
            yield next;
            if (next.kind === "exit") return;
            continue;
          }
          await new Promise<void>((r) => (self.wake = r));
        }
      },
    };
  }
  push(out: ProcessOutput): void {
    if (this.ended) return;
    if (out.kind === "exit") this.ended = true;
    this.queue.push(out);
    this.wake?.();
  }
  async writeStdin(data: Uint8Array): Promise<void> {
    const text = Buffer.from(data).toString();
    this.stdin.push(text);
    this.push({ kind: "stdout", data: Buffer.from(`echo:${text}`) });
    if (text === "exit\r")
      this.push({ kind: "exit", exitCode: 3, signal: undefined, timedOut: false });
  }
  async closeStdin(): Promise<void> {}
  async resize(cols: number, rows: number): Promise<void> {
    this.resizes.push([cols, rows]);
  }
}

describe("console mount", () => {
  let dir: string;
  let server: Server;
  let mount: HttpMount;
  let base: string;
  const execs: { id: string; spec: ProcessSpec; session: FakeSession; signal: AbortSignal }[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "vmm-console-spec-"));
    writeFileSync(join(dir, "index.html"), `<script src="./${JS}"></script>`);
    writeFileSync(join(dir, JS), SCRIPT);
    writeFileSync(join(dir, CSS), "body{}");
    writeFileSync(join(dir, "logo.png"), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "secret.txt"), "not served");
    writeFileSync(join(dir, ".hidden"), "not served");
    execs.length = 0;
    mount = createConsoleMount({
      assetsDir: dir,
      logger: pino({ level: "silent" }),
      maxTerminals: 2,
      sandboxes: {
        async exec(id, spec, signal) {
          if (id === "missing") throw new NotFoundError("sandbox", id);
          const session = new FakeSession(signal);
          execs.push({ id, spec, session, signal });
          return session;
        },
      },
    });
    server = createServer((req, res) => {
      if (!mount.handleRequest(req, res)) res.writeHead(418).end("not the console's");
    });
    server.on("upgrade", (req, socket, head) => {
      if (!mount.handleUpgrade?.(req, socket, head)) socket.end("HTTP/1.1 418 Nope\r\n\r\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    await mount.close?.();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  function get(path: string, headers: Record<string, string> = {}, method = "GET") {
    return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>(
      (resolve, reject) => {
        // Raw path: a URL would normalise the traversal attempts away before sending.
        const [host, port] = base.split(":");
        const req = request({ host, port, path, method, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
          );
        });
        req.on("error", reject);
        req.end();
      },
    );
  }

  it.each([
    ["/ui/", "text/html; charset=utf-8", "no-cache"],
    [`/ui/index.html`, "text/html; charset=utf-8", "no-cache"],
    [`/ui/${JS}`, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"],
    [`/ui/${CSS}`, "text/css; charset=utf-8", "public, max-age=31536000, immutable"],
    ["/ui/logo.png", "image/png", "no-cache"],
  ])(
    "serves %s as %s with cache-control %s and the security headers",
    async (path, type, cache) => {
      const res = await get(path);
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe(type);
      expect(res.headers["cache-control"]).toBe(cache);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers["content-security-policy"]).toContain("default-src 'self'");
      expect(res.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(res.headers.etag).toMatch(/^"[\w-]+"$/);
    },
  );

  it("gzips text for a browser that accepts it, and not otherwise", async () => {
    const gz = await get(`/ui/${JS}`, { "accept-encoding": "br, gzip;q=0.8" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(gz.body).toString()).toBe(SCRIPT);
    expect(gz.body.length).toBeLessThan(SCRIPT.length / 4);
    const refused = await get(`/ui/${JS}`, { "accept-encoding": "gzip;q=0" });
    expect(refused.headers["content-encoding"]).toBeUndefined();
    expect(refused.body.toString()).toBe(SCRIPT);
  });

  it("answers a matching If-None-Match with 304, and HEAD without a body", async () => {
    const first = await get("/ui/");
    const again = await get("/ui/", { "if-none-match": String(first.headers.etag) });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    const head = await get(`/ui/${JS}`, {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(SCRIPT.length));
    expect(head.body.length).toBe(0);
  });

  it("redirects /ui to /ui/ and refuses methods other than GET and HEAD", async () => {
    const redirect = await get("/ui");
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe("/ui/");
    const post = await get("/ui/", {}, "POST");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
  });

  it.each(["/ui/nope.js", "/ui/console-ZZZZZZZZ.js", "/ui/terminal.js"])(
    "answers 404 for a file it does not have: %s",
    async (path) => {
      const res = await get(path);
      expect(res.status).toBe(404);
      expect(res.body.toString()).toContain("no console file");
    },
  );

  it.each([
    "/ui/../package.json",
    "/ui/%2e%2e/package.json",
    "/ui/..%2fpackage.json",
    "/ui/sub/secret.txt",
    "/ui/sub%2fsecret.txt",
    "/ui/..%5csecret.txt",
    "/ui/.hidden",
    "/ui/%00index.html",
    "/ui/%E0%A4%A",
  ])("refuses the path %s (traversal, subdirectory, hidden file, bad encoding)", async (path) => {
    const res = await get(path);
    expect(res.status).toBe(400);
    expect(res.body.toString()).not.toContain("not served");
  });

  it.each(["/", "/metrics", "/api/sandbox.v1.SandboxService/List", "/uix", "/ui.html"])(
    "leaves %s to other mounts",
    async (path) => {
      expect((await get(path)).status).toBe(418);
    },
  );

  it("answers 426 to a plain GET of the terminal and 503 when the console is not built", async () => {
    expect((await get("/ui/terminal?sandbox=a")).status).toBe(426);
    const empty = createConsoleMount({
      assetsDir: join(dir, "absent"),
      logger: pino({ level: "silent" }),
      sandboxes: { exec: () => Promise.reject(new Error("unused")) },
    });
    const res = await new Promise<{ status: number; body: string }>((resolve) => {
      const s = createServer((req, r) => empty.handleRequest(req, r));
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as AddressInfo).port;
        request(`http://127.0.0.1:${port}/ui/`, (r) => {
          let body = "";
          r.on("data", (c) => (body += c));
          r.on("end", () => {
            s.close();
            resolve({ status: r.statusCode!, body });
          });
        }).end();
      });
    });
    expect(res.status).toBe(503);
    expect(res.body).toContain("node scripts/build.mjs");
  });

  function openTerminal(query: string, options: { protocols?: string[]; origin?: string } = {}) {
    const ws = new WebSocket(
      `ws://${base}/ui/terminal${query}`,
      options.protocols ?? ["vmm.terminal.v1", "vmm.token.secret"],
      options.origin !== undefined ? { origin: options.origin } : {},
    );
    const messages: (string | Buffer)[] = [];
    ws.on("message", (data, isBinary) =>
      messages.push(isBinary ? (data as Buffer) : data.toString()),
    );
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    const failed = new Promise<number>((resolve) =>
      ws.on("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      }),
    );
    ws.on("error", () => {});
    return { ws, messages, closed, failed };
  }

  async function until(pred: () => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error("condition not met in 5 s");
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it("bridges a terminal: a TTY Exec of the shell with the asked size, stdin, resize, exit", async () => {
    const t = openTerminal("?sandbox=sb1&cols=100&rows=30", { origin: `http://${base}` });
    await until(() => t.messages.includes('{"type":"started"}'));
    expect(t.ws.protocol).toBe("vmm.terminal.v1");
    expect(execs).toHaveLength(1);
    expect(execs[0]!.id).toBe("sb1");
    expect(execs[0]!.spec).toMatchObject({
      cmd: ["/bin/sh"],
      tty: true,
      ttySize: { cols: 100, rows: 30 },
      env: { TERM: "xterm-256color" },
    });
    t.ws.send(JSON.stringify({ type: "resize", cols: 120, rows: 40 }));
    t.ws.send(Buffer.from("ls\r"));
    await until(() => t.messages.some((m) => Buffer.isBuffer(m) && m.toString() === "echo:ls\r"));
    expect(execs[0]!.session.resizes).toEqual([[120, 40]]);
    t.ws.send(Buffer.from("exit\r"));
    expect(await t.closed).toEqual({ code: 1000, reason: "process exited" });
    expect(t.messages.at(-1)).toBe('{"type":"exit","exitCode":3,"timedOut":false}');
  });

  it("runs the cmd the URL names, and kills the process when the browser closes the socket", async () => {
    const t = openTerminal("?sandbox=sb2&cmd=bash&cmd=-l");
    await until(() => t.messages.includes('{"type":"started"}'));
    expect(execs[0]!.spec.cmd).toEqual(["bash", "-l"]);
    t.ws.close();
    await t.closed;
    await until(() => execs[0]!.signal.aborted);
  });

  it("sends a Connect error code and message, then closes 4000, when Exec fails", async () => {
    const t = openTerminal("?sandbox=missing");
    const closed = await t.closed;
    expect(closed).toEqual({ code: 4000, reason: "not_found" });
    expect(JSON.parse(t.messages[0] as string)).toEqual({
      type: "error",
      code: "not_found",
      message: 'sandbox "missing" not found',
    });
  });

  it("ends the terminal with invalid_argument on a bad control message", async () => {
    const t = openTerminal("?sandbox=sb3");
    await until(() => t.messages.includes('{"type":"started"}'));
    t.ws.send(JSON.stringify({ type: "resize", cols: 0, rows: 10 }));
    expect((await t.closed).code).toBe(4000);
    expect(t.messages.at(-1)).toContain('"code":"invalid_argument"');
    await until(() => execs[0]!.signal.aborted);
  });

  it.each([
    ["no sandbox", "?cols=10", {}, 400],
    ["a bad size", "?sandbox=a&cols=0", {}, 400],
    ["no terminal subprotocol", "?sandbox=a", { protocols: ["vmm.token.secret"] }, 400],
    ["another origin", "?sandbox=a", { origin: "http://evil.example" }, 403],
  ])("refuses an upgrade with %s before opening it", async (_name, query, options, status) => {
    const t = openTerminal(query, options);
    expect(await t.failed).toBe(status);
    expect(execs).toHaveLength(0);
  });

  it("leaves upgrades of other paths to other mounts", async () => {
    const ws = new WebSocket(`ws://${base}/ui/other`, ["vmm.terminal.v1"]);
    const status = await new Promise<number>((resolve) => {
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("error", () => resolve(-1));
    });
    expect(status).toBe(418);
  });

  it("refuses terminals past maxTerminals with 503, and close() ends the open ones", async () => {
    const a = openTerminal("?sandbox=a");
    const b = openTerminal("?sandbox=b");
    await until(() => execs.length === 2);
    const c = openTerminal("?sandbox=c");
    expect(await c.failed).toBe(503);
    await mount.close?.();
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
    expect(execs.every((e) => e.signal.aborted)).toBe(true);
  });
});

import * as http2 from "node:http2";
import * as net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { healthV1, SandboxService } from "@vmm/proto";
import { describe, expect, it } from "vitest";
import { startDaemonProcess } from "./daemon-process.js";
import { bestOfMs } from "./responsiveness.js";
import { startSimDaemon, waitForState } from "./sim-daemon.js";

const tcpAddress = (stderr: string) => /"tcp:([^"]+)"/.exec(stderr)![1]!;

/** A connection the test holds open, and when it closed (ms after `t0`). */
interface Held {
  kind: string;
  closedAt?: number;
  destroy(): void;
}

function unixTransport(socket: string) {
  return createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => net.connect(socket) },
  });
}

describe("connection limits", () => {
  // 2,000 held connections cost 2,000 fds here and 2,000 in the daemon (plus h2 sessions):
  // well under this machine's 20,000 (`ulimit -n`); the daemon inherits the limit.
  it("2,000 idle connections and stalled bodies: others keep working, idle ones are closed, #cap+1 is refused", async () => {
    const cap = 1000;
    await using d = await startDaemonProcess(
      [
        'tcp_addr = "127.0.0.1:0"',
        'auth_token = "s3cret"',
        `max_connections = ${cap}`,
        "idle_timeout_ms = 12000",
        "request_timeout_ms = 10000",
      ].join("\n"),
      { VMM_NETWORK_MODE: "none" },
    );
    const address = tcpAddress(d.stderr());
    const [host, port] = [address.replace(/:\d+$/, ""), Number(address.replace(/^.*:/, ""))];
    const transport = unixTransport(d.socket);
    const health = createClient(healthV1.Health, transport);
    const sandboxes = createClient(SandboxService, transport);
    await health.check({ service: "" }); // the working client's connection: 1 of the Unix cap

    const held: Held[] = [];
    const t0 = performance.now();
    const track = (kind: string, destroy: () => void) => {
      const h: Held = { kind, destroy };
      held.push(h);
      return (() => {
        h.closedAt ??= performance.now() - t0;
      }) as () => void;
    };
    const silent = (connect: () => net.Socket, kind: string) =>
      new Promise<void>((resolve) => {
        const s = connect();
        s.on(
          "close",
          track(kind, () => s.destroy()),
        );
        s.on("error", () => {});
        s.once("connect", () => resolve());
      });
    const idleH2 = (connect: () => net.Socket, kind: string) =>
      new Promise<void>((resolve) => {
        const session = http2.connect("http://localhost", { createConnection: connect });
        session.on(
          "close",
          track(kind, () => session.destroy()),
        );
        session.on("error", () => {});
        session.once("remoteSettings", () => resolve());
      });
    const stalledH2 = () =>
      new Promise<void>((resolve) => {
        const session = http2.connect(`http://${address}`);
        session.on("error", () => {});
        const stream = session.request({
          ":method": "POST",
          ":path": "/sandbox.v1.SandboxService/List",
          "content-type": "application/grpc",
          authorization: "Bearer s3cret",
        });
        stream.on("error", () => {});
        stream.on(
          "close",
          track("tcp stalled h2 body", () => session.destroy()),
        );
        stream.write(Buffer.from([0, 0, 0, 0, 100, 1, 2])); // 2 of 100 bytes, then nothing
        session.once("remoteSettings", () => resolve());
      });
    const stalledH1 = () =>
      new Promise<void>((resolve) => {
        const s = net.connect(port, host);
        s.on(
          "close",
          track("tcp stalled h1 body", () => s.destroy()),
        );
        s.on("error", () => {});
        s.on("data", () => {});
        s.once("connect", () => {
          s.write(
            "POST /sandbox.v1.SandboxService/List HTTP/1.1\r\nhost: x\r\nauthorization: Bearer s3cret\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
          );
          resolve();
        });
      });
    const unix = () => net.connect(d.socket);
    const tcp = () => net.connect(port, host);
    const batches: [number, () => Promise<void>][] = [
      [cap - 1 - 300, () => silent(unix, "unix silent")],
      [300, () => idleH2(unix, "unix idle h2")],
      [500, () => silent(tcp, "tcp silent")],
      [300, () => idleH2(tcp, "tcp idle h2")],
      [100, stalledH2],
      [100, stalledH1],
    ];
    try {
      for (const [n, open] of batches) {
        for (let i = 0; i < n; i += 100) {
          await Promise.all(Array.from({ length: Math.min(100, n - i) }, open));
        }
      }
      expect(held).toHaveLength(2 * cap - 1);
      const openedMs = performance.now() - t0;
      // Everything below must happen before the first timeout (10 s) frees slots.
      expect(openedMs).toBeLessThan(7000);
      await sleep(200);
      // The working client, with both listeners at their cap.
      const healthMs = await bestOfMs(() => health.check({ service: "" }));
      const listMs = await bestOfMs(() => sandboxes.list({}));
      expect(healthMs).toBeLessThan(100);
      expect(listMs).toBeLessThan(100);

      // Connection #cap+1 on each listener: closed at once, no answer.
      for (const connect of [unix, tcp]) {
        const outcome = await new Promise<string>((resolve) => {
          const s = connect();
          s.on("data", () => resolve("data"));
          s.on("error", () => {});
          s.on("close", () => resolve("closed"));
          s.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
          setTimeout(() => {
            resolve("still open");
            s.destroy();
          }, 1000).unref();
        });
        expect(outcome).toBe("closed");
      }
      expect(await bestOfMs(() => health.check({ service: "" }))).toBeLessThan(100);
      const closedEarly = held.filter((h) => h.closedAt !== undefined);
      expect(closedEarly.map((h) => h.kind)).toEqual([]);

      // Silent connections and stalled bodies go after request_timeout_ms (10 s), idle
      // HTTP/2 sessions after idle_timeout_ms (12 s) without a stream.
      const deadline = performance.now() + 20_000;
      while (held.some((h) => h.closedAt === undefined) && performance.now() < deadline) {
        await sleep(100);
      }
      const open = held.filter((h) => h.closedAt === undefined).map((h) => h.kind);
      expect(open).toEqual([]);
      const latest = new Map<string, number>();
      for (const h of held) latest.set(h.kind, Math.max(latest.get(h.kind) ?? 0, h.closedAt!));
      for (const [kind, at] of latest) expect(at, kind).toBeLessThan(openedMs + 12000 + 3000);
      for (const h of held.filter((h) => h.kind.includes("idle h2"))) {
        expect(h.closedAt, "an idle session closed before idle_timeout_ms").toBeGreaterThan(11500);
      }
      // The cap is free again: a new client gets in.
      const fresh = createClient(healthV1.Health, unixTransport(d.socket));
      await expect(fresh.check({ service: "" })).resolves.toMatchObject({ status: 1 });
      expect(d.stderr()).toContain("connection limit reached");
    } finally {
      for (const h of held) h.destroy();
    }
  }, 120_000);

  it("an open Events stream keeps its connection past idle_timeout_ms", async () => {
    await using d = await startDaemonProcess("idle_timeout_ms = 1000", {
      VMM_NETWORK_MODE: "none",
    });
    const sandboxes = createClient(SandboxService, unixTransport(d.socket));
    const ac = new AbortController();
    let error: unknown;
    const pump = (async () => {
      try {
        for await (const _ of sandboxes.events({}, { signal: ac.signal })) {
          // No events: nobody creates sandboxes here.
        }
      } catch (err) {
        error = err;
      }
    })();
    await sleep(2500);
    expect(error).toBeUndefined();
    ac.abort();
    await pump;
    expect(ConnectError.from(error).code).toBe(Code.Canceled);
  });
});

describe("HTTP/2 flow control", () => {
  it("advertises the configured stream window and frame size and opens the connection window", async () => {
    await using d = await startDaemonProcess(
      [
        "http2_stream_window_bytes = 2097152",
        "http2_connection_window_bytes = 8388608",
        "http2_max_frame_bytes = 262144",
      ].join("\n"),
      { VMM_NETWORK_MODE: "none" },
    );
    const session = http2.connect("http://localhost", {
      createConnection: () => net.connect(d.socket),
    });
    try {
      session.on("error", () => {});
      const settings = await new Promise<http2.Settings>((resolve) =>
        session.once("remoteSettings", resolve),
      );
      expect(settings.initialWindowSize).toBe(2097152);
      expect(settings.maxFrameSize).toBe(262144);
      // The connection window is a WINDOW_UPDATE on stream 0 right after SETTINGS.
      const deadline = performance.now() + 5000;
      while (session.state.remoteWindowSize !== 8388608 && performance.now() < deadline) {
        await sleep(10);
      }
      expect(session.state.remoteWindowSize).toBe(8388608);
    } finally {
      session.destroy();
    }
  });
});

describe("Events stream caps", () => {
  it("refuses streams over the per-connection and total caps with RESOURCE_EXHAUSTED; cancelled ones free their slots", async () => {
    await using d = await startDaemonProcess(
      "max_event_streams = 40\nmax_event_streams_per_connection = 16",
      { VMM_NETWORK_MODE: "none" },
    );
    const open = (client: ReturnType<typeof createClient<typeof SandboxService>>) => {
      const ac = new AbortController();
      const first = new Promise<unknown>((resolve) => {
        void (async () => {
          try {
            for await (const _ of client.events({}, { signal: ac.signal })) break;
          } catch (err) {
            resolve(err);
          }
        })();
        // A stream that stays open has no message to deliver: it is accepted.
        setTimeout(() => resolve("open"), 1500).unref();
      });
      return { ac, first };
    };
    const clients = [0, 1, 2].map(() => createClient(SandboxService, unixTransport(d.socket)));
    const round = async () => {
      const codes: string[][] = [];
      const all: { ac: AbortController }[] = [];
      // One connection after the other, so which cap refuses which stream is certain.
      for (const [client, n] of [
        [clients[0]!, 17],
        [clients[1]!, 16],
        [clients[2]!, 10],
      ] as const) {
        const streams = Array.from({ length: n }, () => open(client));
        all.push(...streams);
        const outcomes = await Promise.all(streams.map((s) => s.first));
        codes.push(outcomes.map((o) => (o === "open" ? "open" : Code[ConnectError.from(o).code]!)));
      }
      for (const s of all) s.ac.abort();
      return codes.map((c) => c.sort().join(","));
    };
    const first = await round();
    // 16 + 1 refused (per connection), 16, then 8 until the total of 40 + 2 refused.
    const refused = "ResourceExhausted";
    expect(first).toEqual([
      [...Array(16).fill("open"), refused].sort().join(","),
      Array(16).fill("open").join(","),
      [...Array(8).fill("open"), refused, refused].sort().join(","),
    ]);
    await sleep(300);
    // The aborted streams freed their slots: the same again.
    expect(await round()).toEqual(first);
  }, 30_000);
});

describe("client hang-ups", () => {
  it("a Run cancelled mid-output logs no error", async () => {
    await using d = await startSimDaemon({ env: { VMM_DAEMON_LOG_LEVEL: "debug" } });
    const id = "hangup-1";
    await d.sandboxes.create({ id });
    await waitForState(d, id, "ready");
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      let chunks = 0;
      try {
        for await (const _ of d.sandboxes.run(
          { id, cmd: ["sh", "-c", "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"] },
          { signal: ac.signal },
        )) {
          if (++chunks === 20) ac.abort();
        }
      } catch (err) {
        expect(ConnectError.from(err).code).toBe(Code.Canceled);
      }
      await waitForState(d, id, "ready");
    }
    await d.sandboxes.remove({ id, force: true });
    await sleep(200);
    const lines = d
      .stderr()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string; component?: string });
    const errors = lines.filter((l) => l.level >= 50 && l.component !== "network");
    expect(errors).toEqual([]);
    expect(lines.some((l) => l.msg === "rpc: client hung up")).toBe(true);
  }, 60_000);
});

import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createFirecrackerClient, type FirecrackerClient } from "./client.js";
import { FirecrackerApiError, FirecrackerConnectionError } from "./errors.js";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

// A scripted HTTP server on a Unix socket stands in for Firecracker's transport.
let dir: string;
let socketPath: string;
let seen: Seen[];
let handler: (req: Seen, res: ServerResponse) => void;
let server: ReturnType<typeof createServer>;
let client: FirecrackerClient;
let inFlight = 0;
let maxInFlight = 0;

beforeEach(async () => {
  dir = mkdtempSync("/tmp/fcc-");
  socketPath = join(dir, "api.sock");
  seen = [];
  inFlight = 0;
  maxInFlight = 0;
  handler = (_req, res) => {
    res.statusCode = 204;
    res.end();
  };
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.on("finish", () => inFlight--);
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const s = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  client = createFirecrackerClient({ socketPath, timeoutMs: 2000 });
});

afterEach(async () => {
  client.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

describe("createFirecrackerClient", () => {
  it("sends JSON with Content-Length (never chunked) to the operation's path", async () => {
    await client.putGuestDriveByID({ drive_id: "root", is_root_device: true, path_on_host: "r" });
    const s = seen[0]!;
    expect(s.method).toBe("PUT");
    expect(s.url).toBe("/drives/root");
    expect(s.headers["content-length"]).toBe(String(Buffer.byteLength(s.body)));
    expect(s.headers["transfer-encoding"]).toBeUndefined();
    expect(JSON.parse(s.body)).toEqual({
      drive_id: "root",
      is_root_device: true,
      path_on_host: "r",
    });
  });

  it.for([
    ["describeInstance", "GET", "/"],
    ["getFirecrackerVersion", "GET", "/version"],
    ["getExportVmConfig", "GET", "/vm/config"],
    ["getMachineConfiguration", "GET", "/machine-config"],
    ["getMmds", "GET", "/mmds"],
    ["describeBalloonConfig", "GET", "/balloon"],
    ["describeBalloonStats", "GET", "/balloon/statistics"],
  ] as const)("%s → %s %s, parses the JSON answer", async ([op, method, path]) => {
    handler = (_req, res) => {
      res.setHeader("Content-Type", "application/json");
      res.end('{"ok":1}');
    };
    const result = await (client[op] as () => Promise<unknown>).call(client);
    expect(result).toEqual({ ok: 1 });
    expect(seen[0]).toMatchObject({ method, url: path, body: "" });
    expect(seen[0]!.headers["content-length"]).toBeUndefined();
  });

  it.for([
    ["putMachineConfiguration", "PUT", "/machine-config", { vcpu_count: 1, mem_size_mib: 128 }],
    ["patchMachineConfiguration", "PATCH", "/machine-config", { mem_size_mib: 256 }],
    ["putGuestBootSource", "PUT", "/boot-source", { kernel_image_path: "k" }],
    ["patchGuestDriveByID", "PATCH", "/drives/d1", { drive_id: "d1", path_on_host: "x" }],
    [
      "putGuestNetworkInterfaceByID",
      "PUT",
      "/network-interfaces/eth0",
      { iface_id: "eth0", host_dev_name: "tap0" },
    ],
    ["patchGuestNetworkInterfaceByID", "PATCH", "/network-interfaces/eth0", { iface_id: "eth0" }],
    ["putGuestVsock", "PUT", "/vsock", { guest_cid: 3, uds_path: "v.sock" }],
    ["putMmds", "PUT", "/mmds", { a: 1 }],
    ["patchMmds", "PATCH", "/mmds", { a: null }],
    ["putMmdsConfig", "PUT", "/mmds/config", { network_interfaces: ["eth0"], version: "V2" }],
    ["putLogger", "PUT", "/logger", { level: "Info" }],
    ["putMetrics", "PUT", "/metrics", { metrics_path: "m.json" }],
    ["createSyncAction", "PUT", "/actions", { action_type: "InstanceStart" }],
    ["patchVm", "PATCH", "/vm", { state: "Paused" }],
    ["createSnapshot", "PUT", "/snapshot/create", { snapshot_path: "s", mem_file_path: "m" }],
    [
      "loadSnapshot",
      "PUT",
      "/snapshot/load",
      {
        snapshot_path: "s",
        mem_backend: { backend_type: "File", backend_path: "m" },
        resume_vm: true,
        network_overrides: [{ iface_id: "eth0", host_dev_name: "tap1" }],
      },
    ],
    ["putBalloon", "PUT", "/balloon", { amount_mib: 0, deflate_on_oom: true }],
    ["patchBalloon", "PATCH", "/balloon", { amount_mib: 10 }],
    ["putEntropyDevice", "PUT", "/entropy", {}],
  ] as const)("%s → %s %s with the body as given", async ([op, method, path, body]) => {
    const fn = (b: unknown) => (client[op] as (b: unknown) => Promise<void>).call(client, b);
    await expect(fn(body)).resolves.toBeUndefined();
    expect(seen[0]).toMatchObject({ method, url: path });
    expect(JSON.parse(seen[0]!.body)).toEqual(body);
  });

  it.for([
    ['{"fault_message":"Invalid kernel path"}', "Invalid kernel path"],
    ['{"error":"Request payload exceeds the limit"}', "Request payload exceeds the limit"],
    ["plain text", "plain text"],
    ["", "(empty body)"],
  ])("maps a 400 body %j to faultMessage %j", async ([body, fault]) => {
    handler = (_req, res) => {
      res.statusCode = 400;
      res.end(body);
    };
    const err = await client.putGuestBootSource({ kernel_image_path: "k" }).catch((e) => e);
    expect(err).toBeInstanceOf(FirecrackerApiError);
    expect(err).toMatchObject({
      operation: "putGuestBootSource",
      method: "PUT",
      path: "/boot-source",
      status: 400,
      faultMessage: fault,
    });
    expect(err.message).toBe(
      `firecracker putGuestBootSource (PUT /boot-source) failed with 400: ${fault}`,
    );
  });

  it("serializes concurrent calls on one connection", async () => {
    handler = (_req, res) => {
      setTimeout(() => {
        res.statusCode = 204;
        res.end();
      }, 5);
    };
    await Promise.all(Array.from({ length: 20 }, () => client.patchVm({ state: "Paused" })));
    expect(seen).toHaveLength(20);
    expect(maxInFlight).toBe(1);
  });

  it("keeps one connection across calls and closes it once idle; a later call connects again", async () => {
    const opened: Socket[] = [];
    server.on("connection", (c: Socket) => opened.push(c));
    const c = createFirecrackerClient({ socketPath, idleConnectionTimeoutMs: 100 });
    try {
      await c.describeInstance();
      await c.describeInstance();
      expect(opened).toHaveLength(1);
      await until(() => opened[0]!.closed, 2000);
      await c.describeInstance();
      expect(opened).toHaveLength(2);
    } finally {
      c.close();
    }
  });

  it("does not cut a call that takes longer than the idle timeout", async () => {
    handler = (_req, res) => {
      setTimeout(() => res.end('{"state":"Running"}'), 400);
    };
    const c = createFirecrackerClient({ socketPath, idleConnectionTimeoutMs: 50 });
    try {
      await expect(c.describeInstance()).resolves.toEqual({ state: "Running" });
    } finally {
      c.close();
    }
  });

  it("rejects with the signal's reason when aborted, and keeps working afterwards", async () => {
    handler = () => {}; // never answers
    const ac = new AbortController();
    const p = client.describeInstance({ signal: ac.signal });
    setTimeout(() => ac.abort(new Error("caller gave up")), 20);
    await expect(p).rejects.toThrow("caller gave up");
    handler = (_req, res) => res.end("{}");
    await expect(client.describeInstance()).resolves.toEqual({});
  });

  it("times out with a FirecrackerConnectionError naming the socket", async () => {
    handler = () => {};
    const err = await client.describeInstance({ timeoutMs: 50 }).catch((e) => e);
    expect(err).toBeInstanceOf(FirecrackerConnectionError);
    expect(err.message).toContain(socketPath);
    expect(err.message).toMatch(/within 50 ms/);
  });

  it("maps a missing socket to FirecrackerConnectionError", async () => {
    const c = createFirecrackerClient({ socketPath: join(dir, "nope.sock") });
    const err = await c.describeInstance().catch((e) => e);
    c.close();
    expect(err).toBeInstanceOf(FirecrackerConnectionError);
    expect(err.message).toContain("nope.sock");
    expect(err.cause).toMatchObject({ code: "ENOENT" });
  });
});

async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

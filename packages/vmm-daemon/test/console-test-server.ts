// The console's e2e environment: a real daemon (vmm-daemon's own composition, createBackend +
// startDaemon, over fc-sim) in this process, plus the HTTP server the browser talks to.
//
// ┌─ TEST GLUE, until the ops HTTP listener ([http] listen, branch opshttp) is merged ──────────┐
// │ `serveConsole` below stands in for that listener: a node:http server on 127.0.0.1:0 that    │
// │ checks the bearer token (header, or subprotocol vmm.token.<t> on upgrades), serves the       │
// │ Connect API under /api (connectNodeAdapter, requestPathPrefix "/api", the daemon's routes)  │
// │ and offers everything else to the console mount. To switch to the real listener: start the  │
// │ daemon with [http] listen = "127.0.0.1:0" and auth_token, pass it the mount as              │
// │ docs/console.md says, and point `url` at the listener's address.                            │
// └──────────────────────────────────────────────────────────────────────────────────────────────┘
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { createVmmRoutes } from "@vmm/grpc";
import { SandboxService, SandboxSnapshotService } from "@vmm/proto";
import { createConsoleMount } from "../src/console/console-mount.js";
import {
  createBackend,
  createRootLogger,
  loadConfig,
  startDaemon,
  VERSION,
  validateConfig,
} from "../src/index.js";
import { FC_SIM_BIN, IMAGES_DIR, processesMatching } from "./sim-daemon.js";

/** A daemon serving the console over HTTP; dispose stops it and its sandboxes. */
export interface ConsoleServer extends AsyncDisposable {
  /** http://127.0.0.1:PORT/ui/ */
  readonly url: string;
  readonly token: string;
  /** A client on the daemon's Unix socket, to check what the browser did. */
  readonly sandboxes: Client<typeof SandboxService>;
  readonly snapshots: Client<typeof SandboxSnapshotService>;
  /** The daemon's log so far (JSON lines), for failure messages. */
  log(): string;
}

/** Starts the daemon and the console server on a fresh temp dir. */
export async function startConsoleServer(): Promise<ConsoleServer> {
  const dir = mkdtempSync(join(tmpdir(), "vmm-console-e2e-"));
  const dataDir = join(dir, "d");
  const socket = join(dir, "vmm.sock");
  const logFile = join(dir, "daemon.log");
  const token = `console-e2e-${process.pid}`;
  const cleanups: (() => Promise<unknown> | unknown)[] = [
    () => rmSync(dir, { recursive: true, force: true }),
  ];
  const dispose = async () => {
    const errors: unknown[] = [];
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "console server cleanup failed");
  };
  try {
    const loaded = loadConfig(undefined, {
      VMM_GRPC_UNIX_SOCKET: socket,
      VMM_FIRECRACKER_BINARY: FC_SIM_BIN,
      VMM_FIRECRACKER_DATA_DIR: dataDir,
      VMM_STORAGE_IMAGES_DIR: IMAGES_DIR,
      VMM_STORAGE_SPARE_CLONES: "0",
      VMM_GOLDEN_ENABLED: "false",
      VMM_NETWORK_MODE: "none",
      VMM_DEFAULTS_MEMORY_MIB: "128",
      // Closing the backend stops every sandbox: nothing outlives the test.
      VMM_DAEMON_ON_SHUTDOWN: "stop",
      VMM_FIRECRACKER_START_TIMEOUT_MS: "30000",
      VMM_AGENT_BOOT_TIMEOUT_MS: "30000",
    });
    validateConfig(loaded);
    const { config } = loaded;
    const logger = createRootLogger({ level: "info", format: "json", file: logFile });
    const backend = await createBackend(config, logger);
    cleanups.push(async () => {
      await backend.close();
      // Nothing of a sandbox may outlive the daemon (fc-sim, agents, workloads).
      const left = processesMatching(dataDir);
      for (const pid of left) process.kill(pid, "SIGKILL");
      if (left.length > 0) throw new Error(`processes left under ${dataDir}: ${left}`);
    });
    const daemon = await startDaemon({
      config,
      logger,
      sandboxes: backend.sandboxes,
      ...(backend.snapshots && { snapshots: backend.snapshots }),
      ...(backend.files && { files: backend.files }),
    });
    cleanups.push(() => daemon.stop(1000));

    // ── TEST GLUE (see the header): the ops listener's part ──
    const { routes, interceptors } = createVmmRoutes({
      sandboxes: backend.sandboxes,
      ...(backend.snapshots && { snapshots: backend.snapshots }),
      ...(backend.files && { files: backend.files }),
      logger,
      version: VERSION,
    });
    const api = connectNodeAdapter({ routes, interceptors, requestPathPrefix: "/api" });
    const consoleMount = createConsoleMount({ sandboxes: backend.sandboxes, logger });
    const authorized = (headers: NodeJS.Dict<string | string[]>) =>
      headers.authorization === `Bearer ${token}` ||
      String(headers["sec-websocket-protocol"] ?? "")
        .split(",")
        .some((p) => p.trim() === `vmm.token.${token}`);
    const server = createServer((req, res) => {
      // The page itself carries no secret: the browser loads it before the user typed a token.
      if (!req.url?.startsWith("/ui") && !authorized(req.headers)) {
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ code: "unauthenticated", message: "missing or wrong token" }));
        return;
      }
      if (consoleMount.handleRequest(req, res)) return;
      if (req.url?.startsWith("/api/")) return api(req, res);
      res.writeHead(404).end();
    });
    server.on("upgrade", (req, sock, head) => {
      if (!authorized(req.headers)) {
        sock.end("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n");
        return;
      }
      if (!consoleMount.handleUpgrade?.(req, sock, head)) {
        sock.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(async () => {
      await consoleMount.close?.();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    // ── end of TEST GLUE ──

    const transport = createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => net.connect(socket) },
    });
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ui/`,
      token,
      sandboxes: createClient(SandboxService, transport),
      snapshots: createClient(SandboxSnapshotService, transport),
      log: () => {
        try {
          return readFileSync(logFile, "utf8");
        } catch {
          return "";
        }
      },
      [Symbol.asyncDispose]: dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

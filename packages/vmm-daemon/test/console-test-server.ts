// The console's e2e environment: a real daemon (vmm-daemon's own composition, createBackend +
// startDaemon, over fc-sim) in this process, its ops HTTP listener ([http] listen on loopback,
// with a token) serving the console mount and /api, as vmm-daemon's main wires them.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ImageService, SandboxService, SandboxSnapshotService } from "@vmm/proto";
import { createConsoleMount } from "../src/console/console-mount.js";
import {
  createBackend,
  createRootLogger,
  loadConfig,
  startDaemon,
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
  readonly images: Client<typeof ImageService>;
  /** The daemon's log so far (JSON lines), for failure messages. */
  log(): string;
}

/** Starts the daemon and the console server on a fresh temp dir. */
export async function startConsoleServer(
  options: { env?: Record<string, string> } = {},
): Promise<ConsoleServer> {
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
      VMM_HTTP_LISTEN: "127.0.0.1:0",
      VMM_HTTP_AUTH_TOKEN: token,
      ...options.env,
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
    const consoleMount = createConsoleMount({ sandboxes: backend.sandboxes, logger });
    const daemon = await startDaemon({
      config,
      logger,
      sandboxes: backend.sandboxes,
      ...(backend.snapshots && { snapshots: backend.snapshots }),
      ...(backend.files && { files: backend.files }),
      ...(backend.metricsSource && { metricsSource: backend.metricsSource }),
      ...(backend.images && { images: backend.images }),
      httpMounts: [consoleMount],
    });
    cleanups.push(() => daemon.stop(1000));
    const ops = daemon.listeners.find((l) => l.address.startsWith("http:"));
    if (!ops) throw new Error("the daemon opened no ops HTTP listener");

    const transport = createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => net.connect(socket) },
    });
    return {
      url: `${ops.address.replace(/^http:/, "http://")}/ui/`,
      token,
      sandboxes: createClient(SandboxService, transport),
      snapshots: createClient(SandboxSnapshotService, transport),
      images: createClient(ImageService, transport),
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

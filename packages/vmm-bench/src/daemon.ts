import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  healthV1,
  ImageService,
  SandboxFilesService,
  SandboxService,
  SandboxSnapshotService,
} from "@vmm/proto";
import { childEnv, DAEMON_BIN, DAEMON_NODE_ARGS } from "./host.js";

/** What a daemon started by the bench boots sandboxes with. */
export interface DaemonOptions {
  /** Absolute path of firecracker or fc-sim. */
  readonly firecracker: string;
  readonly readiness: "agent" | "vmm";
  /** Absolute kernel and rootfs paths (the raw side uses the same files). */
  readonly kernel: string;
  readonly rootfs: string;
  readonly vcpus: number;
  readonly memoryMib: number;
  /** Daemon log level. Default "info" (the daemon's default). */
  readonly logLevel?: string;
  /** `[golden] enabled`: Create restores a pre-booted golden snapshot. Default false. */
  readonly golden?: boolean;
  /** Limit for the daemon to answer Health/Check, ms. Default 15000. */
  readonly startTimeoutMs?: number;
  /** Also listen on TCP 127.0.0.1 (a free port) with this bearer token (`grpc.auth_token`). */
  readonly tcpAuthToken?: string;
  /** `[limits]` overrides (the daemon's defaults otherwise). */
  readonly maxSandboxes?: number;
  readonly maxConcurrentCreates?: number;
  /** TOML lines of `[network]` (without the header). Default `mode = "none"`. */
  readonly network?: readonly string[];
  /** TOML lines of `[images]` (without the header). Default none. */
  readonly images?: readonly string[];
  /** `firecracker.start_timeout_ms`. Default: the daemon's. */
  readonly firecrackerStartTimeoutMs?: number;
  /**
   * Start on the config and data_dir of this earlier daemon's dir (a restart)
   * instead of a fresh one; the options above are then ignored.
   */
  readonly reuseDir?: string;
  /** `[http] listen = "127.0.0.1:0"`: the ops HTTP listener (/metrics), no token. Default off. */
  readonly opsHttp?: boolean;
  /** Extra node options of the daemon process only (not inherited by its children), e.g. --inspect. */
  readonly nodeArgs?: readonly string[];
  /** A command the daemon runs under, e.g. ["ip", "netns", "exec", hostNetns]. */
  readonly wrapper?: readonly string[];
  /** Whole TOML tables appended to the config, e.g. ["[proxy]", 'listen = "…"']. */
  readonly extraToml?: readonly string[];
  /** Environment added to the daemon's (and so fc-sim's), e.g. FC_SIM_GUEST. */
  readonly env?: Readonly<Record<string, string>>;
}

/** gRPC clients of one daemon over its Unix socket; `close()` ends the HTTP/2 session. */
export interface DaemonClients {
  readonly sandbox: Client<typeof SandboxService>;
  readonly snapshot: Client<typeof SandboxSnapshotService>;
  readonly files: Client<typeof SandboxFilesService>;
  readonly health: Client<typeof healthV1.Health>;
  readonly image: Client<typeof ImageService>;
  close(): void;
}

export function connectDaemon(socket: string): DaemonClients {
  const sessionManager = new Http2SessionManager(
    "http://localhost",
    {},
    {
      createConnection: () => netConnect(socket),
      // As the vmm CLI: downloads not held to one round trip per 64 KiB.
      settings: { initialWindowSize: 4 * 1024 * 1024, maxFrameSize: 1024 * 1024 },
    },
  );
  const transport = createGrpcTransport({ baseUrl: "http://localhost", sessionManager });
  return {
    sandbox: createClient(SandboxService, transport),
    snapshot: createClient(SandboxSnapshotService, transport),
    files: createClient(SandboxFilesService, transport),
    health: createClient(healthV1.Health, transport),
    image: createClient(ImageService, transport),
    close: () => sessionManager.abort(),
  };
}

/** A daemon process the bench started, with its own temp dir. */
export interface DaemonProcess extends AsyncDisposable {
  readonly dir: string;
  readonly socket: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** performance.now() just before spawn, and when Health/Check first answered SERVING. */
  readonly spawnedAt: number;
  readonly healthyAt: number;
  /** "host:port" of the TCP listener (with `tcpAuthToken`), from the daemon's "serving" log line. */
  readonly tcpAddress: string | undefined;
  /** The last 64 KiB of the daemon's stderr. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 15 s; resolves when it exited. Removes the temp dir. */
  stop(): Promise<void>;
  /** SIGKILL of the daemon's node process only (its Firecracker children live on); keeps the dir. */
  crash(): Promise<void>;
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** The daemon config the bench runs with (`tcpAuthToken` adds a TCP listener on a free port). */
function writeConfig(
  config: string,
  socket: string,
  dataDir: string,
  options: DaemonOptions,
): void {
  const limits = [
    ...(options.maxSandboxes !== undefined ? [`max_sandboxes = ${options.maxSandboxes}`] : []),
    ...(options.maxConcurrentCreates !== undefined
      ? [`max_concurrent_creates = ${options.maxConcurrentCreates}`]
      : []),
  ];
  writeFileSync(
    config,
    [
      "[daemon]",
      `log_level = ${tomlString(options.logLevel ?? "info")}`,
      'log_format = "json"',
      "[firecracker]",
      `binary = ${tomlString(options.firecracker)}`,
      `data_dir = ${tomlString(dataDir)}`,
      ...(options.firecrackerStartTimeoutMs !== undefined
        ? [`start_timeout_ms = ${options.firecrackerStartTimeoutMs}`]
        : []),
      "[grpc]",
      `unix_socket = ${tomlString(socket)}`,
      // The raw restore baseline reads the snapshot's files from the answer's snapshot_dir.
      "expose_host_details = true",
      ...(options.tcpAuthToken !== undefined
        ? ['tcp_addr = "127.0.0.1:0"', `auth_token = ${tomlString(options.tcpAuthToken)}`]
        : []),
      "[network]",
      ...(options.network ?? ['mode = "none"']),
      "[defaults]",
      `vcpus = ${options.vcpus}`,
      `memory_mib = ${options.memoryMib}`,
      `kernel = ${tomlString(options.kernel)}`,
      `rootfs = ${tomlString(options.rootfs)}`,
      "[agent]",
      `readiness = ${tomlString(options.readiness)}`,
      ...(limits.length > 0 ? ["[limits]", ...limits] : []),
      "[golden]",
      `enabled = ${options.golden === true}`,
      ...(options.opsHttp === true ? ["[http]", 'listen = "127.0.0.1:0"'] : []),
      ...(options.extraToml ?? []),
      ...(options.images !== undefined ? ["[images]", ...options.images] : []),
      "",
    ].join("\n"),
  );
}

/**
 * The TCP listener's "host:port" from the daemon's JSON "serving" log line
 * (`listeners: ["unix:…", "tcp:127.0.0.1:PORT"]`); undefined until logged.
 */
export function tcpAddressFromLog(stderr: string): string | undefined {
  return listenerFromLog(stderr, "tcp");
}

/** The ops HTTP listener's "host:port" from the "serving" log line (`http:127.0.0.1:PORT`). */
export function opsAddressFromLog(stderr: string): string | undefined {
  return listenerFromLog(stderr, "http");
}

function listenerFromLog(stderr: string, scheme: string): string | undefined {
  for (const line of stderr.split("\n")) {
    if (!line.includes('"serving"')) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; listeners?: unknown };
      if (rec.msg !== "serving" || !Array.isArray(rec.listeners)) continue;
      const found = rec.listeners.find(
        (l): l is string => typeof l === "string" && l.startsWith(`${scheme}:`),
      );
      return found?.slice(scheme.length + 1);
    } catch {}
  }
  return undefined;
}

/** Writes a config into a fresh /tmp dir, spawns the built daemon and waits for Health/Check = SERVING. */
export async function startDaemon(options: DaemonOptions): Promise<DaemonProcess> {
  if (!existsSync(DAEMON_BIN)) {
    throw new Error(`${DAEMON_BIN} is not built: run node scripts/build.mjs`);
  }
  // Short paths: sandbox sockets live under <data_dir>/sandboxes/<id>/ (107-byte limit).
  const dir = options.reuseDir ?? mkdtempSync("/tmp/vb-");
  const socket = join(dir, "s.sock");
  const dataDir = join(dir, "d");
  const config = join(dir, "vmm.toml");
  if (options.reuseDir === undefined) writeConfig(config, socket, dataDir, options);
  let stderr = "";
  const spawnedAt = performance.now();
  const [command, ...args] = [
    ...(options.wrapper ?? []),
    process.execPath,
    ...DAEMON_NODE_ARGS,
    ...(options.nodeArgs ?? []),
    DAEMON_BIN,
    "--config",
    config,
  ];
  const child = spawn(command!, args, {
    env: { ...childEnv(), ...options.env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr?.on("data", (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-65536);
  });
  child.on("error", () => {});
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  const crash = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  };
  let healthyAt: number;
  let tcpAddress: string | undefined;
  try {
    healthyAt = await waitServing(socket, child, () => stderr, options.startTimeoutMs ?? 15_000);
    if (options.tcpAuthToken !== undefined) {
      // The log is written asynchronously: the line may trail the first answer.
      const deadline = performance.now() + 2000;
      for (;;) {
        tcpAddress = tcpAddressFromLog(stderr);
        if (tcpAddress !== undefined) break;
        if (performance.now() > deadline)
          throw new Error(`daemon serving but no TCP listener in its log:\n${stderr}`);
        await sleep(10);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dir,
    socket,
    dataDir,
    child,
    spawnedAt,
    healthyAt,
    tcpAddress,
    stderr: () => stderr,
    stop,
    crash,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Polls grpc.health.v1.Health/Check on `socket` until it answers SERVING;
 * returns performance.now() of that answer. Each attempt dials anew (a
 * refused connection poisons a session).
 */
export async function waitServing(
  socket: string,
  child: ChildProcess,
  stderr: () => string,
  timeoutMs: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `daemon exited (${child.exitCode ?? child.signalCode}) before serving:\n${stderr()}`,
      );
    }
    if (performance.now() > deadline) {
      throw new Error(`daemon not serving after ${timeoutMs} ms:\n${stderr()}`);
    }
    if (existsSync(socket)) {
      const c = connectDaemon(socket);
      try {
        const res = await c.health.check({ service: "" }, { timeoutMs: 1000 });
        if (res.status === healthV1.HealthCheckResponse_ServingStatus.SERVING)
          return performance.now();
      } catch {
        // not yet
      } finally {
        c.close();
      }
    }
    await sleep(1);
  }
}

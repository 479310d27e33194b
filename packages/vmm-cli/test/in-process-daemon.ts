// The daemon the CLI suites talk to: vmm-daemon's own composition (createBackend
// + startDaemon, the same config schema, interceptors, auth, paging and listeners
// as the binary) running in the test process, over a real SandboxManager whose
// Firecracker is fc-sim through the real direct launcher. A sandbox is one fc-sim
// process plus the guest agent running as a host process (fc-sim has NO
// ISOLATION), so Run and Exec execute real commands and every answer the CLI
// gets (states, events, codes, pagination, messages) comes from the service.
import { linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  createBackend,
  createRootLogger,
  loadConfig,
  startDaemon,
  VERSION,
  validateConfig,
} from "@vmm/daemon";
import { type SandboxInfo, SandboxService, SandboxSnapshotService } from "@vmm/proto";
import { FC_SIM_BIN, IMAGES_DIR, processesMatching } from "../../vmm-daemon/test/sim-daemon.js";

/** The daemon's version, as `vmm version` must report it (response header vmm-version). */
export const DAEMON_VERSION = VERSION;

/** Page size of List and ListSnapshots here: small, so every listing of 3+ items pages. */
export const PAGE_SIZE = 2;

/**
 * Image names under the daemon's images dir besides the defaults (`vmlinux`,
 * `rootfs.ext4`): `other-vmlinux` and `other-rootfs.ext4` are the dev images
 * under another name (a Create naming them is visible in Inspect);
 * `not-a-kernel` is no ELF file, so InstanceStart fails as Firecracker's would.
 */
export const IMAGES = {
  otherKernel: "other-vmlinux",
  otherRootfs: "other-rootfs.ext4",
  brokenKernel: "not-a-kernel",
} as const;

/** A serving in-process daemon; dispose stops it, its sandboxes and removes its temp dir. */
export interface InProcessDaemon extends AsyncDisposable {
  /** Its Unix socket (no authentication, like the daemon's). */
  readonly socket: string;
  /** "127.0.0.1:PORT" of its TCP listener, which requires `token`. */
  readonly tcpAddress: string;
  readonly token: string;
  /** A private temp dir for the test's own files (markers), removed on dispose. */
  readonly scratch: string;
  readonly dataDir: string;
  readonly sandboxes: Client<typeof SandboxService>;
  readonly snapshots: Client<typeof SandboxSnapshotService>;
  /** Events streams the service is serving now (each registered with the manager). */
  eventStreams(): number;
  /** The daemon's log so far (JSON lines), for failure messages. */
  log(): string;
  /** Polls Inspect until `id` is in `state` (throws with its error otherwise). */
  waitForState(id: string, state: string, timeoutMs?: number): Promise<SandboxInfo>;
  /** Creates `id` and waits until it is ready. */
  createReady(id: string, labels?: Record<string, string>): Promise<SandboxInfo>;
}

/** Starts the daemon on a fresh temp dir (socket, data_dir, images, log); `env` adds config (VMM_*). */
export async function startInProcessDaemon(
  options: { env?: Readonly<Record<string, string>> } = {},
): Promise<InProcessDaemon> {
  const dir = mkdtempSync(join(tmpdir(), "vmm-cli-"));
  const cleanups: (() => Promise<void> | void)[] = [
    () => rmSync(dir, { recursive: true, force: true }),
  ];
  const undo = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const images = join(dir, "images");
    const scratch = join(dir, "scratch");
    mkdirSync(images);
    mkdirSync(scratch);
    for (const [name, from] of [
      ["vmlinux", "vmlinux"],
      ["rootfs.ext4", "rootfs.ext4"],
      [IMAGES.otherKernel, "vmlinux"],
      [IMAGES.otherRootfs, "rootfs.ext4"],
    ] as const) {
      linkSync(resolve(IMAGES_DIR, from), join(images, name));
    }
    writeFileSync(join(images, IMAGES.brokenKernel), "this is not an ELF kernel\n");

    const socket = join(dir, "vmm.sock");
    const dataDir = join(dir, "d");
    const logFile = join(dir, "daemon.log");
    const token = `cli-test-${process.pid}`;
    const loaded = loadConfig(undefined, {
      VMM_GRPC_UNIX_SOCKET: socket,
      VMM_GRPC_TCP_ADDR: "127.0.0.1:0",
      VMM_GRPC_AUTH_TOKEN: token,
      VMM_GRPC_LIST_PAGE_SIZE: String(PAGE_SIZE),
      VMM_FIRECRACKER_BINARY: FC_SIM_BIN,
      VMM_FIRECRACKER_DATA_DIR: dataDir,
      VMM_STORAGE_IMAGES_DIR: images,
      // Copies are made on demand; background spares and golden builds would only add load.
      VMM_STORAGE_SPARE_CLONES: "0",
      VMM_GOLDEN_ENABLED: "false",
      VMM_NETWORK_MODE: "none",
      VMM_DEFAULTS_MEMORY_MIB: "128",
      VMM_DAEMON_ON_SHUTDOWN: "stop",
      // A shared 2-core host under load starts fc-sim (a node process) slowly; the defaults
      // (3 s) are for a real Firecracker.
      VMM_FIRECRACKER_START_TIMEOUT_MS: "30000",
      VMM_AGENT_BOOT_TIMEOUT_MS: "30000",
      ...options.env,
    });
    validateConfig(loaded);
    const { config } = loaded;
    const logger = createRootLogger({ level: "info", format: "json", file: logFile });
    // These suites hand files to the guest through a host scratch directory, so fc-sim runs
    // its host-process guest (FC_SIM_* is read from this process when the backend is built).
    const guestMode = process.env.FC_SIM_GUEST;
    process.env.FC_SIM_GUEST = "host";
    const backend = await createBackend(config, logger).finally(() => {
      if (guestMode === undefined) delete process.env.FC_SIM_GUEST;
      else process.env.FC_SIM_GUEST = guestMode;
    });
    cleanups.push(() => backend.close());
    const counted = countEventStreams(backend.sandboxes);
    const daemon = await startDaemon({
      config,
      logger,
      sandboxes: counted.api,
      ...(backend.snapshots && { snapshots: backend.snapshots }),
      ...(backend.files && { files: backend.files }),
      ...(backend.images && { images: backend.images }),
    });
    cleanups.push(() => daemon.stop(1000));
    const tcp = daemon.listeners.find((l) => l.address.startsWith("tcp:"));
    if (!tcp) throw new Error("the daemon did not open its TCP listener");

    const transport = createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => net.connect(socket) },
    });
    const sandboxes = createClient(SandboxService, transport);
    const log = () => {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return "";
      }
    };
    const waitForState = async (id: string, state: string, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const info = await sandboxes.inspect({ id });
        if (info.state === state) return info;
        if (Date.now() > deadline)
          throw new Error(`sandbox ${id} is ${info.state} (${info.error}), not ${state}`);
        await sleep(20);
      }
    };
    return {
      socket,
      tcpAddress: tcp.address.slice("tcp:".length),
      token,
      scratch,
      dataDir,
      sandboxes,
      snapshots: createClient(SandboxSnapshotService, transport),
      log,
      eventStreams: counted.open,
      waitForState,
      async createReady(id, labels = {}) {
        await sandboxes.create({ id, labels });
        return waitForState(id, "ready");
      },
      async [Symbol.asyncDispose]() {
        // Listeners first (drains calls), then the backend stops every sandbox.
        const [stopListeners, closeBackend, removeDir] = cleanups.splice(0).reverse();
        await stopListeners?.();
        await closeBackend?.();
        // Nothing of a sandbox may outlive the daemon (fc-sim, agents, workloads).
        const left = processesMatching(dataDir);
        await removeDir?.();
        if (left.length > 0) {
          for (const pid of left) process.kill(pid, "SIGKILL");
          throw new Error(`processes left under ${dataDir} after the daemon stopped: ${left}`);
        }
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

type SandboxApi = Parameters<typeof startDaemon>[0]["sandboxes"];

/**
 * The manager as the service sees it, except that Events streams are counted
 * once the manager registered their subscriber (its first `next()` does that
 * synchronously), so a test knows when no event can be missed any more.
 */
function countEventStreams(manager: SandboxApi): { api: SandboxApi; open: () => number } {
  let open = 0;
  const events: SandboxApi["events"] = (filter, signal) => ({
    async *[Symbol.asyncIterator]() {
      const it = manager.events(filter, signal)[Symbol.asyncIterator]();
      const first = it.next();
      open++;
      try {
        for (let r = await first; r.done !== true; r = await it.next()) yield r.value;
      } finally {
        open--;
        await it.return?.();
      }
    },
  });
  const api = new Proxy(manager, {
    get(target, prop) {
      if (prop === "events") return events;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { api, open: () => open };
}

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const DAEMON_BIN = resolve(import.meta.dirname, "../dist/vmm-daemon.mjs");
/** The Node options every launcher gives the daemon (package.json `vmm.nodeArgs`). */
export const DAEMON_NODE_ARGS: readonly string[] = JSON.parse(
  readFileSync(resolve(import.meta.dirname, "../package.json"), "utf8"),
).vmm.nodeArgs;
const FC_SIM = resolve(import.meta.dirname, "../../fc-sim/dist/fc-sim.mjs");

/** A daemon started from the built binary for a test, with its own temp dir and socket. */
export interface DaemonProcess extends AsyncDisposable {
  readonly dir: string;
  readonly socket: string;
  readonly child: ChildProcess;
  /** Everything the daemon wrote to stderr so far. */
  stderr(): string;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts vmm-daemon with `toml` (appended to a [grpc] section pointing at a temp socket) and waits until it serves. */
export async function startDaemonProcess(
  toml = "",
  env: NodeJS.ProcessEnv = {},
  /** A command the daemon runs under, e.g. ["setpriv", "--bounding-set", "-net_admin", "--"]. */
  wrapper: readonly string[] = [],
  /** The temp dir of an earlier daemon (killed or stopped): same socket, same data_dir. */
  reuseDir?: string,
): Promise<DaemonProcess> {
  const dir = reuseDir ?? mkdtempSync(join(tmpdir(), "vmmd-"));
  const socket = join(dir, "vmm.sock");
  const config = join(dir, "vmm.toml");
  // Network mode tap would build its "host" side in this test's own namespace (the root one
  // here): daemons get no networking unless the test configures [network] (with host_netns
  // inside a namespace it made).
  const network = toml.includes("[network]") ? "" : '[network]\nmode = "none"\n';
  writeFileSync(config, `[grpc]\nunix_socket = "${socket}"\n${toml}\n${network}`);
  let stderr = "";
  const argv = [...wrapper, process.execPath, ...DAEMON_NODE_ARGS, DAEMON_BIN, "--config", config];
  const child = spawn(argv[0]!, argv.slice(1), {
    env: {
      ...process.env,
      VMM_DAEMON_LOG_FORMAT: "json",
      VMM_FIRECRACKER_DATA_DIR: join(dir, "d"),
      // Tests never depend on a firecracker on PATH: the simulator unless a test says otherwise.
      VMM_FIRECRACKER_BINARY: FC_SIM,
      // Suites read Firecracker pids and snapshot dirs from answers; security.spec checks the
      // default (off) explicitly.
      VMM_GRPC_EXPOSE_HOST_DETAILS: "true",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr!.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const deadline = Date.now() + 10_000;
  while (!stderr.includes('"msg":"serving"')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`daemon did not start (exit ${child.exitCode}):\n${stderr}`);
    }
    await sleep(10);
  }
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    dir,
    socket,
    child,
    stderr: () => stderr,
    stop,
    async [Symbol.asyncDispose]() {
      const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await stop();
      clearTimeout(t);
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

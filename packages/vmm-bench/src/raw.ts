/**
 * The "raw" side of the comparison: the same phases as `lifecycle`, driven
 * directly against the Firecracker binary (or fc-sim) with no daemon and as
 * little code as possible: mkdir, clone the rootfs, spawn with cwd = dir,
 * plain node:http PUTs with the daemon's relative paths and boot args,
 * InstanceStart, then the agent's health over the vsock UDS (AgentClient,
 * `CONNECT 1024`), Run `true`, SIGKILL and rm -rf.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { link, mkdir, rm } from "node:fs/promises";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentClient, createDiskCloner } from "@vmm/core";
import { childEnv } from "./host.js";
import type { Samples } from "./stats.js";

/** The daemon's default kernel command line (config `defaults.boot_args`). */
export const DEFAULT_BOOT_ARGS =
  "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd";
/** The daemon's default agent vsock port (config `agent.port`). */
export const AGENT_PORT = 1024;

export interface RawOptions {
  readonly firecracker: string;
  readonly readiness: "agent" | "vmm";
  readonly kernel: string;
  readonly rootfs: string;
  readonly vcpus: number;
  readonly memoryMib: number;
  /** Parent of the per-VM dirs (short: socket path limit). */
  readonly baseDir: string;
  /** Boot limit, ms. Default 30000 (the daemon's agent.boot_timeout_ms). */
  readonly bootTimeoutMs?: number;
}

const cloner = createDiskCloner("auto"); // the daemon's storage.rootfs_clone default

function put(agent: Agent, socketPath: string, path: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath,
        agent,
        method: "PUT",
        path,
        headers: { "Content-Type": "application/json", "Content-Length": payload.length },
      },
      (res) => {
        let text = "";
        res.on("data", (b: Buffer) => {
          text += b.toString();
        });
        res.on("end", () =>
          res.statusCode === 204
            ? resolve()
            : reject(new Error(`PUT ${path}: HTTP ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

function getStatus(agent: Agent, socketPath: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ socketPath, agent, method: "GET", path: "/" }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", () => resolve(0));
    req.end();
  });
}

/** A Firecracker/fc-sim process started by the raw side, its API socket answering. */
export interface RawVmm {
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
  readonly apiSock: string;
}

/**
 * Spawns `firecracker` with cwd = `dir` and the daemon's flags (--level
 * Warning, default seccomp, --http-api-max-payload-size 51200), then polls
 * `GET /` on `dir/api.sock` until it answers 200 (limit 3000 ms, the daemon's
 * firecracker.start_timeout_ms). On failure the process is killed.
 */
export async function spawnVmm(
  firecracker: string,
  dir: string,
  id: string,
  http: Agent,
  signal: AbortSignal,
): Promise<RawVmm> {
  const apiSock = join(dir, "api.sock");
  const c = spawn(
    firecracker,
    [
      "--api-sock",
      apiSock,
      "--id",
      id,
      "--level",
      "Warning",
      "--http-api-max-payload-size",
      "51200",
    ],
    { cwd: dir, stdio: "ignore", env: childEnv() },
  );
  const exited = new Promise((r) => c.once("exit", r));
  let spawnError: Error | undefined;
  c.once("error", (err) => {
    spawnError = err;
  });
  try {
    const startBy = performance.now() + 3000;
    for (;;) {
      signal.throwIfAborted();
      if (spawnError) throw spawnError;
      if (c.exitCode !== null) throw new Error(`${firecracker} exited with ${c.exitCode}`);
      if (performance.now() > startBy) throw new Error("API socket did not appear within 3000 ms");
      if (existsSync(apiSock) && (await getStatus(http, apiSock)) === 200) break;
      await sleep(1);
    }
  } catch (err) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGKILL");
      await exited;
    }
    throw err;
  }
  return { child: c, exited, apiSock };
}

/**
 * One raw iteration; adds `create_to_ready_ms`, `first_run_first_msg_ms`,
 * `first_run_ms` (agent readiness only), `remove_ms` and `total_ms` to `samples`.
 */
export async function rawIteration(
  options: RawOptions,
  id: string,
  samples: Samples,
  signal: AbortSignal,
): Promise<void> {
  const dir = join(options.baseDir, id);
  const apiSock = join(dir, "api.sock");
  const http = new Agent({ keepAlive: true, maxSockets: 1 });
  let vmm: RawVmm | undefined;
  try {
    const t0 = performance.now();
    await mkdir(dir);
    await cloner.clone(options.rootfs, join(dir, "rootfs.ext4"), signal);
    vmm = await spawnVmm(options.firecracker, dir, id, http, signal);
    await put(http, apiSock, "/machine-config", {
      vcpu_count: options.vcpus,
      mem_size_mib: options.memoryMib,
    });
    await put(http, apiSock, "/boot-source", {
      kernel_image_path: options.kernel,
      boot_args: `${DEFAULT_BOOT_ARGS} vmm.agent_port=${AGENT_PORT} vmm.hostname=${id}`,
    });
    await put(http, apiSock, "/drives/rootfs", {
      drive_id: "rootfs",
      path_on_host: "rootfs.ext4",
      is_root_device: true,
      is_read_only: false,
    });
    await put(http, apiSock, "/vsock", { guest_cid: 3, uds_path: "vsock.sock" });
    await put(http, apiSock, "/actions", { action_type: "InstanceStart" });
    const agent = await readyAgent(options, dir, signal);
    const tReady = performance.now();
    samples.add("create_to_ready_ms", tReady - t0);
    if (agent) {
      const r0 = performance.now();
      const { firstMs, code } = await runTrueDirect(agent, signal);
      const r1 = performance.now();
      if (code !== 0) throw new Error(`raw: true exited with ${code}`);
      samples.add("first_run_first_msg_ms", firstMs - r0);
      samples.add("first_run_ms", r1 - r0);
    }
    const k0 = performance.now();
    await killAndRemove(vmm, dir);
    const k1 = performance.now();
    samples.add("remove_ms", k1 - k0);
    samples.add("total_ms", k1 - t0);
  } finally {
    http.destroy();
    await killAndRemove(vmm, dir);
  }
}

/**
 * One raw restore: new dir, hard-link the snapshot's `vmstate` and `mem` in
 * and clone its `rootfs.ext4` (in parallel, as the daemon does), spawn with
 * cwd = dir, `PUT /snapshot/load` (relative paths, resume_vm), then with agent
 * readiness `AgentClient.waitReady` on `vsock.sock` and `Run true`. Adds
 * `restore_to_ready_ms`, `first_run_ms` and `restore_to_first_run_ms` (agent
 * only), `remove_ms` (SIGKILL + wait + rm -rf) to `samples`.
 */
export async function rawRestoreIteration(
  options: RawOptions,
  snapshotDir: string,
  id: string,
  samples: Samples,
  signal: AbortSignal,
): Promise<void> {
  const dir = join(options.baseDir, id);
  const http = new Agent({ keepAlive: true, maxSockets: 1 });
  let vmm: RawVmm | undefined;
  try {
    const t0 = performance.now();
    await mkdir(dir);
    await Promise.all([
      cloner.clone(join(snapshotDir, "rootfs.ext4"), join(dir, "rootfs.ext4"), signal),
      link(join(snapshotDir, "vmstate"), join(dir, "vmstate")),
      link(join(snapshotDir, "mem"), join(dir, "mem")),
    ]);
    vmm = await spawnVmm(options.firecracker, dir, id, http, signal);
    await put(http, vmm.apiSock, "/snapshot/load", {
      snapshot_path: "vmstate",
      mem_backend: { backend_type: "File", backend_path: "mem" },
      resume_vm: true,
    });
    // vsock connections do not survive a restore: the client dials anew per call.
    const agent = await readyAgent(options, dir, signal);
    const tReady = performance.now();
    samples.add("restore_to_ready_ms", tReady - t0);
    if (agent) {
      const { code } = await runTrueDirect(agent, signal);
      const r1 = performance.now();
      if (code !== 0) throw new Error(`raw restore: true exited with ${code}`);
      samples.add("first_run_ms", r1 - tReady);
      samples.add("restore_to_first_run_ms", r1 - t0);
    }
    const k0 = performance.now();
    await killAndRemove(vmm, dir);
    samples.add("remove_ms", performance.now() - k0);
  } finally {
    http.destroy();
    await killAndRemove(vmm, dir);
  }
}

/** With agent readiness: a client of the agent on `dir`'s vsock.sock once it answers; else undefined. */
async function readyAgent(
  options: RawOptions,
  dir: string,
  signal: AbortSignal,
): Promise<AgentClient | undefined> {
  if (options.readiness !== "agent") return undefined;
  const agent = new AgentClient({
    endpoint: { kind: "vsock", udsPath: join(dir, "vsock.sock"), port: AGENT_PORT },
  });
  await agent.waitReady({ timeoutMs: options.bootTimeoutMs ?? 30_000, signal });
  return agent;
}

/** SIGKILL (unless it already exited), wait for the exit, `rm -rf dir`. The raw side's Remove. */
async function killAndRemove(vmm: RawVmm | undefined, dir: string): Promise<void> {
  const c = vmm?.child;
  if (c && c.exitCode === null && c.signalCode === null) {
    c.kill("SIGKILL");
    await vmm?.exited;
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Runs `true` through the agent (stdin /dev/null, as the daemon's Run does);
 * returns performance.now() of the first event and the exit code.
 */
export async function runTrueDirect(
  agent: AgentClient,
  signal: AbortSignal,
): Promise<{ firstMs: number; code: number | null | undefined }> {
  const proc = await agent.run({ argv: ["true"], stdin: false, signal });
  let firstMs: number | undefined;
  let code: number | null | undefined;
  for await (const ev of proc) {
    firstMs ??= performance.now();
    if ("exit" in ev) code = ev.exit.code;
  }
  return { firstMs: firstMs ?? performance.now(), code };
}

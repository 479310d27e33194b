import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  ImageService,
  SandboxFilesService,
  SandboxService,
  SandboxSnapshotService,
} from "@vmm/proto";
import { type DaemonProcess, startDaemonProcess } from "./daemon-process.js";

const repo = resolve(import.meta.dirname, "../../..");
export const FC_SIM_BIN = resolve(repo, "packages/fc-sim/dist/fc-sim.mjs");
export const IMAGES_DIR = resolve(repo, ".dev/data/images");

/** A daemon driving fc-sim, with connect clients on its Unix socket. */
export interface SimDaemon extends DaemonProcess {
  readonly sandboxes: Client<typeof SandboxService>;
  readonly snapshots: Client<typeof SandboxSnapshotService>;
  readonly files: Client<typeof SandboxFilesService>;
  readonly images: Client<typeof ImageService>;
  readonly dataDir: string;
}

/**
 * Starts vmm-daemon with fc-sim as Firecracker, network mode none (unless
 * `sections` says otherwise), the dev images, and a private data dir.
 * `grpc` lines go into [grpc]; `sections` are appended as whole TOML tables.
 */
export async function startSimDaemon(
  options: {
    grpc?: string;
    sections?: string;
    env?: NodeJS.ProcessEnv;
    firecracker?: string;
    /** Start on the temp dir (socket, data_dir) of an earlier daemon: a restart. */
    reuseDir?: string;
    /** A command the daemon runs under, e.g. ["ip", "netns", "exec", hostNetns]. */
    wrapper?: readonly string[];
  } = {},
): Promise<SimDaemon> {
  const firecracker = options.firecracker ?? FC_SIM_BIN;
  const sections = options.sections ?? "";
  const toml = [
    options.grpc ?? "",
    "[firecracker]",
    `binary = "${firecracker}"`,
    "[storage]",
    `images_dir = "${IMAGES_DIR}"`,
    ...(sections.includes("[network]") ? [] : ["[network]", 'mode = "none"']),
    ...(sections.includes("[defaults]") ? [] : ["[defaults]", "memory_mib = 128"]),
    sections,
  ].join("\n");
  const d = await startDaemonProcess(
    toml,
    { VMM_FIRECRACKER_BINARY: firecracker, ...options.env },
    options.wrapper ?? [],
    options.reuseDir,
  );
  const transport = createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => net.connect(d.socket) },
  });
  return {
    ...d,
    dataDir: resolve(d.dir, "d"),
    sandboxes: createClient(SandboxService, transport),
    snapshots: createClient(SandboxSnapshotService, transport),
    files: createClient(SandboxFilesService, transport),
    images: createClient(ImageService, transport),
    [Symbol.asyncDispose]: d[Symbol.asyncDispose].bind(d),
  };
}

/** Polls Inspect until the sandbox reaches `state` (or throws after `timeoutMs`). */
export async function waitForState(
  d: SimDaemon,
  id: string,
  state: string,
  timeoutMs = 15_000,
): Promise<Awaited<ReturnType<SimDaemon["sandboxes"]["inspect"]>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await d.sandboxes.inspect({ id });
    if (info.state === state) return info;
    if (Date.now() > deadline)
      throw new Error(`sandbox ${id} is ${info.state} (${info.error}), not ${state}`);
    await sleep(20);
  }
}

/** Runs `sh -c script` in sandbox `id` through Run; its stdout+stderr and exit code. */
export async function runShell(
  d: SimDaemon,
  id: string,
  script: string,
): Promise<{ out: string; exit: number }> {
  let out = "";
  let exit = -1;
  for await (const o of d.sandboxes.run({ id, cmd: ["sh", "-c", script] })) {
    if (o.done) exit = o.exitCode;
    else out += Buffer.from(o.data).toString();
  }
  return { out, exit };
}

/** SIGKILLs the daemon's node process only (its Firecracker children live on) and waits for it. */
export async function killDaemon(d: SimDaemon): Promise<void> {
  const exited = new Promise((r) => d.child.once("exit", r));
  d.child.kill("SIGKILL");
  await exited;
}

/** True while `pid` runs (not a zombie). */
export function pidAlive(pid: number): boolean {
  const stat = safeRead(`/proc/${pid}/stat`);
  return stat !== "" && !/\) Z /.test(stat);
}

/** Pids of live processes whose command line contains `needle`. */
export function processesMatching(needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (cmd.includes(needle) && !/\) Z /.test(stat)) out.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/**
 * Loop devices whose backing file is under `dir` (fc-sim's disk guests mount a sandbox's
 * rootfs through one; it must go when the simulated VM ends), as "loopN → file".
 */
export function loopDevicesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const dev of readdirSync("/sys/block").filter((n) => n.startsWith("loop"))) {
    const backing = safeRead(`/sys/block/${dev}/loop/backing_file`).trim();
    if (backing.startsWith(`${dir}/`)) found.push(`${dev} → ${backing}`);
  }
  return found;
}

/**
 * `leftovers` once what the kernel releases asynchronously has had up to `ms` to go: after fc-sim is
 * SIGKILLed, its guest's loop device is auto-cleared by a kernel work item once the guest's last
 * process has exited and its mount namespace is torn down, which lags under load.
 */
export async function settledLeftovers(
  d: SimDaemon,
  ids: readonly string[],
  fcPids: readonly number[],
  ms = 5_000,
): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = leftovers(d, ids, fcPids);
    if (found.length === 0 || Date.now() > deadline) return found;
    await sleep(50);
  }
}

/** Everything a sandbox could leave behind: fc-sim processes, agents, loop devices, its directory. */
export function leftovers(
  d: SimDaemon,
  ids: readonly string[],
  fcPids: readonly number[],
): string[] {
  const found: string[] = [];
  for (const id of ids) {
    if (existsSync(resolve(d.dataDir, "sandboxes", id))) found.push(`directory of ${id}`);
  }
  for (const loop of loopDevicesUnder(d.dataDir)) {
    // Its sandbox dir, or that dir renamed aside for deletion (`.<id>.deleting-…`).
    if (ids.some((id) => loop.includes(`/sandboxes/${id}/`) || loop.includes(`/sandboxes/.${id}.`)))
      found.push(`loop device ${loop}`);
  }
  for (const pid of fcPids) {
    if (existsSync(`/proc/${pid}`) && !/\) Z /.test(safeRead(`/proc/${pid}/stat`)))
      found.push(`firecracker pid ${pid}`);
    for (const a of processesMatching(`/tmp/fcsim-${pid}`))
      found.push(`agent pid ${a} of firecracker ${pid}`);
  }
  const sockets = d.dataDir;
  // The daemon's own background copy into spares/ (docs/storage.md) belongs to no sandbox.
  const spares = new Set(processesMatching(resolve(d.dataDir, "spares")));
  for (const p of processesMatching(sockets)) {
    if (!spares.has(p)) found.push(`process ${p} using ${sockets}`);
  }
  return found;
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}

/** A live Events subscription that records every event it receives. */
export interface Subscription {
  readonly events: { action: string; attributes: Record<string, string>; sandboxId: string }[];
  /** Resolves once `pred` holds for the actions received so far. */
  waitFor(pred: (actions: string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  close(): void;
}

/** Subscribes to Events and waits until the daemon registered the subscriber. */
export async function subscribe(
  d: SimDaemon,
  filter: { id?: string; action?: string },
): Promise<Subscription> {
  const ac = new AbortController();
  const events: Subscription["events"] = [];
  let notify: () => void = () => {};
  const pump = (async () => {
    try {
      for await (const e of d.sandboxes.events(filter, { signal: ac.signal })) {
        events.push({ action: e.action, attributes: e.attributes, sandboxId: e.sandboxId });
        notify();
      }
    } catch {
      // Aborted by close().
    }
  })();
  await sleep(150); // The stream is opened by the first read; give the daemon time to register it.
  return {
    events,
    async waitFor(pred, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred(events.map((e) => e.action))) {
        if (Date.now() > deadline)
          throw new Error(`events so far: ${events.map((e) => e.action).join(",")}`);
        await Promise.race([new Promise<void>((r) => (notify = r)), sleep(50)]);
      }
      return events.map((e) => e.action);
    },
    close() {
      ac.abort();
      void pump;
    },
  };
}

export { execFileSync };

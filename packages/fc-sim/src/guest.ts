import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  diskGuestBlocker,
  diskGuestCommand,
  firstChild,
  flushGuestDisk,
  hostnameFromCmdline,
  type RootDrive,
} from "./guest-disk.js";

/** Options of {@link Guest}. */
export type GuestOptions = {
  /**
   * Host-process agent binary; `"none"` disables the guest. Default: env `FC_SIM_AGENT`, else the
   * repo's `guest/agent/build/vmm-agent`. Setting it (env or option) makes the guest a host process:
   * a host program cannot run inside the guest's disk.
   */
  agentPath?: string;
  /** Private directory holding the guest's `<port>.sock` listeners. Default `/tmp/fcsim-<pid>`. */
  unixDir?: string;
  /** Where the "serial console" (agent stdout/stderr) goes: an fd. Default 1 (stdout). */
  consoleFd?: number;
  /** Called when the agent exits on its own (guest init died → kernel panic → `reboot=k`). */
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void;
  /** Told once per boot where the guest runs (`disk`) or why it runs as a host process. */
  onPlacement?: (placement: GuestPlacement) => void;
};

/** Where a booted guest runs: chrooted into its root drive, or as a host process (and why). */
export type GuestPlacement = { kind: "disk"; drive: RootDrive } | { kind: "host"; reason: string };

/** The host agent given explicitly (option or `FC_SIM_AGENT`), if any. */
function explicitAgent(option: string | undefined): string | undefined {
  return option ?? (process.env.FC_SIM_AGENT || undefined);
}

/** The default agent path: `<repo>/guest/agent/build/vmm-agent`, found relative to this file. */
export function defaultAgentPath(): string {
  const env = process.env.FC_SIM_AGENT || process.env.FC_SIM_HOST_AGENT;
  if (env) return env;
  // Bundled: packages/fc-sim/dist/fc-sim.mjs; from source: packages/fc-sim/src/guest.ts.
  return resolve(dirname(fileURLToPath(import.meta.url)), "../../../guest/agent/build/vmm-agent");
}

/**
 * The simulated guest, in its own process group. With a root drive and a host
 * that allows loop mounts, the guest's init (the image's `/sbin/init`, our agent)
 * runs chrooted into the loop-mounted drive in its own mount, PID and UTS
 * namespaces (guest-disk.ts); otherwise the host agent runs as a host process on
 * the host's filesystem. Paused = SIGSTOP to the group (+ the disk flushed),
 * resumed = SIGCONT. `stop()` ends the guest and removes the private dirs.
 */
export class Guest {
  readonly unixDir: string;
  /**
   * Mount point of a disk guest's root: `<unixDir>/root`, mounted on only inside the
   * guest's private mount namespace (an empty dir here; also one in the guest's view of
   * its socket dir, whose bind mount does not carry submounts).
   */
  readonly rootDir: string;
  private readonly agentPath: string;
  private readonly explicitAgent: string | undefined;
  private readonly consoleFd: number;
  private readonly onExit: GuestOptions["onExit"];
  private readonly onPlacement: GuestOptions["onPlacement"];
  private child: ChildProcess | undefined;
  private placement: GuestPlacement | undefined;
  private stopping = false;

  constructor(options: GuestOptions) {
    this.explicitAgent = explicitAgent(options.agentPath);
    this.agentPath = this.explicitAgent ?? defaultAgentPath();
    this.unixDir = options.unixDir ?? `/tmp/fcsim-${process.pid}`;
    this.rootDir = `${this.unixDir}/root`;
    this.consoleFd = options.consoleFd ?? 1;
    this.onExit = options.onExit;
    this.onPlacement = options.onPlacement;
  }

  /** False when the guest is disabled (`FC_SIM_AGENT=none`). */
  get enabled(): boolean {
    return this.agentPath !== "none";
  }

  /** True while the agent process runs. */
  get running(): boolean {
    return this.child !== undefined;
  }

  /** Where the running guest was placed (undefined before the first boot). */
  get where(): GuestPlacement | undefined {
    return this.placement;
  }

  /**
   * Boots the guest with the kernel command line: inside `root` when it can
   * (see the class doc), else the host agent. No-op when disabled, or in host
   * mode when the agent binary is missing.
   */
  start(cmdline: string, root: RootDrive | undefined): void {
    if (this.child || !this.enabled) return;
    const placement = this.place(root);
    if (placement.kind === "host" && !existsSync(this.agentPath)) return;
    this.placement = placement;
    this.onPlacement?.(placement);
    mkdirSync(this.unixDir, { recursive: true, mode: 0o700 });
    const agentArgs = ["--unix-dir", this.unixDir, "--cmdline", cmdline];
    let argv: string[];
    if (placement.kind === "disk") {
      mkdirSync(this.rootDir, { recursive: true, mode: 0o700 });
      argv = diskGuestCommand({
        drive: placement.drive,
        mountpoint: this.rootDir,
        unixDir: this.unixDir,
        hostname: hostnameFromCmdline(cmdline),
        init: ["/sbin/init", ...agentArgs],
      });
    } else {
      argv = [this.agentPath, ...agentArgs];
    }
    const child = spawn(argv[0] ?? "", argv.slice(1), {
      stdio: ["ignore", this.consoleFd, this.consoleFd],
      detached: true,
    });
    this.child = child;
    child.on("error", () => {});
    child.on("exit", (code, signal) => {
      this.child = undefined;
      if (!this.stopping) this.onExit(code, signal);
    });
  }

  private place(root: RootDrive | undefined): GuestPlacement {
    if (this.explicitAgent !== undefined)
      return { kind: "host", reason: "FC_SIM_AGENT names a host program as the guest" };
    if (root === undefined) return { kind: "host", reason: "no root drive is configured" };
    const blocker = diskGuestBlocker();
    return blocker === undefined
      ? { kind: "disk", drive: root }
      : { kind: "host", reason: blocker };
  }

  /** Freezes (`true`) or thaws the guest. */
  freeze(frozen: boolean): void {
    this.signalGroup(frozen ? "SIGSTOP" : "SIGCONT");
  }

  /**
   * Makes the disk image hold everything the guest wrote, consistent (a paused
   * VM's disk is what a snapshot copies; fc-sim keeps no guest memory, so the
   * guest's page cache must be in the image). No-op for a host-process guest.
   */
  async flushDisk(): Promise<void> {
    const init = this.nsInit();
    if (this.placement?.kind !== "disk" || init === undefined) return;
    await flushGuestDisk(init, this.rootDir);
  }

  /** PID 1 of the disk guest's namespaces (host pid), while it runs. */
  private nsInit(): number | undefined {
    const pid = this.child?.pid;
    return pid === undefined || this.placement?.kind !== "disk" ? undefined : firstChild(pid);
  }

  /**
   * Ends the guest. Host process: SIGTERM to the group, SIGKILL after graceMs
   * (default 500 ms). Disk guest: SIGKILL to its PID 1 (the kernel then kills the
   * whole PID namespace; the VM is gone, like Firecracker's guest on exit), so
   * when this resolves the guest's mounts and loop device are released.
   */
  async stop(graceMs = 500): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child && this.placement?.kind === "disk") {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      this.signalGroup("SIGCONT");
      const init = this.nsInit();
      if (init !== undefined) signal(init, "SIGKILL");
      else this.signalGroup("SIGKILL"); // still starting: unshare's --kill-child takes PID 1
      await exited;
    } else if (child) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      this.signalGroup("SIGCONT");
      this.signalGroup("SIGTERM");
      const timer = setTimeout(() => this.signalGroup("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
      this.signalGroup("SIGKILL"); // anything the agent left in its group
    }
    this.removeDir();
  }

  /** Last-resort synchronous cleanup (process exit paths): SIGKILL the guest, remove the dirs. */
  killNow(): void {
    this.stopping = true;
    const init = this.nsInit();
    if (init !== undefined) signal(init, "SIGKILL");
    this.signalGroup("SIGKILL");
    this.removeDir();
  }

  private removeDir(): void {
    // Never holds the guest's files: its root is mounted on `rootDir` only in the guest's namespace.
    rmSync(this.unixDir, { recursive: true, force: true });
  }

  private signalGroup(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid !== undefined) signal(-pid, sig);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Removes `/tmp/fcsim-<pid>` dirs whose fc-sim died by SIGKILL (no chance to clean up).
 * Only dirs whose pid no longer exists are touched.
 */
export function sweepStaleGuestDirs(parent = "/tmp"): void {
  for (const name of readdirSync(parent)) {
    const m = /^fcsim-(\d+)$/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ESRCH")
        rmSync(`${parent}/${name}`, { recursive: true, force: true });
    }
  }
}

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Options of {@link Guest}. */
export type GuestOptions = {
  /** Agent binary; `"none"` disables the guest. Default: env `FC_SIM_AGENT`, else the repo's `guest/agent/build/vmm-agent`. */
  agentPath?: string;
  /** Private directory holding the guest's `<port>.sock` listeners. Default `/tmp/fcsim-<pid>`. */
  unixDir?: string;
  /** Where the "serial console" (agent stdout/stderr) goes: an fd. Default 1 (stdout). */
  consoleFd?: number;
  /** Called when the agent exits on its own (guest init died → kernel panic → `reboot=k`). */
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void;
};

/** The default agent path: `<repo>/guest/agent/build/vmm-agent`, found relative to this file. */
export function defaultAgentPath(): string {
  const env = process.env.FC_SIM_AGENT;
  if (env) return env;
  // Bundled: packages/fc-sim/dist/fc-sim.mjs; from source: packages/fc-sim/src/guest.ts.
  return resolve(dirname(fileURLToPath(import.meta.url)), "../../../guest/agent/build/vmm-agent");
}

/**
 * The simulated guest: the agent as a child process in its own process group.
 * Paused = SIGSTOP to the group, resumed = SIGCONT. `stop()` kills the whole
 * group (SIGTERM, then SIGKILL after `graceMs`) and removes the private dir.
 */
export class Guest {
  readonly unixDir: string;
  private readonly agentPath: string;
  private readonly consoleFd: number;
  private readonly onExit: GuestOptions["onExit"];
  private child: ChildProcess | undefined;
  private stopping = false;

  constructor(options: GuestOptions) {
    this.agentPath = options.agentPath ?? defaultAgentPath();
    this.unixDir = options.unixDir ?? `/tmp/fcsim-${process.pid}`;
    this.consoleFd = options.consoleFd ?? 1;
    this.onExit = options.onExit;
  }

  /** True when an agent binary is configured and present. */
  get available(): boolean {
    return this.agentPath !== "none" && existsSync(this.agentPath);
  }

  /** True while the agent process runs. */
  get running(): boolean {
    return this.child !== undefined;
  }

  /** Boots the guest: spawns the agent with the kernel command line. No-op without an agent. */
  start(cmdline: string): void {
    if (this.child || !this.available) return;
    mkdirSync(this.unixDir, { recursive: true, mode: 0o700 });
    const child = spawn(this.agentPath, ["--unix-dir", this.unixDir, "--cmdline", cmdline], {
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

  /** Freezes (`true`) or thaws the guest. */
  freeze(frozen: boolean): void {
    this.signalGroup(frozen ? "SIGSTOP" : "SIGCONT");
  }

  /** Kills the guest synchronously-first: SIGTERM now, SIGKILL after graceMs (default 500 ms). */
  async stop(graceMs = 500): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child) {
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

  /** Last-resort synchronous cleanup (process exit paths): SIGKILL the group, remove the dir. */
  killNow(): void {
    this.stopping = true;
    this.signalGroup("SIGKILL");
    this.removeDir();
  }

  private removeDir(): void {
    rmSync(this.unixDir, { recursive: true, force: true });
  }

  private signalGroup(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
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

import { execFileSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { availableParallelism, loadavg, release, totalmem } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import type { BackendInfo, HostInfo } from "./report.js";

/** The repository root: this file is at packages/vmm-bench/{src,dist}/. */
export const REPO_ROOT = resolve(import.meta.dirname, "../../..");
export const DAEMON_BIN = join(REPO_ROOT, "packages/vmm-daemon/dist/vmm-daemon.mjs");
/** The Node options every launcher gives the daemon (packages/vmm-daemon/package.json, `vmm.nodeArgs`). */
export const DAEMON_NODE_ARGS: readonly string[] = JSON.parse(
  readFileSync(join(REPO_ROOT, "packages/vmm-daemon/package.json"), "utf8"),
).vmm.nodeArgs;
export const FC_SIM_BIN = join(REPO_ROOT, "packages/fc-sim/dist/fc-sim.mjs");
/** Where scripts/dev-images.sh puts vmlinux and rootfs.ext4. */
export const DEV_IMAGES_DIR = join(REPO_ROOT, ".dev/data/images");

/** The 1/5/15-minute load averages now, 2 decimals. */
export function loadAverages(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}

/** The host; `loadStart` (load averages when the run began) adds `loadavg: {start, end}`. */
export function hostInfo(loadStart?: readonly number[]): HostInfo {
  return {
    cpus: availableParallelism(),
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    ...(loadStart && { loadavg: { start: [...loadStart], end: loadAverages() } }),
  };
}

/** True for the simulator (same rule as the daemon's chooseFirecracker). */
export function isSimulated(path: string): boolean {
  return /fc-sim/.test(path);
}

/**
 * Resolves --firecracker: "auto" (default) = firecracker on PATH when /dev/kvm
 * is usable, else fc-sim (as the daemon does); otherwise a path.
 */
export function resolveFirecracker(binary: string): string {
  if (binary !== "auto") return resolve(binary);
  let kvm = false;
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    kvm = true;
  } catch {}
  if (kvm) {
    for (const dir of (process.env.PATH ?? "").split(delimiter)) {
      const p = join(dir, "firecracker");
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch {}
    }
  }
  return FC_SIM_BIN;
}

/** `firecracker --version` of `path`, first line containing "Firecracker v". */
export function backendInfo(path: string | null): BackendInfo {
  if (path === null) return { firecracker: null, simulated: false, version: "unknown" };
  let version = "unknown";
  try {
    const out = execFileSync(path, ["--version"], {
      encoding: "utf8",
      timeout: 10_000,
      env: childEnv(),
      stdio: ["ignore", "pipe", "ignore"],
    });
    version =
      out
        .split("\n")
        .find((l) => /Firecracker v/.test(l))
        ?.trim() ?? version;
  } catch {}
  return { firecracker: path, simulated: isSimulated(path), version };
}

/**
 * Environment for children (daemon, Firecracker/fc-sim): this node first on
 * PATH, so fc-sim's `#!/usr/bin/env node` runs the same Node as the bench.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`,
    ...extra,
  };
}

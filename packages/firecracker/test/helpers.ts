import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdtempSync,
  openSync,
  rmSync,
} from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { onTestFinished } from "vitest";
import { type FirecrackerProcess, MINIMAL_FIRECRACKER_ENV } from "../src/index.js";

const root = resolve(import.meta.dirname, "../../..");

/** fc-sim bundle built by the global setup, once packages/fc-sim/src/main.ts exists. */
export const fcSimPath = resolve(root, "packages/fc-sim/dist/fc-sim.mjs");
/** jailer stand-in bundle built by the global setup. */
export const jailerSimPath = resolve(root, "packages/fc-sim/dist/jailer-sim.mjs");
export const kernelPath = process.env.FIRECRACKER_KERNEL ?? "/root/.cache/vmm-tools/kernel/vmlinux";

/**
 * The environment fc-sim is launched with: the launcher's minimal one plus this node on PATH
 * (fc-sim is a `#!/usr/bin/env node` script).
 */
export const fcSimEnv: Readonly<Record<string, string>> = {
  ...MINIMAL_FIRECRACKER_ENV,
  PATH: `${dirname(process.execPath)}${delimiter}${MINIMAL_FIRECRACKER_ENV.PATH}`,
};

export interface Backend {
  name: string;
  binary: string;
  /** `LaunchOptions.env` for this backend. */
  env: Readonly<Record<string, string>>;
  available: boolean;
  why: string;
}

/** The Firecracker implementations the suites run against. */
export const backends: Backend[] = [
  {
    name: "fc-sim",
    binary: fcSimPath,
    env: fcSimEnv,
    available: existsSync(fcSimPath),
    why: `${fcSimPath} not built yet`,
  },
  {
    name: "firecracker",
    binary: process.env.FIRECRACKER_BIN ?? "",
    env: MINIMAL_FIRECRACKER_ENV,
    available: Boolean(process.env.FIRECRACKER_BIN),
    why: "FIRECRACKER_BIN not set",
  },
];

export function suiteTitle(what: string, b: Backend): string {
  return b.available ? `${what} [${b.name}]` : `${what} [${b.name}] (skipped: ${b.why})`;
}

/** A short temp dir (socket paths!) removed when the test finishes. */
export function tempDir(prefix = "fct-"): string {
  const dir = mkdtempSync(join("/tmp", prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Hard-links (or copies) the test kernel into `dir` as `vmlinux`. */
export function placeKernel(dir: string): void {
  try {
    linkSync(kernelPath, join(dir, "vmlinux"));
  } catch {
    copyFileSync(kernelPath, join(dir, "vmlinux"));
  }
}

/** Creates an 8 MiB ext4 image at `dir/name`. */
export function makeRootfs(dir: string, name = "rootfs.ext4"): void {
  const p = join(dir, name);
  execFileSync("truncate", ["-s", "8M", p]);
  execFileSync("mkfs.ext4", ["-q", "-F", p]);
}

/** Kills + cleans `proc` when the test finishes (also on failure). */
export function track(proc: FirecrackerProcess): FirecrackerProcess {
  onTestFinished(async () => {
    await proc[Symbol.asyncDispose]();
  });
  return proc;
}

export function uniqueId(prefix = "t"): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

export const isRoot = process.getuid?.() === 0;

/**
 * True when /dev/kvm cannot be opened read-write: then a real Firecracker's InstanceStart (and
 * snapshot load) fails with "Kvm error"; everything before it works.
 */
export function kvmUnusable(): boolean {
  try {
    closeSync(openSync("/dev/kvm", "r+"));
    return false;
  } catch {
    return true;
  }
}

// Test harness: the built `vmm` binary as a subprocess, and the daemon it
// talks to: the in-test fake (default) or, with VMM_E2E_DAEMON=1, the real
// daemon (packages/vmm-daemon/dist/vmm-daemon.mjs) driving fc-sim, or an
// already running one at VMM_E2E_SOCKET.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startSimDaemon } from "../../vmm-daemon/test/sim-daemon.js";
import { type FakeDaemon, startFakeDaemon } from "./fake-daemon.js";

/** Repository root. */
export const root = resolve(import.meta.dirname, "../../..");
/** The bundled CLI, built by the vitest global setup (scripts/build.mjs). */
export const vmmBin = join(root, "packages/vmm-cli/dist/vmm.mjs");

/** True when the suites run against the real daemon. */
export const e2e = process.env.VMM_E2E_DAEMON === "1";

/** A daemon under test. `fake` is set only for the in-test fake. */
export interface TestDaemon {
  readonly socket: string;
  readonly fake: FakeDaemon | undefined;
  close(): Promise<void>;
}

/** Starts the daemon the suite runs against (see the file header). */
export async function startTestDaemon(opts: { bootDelayMs?: number } = {}): Promise<TestDaemon> {
  if (!e2e) {
    const fake = await startFakeDaemon(opts);
    return { socket: fake.socket, fake, close: () => fake.close() };
  }
  if (process.env.VMM_E2E_SOCKET) {
    return { socket: process.env.VMM_E2E_SOCKET, fake: undefined, close: async () => {} };
  }
  const bin = join(root, "packages/vmm-daemon/dist/vmm-daemon.mjs");
  if (!existsSync(bin)) throw new Error(`VMM_E2E_DAEMON=1 but ${bin} is not built`);
  // The real daemon driving fc-sim, as the daemon's own integration tests start it.
  const d = await startSimDaemon();
  return { socket: d.socket, fake: undefined, close: async () => await d[Symbol.asyncDispose]() };
}

/** The outcome of one `vmm` run. */
export interface VmmResult {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** stdout as UTF-8. */
  readonly out: string;
}

/** Options of runVmm/startVmm. */
export interface VmmOptions {
  /** Sets VMM_SOCKET. */
  socket?: string;
  /** Extra environment (undefined removes a variable). */
  env?: Record<string, string | undefined>;
  /** Written to stdin, then stdin is closed; "keep" leaves it open. */
  input?: string | Buffer | "keep";
  /** Kills the run after this long (default 20 s); the code is then null. */
  timeoutMs?: number;
}

/** A started `vmm` and its eventual result. */
export interface VmmProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly result: Promise<VmmResult>;
}

/**
 * Starts the built `vmm` with `args` (asynchronously: the fake daemon lives
 * in this process and must keep serving). VMM_ADDRESS and VMM_TOKEN are
 * cleared unless `env` sets them.
 */
export function startVmm(args: readonly string[], opts: VmmOptions = {}): VmmProcess {
  const env: Record<string, string | undefined> = {
    ...process.env,
    VMM_SOCKET: opts.socket,
    VMM_ADDRESS: undefined,
    VMM_TOKEN: undefined,
    ...opts.env,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, [vmmBin, ...args], {
    env: env as NodeJS.ProcessEnv,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  if (opts.input !== "keep") child.stdin.end(opts.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
  const result = new Promise<VmmResult>((resolve) =>
    child.once("close", (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      resolve({
        code,
        stdout,
        out: stdout.toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    }),
  );
  return { child, result };
}

/** Runs the built `vmm` to completion; see startVmm. */
export function runVmm(args: readonly string[], opts: VmmOptions = {}): Promise<VmmResult> {
  return startVmm(args, opts).result;
}

/** Polls `cond` every 20 ms until it holds; throws after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

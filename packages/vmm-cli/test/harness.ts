// Test harness: the built `vmm` binary as a subprocess. The daemon it talks to
// is started by each suite (in-process-daemon.ts, or the daemon binary).
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Repository root. */
export const root = resolve(import.meta.dirname, "../../..");
/** The bundled CLI, built by the vitest global setup (scripts/build.mjs). */
export const vmmBin = join(root, "packages/vmm-cli/dist/vmm.mjs");

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
 * Starts the built `vmm` with `args` (asynchronously: the daemon may live in
 * this process and must keep serving). VMM_ADDRESS and VMM_TOKEN are
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

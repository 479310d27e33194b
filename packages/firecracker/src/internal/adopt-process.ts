import { readFileSync } from "node:fs";
import { readFile, readlink } from "node:fs/promises";
import { createFirecrackerClient } from "../client.js";
import { FirecrackerLaunchError } from "../errors.js";
import type { AdoptTarget, ExitStatus, FirecrackerProcess, StopOptions } from "../launcher.js";
import { readStartTime, watchPid } from "./pid-watch.js";

/** What a launcher variant knows about a process it would have started; {@link adoptProcess} does the rest. */
export interface AdoptSpec {
  id: string;
  workDir: string;
  /** Firecracker's cwd (workDir in direct mode, the chroot root under the jailer). */
  rootDir: string;
  /** Require `rootDir` as the process's cwd (false when a mount namespace hides it, jailer). */
  checkCwd: boolean;
  apiSocketPath: string;
  /** False under `--new-pid-ns` (only SIGKILL stops it). */
  sigtermWorks: boolean;
  /** Removes everything the process leaves behind. Runs only after exit. */
  cleanup: () => Promise<void>;
  /**
   * How often `/proc/<pid>` is polled for the exit (the process is not our child, so no exit
   * event and no exit status). Default 200 ms: a death is seen well within a second.
   */
  pollIntervalMs?: number;
}

/**
 * Why `pid` is not the Firecracker of `spec`, or undefined when it is: alive (not a zombie), with
 * the start time recorded at launch (a recycled pid has another), started with `--id <id>`, and
 * (`checkCwd`) with `rootDir` as its cwd. Records written before start times were kept have none: then the
 * cwd and the command line are the only evidence.
 */
export async function adoptionMismatch(
  spec: Pick<AdoptSpec, "id" | "rootDir" | "checkCwd">,
  target: AdoptTarget,
): Promise<string | undefined> {
  const { pid } = target;
  const startTime = await readStartTime(pid);
  if (startTime === undefined) return `process ${pid} is gone`;
  if (target.startTime !== undefined && startTime !== target.startTime) {
    return `pid ${pid} now belongs to another process (start time ${startTime}, recorded ${target.startTime})`;
  }
  const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
  const at = argv.indexOf("--id");
  if (at < 0 || argv[at + 1] !== spec.id) {
    return `process ${pid} is not firecracker --id ${spec.id} (command line: ${argv.slice(0, 4).join(" ")})`;
  }
  if (!spec.checkCwd) return undefined;
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  if (cwd !== spec.rootDir)
    return `process ${pid} runs in ${cwd ?? "an unreadable directory"}, not ${spec.rootDir}`;
  return undefined;
}

/**
 * A {@link FirecrackerProcess} for a Firecracker found running (left by an earlier daemon), once
 * its identity is checked ({@link adoptionMismatch}); its API is not called here. Exit
 * is observed by polling `/proc` (exit code and signal are unknowable: both null); `kill` re-checks
 * the start time first so a recycled pid is never signalled.
 */
export async function adoptProcess(
  spec: AdoptSpec,
  target: AdoptTarget,
  signal: AbortSignal,
): Promise<FirecrackerProcess> {
  signal.throwIfAborted();
  const mismatch = await adoptionMismatch(spec, target);
  if (mismatch !== undefined) {
    throw new FirecrackerLaunchError(`cannot adopt firecracker ${spec.id}: ${mismatch}`);
  }
  const { pid } = target;
  const startTime = (await readStartTime(pid)) ?? "";
  const watch = watchPid(pid, startTime, spec.pollIntervalMs ?? 200);
  let isExited = false;
  const exited: Promise<ExitStatus> = watch.exited.then((s) => {
    isExited = true;
    return s;
  });
  const client = createFirecrackerClient({ socketPath: spec.apiSocketPath });
  const sendSignal = (sig: NodeJS.Signals) => {
    if (isExited || !sameProcess(pid, startTime)) return;
    try {
      process.kill(pid, sig);
    } catch {}
  };
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    if (!isExited) {
      return Promise.reject(
        new FirecrackerLaunchError(
          `firecracker ${spec.id} (pid ${pid}) is still running; stop it before cleanup`,
        ),
      );
    }
    cleaned ??= (async () => {
      watch.stop();
      client.close();
      await spec.cleanup();
    })();
    return cleaned;
  };
  return {
    pid,
    startTime,
    id: spec.id,
    client,
    apiSocketPath: spec.apiSocketPath,
    workDir: spec.workDir,
    rootDir: spec.rootDir,
    exited,
    kill: () => sendSignal("SIGKILL"),
    async stop(options: StopOptions = {}) {
      if (isExited) return exited;
      if (spec.sigtermWorks) {
        sendSignal("SIGTERM");
        const wait = AbortSignal.any([
          AbortSignal.timeout(options.graceMs ?? 2000),
          ...(options.signal ? [options.signal] : []),
        ]);
        await Promise.race([
          exited,
          new Promise((r) => wait.addEventListener("abort", r, { once: true })),
        ]);
      }
      sendSignal("SIGKILL");
      return exited;
    },
    cleanup,
    detach() {
      watch.stop();
      client.close();
    },
    async [Symbol.asyncDispose]() {
      sendSignal("SIGKILL");
      await exited;
      await cleanup();
    },
  };
}

/** Synchronous start-time check (right before a signal, so a recycled pid is never hit). */
function sameProcess(pid: number, startTime: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[0] !== "Z" && rest[0] !== "X" && rest[19] === startTime;
  } catch {
    return false;
  }
}

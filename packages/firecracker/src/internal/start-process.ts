import { type ChildProcess, spawn } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { createFirecrackerClient } from "../client.js";
import { FirecrackerLaunchError } from "../errors.js";
import type { ExitStatus, FirecrackerProcess, StopOptions } from "../launcher.js";
import { createConsoleCapture } from "./console-capture.js";
import { readStartTime, watchPid } from "./pid-watch.js";

/** What a launcher variant decided; {@link startProcess} does the rest. */
export interface StartSpec {
  /** Program to spawn (firecracker, nsenter, or the jailer) and its arguments. */
  command: string;
  args: string[];
  cwd: string;
  /** The complete environment of the process (nothing is inherited). */
  env: Readonly<Record<string, string>>;
  /** Names the program in errors, e.g. `firecracker` or `jailer`. */
  what: string;
  id: string;
  workDir: string;
  rootDir: string;
  apiSocketPath: string;
  consoleLogPath: string | undefined;
  consoleLogMaxBytes: number;
  startTimeoutMs: number;
  /** Set when Firecracker is not our child (daemonize / new-pid-ns): its pid is read from here. */
  pidFile: string | undefined;
  /**
   * Exec-in-place jailer: our child should be Firecracker, but a jailer stand-in that cannot exec
   * (fc-sim's, a node process) forwards signals to a child of its own instead. When this file names
   * another live pid after readiness, that pid is reported (and signalled too); exit is still observed
   * on our child, which mirrors Firecracker's.
   */
  recordedPidFile?: string;
  /** False under `--new-pid-ns` (Firecracker is a pid-namespace init and ignores SIGTERM). */
  sigtermWorks: boolean;
  /**
   * Spawn in a session of its own (default true). False for a process that calls setsid()
   * itself: the jailer's `--daemonize` fails with EPERM when it already leads a session.
   */
  detached?: boolean;
  /** Removes everything the process leaves behind. Runs only after exit. */
  cleanup: () => Promise<void>;
}

// Firecracker binds its API socket within a few ms of exec: poll tightly (a stat per ms is cheap).
const pollMs = 1;
const readyProbeTimeoutMs = 500;

/**
 * Spawns, waits until `GET /` answers 200 (raced against exit, deadline and `signal`), and returns
 * the {@link FirecrackerProcess}. On failure the process is killed and `cleanup` run before the
 * error is thrown.
 *
 * The process is spawned `detached` (own session and process group): it gets no SIGHUP when a
 * terminal the daemon ran in hangs up (Firecracker exits 156 on SIGHUP, NOTES.md §9) and no SIGINT
 * from a Ctrl-C aimed at the daemon, which stops VMs in its own order. The ChildProcess handle is
 * kept (not unref'd) so the exit status is observed and the daemon remains the parent.
 */
export async function startProcess(
  spec: StartSpec,
  signal: AbortSignal,
): Promise<FirecrackerProcess> {
  signal.throwIfAborted();
  const capture = createConsoleCapture(spec.consoleLogPath, spec.consoleLogMaxBytes);
  let child: ChildProcess;
  try {
    child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: { ...spec.env },
      detached: spec.detached ?? true,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    capture.close();
    await spec.cleanup();
    throw new FirecrackerLaunchError(`cannot spawn ${spec.what} ${spec.command}: ${String(err)}`, {
      cause: err,
    });
  }
  capture.attach(child.stdout);
  capture.attach(child.stderr);

  let spawnError: Error | undefined;
  const stdioClosed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const childExited = new Promise<ExitStatus>((resolve) => {
    child.once("exit", (code, sig) => resolve({ code, signal: sig }));
    child.once("error", (err) => {
      spawnError = err;
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });

  let pid: number | undefined = child.pid;
  let exited = childExited;
  let isExited = false;
  let stopWatch = () => {};
  const sendSignal = (sig: NodeJS.Signals) => {
    if (isExited || pid === undefined) return;
    try {
      process.kill(pid, sig);
    } catch {}
    // A jailer that forked Firecracker away may still be around: it dies too.
    if (pid !== child.pid && child.exitCode === null && child.signalCode === null) {
      child.kill(sig);
    }
  };

  const fail = async (message: string, cause?: unknown): Promise<never> => {
    sendSignal("SIGKILL");
    if (pid !== child.pid) child.kill("SIGKILL");
    const status = await Promise.race([exited, sleep(5000).then(() => undefined)]);
    await Promise.race([stdioClosed, sleep(200)]);
    stopWatch();
    capture.close();
    child.stdout?.destroy();
    child.stderr?.destroy();
    await spec.cleanup();
    const tail = lastLines(capture.tail(), 20);
    throw new FirecrackerLaunchError(tail ? `${message}; last output:\n${tail}` : message, {
      cause,
      ...(status ? { exit: status } : {}),
      outputTail: tail,
    });
  };

  const deadline = AbortSignal.any([signal, AbortSignal.timeout(spec.startTimeoutMs)]);
  const checkDeadline = async () => {
    if (signal.aborted) await fail(`${spec.what} start of ${spec.id} aborted`, signal.reason);
    if (deadline.aborted) {
      await fail(
        `${spec.what} ${spec.id} did not answer on ${spec.apiSocketPath} within ${spec.startTimeoutMs} ms (startTimeoutMs)`,
      );
    }
  };
  const describeExit = (s: ExitStatus) =>
    s.signal ? `was killed by ${s.signal}` : `exited with code ${s.code}`;

  // Firecracker's own pid when it is not our child (NOTES.md §1.2: read the .pid file).
  if (spec.pidFile !== undefined) {
    let childStatus: ExitStatus | undefined;
    void childExited.then((s) => {
      childStatus = s;
    });
    for (;;) {
      const text = await readFile(spec.pidFile, "utf8").catch(() => "");
      const n = Number.parseInt(text.trim(), 10);
      if (Number.isInteger(n) && n > 0) {
        pid = n;
        break;
      }
      if (spawnError) await fail(`cannot run ${spec.what} ${spec.command}: ${spawnError.message}`);
      if (childStatus && (childStatus.code !== 0 || childStatus.signal)) {
        await fail(
          `${spec.what} ${spec.id} ${describeExit(childStatus)} before writing ${spec.pidFile}`,
        );
      }
      await checkDeadline();
      await sleep(pollMs);
    }
    const startTime = await readStartTime(pid);
    if (startTime === undefined) {
      isExited = true;
      await fail(`firecracker ${spec.id} (pid ${pid}) exited right after starting`);
    }
    const watch = watchPid(pid, startTime ?? "");
    stopWatch = watch.stop;
    exited = watch.exited;
  }
  void exited.then(() => {
    isExited = true;
  });

  // Readiness: socket exists AND GET / answers 200 (NOTES.md §1.3).
  const client = createFirecrackerClient({ socketPath: spec.apiSocketPath });
  for (;;) {
    if (spawnError) await fail(`cannot run ${spec.what} ${spec.command}: ${spawnError.message}`);
    if (isExited) {
      await fail(
        `${spec.what} ${spec.id} ${describeExit(await exited)} before its API socket was ready`,
      );
    }
    await checkDeadline();
    const exists = await stat(spec.apiSocketPath).then(
      () => true,
      () => false,
    );
    if (exists) {
      const ok = await client
        .describeInstance({ signal: deadline, timeoutMs: readyProbeTimeoutMs })
        .then(
          () => true,
          () => false,
        );
      if (ok) break;
    }
    // Not Promise.race([sleep, exited]): each race leaves a reaction on `exited` that
    // lives as long as the VM (~500 per sandbox, ~250 KiB of daemon heap, measured by
    // vmm-bench idle-rss). An exit is seen at the top of the next round, ≤ pollMs later.
    await sleep(pollMs);
  }

  if (spec.recordedPidFile !== undefined && pid === child.pid) {
    const text = await readFile(spec.recordedPidFile, "utf8").catch(() => "");
    const recorded = Number.parseInt(text.trim(), 10);
    if (Number.isInteger(recorded) && recorded > 0 && (await readStartTime(recorded))) {
      pid = recorded;
    }
  }

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
      stopWatch();
      client.close();
      await Promise.race([stdioClosed, sleep(200)]);
      capture.close();
      child.stdout?.destroy();
      child.stderr?.destroy();
      await spec.cleanup();
    })();
    return cleaned;
  };

  const fcPid = pid as number;
  const startTime = await readStartTime(fcPid);
  const proc: FirecrackerProcess = {
    pid: fcPid,
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
        const graceMs = options.graceMs ?? 2000;
        const done = new AbortController();
        const wake = options.signal ? AbortSignal.any([options.signal, done.signal]) : done.signal;
        const waited = sleep(graceMs, undefined, { signal: wake }).catch(() => {});
        await Promise.race([exited, waited]);
        done.abort();
      }
      sendSignal("SIGKILL");
      return exited;
    },
    cleanup,
    detach() {
      stopWatch();
      client.close();
      capture.close();
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
    },
    async [Symbol.asyncDispose]() {
      sendSignal("SIGKILL");
      await exited;
      await cleanup();
    },
  };
  return proc;
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split("\n").slice(-n).join("\n");
}

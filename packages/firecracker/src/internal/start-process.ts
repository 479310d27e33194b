import { type ChildProcess, spawn } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { createFirecrackerClient, type FirecrackerClient } from "../client.js";
import { FirecrackerLaunchError } from "../errors.js";
import type { ExitStatus, FirecrackerProcess, StopOptions } from "../launcher.js";
import { type ConsoleCapture, createConsoleCapture } from "./console-capture.js";
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
 * A spawned process from spawn to cleanup, shared by the startup ({@link waitUntilReady}) and the
 * returned handle ({@link processHandle}). Those are separate functions on purpose: a closure keeps
 * every variable of its scope that any closure of that scope uses, so the handle's closures (alive
 * as long as the VM) must not share a scope with the startup's signal, deadline and error paths.
 */
interface Tracked {
  readonly spec: StartSpec;
  readonly child: ChildProcess;
  readonly capture: ConsoleCapture;
  /** Firecracker's pid: our child's, or the one read from `spec.pidFile` / `recordedPidFile`. */
  pid: number | undefined;
  /** Settles when Firecracker is gone: our child's exit, or the pid watch's. */
  exited: Promise<ExitStatus>;
  isExited: boolean;
  stopWatch: () => void;
  spawnError: Error | undefined;
  /** Our child's exit status once it exited (the jailer's, when Firecracker is not our child). */
  childStatus: ExitStatus | undefined;
  readonly childExited: Promise<ExitStatus>;
  /** Settles when the child exited and its stdio pipes closed. */
  readonly stdioClosed: Promise<void>;
}

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
  const t = track(spec, child, capture);
  const client = createFirecrackerClient({ socketPath: spec.apiSocketPath });
  await waitUntilReady(t, client, signal);
  // Only launch errors show the output's tail; the console file keeps being written.
  capture.forgetTail();

  if (spec.recordedPidFile !== undefined && t.pid === child.pid) {
    const text = await readFile(spec.recordedPidFile, "utf8").catch(() => "");
    const recorded = Number.parseInt(text.trim(), 10);
    if (Number.isInteger(recorded) && recorded > 0 && (await readStartTime(recorded))) {
      t.pid = recorded;
    }
  }
  const pid = t.pid as number;
  return processHandle(t, client, pid, await readStartTime(pid));
}

function track(spec: StartSpec, child: ChildProcess, capture: ConsoleCapture): Tracked {
  let resolveExit!: (s: ExitStatus) => void;
  const childExited = new Promise<ExitStatus>((resolve) => {
    resolveExit = resolve;
  });
  const t: Tracked = {
    spec,
    child,
    capture,
    pid: child.pid,
    exited: childExited,
    isExited: false,
    stopWatch: () => {},
    spawnError: undefined,
    childStatus: undefined,
    childExited,
    stdioClosed: new Promise<void>((resolve) => child.once("close", () => resolve())),
  };
  child.once("exit", (code, sig) => {
    t.childStatus = { code, signal: sig };
    resolveExit(t.childStatus);
  });
  child.once("error", (err) => {
    t.spawnError = err;
    if (child.pid === undefined) resolveExit({ code: null, signal: null });
  });
  return t;
}

/** Sets `isExited` once `exited` settles (a module-level closure: it lives as long as the VM). */
function observeExit(t: Tracked): void {
  void t.exited.then(() => {
    t.isExited = true;
  });
}

function sendSignal(t: Tracked, sig: NodeJS.Signals): void {
  const { child, pid } = t;
  if (t.isExited || pid === undefined) return;
  try {
    process.kill(pid, sig);
  } catch {}
  // A jailer that forked Firecracker away may still be around: it dies too.
  if (pid !== child.pid && child.exitCode === null && child.signalCode === null) {
    child.kill(sig);
  }
}

/** Closes the console file and the pipes, waiting ≤ 200 ms for output still in flight. */
async function releaseStdio(t: Tracked): Promise<void> {
  await Promise.race([t.stdioClosed, sleep(200)]);
  t.capture.close();
  t.child.stdout?.destroy();
  t.child.stderr?.destroy();
}

/**
 * Waits until the API answers (reading Firecracker's pid from `spec.pidFile` first when it is not
 * our child). On failure kills the process, runs the spec's cleanup and throws.
 */
async function waitUntilReady(
  t: Tracked,
  client: FirecrackerClient,
  signal: AbortSignal,
): Promise<void> {
  const { spec } = t;
  // A timer cleared on success rather than AbortSignal.timeout, which would fire (and build a
  // DOMException) startTimeoutMs later for every VM that started.
  const startup = new AbortController();
  const timer = setTimeout(
    () => startup.abort(new Error(`startTimeoutMs (${spec.startTimeoutMs} ms) elapsed`)),
    spec.startTimeoutMs,
  );
  const deadline = AbortSignal.any([signal, startup.signal]);
  const fail = async (message: string, cause?: unknown): Promise<never> => {
    clearTimeout(timer);
    sendSignal(t, "SIGKILL");
    if (t.pid !== t.child.pid) t.child.kill("SIGKILL");
    const status = await Promise.race([t.exited, sleep(5000).then(() => undefined)]);
    t.stopWatch();
    client.close();
    await releaseStdio(t);
    await spec.cleanup();
    const tail = lastLines(t.capture.tail(), 20);
    throw new FirecrackerLaunchError(tail ? `${message}; last output:\n${tail}` : message, {
      cause,
      ...(status ? { exit: status } : {}),
      outputTail: tail,
    });
  };
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
    let pid: number;
    for (;;) {
      const text = await readFile(spec.pidFile, "utf8").catch(() => "");
      const n = Number.parseInt(text.trim(), 10);
      if (Number.isInteger(n) && n > 0) {
        pid = n;
        break;
      }
      if (t.spawnError)
        await fail(`cannot run ${spec.what} ${spec.command}: ${t.spawnError.message}`);
      const childStatus = t.childStatus;
      if (childStatus && (childStatus.code !== 0 || childStatus.signal)) {
        await fail(
          `${spec.what} ${spec.id} ${describeExit(childStatus)} before writing ${spec.pidFile}`,
        );
      }
      await checkDeadline();
      await sleep(pollMs);
    }
    t.pid = pid;
    const startTime = await readStartTime(pid);
    if (startTime === undefined) {
      t.isExited = true;
      await fail(`firecracker ${spec.id} (pid ${pid}) exited right after starting`);
    }
    const watch = watchPid(pid, startTime ?? "");
    t.stopWatch = watch.stop;
    t.exited = watch.exited;
  }
  observeExit(t);

  // Readiness: socket exists AND GET / answers 200 (NOTES.md §1.3).
  for (;;) {
    if (t.spawnError)
      await fail(`cannot run ${spec.what} ${spec.command}: ${t.spawnError.message}`);
    if (t.isExited) {
      await fail(
        `${spec.what} ${spec.id} ${describeExit(await t.exited)} before its API socket was ready`,
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
  clearTimeout(timer);
}

/** The handle of a started process; its closures see only `t`, `client` and the identity. */
function processHandle(
  t: Tracked,
  client: FirecrackerClient,
  pid: number,
  startTime: string | undefined,
): FirecrackerProcess {
  const { spec } = t;
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    if (!t.isExited) {
      return Promise.reject(
        new FirecrackerLaunchError(
          `firecracker ${spec.id} (pid ${pid}) is still running; stop it before cleanup`,
        ),
      );
    }
    cleaned ??= (async () => {
      t.stopWatch();
      client.close();
      await releaseStdio(t);
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
    exited: t.exited,
    kill: () => sendSignal(t, "SIGKILL"),
    async stop(options: StopOptions = {}) {
      if (t.isExited) return t.exited;
      if (spec.sigtermWorks) {
        sendSignal(t, "SIGTERM");
        const graceMs = options.graceMs ?? 2000;
        const done = new AbortController();
        const wake = options.signal ? AbortSignal.any([options.signal, done.signal]) : done.signal;
        const waited = sleep(graceMs, undefined, { signal: wake }).catch(() => {});
        await Promise.race([t.exited, waited]);
        done.abort();
      }
      sendSignal(t, "SIGKILL");
      return t.exited;
    },
    cleanup,
    detach() {
      t.stopWatch();
      client.close();
      t.capture.close();
      t.child.stdout?.destroy();
      t.child.stderr?.destroy();
      t.child.unref();
    },
    async [Symbol.asyncDispose]() {
      sendSignal(t, "SIGKILL");
      await t.exited;
      await cleanup();
    },
  };
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split("\n").slice(-n).join("\n");
}

import type { FirecrackerClient } from "./client.js";

/** Seccomp mode of the Firecracker process: built-in filter, none (not for production), or a compiled BPF file. */
export type SeccompOptions =
  | { mode: "default" }
  | { mode: "off" }
  | { mode: "filter"; path: string };

/** Firecracker's `--level`. */
export type FirecrackerLogLevel = "Off" | "Error" | "Warning" | "Info" | "Debug" | "Trace";

/**
 * The environment Firecracker (and nsenter, the jailer) gets by default: a fixed PATH and LANG,
 * nothing of the daemon's (whose environment may hold secrets such as VMM_GRPC_AUTH_TOKEN).
 */
export const MINIMAL_FIRECRACKER_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
  LANG: "C",
});

/** Options of one launch, shared by every {@link FirecrackerLauncher}. */
export interface LaunchOptions {
  /** Firecracker binary. Required. Under the jailer it is copied into the jail as its basename. */
  binaryPath: string;
  /**
   * The sandbox directory. Direct mode: Firecracker's cwd, so relative API paths resolve in it; it must
   * exist. Jailer mode: unused by Firecracker (its cwd is the chroot root, see
   * {@link FirecrackerProcess.rootDir}); kept on the process for the caller.
   */
  workDir: string;
  /** Instance id: `[A-Za-z0-9-]`, 1–64 chars (Firecracker `--id`; names the jail). Required. */
  id: string;
  /**
   * API socket path relative to Firecracker's root (workDir, or the chroot root under the jailer).
   * Default `api.sock` (direct) / `run/api.sock` (jailer: `run/` is the one directory the jailer
   * makes writable for uid:gid).
   */
  apiSocket?: string;
  /** `--level`. Default: Firecracker's own (Info). */
  logLevel?: FirecrackerLogLevel;
  /** Default `{ mode: "default" }`. A filter path is relative to Firecracker's root/cwd. */
  seccomp?: SeccompOptions;
  /** `--http-api-max-payload-size` in bytes. Default: Firecracker's (51200). */
  httpApiMaxPayloadSizeBytes?: number;
  /** `--mmds-size-limit` in bytes. Default: Firecracker's (= payload limit). */
  mmdsSizeLimitBytes?: number;
  /**
   * The complete environment of the spawned process (Firecracker, nsenter or the jailer): the daemon's
   * own environment is never inherited. Default {@link MINIMAL_FIRECRACKER_ENV}.
   */
  env?: Readonly<Record<string, string>>;
  /** Extra Firecracker arguments, appended last. */
  extraArgs?: readonly string[];
  /**
   * Network namespace name (as in `ip netns`, i.e. `/run/netns/<name>`) to run Firecracker in.
   * Direct mode: `nsenter --net=… --` execs Firecracker in place (same pid). Jailer: `--netns`.
   */
  netns?: string;
  /** Time for the API socket to answer `GET /` with 200, in ms. Default 3000. */
  startTimeoutMs?: number;
  /**
   * File receiving the process's stdout+stderr (the guest serial console and, without a log path,
   * Firecracker's log). Written truncate-and-continue: when it would exceed `consoleLogMaxBytes`
   * it is truncated to zero and continues with a marker line. Default: output is drained and only
   * the last 8 KiB are kept in memory (for error messages).
   */
  consoleLogPath?: string;
  /** Bound of `consoleLogPath` in bytes. Default 1 MiB. */
  consoleLogMaxBytes?: number;
  /**
   * Further sockets Firecracker will bind (vsock `uds_path`, `uds_path_<port>` listeners), relative
   * to its root; removed by cleanup after exit (Firecracker never unlinks its sockets).
   */
  cleanupPaths?: readonly string[];
}

/** How a process ended. `code` and `signal` are both null when it was not our child and only seen gone. */
export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/** Options of {@link FirecrackerProcess.stop}. */
export interface StopOptions {
  /** Time between SIGTERM and SIGKILL, in ms. Default 2000. Ignored (SIGKILL at once) with `--new-pid-ns`. */
  graceMs?: number;
  /** Aborting skips the rest of the grace period and sends SIGKILL. */
  signal?: AbortSignal;
}

/**
 * A running Firecracker process started by a {@link FirecrackerLauncher}. Its lifetime is the
 * daemon's, not a request's. Dispose it (`await using`) or call `stop` and then `cleanup`.
 */
export interface FirecrackerProcess {
  /** Pid of Firecracker itself (never a wrapper; read from the jail's `.pid` file when daemonized). */
  readonly pid: number;
  /**
   * The process's start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot), read once
   * it answered; undefined if it could not be read. Recorded so that a later daemon adopting the
   * pid can tell Firecracker from a process that reused the pid ({@link FirecrackerLauncher.adopt}).
   */
  readonly startTime: string | undefined;
  /** Instance id. */
  readonly id: string;
  /** Client bound to the API socket. */
  readonly client: FirecrackerClient;
  /** Absolute API socket path the client uses. */
  readonly apiSocketPath: string;
  /** The sandbox directory given at launch. */
  readonly workDir: string;
  /** Firecracker's `/` and cwd: `workDir` in direct mode, the chroot root under the jailer. */
  readonly rootDir: string;
  /** Resolves once the process is gone; never rejects. */
  readonly exited: Promise<ExitStatus>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit status. Does not clean up. */
  stop(options?: StopOptions): Promise<ExitStatus>;
  /** SIGKILL (no wait). No-op once exited. */
  kill(): void;
  /**
   * After exit: remove the API socket, `cleanupPaths`, and (jailer) the jail dir and cgroup dir.
   * Rejects if the process is still running. Idempotent.
   */
  cleanup(): Promise<void>;
  /**
   * Lets go of the process without stopping it (a daemon leaving VMs running for the next one,
   * which adopts them): stops watching it, closes the client and the console pipes. `exited`
   * then never settles. The console output from then on is lost (its pipe is closed).
   */
  detach(): void;
  /** kill → wait for exit → cleanup. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The Firecracker process to adopt: what was recorded when it was launched. */
export interface AdoptTarget {
  /** Its pid. Required. */
  readonly pid: number;
  /**
   * {@link FirecrackerProcess.startTime} recorded at launch; undefined for records written before
   * it was kept (then only its cwd and `--id` identify it).
   */
  readonly startTime: string | undefined;
}

/**
 * Starts Firecracker processes one way (directly, or under the jailer). `launch` resolves once the
 * API answers; on any failure nothing is left behind (process killed, sockets and jail removed).
 */
export interface FirecrackerLauncher {
  /** `signal` only bounds the startup; the process outlives it. */
  launch(options: LaunchOptions, signal: AbortSignal): Promise<FirecrackerProcess>;
  /**
   * Re-attaches to a Firecracker this launcher started with the same `options` (e.g. by a daemon
   * that has since died): refuses a pid that is gone, reused (start time), or not that instance
   * (`--id`, cwd); its API is not called. The process is not our child:
   * its exit is seen by polling `/proc` (within 200 ms) with an unknown status (code and signal
   * null), and its console output, which went to the dead daemon's pipe, is lost. Throws
   * FirecrackerLaunchError; leaves the process alone when it refuses it.
   */
  adopt(
    options: LaunchOptions,
    target: AdoptTarget,
    signal: AbortSignal,
  ): Promise<FirecrackerProcess>;
}

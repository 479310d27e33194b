import { mkdir, readFile, stat } from "node:fs/promises";
import { basename, isAbsolute, resolve } from "node:path";
import { FirecrackerLaunchError } from "./errors.js";
import { adoptProcess } from "./internal/adopt-process.js";
import { checkInstanceId, firecrackerFlags } from "./internal/firecracker-args.js";
import { readStartTime } from "./internal/pid-watch.js";
import { removeEmptyDir, removePaths, removeTree } from "./internal/remove-paths.js";
import { startProcess } from "./internal/start-process.js";
import { jailPaths } from "./jail-files.js";
import {
  type AdoptTarget,
  type FirecrackerLauncher,
  type FirecrackerProcess,
  type LaunchOptions,
  MINIMAL_FIRECRACKER_ENV,
} from "./launcher.js";
import { checkUnixSocketPath, isListening } from "./socket-path.js";

/** Host-wide jailer settings: options of {@link createJailerLauncher}. */
export interface JailerLauncherOptions {
  /** Jailer binary (same release as Firecracker). Required. */
  jailerPath: string;
  /** Default uid/gid Firecracker runs as; override per launch (use a distinct pair per VM). */
  uid: number;
  gid: number;
  /** `--chroot-base-dir`. Default `/srv/jailer`; keep it short (107-byte socket paths). */
  chrootBaseDir?: string;
  /** `--cgroup-version`. Default 2. */
  cgroupVersion?: 1 | 2;
  /** `--cgroup <file>=<value>` for every VM, e.g. `{ "cpu.max": "100000 100000" }`. Default none. */
  cgroups?: Readonly<Record<string, string>>;
  /** `--parent-cgroup`. Default: the jailer's own (the exec file's basename). */
  parentCgroup?: string;
  /** cgroup filesystem mount. Default `/sys/fs/cgroup`. Only used to remove the VM's cgroup dir. */
  cgroupRootDir?: string;
  /** `--resource-limit`s. Default: the jailer's (`no-file=2048`). `fsize` must exceed the snapshot memory file. */
  resourceLimits?: { fsize?: number; "no-file"?: number };
  /** `--new-pid-ns`: Firecracker is pid 1 of its own namespace; only SIGKILL stops it. Default false. */
  newPidNs?: boolean;
  /** `--daemonize`: stdio goes to /dev/null (no console capture). Default false. */
  daemonize?: boolean;
  /** Directory of named network namespaces for `LaunchOptions.netns`. Default `/run/netns`. */
  netnsDir?: string;
}

/** Per-launch jailer overrides on top of {@link LaunchOptions}. */
export interface JailerLaunchOptions extends LaunchOptions {
  uid?: number;
  gid?: number;
  /** Merged over the launcher's `cgroups`. */
  cgroups?: Readonly<Record<string, string>>;
}

/** A {@link FirecrackerLauncher} that also takes {@link JailerLaunchOptions}. */
export interface JailerLauncher extends FirecrackerLauncher {
  launch(options: JailerLaunchOptions, signal: AbortSignal): Promise<FirecrackerProcess>;
  adopt(
    options: JailerLaunchOptions,
    target: AdoptTarget,
    signal: AbortSignal,
  ): Promise<FirecrackerProcess>;
}

/**
 * Launches Firecracker under the jailer (chroot, uid/gid, cgroups, netns). The API socket and every
 * relative API path resolve in the chroot root `<chrootBaseDir>/<exec basename>/<id>/root`
 * (`FirecrackerProcess.rootDir`); place files there with `linkIntoJail`. Without new-pid-ns the
 * jailer execs Firecracker in place, also with daemonize (our child is Firecracker); with new-pid-ns
 * the pid comes from `<root>/<exec>.pid`, the only case the jailer writes it, and is watched by
 * polling /proc. A stale jail (no live process, no live API
 * socket) is removed before launch; a live one is refused. Cleanup removes the jail dir and the
 * VM's cgroup dir.
 */
export function createJailerLauncher(options: JailerLauncherOptions): JailerLauncher {
  const chrootBaseDir = resolve(options.chrootBaseDir ?? "/srv/jailer");
  const cgroupVersion = options.cgroupVersion ?? 2;
  const cgroupRootDir = options.cgroupRootDir ?? "/sys/fs/cgroup";
  const netnsDir = options.netnsDir ?? "/run/netns";
  return {
    async launch(launch: JailerLaunchOptions, signal: AbortSignal): Promise<FirecrackerProcess> {
      signal.throwIfAborted();
      checkInstanceId(launch.id);
      const binary = isAbsolute(launch.binaryPath) ? launch.binaryPath : resolve(launch.binaryPath);
      const exec = basename(binary);
      const { jailDir, rootDir } = jailPaths({ chrootBaseDir, binaryPath: binary, id: launch.id });
      const apiSocket = launch.apiSocket ?? "run/api.sock";
      if (isAbsolute(apiSocket) || apiSocket.split("/").includes("..")) {
        throw new FirecrackerLaunchError(
          `apiSocket ${JSON.stringify(apiSocket)} of jailed firecracker ${launch.id} must be relative to the jail root, without ".."`,
        );
      }
      const apiSocketPath = resolve(rootDir, apiSocket);
      checkUnixSocketPath(apiSocketPath, `API socket of jailed firecracker ${launch.id}`);
      const pidFile = resolve(rootDir, `${exec}.pid`);
      await removeStaleJail(jailDir, pidFile, apiSocketPath, launch.id);
      // jailer v1.0.0 panics (SIGABRT, "Failed to canonicalize path") on a missing base dir.
      await mkdir(chrootBaseDir, { recursive: true, mode: 0o700 });

      const cgroups = { ...options.cgroups, ...launch.cgroups };
      const args = [
        "--id",
        launch.id,
        "--exec-file",
        binary,
        "--uid",
        String(launch.uid ?? options.uid),
        "--gid",
        String(launch.gid ?? options.gid),
        "--chroot-base-dir",
        chrootBaseDir,
        "--cgroup-version",
        String(cgroupVersion),
      ];
      for (const [file, value] of Object.entries(cgroups))
        args.push("--cgroup", `${file}=${value}`);
      if (options.parentCgroup !== undefined) args.push("--parent-cgroup", options.parentCgroup);
      for (const [k, v] of Object.entries(options.resourceLimits ?? {})) {
        if (v !== undefined) args.push("--resource-limit", `${k}=${v}`);
      }
      if (launch.netns !== undefined) args.push("--netns", resolve(netnsDir, launch.netns));
      if (options.newPidNs) args.push("--new-pid-ns");
      if (options.daemonize) args.push("--daemonize");
      // Relative to Firecracker's cwd, which is the jail root both after the real jailer's chroot and
      // under a stand-in that does not chroot (an absolute path would then escape to the host's /run).
      args.push("--", "--api-sock", apiSocket, ...firecrackerFlags(launch));

      const cgroupDirs = cgroupDirsOf(launch);
      const workDir = resolve(launch.workDir);
      return startProcess(
        {
          command: options.jailerPath,
          args,
          cwd: workDir,
          env: launch.env ?? MINIMAL_FIRECRACKER_ENV,
          what: "jailer",
          id: launch.id,
          workDir,
          rootDir,
          apiSocketPath,
          consoleLogPath:
            launch.consoleLogPath === undefined
              ? undefined
              : resolve(workDir, launch.consoleLogPath),
          consoleLogMaxBytes: launch.consoleLogMaxBytes ?? 1024 * 1024,
          startTimeoutMs: launch.startTimeoutMs ?? 3000,
          // jailer v1.0.0 writes the pid file only for --new-pid-ns (its parent exits there); with
          // --daemonize alone it calls setsid() and execs in place.
          pidFile: options.newPidNs ? pidFile : undefined,
          recordedPidFile: pidFile,
          sigtermWorks: !options.newPidNs,
          // The real jailer's --daemonize calls setsid() and aborts when that fails (EPERM for a
          // session leader, which a detached spawn makes it): found with jailer v1.0.0.
          detached: !options.daemonize,
          cleanup: () => removeJail(launch, apiSocketPath, jailDir, rootDir, cgroupDirs),
        },
        signal,
      );
    },
    adopt(launch: JailerLaunchOptions, target: AdoptTarget, signal: AbortSignal) {
      checkInstanceId(launch.id);
      const binary = isAbsolute(launch.binaryPath) ? launch.binaryPath : resolve(launch.binaryPath);
      const { jailDir, rootDir } = jailPaths({ chrootBaseDir, binaryPath: binary, id: launch.id });
      const apiSocketPath = resolve(rootDir, launch.apiSocket ?? "run/api.sock");
      const cgroupDirs = cgroupDirsOf(launch);
      return adoptProcess(
        {
          id: launch.id,
          workDir: resolve(launch.workDir),
          rootDir,
          // The jailer pivots into its own mount namespace: seen from outside, the cwd is not
          // the jail path. The start time and `--id` identify the process.
          checkCwd: false,
          apiSocketPath,
          sigtermWorks: !options.newPidNs,
          cleanup: () => removeJail(launch, apiSocketPath, jailDir, rootDir, cgroupDirs),
        },
        target,
        signal,
      );
    },
  };

  /** The VM's cgroup directories (removed by cleanup). */
  function cgroupDirsOf(launch: JailerLaunchOptions): string[] {
    const cgroups = { ...options.cgroups, ...launch.cgroups };
    const parentCgroup = options.parentCgroup ?? basename(launch.binaryPath);
    if (Object.keys(cgroups).length === 0) return [];
    return cgroupVersion === 2
      ? [resolve(cgroupRootDir, parentCgroup, launch.id)]
      : [...new Set(Object.keys(cgroups).map((f) => f.split(".")[0] ?? f))].map((c) =>
          resolve(cgroupRootDir, c, parentCgroup, launch.id),
        );
  }
}

/** Everything a jailed Firecracker leaves: its sockets, the jail, its cgroup directories. */
async function removeJail(
  launch: LaunchOptions,
  apiSocketPath: string,
  jailDir: string,
  rootDir: string,
  cgroupDirs: readonly string[],
): Promise<void> {
  await removePaths([
    apiSocketPath,
    ...(launch.cleanupPaths ?? []).map((p) => resolve(rootDir, p)),
  ]);
  await removeTree(jailDir);
  for (const dir of cgroupDirs) await removeEmptyDir(dir);
}

async function removeStaleJail(
  jailDir: string,
  pidFile: string,
  apiSocketPath: string,
  id: string,
): Promise<void> {
  if (!(await stat(jailDir).catch(() => undefined))) return;
  const pid = Number.parseInt((await readFile(pidFile, "utf8").catch(() => "")).trim(), 10);
  const alive = Number.isInteger(pid) && pid > 0 && (await readStartTime(pid)) !== undefined;
  if (alive || (await isListening(apiSocketPath))) {
    throw new FirecrackerLaunchError(
      `jail ${jailDir} of firecracker ${id} belongs to a live process${alive ? ` (pid ${pid})` : ""}; stop it first or use another id`,
    );
  }
  await removeTree(jailDir);
}

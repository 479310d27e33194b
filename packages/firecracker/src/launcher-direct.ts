import { stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { FirecrackerLaunchError } from "./errors.js";
import { adoptProcess } from "./internal/adopt-process.js";
import { checkInstanceId, firecrackerFlags } from "./internal/firecracker-args.js";
import { removePaths } from "./internal/remove-paths.js";
import { startProcess } from "./internal/start-process.js";
import {
  type AdoptTarget,
  type FirecrackerLauncher,
  type FirecrackerProcess,
  type LaunchOptions,
  MINIMAL_FIRECRACKER_ENV,
} from "./launcher.js";
import { checkUnixSocketPath, removeStaleSocket } from "./socket-path.js";

/** Options of {@link createDirectLauncher}. */
export interface DirectLauncherOptions {
  /** `nsenter` used for `netns` launches. Default `nsenter` (from PATH). */
  nsenterPath?: string;
  /** Directory holding named network namespaces. Default `/run/netns` (as `ip netns` uses). */
  netnsDir?: string;
}

/**
 * Launches Firecracker directly as a child of the daemon, with `workDir` as its cwd so every relative
 * API path lands in the sandbox directory (ARCHITECTURE.md decision 3). With `netns`, the command is
 * `nsenter --net=<netnsDir>/<name> -- <binary> …`: nsenter joins the namespace and execs Firecracker
 * in place, so the pid we hold and signal is Firecracker's own (verified by the netns test).
 */
export function createDirectLauncher(options: DirectLauncherOptions = {}): FirecrackerLauncher {
  const nsenter = options.nsenterPath ?? "nsenter";
  const netnsDir = options.netnsDir ?? "/run/netns";
  return {
    async launch(launch: LaunchOptions, signal: AbortSignal): Promise<FirecrackerProcess> {
      signal.throwIfAborted();
      checkInstanceId(launch.id);
      const workDir = resolve(launch.workDir);
      const st = await stat(workDir).catch(() => undefined);
      if (!st?.isDirectory()) {
        throw new FirecrackerLaunchError(
          `workDir ${workDir} of firecracker ${launch.id} is not a directory; create it first`,
        );
      }
      const { apiSocketPath, cleanupPaths } = directPaths(launch);
      checkUnixSocketPath(apiSocketPath, `API socket of firecracker ${launch.id}`);
      await removeStaleSocket(apiSocketPath, `API socket of firecracker ${launch.id}`);
      const binary = isAbsolute(launch.binaryPath) ? launch.binaryPath : resolve(launch.binaryPath);
      const fcArgs = ["--api-sock", apiSocketPath, "--id", launch.id, ...firecrackerFlags(launch)];
      let command = binary;
      let args = fcArgs;
      if (launch.netns !== undefined) {
        const nsPath = resolve(netnsDir, launch.netns);
        if (!(await stat(nsPath).catch(() => undefined))) {
          throw new FirecrackerLaunchError(
            `network namespace ${launch.netns} of firecracker ${launch.id} does not exist (${nsPath}); create it first (ip netns add)`,
          );
        }
        command = nsenter;
        args = [`--net=${nsPath}`, "--", binary, ...fcArgs];
      }
      return startProcess(
        {
          command,
          args,
          cwd: workDir,
          env: launch.env ?? MINIMAL_FIRECRACKER_ENV,
          what: "firecracker",
          id: launch.id,
          workDir,
          rootDir: workDir,
          apiSocketPath,
          consoleLogPath:
            launch.consoleLogPath === undefined
              ? undefined
              : resolve(workDir, launch.consoleLogPath),
          consoleLogMaxBytes: launch.consoleLogMaxBytes ?? 1024 * 1024,
          startTimeoutMs: launch.startTimeoutMs ?? 3000,
          pidFile: undefined,
          sigtermWorks: true,
          cleanup: () => removePaths(cleanupPaths),
        },
        signal,
      );
    },
    adopt(launch: LaunchOptions, target: AdoptTarget, signal: AbortSignal) {
      checkInstanceId(launch.id);
      const workDir = resolve(launch.workDir);
      const { apiSocketPath, cleanupPaths } = directPaths(launch);
      return adoptProcess(
        {
          id: launch.id,
          workDir,
          rootDir: workDir,
          checkCwd: true,
          apiSocketPath,
          sigtermWorks: true,
          cleanup: () => removePaths(cleanupPaths),
        },
        target,
        signal,
      );
    },
  };
}

/** The API socket and the files cleanup removes, for a launch (or adoption) with `launch`. */
function directPaths(launch: LaunchOptions): { apiSocketPath: string; cleanupPaths: string[] } {
  const workDir = resolve(launch.workDir);
  const apiSocketPath = resolve(workDir, launch.apiSocket ?? "api.sock");
  return {
    apiSocketPath,
    cleanupPaths: [apiSocketPath, ...(launch.cleanupPaths ?? []).map((p) => resolve(workDir, p))],
  };
}

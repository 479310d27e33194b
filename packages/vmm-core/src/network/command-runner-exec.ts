import { execFile } from "node:child_process";
import {
  type Command,
  CommandFailedError,
  type CommandResult,
  type CommandRunner,
} from "./command-runner.js";
import { type Logger, silentLogger } from "./logger.js";

export interface ExecCommandRunnerOptions {
  /** Kill a command that runs longer than this (SIGKILL). Default 10_000 ms. */
  timeoutMs?: number;
  /** Each command is logged at debug level. Default: silent. */
  logger?: Logger;
}

/** Runs commands for real with `execFile` (no shell), a timeout each. */
export function createExecCommandRunner(options: ExecCommandRunnerOptions = {}): CommandRunner {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const logger = options.logger ?? silentLogger;
  return {
    dryRun: false,
    run(command: Command, signal?: AbortSignal): Promise<CommandResult> {
      const [file, ...args] = command.argv;
      const started = performance.now();
      return new Promise<CommandResult>((resolve, reject) => {
        const child = execFile(
          file,
          args,
          {
            timeout: timeoutMs,
            killSignal: "SIGKILL",
            maxBuffer: 16 * 1024 * 1024,
            encoding: "utf8",
            ...(signal === undefined ? {} : { signal }),
          },
          (err, stdout, stderr) => {
            const ms = Math.round((performance.now() - started) * 10) / 10;
            if (err === null) {
              logger.debug({ argv: command.argv, ms }, "network command");
              resolve({ stdout, stderr });
              return;
            }
            const code = typeof err.code === "number" ? err.code : null;
            const why = err.killed
              ? `${stderr}\n(killed after ${timeoutMs} ms or aborted)`
              : stderr;
            logger.debug({ argv: command.argv, ms, code, stderr }, "network command failed");
            reject(
              new CommandFailedError(command, code, why || String(err.message), { cause: err }),
            );
          },
        );
        child.stdin?.on("error", () => {
          // The process exited before reading stdin; the exit status reports it.
        });
        child.stdin?.end(command.stdin ?? "");
      });
    },
  };
}

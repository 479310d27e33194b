import { VmmError } from "../errors.js";

/**
 * One network command (`ip`, `nft`, `sysctl`), run without a shell.
 * `argv[0]` is the program; `stdin`, when set, is fed to it (for `ip -batch -`
 * and `nft -f -`).
 */
export interface Command {
  readonly argv: readonly [string, ...string[]];
  readonly stdin?: string;
  /**
   * True for commands that only read state (`ip netns list`). A dry-run runner
   * answers them with empty output instead of printing them as actions.
   */
  readonly readOnly?: boolean;
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Every network command goes through a runner: `createExecCommandRunner` runs
 * them, `createDryRunCommandRunner` prints and records them without running
 * anything, `createRecordingCommandRunner` runs them and keeps a log (tests).
 */
export interface CommandRunner {
  /** True when commands are not actually run (reads return empty output). */
  readonly dryRun: boolean;
  run(command: Command, signal?: AbortSignal): Promise<CommandResult>;
}

/** A network command exited non-zero, timed out, or could not be started. */
export class CommandFailedError extends VmmError {
  readonly command: Command;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(
    command: Command,
    exitCode: number | null,
    stderr: string,
    options?: ErrorOptions & { hint?: string },
  ) {
    const status = exitCode === null ? "did not finish" : `exited with ${exitCode}`;
    const detail =
      stderr.trim() === "" ? "" : `: ${stderr.trim().split("\n").slice(0, 5).join("; ")}`;
    super("internal", `network command ${formatArgv(command.argv)} ${status}${detail}`, {
      hint:
        options?.hint ??
        "check that the daemon runs as root with ip (iproute2) and nft installed; rerun with --dry-run to see every command",
      ...(options?.cause === undefined ? {} : { cause: options.cause }),
    });
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Runs `argv` inside network namespace `netns` (via `ip netns exec`), or as is when undefined. */
export function inNetns(
  netns: string | undefined,
  argv: readonly [string, ...string[]],
): [string, ...string[]] {
  return netns === undefined ? [...argv] : ["ip", "netns", "exec", netns, ...argv];
}

/** `ip` with `-n <netns>` when a namespace is given. */
export function ipArgv(netns: string | undefined, ...args: string[]): [string, ...string[]] {
  return netns === undefined ? ["ip", ...args] : ["ip", "-n", netns, ...args];
}

const SAFE_ARG = /^[A-Za-z0-9_./:=,@%+-]+$/;

function quote(arg: string): string {
  return SAFE_ARG.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The argv as one shell-quoted line. */
export function formatArgv(argv: readonly string[]): string {
  return argv.map(quote).join(" ");
}

/**
 * The command exactly as an operator could paste it into a shell, stdin as a
 * here-document.
 */
export function formatCommand(command: Command): string {
  const line = formatArgv(command.argv);
  if (command.stdin === undefined) return line;
  const body = command.stdin.endsWith("\n") ? command.stdin : `${command.stdin}\n`;
  return `${line} <<'EOF'\n${body}EOF`;
}

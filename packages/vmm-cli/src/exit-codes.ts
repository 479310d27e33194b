import { Code, ConnectError } from "@connectrpc/connect";
import { CliError, NotFoundError, SandboxFailedError, UsageError } from "./errors.js";

/**
 * The CLI's exit codes. `run` and `exec` exit with the guest command's own
 * status instead; their own failures use 124-125 and 130 so that they do not
 * collide with the common statuses of a command (like `docker run`/`timeout`).
 */
export const ExitCode = {
  /** Success. */
  ok: 0,
  /** The daemon failed the call, or anything not listed below. */
  error: 1,
  /** Usage error: bad flags or arguments, ambiguous id prefix, INVALID_ARGUMENT. */
  usage: 2,
  /** No such sandbox or snapshot (NOT_FOUND, or an id prefix matching nothing). */
  notFound: 3,
  /** The daemon cannot be reached (UNAVAILABLE, no socket, connection refused). */
  unavailable: 4,
  /** run/exec: the command was killed by --timeout (DEADLINE_EXCEEDED). */
  runTimeout: 124,
  /** run/exec: the CLI or the daemon failed, so there is no command status. */
  runFailed: 125,
  /** Interrupted by Ctrl-C (SIGINT) before the call completed. */
  interrupted: 130,
} as const;

/** Where an error happened: `run`/`exec` map CLI-side failures to 125. */
export interface ErrorContext {
  /** The command name as the user typed it (for hints such as "see vmm create --help"). */
  readonly command?: string | undefined;
  /** True for run/exec, whose exit code is otherwise the guest command's. */
  readonly commandStatus?: boolean;
  /** The Unix socket dialled, if any (named in the "is the daemon running?" hint). */
  readonly socket?: string | undefined;
}

/** What to print for an error, and the exit code. */
export interface ErrorReport {
  readonly exitCode: number;
  /** `vmm: <code>: <message>`, then an optional hint line. */
  readonly lines: readonly string[];
}

/** The gRPC name of a connect Code: Code.NotFound → "NOT_FOUND". */
export function grpcCodeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** System error codes (walking the cause chain) meaning "nobody is listening there". */
const unreachable = new Set([
  "ENOENT",
  "ECONNREFUSED",
  "EACCES",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENOTFOUND",
]);

function systemCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && unreachable.has(code)) return code;
    e = e.cause;
  }
  return undefined;
}

/**
 * The one place where errors become output and exit codes. Table:
 *
 * | error                                   | exit | run/exec |
 * |-----------------------------------------|------|----------|
 * | UsageError, INVALID_ARGUMENT            | 2    | 125      |
 * | NotFoundError, NOT_FOUND                | 3    | 125      |
 * | UNAVAILABLE, socket missing / refused   | 4    | 125      |
 * | DEADLINE_EXCEEDED                       | 1    | 124      |
 * | CANCELED (Ctrl-C)                       | 130  | 130      |
 * | anything else                           | 1    | 125      |
 */
export function describeError(err: unknown, ctx: ErrorContext = {}): ErrorReport {
  const forRun = (code: number) => (ctx.commandStatus ? ExitCode.runFailed : code);
  if (err instanceof UsageError) {
    const hint = err.hint ?? (ctx.command ? `see 'vmm ${ctx.command} --help'` : "see 'vmm --help'");
    return { exitCode: forRun(ExitCode.usage), lines: [`vmm: usage: ${err.message}`, hint] };
  }
  if (err instanceof NotFoundError) {
    return {
      exitCode: forRun(ExitCode.notFound),
      lines: withHint(`vmm: NOT_FOUND: ${err.message}`, err.hint),
    };
  }
  if (err instanceof SandboxFailedError) {
    return { exitCode: ExitCode.error, lines: withHint(`vmm: FAILED: ${err.message}`, err.hint) };
  }
  if (err instanceof CliError) {
    return {
      exitCode: forRun(ExitCode.error),
      lines: withHint(`vmm: error: ${err.message}`, err.hint),
    };
  }
  const sys = systemCode(err);
  const ce = ConnectError.from(err);
  const code = sys !== undefined ? Code.Unavailable : ce.code;
  const message = sys !== undefined ? describeUnreachable(sys, ctx) : ce.rawMessage;
  const line = `vmm: ${grpcCodeName(code)}: ${message}`;
  // The daemon answered, but about a registry: its message says what to do, the daemon hints do not apply.
  if (sys === undefined && ctx.command?.startsWith("image ")) {
    if (code === Code.Unavailable) return { exitCode: ExitCode.unavailable, lines: [line] };
    if (code === Code.PermissionDenied) return { exitCode: ExitCode.error, lines: [line] };
  }
  switch (code) {
    case Code.InvalidArgument:
      return {
        exitCode: forRun(ExitCode.usage),
        lines: withHint(line, ctx.command ? `see 'vmm ${ctx.command} --help'` : undefined),
      };
    case Code.NotFound:
      return { exitCode: forRun(ExitCode.notFound), lines: [line] };
    case Code.Unavailable:
      return {
        exitCode: forRun(ExitCode.unavailable),
        lines: withHint(
          line,
          "is the daemon running? start it with `pnpm start`, or point --socket / --address (VMM_SOCKET / VMM_ADDRESS) at it",
        ),
      };
    case Code.DeadlineExceeded:
      return { exitCode: ctx.commandStatus ? ExitCode.runTimeout : ExitCode.error, lines: [line] };
    case Code.Canceled:
      return { exitCode: ExitCode.interrupted, lines: [line] };
    case Code.Unauthenticated:
      return {
        exitCode: forRun(ExitCode.error),
        lines: withHint(line, "pass --token or set VMM_TOKEN"),
      };
    case Code.PermissionDenied:
      return {
        exitCode: forRun(ExitCode.error),
        lines: withHint(line, "check the token, or the permissions of the daemon's socket"),
      };
    case Code.FailedPrecondition:
      return {
        exitCode: forRun(ExitCode.error),
        lines: withHint(line, preconditionHint(ctx.command)),
      };
    case Code.Unimplemented:
      return {
        exitCode: forRun(ExitCode.error),
        lines: withHint(line, "this daemon does not support it; compare `vmm version`"),
      };
    default:
      return { exitCode: forRun(ExitCode.error), lines: [line] };
  }
}

function describeUnreachable(sys: string, ctx: ErrorContext): string {
  const where = ctx.socket !== undefined ? `socket ${ctx.socket}` : "the daemon";
  if (sys === "ENOENT") return `cannot connect to ${where}: no such file`;
  if (sys === "EACCES") return `cannot connect to ${where}: permission denied`;
  return `cannot connect to ${where}: ${sys}`;
}

function preconditionHint(command: string | undefined): string | undefined {
  if (command === "remove" || command === "rm")
    return "a workload is running: use --force to remove anyway";
  if (command === "run" || command === "exec")
    return "check the sandbox's state with 'vmm inspect'";
  return undefined;
}

function withHint(line: string, hint: string | undefined): string[] {
  return hint === undefined ? [line] : [line, hint];
}

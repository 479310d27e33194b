/**
 * Errors the CLI raises itself (as opposed to errors from the daemon, which
 * arrive as ConnectError). Each carries an optional hint: what to do next.
 * `describeError` in exit-codes.ts turns them into output and an exit code.
 */
export abstract class CliError extends Error {
  /** A line telling the user what to do next, if there is something useful to say. */
  readonly hint: string | undefined;
  constructor(message: string, hint?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** Bad command line: unknown flag, missing argument, malformed value, ambiguous id prefix. Exit 2. */
export class UsageError extends CliError {}

/** An id (or id prefix) that matches nothing. Exit 3, like NOT_FOUND from the daemon. */
export class NotFoundError extends CliError {}

/** Any other failure the CLI detects itself (e.g. a stream that ended early). Exit 1 (125 in run/exec). */
export class CommandError extends CliError {}

/** A sandbox that ended in a state other than the one waited for (create --wait). Exit 1. */
export class SandboxFailedError extends CliError {}

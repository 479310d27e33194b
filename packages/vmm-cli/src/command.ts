import type { Clients, Endpoint } from "./client.js";
import type { FlagTable, ParsedArgs } from "./flags.js";

/** A writable stream as the CLI uses it (process.stdout/stderr, or a test double). */
export interface OutputStream {
  write(chunk: string | Uint8Array, cb?: (err?: Error | null) => void): boolean;
  once(event: "drain", listener: () => void): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
  readonly rows?: number;
}

/** The standard input as the CLI uses it (process.stdin, or a test double). */
export interface InputStream extends AsyncIterable<Buffer | string> {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
  pause(): unknown;
}

/** The process around a command: streams, environment, clock, signals. */
export interface Io {
  readonly stdin: InputStream;
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Milliseconds since the epoch (injectable for tests of ages). */
  now(): number;
  /** Subscribes to a process signal; returns the unsubscribe function. */
  onSignal(signal: "SIGINT" | "SIGWINCH" | "SIGTERM", listener: () => void): () => void;
}

/** What a handler gets: the parsed arguments, the io, and lazily created clients. */
export interface CommandContext {
  readonly io: Io;
  /** The endpoint the clients dial. */
  readonly endpoint: Endpoint;
  /** The service clients (created on first use). */
  clients(): Clients;
  /** Aborted on the first Ctrl-C (SIGINT) or SIGTERM; pass it to every call. */
  readonly signal: AbortSignal;
}

/**
 * What a handler returns: its exit code and the text to print. Streaming
 * commands (run, exec, events) write as they go and return only the code.
 */
export interface CommandResult {
  readonly exitCode: number;
  readonly stdout?: string;
  readonly stderr?: string;
}

/** How a command takes positional arguments and the words after `--`. */
export interface ArgsSpec {
  /** Names of the positional arguments in order, e.g. ["ID"]; "?" suffix = optional. */
  readonly positionals: readonly string[];
  /** Words after `--`: "none", "optional" or "required" (run/exec). */
  readonly rest: "none" | "optional" | "required";
  /** What the first positional completes to in shell completion. */
  readonly complete?: "sandbox" | "snapshot" | "image" | readonly string[];
}

/**
 * One command: all commands have this shape (pnpm's CommandDefinition).
 * `names[0]` is the canonical name, the others aliases. For subcommands the
 * name is the full path, e.g. ["snapshot create"].
 */
export interface CommandDefinition<F extends FlagTable = FlagTable> {
  readonly names: readonly string[];
  /** One line for the command list. */
  readonly summary: string;
  /** Usage line(s) after "vmm ", e.g. "inspect [-o json|yaml] ID". */
  readonly usage: string;
  /** Longer description and examples for --help (optional). */
  readonly description?: string;
  readonly flags: F;
  readonly args: ArgsSpec;
  /** True for run/exec: their exit code is the guest command's, CLI failures are 125. */
  readonly commandStatus?: boolean;
  /** True when the command never talks to the daemon (completion, help). */
  readonly offline?: boolean;
  handler(ctx: CommandContext, args: ParsedArgs<F>): Promise<CommandResult>;
}

/** Identity helper that checks a definition against its own flag table. */
export function defineCommand<F extends FlagTable>(
  def: CommandDefinition<F>,
): CommandDefinition<F> {
  return def;
}

/** Writes a chunk and waits for `drain` when the stream is full (binary-safe backpressure). */
export async function writeChunk(out: OutputStream, chunk: Uint8Array | string): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once("drain", resolve));
}

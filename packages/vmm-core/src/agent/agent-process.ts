import { constants } from "node:os";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import { sanitizeGuestText } from "../internal/guest-text.js";
import type { AgentConnection } from "./connection.js";
import { AgentProtocolError } from "./errors.js";
import { decodeTlv, encodeFrame, readUint } from "./frame.js";
import { ExitTag, FrameType, STDIN_CHUNK_BYTES } from "./protocol.js";

/** How a process ended. */
export interface ExitStatus {
  /** Exit code, or null when a signal killed it. */
  readonly code: number | null;
  /** Signal number that killed it (Linux numbering), if any. */
  readonly signal?: number;
  /** Name of `signal`, e.g. "SIGKILL", when known. */
  readonly signalName?: string;
  /** True when the agent killed it because `timeoutMs` expired. */
  readonly timedOut: boolean;
  /** Why it could not start (then `code` is 127 for "not found", else 126), e.g. "exec failed: No such file or directory". */
  readonly error?: string;
}

/** One event of a process's output, in the order the agent sent them; the exit comes last. */
export type OutputEvent =
  | { readonly stream: "stdout" | "stderr"; readonly data: Uint8Array }
  | { readonly exit: ExitStatus };

const signalNames = new Map<number, string>(
  Object.entries(constants.signals).map(([name, num]) => [num, name]),
);

/** Largest exit code a Linux process can report (`WEXITSTATUS`). */
const MAX_EXIT_CODE = 255;
/** Largest Linux signal number (SIGRTMAX). */
const MAX_SIGNAL = 64;

/**
 * Parses an EXIT frame's payload. Throws AgentProtocolError for anything our
 * agent never sends: a field of the wrong width or repeated, an exit code
 * outside 0–255, a signal outside 1–64, both or neither of code and signal,
 * a timed-out flag other than 0/1. The error text is sanitized
 * (sanitizeGuestText). @private
 */
export function decodeExit(payload: Uint8Array): ExitStatus {
  let code: number | null = null;
  let signal: number | undefined;
  let timedOut = false;
  let error: string | undefined;
  const seen = new Set<number>();
  for (const { tag, value } of decodeTlv(payload)) {
    if (seen.has(tag)) throw new AgentProtocolError(`EXIT repeats field ${tag}`);
    seen.add(tag);
    if (tag === ExitTag.code) code = exitField("exit code", value, 4, 0, MAX_EXIT_CODE);
    else if (tag === ExitTag.signal) signal = exitField("signal", value, 1, 1, MAX_SIGNAL);
    else if (tag === ExitTag.timedOut) timedOut = exitField("timed out", value, 1, 0, 1) === 1;
    else if (tag === ExitTag.error) error = sanitizeGuestText(value);
  }
  if ((code === null) === (signal === undefined)) {
    throw new AgentProtocolError("EXIT must carry exactly one of exit code and signal");
  }
  const status: { -readonly [K in keyof ExitStatus]: ExitStatus[K] } = { code, timedOut };
  if (signal !== undefined) {
    status.signal = signal;
    const name = signalNames.get(signal);
    if (name) status.signalName = name;
  }
  if (error !== undefined) status.error = error;
  return status;
}

/** An integer field of an EXIT frame of exactly `width` bytes within `min..max`. */
function exitField(
  name: string,
  value: Uint8Array,
  width: number,
  min: number,
  max: number,
): number {
  if (value.length !== width) {
    throw new AgentProtocolError(`EXIT ${name} has ${value.length} bytes, expected ${width}`);
  }
  const n = readUint(value);
  if (n < min || n > max) {
    throw new AgentProtocolError(`EXIT ${name} ${n} is outside ${min}..${max}`);
  }
  return n;
}

/**
 * A process started by the agent (AgentClient.run). Iterate it once for its
 * output events; the iteration reads the connection only as fast as it is
 * consumed, so a slow consumer slows the process instead of buffering.
 * Ending the iteration early, `close()`, or aborting the run's signal closes
 * the connection, and the agent then kills the process group (SIGHUP, SIGKILL
 * after 1 s).
 */
export class AgentProcess implements AsyncIterable<OutputEvent>, AsyncDisposable {
  /** Pid in the guest; undefined when the process could not start (see the exit's `error`). */
  readonly pid: number | undefined;
  private readonly conn: AgentConnection;
  private readonly startFailure: ExitStatus | undefined;
  private consumed = false;
  private stdinClosed = false;
  private exitStatus: ExitStatus | undefined;

  /** @private built by AgentClient.run */
  constructor(conn: AgentConnection, pid: number | undefined, startFailure?: ExitStatus) {
    this.conn = conn;
    this.pid = pid;
    this.startFailure = startFailure;
    if (startFailure) {
      this.stdinClosed = true;
      conn.close();
    }
  }

  /** The exit status once the iteration has reached it. */
  get exit(): ExitStatus | undefined {
    return this.exitStatus;
  }

  [Symbol.asyncIterator](): AsyncIterator<OutputEvent> {
    if (this.consumed) {
      throw new FailedPreconditionError("the output of an agent process can be iterated only once");
    }
    this.consumed = true;
    return this.events();
  }

  private async *events(): AsyncGenerator<OutputEvent, void, undefined> {
    try {
      if (this.startFailure) {
        this.exitStatus = this.startFailure;
        yield { exit: this.startFailure };
        return;
      }
      for (;;) {
        const frame = await this.conn.readFrame();
        if (!frame) throw new AgentProtocolError("the agent closed the session before EXIT");
        switch (frame.type) {
          case FrameType.stdout:
            yield { stream: "stdout", data: frame.payload };
            break;
          case FrameType.stderr:
            yield { stream: "stderr", data: frame.payload };
            break;
          case FrameType.exit: {
            const exit = decodeExit(frame.payload);
            this.exitStatus = exit;
            this.stdinClosed = true;
            yield { exit };
            return;
          }
          default:
            throw new AgentProtocolError(
              `unexpected frame type 0x${frame.type.toString(16)} in a RUN session`,
            );
        }
      }
    } finally {
      this.conn.close();
    }
  }

  /** Consumes (and discards) the remaining output; resolves with the exit status. */
  async wait(): Promise<ExitStatus> {
    for await (const ev of this) {
      if ("exit" in ev) return ev.exit;
    }
    throw new AgentProtocolError("output ended without an exit");
  }

  /**
   * Writes to the process's stdin; resolves when the socket took the bytes
   * (it waits while the agent is not reading: backpressure).
   */
  async writeStdin(data: Uint8Array | string): Promise<void> {
    this.assertStdinOpen();
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    for (let off = 0; off < bytes.length; off += STDIN_CHUNK_BYTES) {
      await this.conn.write(
        encodeFrame(FrameType.stdin, bytes.subarray(off, off + STDIN_CHUNK_BYTES)),
      );
    }
  }

  /** Closes stdin (on a TTY: sends ^D). Later writes fail. */
  async closeStdin(): Promise<void> {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    if (!this.conn.closed) await this.conn.write(encodeFrame(FrameType.stdin));
  }

  /** Resizes the TTY (no effect without one). */
  async resize(cols: number, rows: number): Promise<void> {
    for (const [field, v] of [
      ["cols", cols],
      ["rows", rows],
    ] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 0xffff) {
        throw new InvalidArgumentError(`tty.${field}`, `must be an integer 1..65535, got ${v}`);
      }
    }
    const p = new Uint8Array(4);
    const view = new DataView(p.buffer);
    view.setUint16(0, cols);
    view.setUint16(2, rows);
    await this.conn.write(encodeFrame(FrameType.resize, p));
  }

  /** Sends a signal (name like "SIGTERM" or Linux number) to the process group. Default SIGKILL. */
  async kill(signal: NodeJS.Signals | number = "SIGKILL"): Promise<void> {
    const num = typeof signal === "number" ? signal : constants.signals[signal];
    if (num === undefined || !Number.isInteger(num) || num < 1 || num > 64) {
      throw new InvalidArgumentError("signal", `unknown signal ${String(signal)}`);
    }
    if (this.conn.closed) throw new FailedPreconditionError("the process session is closed");
    await this.conn.write(encodeFrame(FrameType.signal, Uint8Array.of(num)));
  }

  /** Closes the session; if the process still runs, the agent kills it. */
  close(): void {
    this.conn.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private assertStdinOpen(): void {
    if (this.stdinClosed || this.conn.closed) {
      throw new FailedPreconditionError("stdin of the process is closed", {
        hint: "run with stdin enabled and write before closeStdin() or the exit",
      });
    }
  }
}

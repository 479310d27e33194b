import { Code } from "@connectrpc/connect";
import {
  CLOSE_ERROR,
  parseClientMessage,
  type TerminalServerMessage,
} from "@vmm/console/terminal-protocol";
import { InvalidArgumentError, type ProcessSpec } from "@vmm/core";
import { type SandboxApi, toConnectError } from "@vmm/grpc";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";

/**
 * Output waits for the browser once this much is queued on the socket, so a command printing
 * faster than the network carries it is slowed down instead of growing the daemon's memory.
 */
const HIGH_WATER_BYTES = 1 << 20;

/** Messages kept while Exec starts (typing ahead); more closes the socket. */
const MAX_PENDING_MESSAGES = 1024;

/** What one terminal runs: the sandbox and the process spec (tty set). */
export interface TerminalRequest {
  readonly sandboxId: string;
  readonly spec: ProcessSpec;
}

/**
 * Runs `request` as an interactive Exec and bridges it to `ws` (protocol in
 * @vmm/console/terminal-protocol): binary frames in → stdin, resize messages → the pty, output →
 * binary frames out; `exit` (then close 1000) when the process ends, `error` (then close
 * CLOSE_ERROR) when Exec or an input fails. The socket closing kills the process (the Exec's
 * signal aborts). Resolves when both are over; never rejects.
 */
export async function bridgeTerminal(
  ws: WebSocket,
  sandboxes: Pick<SandboxApi, "exec">,
  request: TerminalRequest,
  log: Logger,
): Promise<void> {
  const closed = new AbortController();
  ws.once("close", () => closed.abort(new Error("the terminal's WebSocket closed")));
  // Keystrokes arriving while Exec starts are kept and written in order once it has.
  const pending: [RawData, boolean][] = [];
  let onMessage = (data: RawData, isBinary: boolean) => {
    if (pending.length >= MAX_PENDING_MESSAGES) {
      ws.close(CLOSE_ERROR, "resource_exhausted");
      return;
    }
    pending.push([data, isBinary]);
  };
  ws.on("message", (data, isBinary) => onMessage(data, isBinary));

  const fail = (err: unknown) => {
    const mapped = toConnectError(err);
    if (mapped.code === Code.Internal) log.error({ err: mapped.cause ?? err }, "terminal failed");
    else log.info({ error: mapped.rawMessage }, "terminal failed");
    send(ws, { type: "error", code: codeName(mapped.code), message: mapped.rawMessage });
    ws.close(CLOSE_ERROR, codeName(mapped.code));
  };

  let session: Awaited<ReturnType<SandboxApi["exec"]>>;
  try {
    session = await sandboxes.exec(request.sandboxId, request.spec, closed.signal);
  } catch (err) {
    if (!closed.signal.aborted) fail(err);
    return;
  }
  send(ws, { type: "started" });

  let input = Promise.resolve();
  onMessage = (data, isBinary) => {
    input = input.then(async () => {
      if (closed.signal.aborted) return;
      if (isBinary) {
        await session.writeStdin(toBytes(data));
        return;
      }
      let m: ReturnType<typeof parseClientMessage>;
      try {
        m = parseClientMessage(data.toString());
      } catch (err) {
        throw new InvalidArgumentError("control message", (err as Error).message);
      }
      await session.resize(m.cols, m.rows);
    });
    // One failed input ends the terminal (and, through the close, its process).
    input.catch((err: unknown) => {
      if (!closed.signal.aborted && ws.readyState === ws.OPEN) fail(err);
    });
  };
  for (const [data, isBinary] of pending.splice(0)) onMessage(data, isBinary);

  try {
    for await (const out of session.output) {
      if (out.kind === "exit") {
        send(ws, {
          type: "exit",
          exitCode: out.exitCode,
          ...(out.signal !== undefined && { signal: out.signal }),
          timedOut: out.timedOut,
        });
        ws.close(1000, "process exited");
        break;
      }
      if (ws.readyState !== ws.OPEN) break;
      await sendBinary(ws, out.data);
    }
  } catch (err) {
    if (!closed.signal.aborted && ws.readyState === ws.OPEN) fail(err);
  } finally {
    await input.catch(() => {});
    if (ws.readyState === ws.OPEN) ws.close(1000, "process ended");
  }
}

function send(ws: WebSocket, message: TerminalServerMessage): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
}

/** Sends `data`; waits for it to be written when the socket's queue is past the high-water mark. */
function sendBinary(ws: WebSocket, data: Uint8Array): Promise<void> {
  if (ws.bufferedAmount < HIGH_WATER_BYTES) {
    ws.send(data, { binary: true });
    return Promise.resolve();
  }
  return new Promise((resolve) => ws.send(data, { binary: true }, () => resolve()));
}

function toBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Connect's name for a code: `not_found`, `failed_precondition`, … */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
}

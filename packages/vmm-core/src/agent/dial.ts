import { createConnection, type Socket } from "node:net";
import { ByteReader } from "./byte-reader.js";
import { AgentUnavailableError } from "./errors.js";
import { DEFAULT_AGENT_PORT } from "./protocol.js";

/**
 * Where the agent is reached.
 * - `vsock`: Firecracker's vsock UDS on the host (`udsPath`); the client sends
 *   `CONNECT <port>\n` and expects `OK <n>\n` (shared/firecracker/NOTES.md §5).
 *   `port` defaults to 1024 (DEFAULT_AGENT_PORT).
 * - `unix`: a plain Unix socket of an agent started with `--unix PATH` (no CONNECT line).
 */
export type AgentEndpoint =
  | { readonly kind: "vsock"; readonly udsPath: string; readonly port?: number }
  | { readonly kind: "unix"; readonly path: string };

/** Human-readable name of an endpoint, used in error messages. */
export function describeEndpoint(endpoint: AgentEndpoint): string {
  return endpoint.kind === "vsock"
    ? `${endpoint.udsPath} port ${endpoint.port ?? DEFAULT_AGENT_PORT}`
    : endpoint.path;
}

/** A connected stream to the agent, ready for the agent protocol. */
export interface AgentStream {
  readonly socket: Socket;
  readonly reader: ByteReader;
  /** Stops `startSignal` from closing the socket (call once the operation has started). */
  readonly started: () => void;
  /** Unbinds both signals: the stream is idle again (a spare between greeting and use). */
  readonly detach: () => void;
}

/** Longest `OK <n>` line accepted from Firecracker, bytes. */
const MAX_CONNECT_REPLY = 64;

/** A connected stream (CONNECT done for vsock) not yet bound to an operation's signals. */
export interface IdleAgentStream {
  readonly socket: Socket;
  readonly reader: ByteReader;
}

/**
 * Opens a stream to the agent (and, for `vsock`, completes Firecracker's
 * CONNECT handshake). Throws AgentUnavailableError when nothing answers
 * (retryable), or the abort reason. The socket is destroyed when `signal`
 * aborts (for its whole life), or when `startSignal` aborts before
 * `started()` is called.
 */
export async function dialAgent(
  endpoint: AgentEndpoint,
  signal: AbortSignal,
  startSignal: AbortSignal = signal,
): Promise<AgentStream> {
  return bindAgentStream(
    await connectAgent(endpoint, AbortSignal.any([signal, startSignal])),
    signal,
    startSignal,
  );
}

/**
 * Connects (and completes CONNECT for vsock); `signal` aborts only this
 * attempt. Errors as {@link dialAgent}.
 */
export async function connectAgent(
  endpoint: AgentEndpoint,
  signal: AbortSignal,
): Promise<IdleAgentStream> {
  signal.throwIfAborted();
  const name = describeEndpoint(endpoint);
  const path = endpoint.kind === "vsock" ? endpoint.udsPath : endpoint.path;
  const reader = new ByteReader();
  const socket = createConnection({ path, onread: reader.onread });
  // Errors surface through reads and write callbacks; this keeps an unread one from crashing.
  socket.on("error", () => {});
  reader.attach(socket);
  const onAbort = () => socket.destroy(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    try {
      await connected(socket, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new AgentUnavailableError(name, `connect failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (endpoint.kind === "vsock") {
      try {
        await vsockConnect(socket, reader, endpoint.port ?? DEFAULT_AGENT_PORT, name);
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw err;
      }
    }
    return { socket, reader };
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * Settles when `socket` connects, errs or closes. Its listeners are removed
 * either way: left on the socket, they would keep `signal` (and what it keeps)
 * alive for as long as the connection lives.
 */
function connected(socket: Socket, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: unknown) => {
      socket.off("connect", onConnect);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onConnect = () => settle();
    const onError = (err: Error) => settle(err);
    const onClose = () => settle(signal.reason ?? new Error("socket closed"));
    socket.once("connect", onConnect);
    socket.once("error", onError);
    socket.once("close", onClose);
  });
}

/**
 * Hands a connected stream to one operation: destroyed when `signal` aborts
 * (for its whole life), or when `startSignal` aborts before `started()`.
 * Throws the abort reason (and destroys the stream) if either already has.
 */
export function bindAgentStream(
  idle: IdleAgentStream,
  signal: AbortSignal,
  startSignal: AbortSignal = signal,
): AgentStream {
  const { socket, reader } = idle;
  if (signal.aborted || startSignal.aborted) {
    socket.destroy();
    throw signal.aborted ? signal.reason : startSignal.reason;
  }
  const onAbort = () => socket.destroy(signal.reason);
  const onStartAbort = () => socket.destroy(startSignal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  startSignal.addEventListener("abort", onStartAbort, { once: true });
  const started = () => startSignal.removeEventListener("abort", onStartAbort);
  const detach = () => {
    signal.removeEventListener("abort", onAbort);
    started();
    socket.off("close", detach);
  };
  socket.once("close", detach);
  return { socket, reader, started, detach };
}

/** Firecracker's host-initiated vsock handshake: `CONNECT <port>\n` → `OK <host_port>\n`. */
async function vsockConnect(
  socket: Socket,
  reader: ByteReader,
  port: number,
  name: string,
): Promise<void> {
  socket.write(`CONNECT ${port}\n`);
  let line = new Uint8Array(0);
  for (;;) {
    let chunk: Uint8Array | undefined;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw new AgentUnavailableError(name, `CONNECT failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!chunk) {
      throw new AgentUnavailableError(
        name,
        `nothing listens on guest port ${port} yet (Firecracker closed the CONNECT)`,
      );
    }
    const merged = new Uint8Array(line.length + chunk.length);
    merged.set(line);
    merged.set(chunk, line.length);
    line = merged;
    const nl = line.indexOf(0x0a);
    if (nl < 0) {
      if (line.length > MAX_CONNECT_REPLY) break;
      continue;
    }
    const text = new TextDecoder().decode(line.subarray(0, nl));
    if (/^OK \d+$/.test(text)) {
      reader.unshift(line.subarray(nl + 1));
      return;
    }
    break;
  }
  const shown = JSON.stringify(new TextDecoder().decode(line.subarray(0, MAX_CONNECT_REPLY)));
  throw new AgentUnavailableError(name, `unexpected reply to CONNECT ${port}: ${shown}`);
}

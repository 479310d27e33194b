import type { Socket } from "node:net";
import { sanitizeGuestText } from "../internal/guest-text.js";
import type { ByteReader } from "./byte-reader.js";
import {
  type AgentEndpoint,
  type AgentStream,
  bindAgentStream,
  describeEndpoint,
  dialAgent,
  type IdleAgentStream,
} from "./dial.js";
import { AgentError, AgentProtocolError, AgentUnavailableError } from "./errors.js";
import { encodeFrame, type Frame, FrameDecoder } from "./frame.js";
import { AGENT_PROTOCOL_VERSION, FrameType } from "./protocol.js";

/**
 * One connection = one agent operation. `open` dials, sends HELLO and the
 * request in one write (no extra round trip), and checks the agent's HELLO.
 * Frames are read only on demand (`readFrame`), so the socket is read no
 * faster than the caller consumes: backpressure reaches the guest.
 * @private for the agent client.
 */
export class AgentConnection {
  readonly endpoint: string;
  /** Protocol version the agent agreed to. */
  readonly version: number;
  private readonly socket: Socket;
  private readonly reader: ByteReader;
  private readonly decoder: FrameDecoder;
  private readonly signal: AbortSignal;
  private started: () => void = () => {};
  private startSignal: AbortSignal | undefined;

  /** The reason the connection was aborted (lifetime signal, or start signal before markStarted). */
  private abortReason(): unknown {
    if (this.signal.aborted) return this.signal.reason;
    if (this.startSignal?.aborted) return this.startSignal.reason;
    return undefined;
  }

  private constructor(
    endpoint: string,
    socket: Socket,
    reader: ByteReader,
    decoder: FrameDecoder,
    signal: AbortSignal,
    version: number,
  ) {
    this.endpoint = endpoint;
    this.socket = socket;
    this.reader = reader;
    this.decoder = decoder;
    this.signal = signal;
    this.version = version;
  }

  /**
   * Connects, performs the handshake and sends `request` (type + payload).
   * Aborting `signal` closes the connection at any time, also later.
   */
  static async open(
    endpoint: AgentEndpoint,
    request: Frame,
    signal: AbortSignal,
    startSignal: AbortSignal = signal,
  ): Promise<AgentConnection> {
    const stream = await dialAgent(endpoint, signal, startSignal);
    return AgentConnection.start(describeEndpoint(endpoint), stream, request, signal, startSignal);
  }

  /**
   * As {@link open}, over an already dialed stream (bound to the same signals).
   * With `greeted` (the version a spare's earlier {@link greet} agreed) only
   * the request is sent: the HELLO exchange already happened.
   */
  static async start(
    name: string,
    stream: AgentStream,
    request: Frame,
    signal: AbortSignal,
    startSignal: AbortSignal = signal,
    greeted?: GreetedStream,
  ): Promise<AgentConnection> {
    const { socket, reader, started } = stream;
    const decoder = greeted?.decoder ?? new FrameDecoder();
    const conn = new AgentConnection(name, socket, reader, decoder, signal, greeted?.version ?? 0);
    conn.startSignal = startSignal;
    conn.started = started;
    try {
      const req = encodeFrame(request.type, request.payload);
      if (greeted) {
        await conn.write(req);
        return conn;
      }
      const hello = encodeFrame(FrameType.hello, helloPayload());
      const both = new Uint8Array(hello.length + req.length);
      both.set(hello);
      both.set(req, hello.length);
      await conn.write(both);
      const version = await conn.readHelloReply();
      const opened = new AgentConnection(name, socket, reader, decoder, signal, version);
      opened.started = started;
      opened.startSignal = startSignal;
      return opened;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /**
   * The HELLO exchange alone, on a connected stream not yet used for a request
   * (a spare). `signal` aborts the exchange. The stream is destroyed on failure.
   */
  static async greet(
    name: string,
    idle: IdleAgentStream,
    signal: AbortSignal,
  ): Promise<GreetedStream> {
    const decoder = new FrameDecoder();
    const stream = bindAgentStream(idle, signal);
    const conn = new AgentConnection(name, stream.socket, stream.reader, decoder, signal, 0);
    try {
      await conn.write(encodeFrame(FrameType.hello, helloPayload()));
      const version = await conn.readHelloReply();
      stream.detach();
      return { ...idle, decoder, version };
    } catch (err) {
      stream.socket.destroy();
      throw err;
    }
  }

  private async readHelloReply(): Promise<number> {
    let reply: Frame | undefined;
    try {
      reply = await this.readFrame();
    } catch (err) {
      if (err instanceof AgentError || this.abortReason() !== undefined) throw err;
      throw new AgentUnavailableError(
        this.endpoint,
        `handshake failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    if (!reply)
      throw new AgentUnavailableError(this.endpoint, "connection closed before the agent's HELLO");
    if (reply.type !== FrameType.helloReply || reply.payload.length < 2) {
      throw new AgentProtocolError(`expected HELLO, got frame type 0x${reply.type.toString(16)}`);
    }
    const version = new DataView(reply.payload.buffer, reply.payload.byteOffset).getUint16(0);
    if (version < 1 || version > AGENT_PROTOCOL_VERSION) {
      throw new AgentProtocolError(`agent chose unsupported protocol version ${version}`);
    }
    return version;
  }

  /**
   * Next frame; undefined at a clean end of stream. ERROR frames are thrown as
   * AgentError; bad or truncated frames as AgentProtocolError; an abort as its reason.
   */
  async readFrame(): Promise<Frame | undefined> {
    for (;;) {
      const frame = this.decoder.next();
      if (frame) {
        if (frame.type === FrameType.error) throw decodeError(frame.payload);
        return frame;
      }
      let chunk: Uint8Array | undefined;
      try {
        chunk = await this.reader.read();
      } catch (err) {
        const reason = this.abortReason();
        if (reason !== undefined) throw reason;
        throw new AgentUnavailableError(
          this.endpoint,
          `connection lost: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      if (!chunk) {
        this.decoder.end();
        return undefined;
      }
      this.decoder.push(chunk);
    }
  }

  /** Writes bytes; resolves once the socket took them (waits while its buffer is full). */
  write(data: Uint8Array): Promise<void> {
    if (this.socket.destroyed || this.socket.writableEnded) {
      return Promise.reject(
        this.abortReason() ?? new AgentUnavailableError(this.endpoint, "connection is closed"),
      );
    }
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => {
        if (!err) return resolve();
        const reason = this.abortReason();
        if (reason !== undefined) return reject(reason);
        reject(
          new AgentUnavailableError(this.endpoint, `write failed: ${err.message}`, { cause: err }),
        );
      });
    });
  }

  /**
   * From now on lets up to `bytes` (instead of 64 KiB) wait to be read: for a
   * bulk transfer (a file's bytes), so the guest keeps sending while the
   * caller forwards what it got.
   */
  setReadAhead(bytes: number): void {
    this.reader.setReadAhead(bytes);
  }

  /**
   * From now on a frame's payload is valid only until the next `readFrame`:
   * frames split over several socket reads are assembled in two reused
   * buffers instead of a fresh one each (FrameDecoder.reuseBuffers).
   */
  reuseFrameBuffers(): void {
    this.decoder.reuseBuffers();
  }

  /** Ends the start phase: from now on only the lifetime signal closes the connection. */
  markStarted(): void {
    this.started();
    this.startSignal = undefined;
  }

  /** True once the connection is closed (by either side or by `close`). */
  get closed(): boolean {
    return this.socket.destroyed;
  }

  /** Closes the connection; the agent then ends the operation (kills a running process). */
  close(): void {
    this.socket.destroy();
  }

  /** Calls `fn` once the connection is closed (by either side). */
  onClosed(fn: () => void): void {
    if (this.socket.closed) fn();
    else this.socket.once("close", fn);
  }
}

/** A connected stream whose HELLO exchange is done: ready for one request. */
export interface GreetedStream extends IdleAgentStream {
  readonly decoder: FrameDecoder;
  /** Protocol version the agent agreed to. */
  readonly version: number;
}

function helloPayload(): Uint8Array {
  const hello = new Uint8Array(2);
  new DataView(hello.buffer).setUint16(0, AGENT_PROTOCOL_VERSION);
  return hello;
}

/** An ERROR frame as AgentError; its text is untrusted, so bounded and sanitized. */
function decodeError(payload: Uint8Array): AgentError {
  const code = payload[0] ?? 0;
  return new AgentError(code, sanitizeGuestText(payload.subarray(1)) || "unknown error");
}

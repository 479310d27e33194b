import { InvalidArgumentError, ResourceExhaustedError } from "../errors.js";
import { sanitizeGuestText } from "../internal/guest-text.js";
import type { AgentClient } from "./agent-client.js";
import type { AgentConnection } from "./connection.js";
import {
  AgentError,
  AgentProtocolError,
  AgentTooOldError,
  AgentUnavailableError,
} from "./errors.js";
import { decodeTlv, encodeFrame, type Frame, readUint, TlvWriter } from "./frame.js";
import {
  AgentErrorCode,
  FILE_DATA_CHUNK_BYTES,
  FILE_IN_FLIGHT_BYTES,
  FILES_PROTOCOL_VERSION,
  FileEventTag,
  FileInfoTag,
  FileRequestTag,
  FrameType,
} from "./protocol.js";

/** Kind of a path in the guest. */
export type FileType = "file" | "dir" | "symlink" | "other";

/** What the agent reports about a path (FILE_INFO; `lstat`, so a symlink is itself). */
export interface FileInfo {
  readonly path: string;
  /** Last path component. */
  readonly name: string;
  readonly type: FileType;
  readonly size: number;
  /** Permission bits (07777). */
  readonly mode: number;
  /** Modification time, Unix ns. */
  readonly mtimeNs: bigint;
  /** Where a symlink points (symlinks only). */
  readonly symlinkTarget?: string;
}

/** Kind of a change a Watch reports. */
export type FileEventKind = "create" | "write" | "remove" | "rename" | "chmod";

/** One change under a watched path (FILE_EVENT). */
export interface FileEvent {
  readonly path: string;
  readonly kind: FileEventKind;
  /** When the agent saw it, Unix ns (guest clock). */
  readonly timeNs: bigint;
}

/** Options of AgentFiles.writeFile. */
export interface WriteFileOptions {
  /** Permission bits (07777); 0 or absent = 0644. */
  readonly mode?: number;
  /** Create missing parent directories (0755). */
  readonly makeParents?: boolean;
  /** Owner: a user name or uid from the guest's /etc/passwd. Default: the agent's user (root). */
  readonly user?: string;
}

/** Options of AgentFiles.readFile. */
export interface ReadFileOptions {
  /** First byte to read. Default 0. */
  readonly offset?: number;
  /** Bytes to read; 0 or absent = to the end. */
  readonly length?: number;
  /**
   * Each chunk is valid only until the next one is requested: its memory is
   * reused instead of allocating a fresh buffer per chunk (~256 KiB each,
   * the largest cost of a download). For a consumer that copies or sends a
   * chunk before it asks for the next (the gRPC ReadFile serializes each
   * message first); never for one that keeps chunks. Default false.
   */
  readonly reuseChunks?: boolean;
}

/** Bound of a FILE_INFO / FILE_EVENT path as the host keeps it, bytes (the agent's limit + a name). */
const GUEST_PATH_MAX_BYTES = 4096 + 256;
const TYPES: readonly FileType[] = ["file", "dir", "symlink", "other"];
const KINDS: readonly FileEventKind[] = ["create", "write", "remove", "rename", "chmod"];

/**
 * File operations of agent protocol 2 (docs/agent-protocol.md, "File
 * operations"), over an AgentClient: each call is one connection. Paths are
 * passed as given (validate them first: vmm-core's SandboxFiles does). Data
 * moves with at most FILE_IN_FLIGHT_BYTES in flight per direction (writes
 * not yet taken by the socket; bytes read ahead of the consumer), so neither
 * side buffers a file, and the guest and the caller work at the same time.
 * Errors: AgentTooOldError (agent protocol 1), AgentError with kind
 * not_found / failed_precondition / resource_exhausted / invalid_argument for
 * what the guest refused, AgentProtocolError for a misbehaving guest.
 */
export class AgentFiles {
  readonly agent: AgentClient;

  constructor(agent: AgentClient) {
    this.agent = agent;
  }

  /** Describes `path` (not following a final symlink). */
  async stat(path: string, signal: AbortSignal): Promise<FileInfo> {
    return this.single(FrameType.stat, request(path), FrameType.fileInfo, signal, decodeInfo);
  }

  /** Creates a directory (mode default 0755); with `parents`, like `mkdir -p`. */
  async mkdir(
    path: string,
    options: { mode?: number; parents?: boolean },
    signal: AbortSignal,
  ): Promise<FileInfo> {
    const w = request(path);
    if (options.mode) w.u32(FileRequestTag.mode, checkMode(options.mode));
    if (options.parents) w.u8(FileRequestTag.parents, 1);
    return this.single(FrameType.mkdir, w, FrameType.fileInfo, signal, decodeInfo);
  }

  /**
   * Removes a file, symlink or empty directory; with `recursive` a tree. A
   * recursive remove may take long: only `signal` bounds it.
   */
  async remove(path: string, options: { recursive?: boolean }, signal: AbortSignal): Promise<void> {
    const w = request(path);
    if (options.recursive) w.u8(FileRequestTag.recursive, 1);
    await this.single(
      FrameType.remove,
      w,
      FrameType.ok,
      signal,
      () => undefined,
      !options.recursive,
    );
  }

  /**
   * Lists a directory `depth` levels deep (1 = its entries). More than
   * `maxEntries` entries fail the call with TooManyEntriesError (the list is
   * held in memory and sent as one reply). Only `signal` bounds a long walk.
   */
  async listDir(
    path: string,
    options: { depth?: number; maxEntries: number },
    signal: AbortSignal,
  ): Promise<FileInfo[]> {
    const w = request(path);
    if (options.depth) w.u32(FileRequestTag.depth, options.depth);
    const { conn, first } = await this.open(FrameType.listDir, w, signal, false);
    try {
      const out: FileInfo[] = [];
      for (let f = first; ; f = await conn.readFrame()) {
        if (!f) throw new AgentProtocolError("LIST_DIR ended before OK");
        if (f.type === FrameType.ok) return out;
        if (f.type !== FrameType.fileInfo) throw unexpected("FILE_INFO or OK", f);
        if (out.length >= options.maxEntries) throw new TooManyEntriesError(options.maxEntries);
        out.push(decodeInfo(f.payload));
      }
    } finally {
      conn.close();
    }
  }

  /**
   * Opens `path` for reading: resolves with its FILE_INFO once the agent
   * opened it, and `chunks`, the bytes from `offset` (`length` bytes, 0 = to
   * the end), read from the guest only as fast as they are consumed (at most
   * FILE_IN_FLIGHT_BYTES ahead). Ending the iteration early closes the connection.
   */
  async readFile(
    path: string,
    options: ReadFileOptions,
    signal: AbortSignal,
  ): Promise<{ info: FileInfo; chunks: AsyncIterable<Uint8Array> }> {
    const w = request(path);
    if (options.offset) w.u64(FileRequestTag.offset, options.offset);
    if (options.length) w.u64(FileRequestTag.length, options.length);
    const { conn, first } = await this.open(FrameType.readFile, w, signal, true);
    let info: FileInfo;
    try {
      if (first?.type !== FrameType.fileInfo) throw unexpected("FILE_INFO", first);
      info = decodeInfo(first.payload);
    } catch (err) {
      conn.close();
      throw err;
    }
    conn.setReadAhead(FILE_IN_FLIGHT_BYTES);
    if (options.reuseChunks) conn.reuseFrameBuffers();
    const limit = options.length || Number.POSITIVE_INFINITY;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      try {
        let got = 0;
        for (;;) {
          const f = await conn.readFrame();
          if (!f) throw new AgentProtocolError("READ_FILE ended before OK");
          if (f.type === FrameType.ok) return;
          if (f.type !== FrameType.fileReadData) throw unexpected("FILE_DATA or OK", f);
          got += f.payload.length;
          if (got > limit) throw new AgentProtocolError("READ_FILE sent more than requested");
          yield f.payload;
        }
      } finally {
        conn.close();
      }
    }
    return { info, chunks: chunks() };
  }

  /**
   * Writes `data` to `path` atomically (temp file + rename in the guest) and
   * returns the new file's info. `data` is pulled while fewer than
   * FILE_IN_FLIGHT_BYTES wait to be taken by the socket, so a slow guest
   * slows the producer; the chunks are written as given (not copied), so a
   * producer must not change a chunk it yielded. An ERROR from the guest
   * (e.g. its disk is full) ends the upload at once; leaving early (an
   * exception from `data`, `signal`) closes the connection, and the agent
   * removes the temp file.
   */
  async writeFile(
    path: string,
    options: WriteFileOptions,
    data: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<FileInfo> {
    const w = request(path);
    if (options.mode) w.u32(FileRequestTag.mode, checkMode(options.mode));
    if (options.makeParents) w.u8(FileRequestTag.parents, 1);
    if (options.user) w.string(FileRequestTag.user, checkText("user", options.user));
    const { conn, first } = await this.open(FrameType.writeFile, w, signal, true);
    try {
      if (first?.type !== FrameType.ok) throw unexpected("OK", first);
      // The reply is read while data goes out: an ERROR (disk full) ends the upload at once,
      // even while a write waits for a guest that stopped reading.
      let finishing = false;
      const reply = conn.readFrame();
      reply.catch(() => {});
      const refused = reply.then((f) => {
        if (!finishing) throw unexpected("nothing before FILE_END", f);
        return new Promise<never>(() => {});
      });
      refused.catch(() => {});
      const send = (frame: Uint8Array) => Promise.race([conn.write(frame), refused]);
      // Writes the socket has not taken yet, oldest first (their callbacks come in order).
      const inFlight: { taken: Promise<unknown>; bytes: number }[] = [];
      let inFlightBytes = 0;
      const awaitOldest = async () => {
        const oldest = inFlight.shift()!;
        inFlightBytes -= oldest.bytes;
        await Promise.race([oldest.taken, refused]);
      };
      for await (const chunk of data) {
        for (let off = 0; off < chunk.length; off += FILE_DATA_CHUNK_BYTES) {
          const payload = chunk.subarray(off, off + FILE_DATA_CHUNK_BYTES);
          while (inFlight.length > 0 && inFlightBytes + payload.length > FILE_IN_FLIGHT_BYTES) {
            await awaitOldest();
          }
          // Header and payload as two writes: the payload is not copied (100 MB moved = no 100 MB of garbage).
          const taken = Promise.all([conn.write(dataHeader(payload.length)), conn.write(payload)]);
          taken.catch(() => {});
          inFlight.push({ taken, bytes: payload.length });
          inFlightBytes += payload.length;
        }
      }
      while (inFlight.length > 0) await awaitOldest();
      // An aborted caller's data may just end: commit only an upload nobody cancelled.
      signal.throwIfAborted();
      finishing = true;
      await send(encodeFrame(FrameType.fileEnd));
      const f = await reply;
      if (f?.type !== FrameType.fileInfo) throw unexpected("FILE_INFO", f);
      return decodeInfo(f.payload);
    } finally {
      conn.close();
    }
  }

  /**
   * Starts watching `path` (with `recursive`, every directory below it too)
   * and resolves once the watch is in place, with the events. They end when
   * the watched path is removed or moved (after its event); when the
   * connection ends otherwise (the VM stopped, the agent died) the iteration
   * throws AgentUnavailableError. Events are read only
   * as fast as they are consumed (the guest's queue fills meanwhile).
   */
  async watch(
    path: string,
    options: { recursive?: boolean },
    signal: AbortSignal,
  ): Promise<AsyncIterable<FileEvent>> {
    const w = request(path);
    if (options.recursive) w.u8(FileRequestTag.recursive, 1);
    const { conn, first } = await this.open(FrameType.watch, w, signal, true);
    if (first?.type !== FrameType.ok) {
      conn.close();
      throw unexpected("OK", first);
    }
    async function* events(): AsyncGenerator<FileEvent> {
      try {
        for (;;) {
          const f = await conn.readFrame();
          if (!f) throw new AgentUnavailableError(conn.endpoint, "the watch's connection closed");
          if (f.type === FrameType.ok) return;
          if (f.type !== FrameType.fileEvent) throw unexpected("FILE_EVENT or OK", f);
          yield decodeEvent(f.payload);
        }
      } finally {
        conn.close();
      }
    }
    return events();
  }

  private async open(
    type: number,
    w: TlvWriter,
    signal: AbortSignal,
    startTimeout: boolean,
  ): Promise<{ conn: AgentConnection; first: Frame | undefined }> {
    try {
      return await this.agent.openOperation(
        { type, payload: w.finish(), minVersion: FILES_PROTOCOL_VERSION },
        signal,
        startTimeout,
      );
    } catch (err) {
      // A version-2 agent built without file operations.
      if (err instanceof AgentError && err.agentCode === AgentErrorCode.unsupported) {
        throw new AgentTooOldError(FILES_PROTOCOL_VERSION - 1);
      }
      throw err;
    }
  }

  private async single<T>(
    type: number,
    w: TlvWriter,
    expect: number,
    signal: AbortSignal,
    decode: (payload: Uint8Array) => T,
    startTimeout = true,
  ): Promise<T> {
    const { conn, first } = await this.open(type, w, signal, startTimeout);
    try {
      if (first?.type !== expect) throw unexpected(`type 0x${expect.toString(16)}`, first);
      return decode(first.payload);
    } finally {
      conn.close();
    }
  }
}

/**
 * A directory listing has more entries than the caller allows (a bound on
 * the daemon's memory and the reply's size). Kind `resource_exhausted`.
 */
export class TooManyEntriesError extends ResourceExhaustedError {
  constructor(maxEntries: number) {
    super(`the listing has more than ${maxEntries} entries`, {
      hint: "list a smaller directory or a smaller depth",
    });
  }
}

/** The 5 bytes before a FILE_DATA payload of `length` bytes. */
function dataHeader(length: number): Uint8Array {
  const h = new Uint8Array(5);
  new DataView(h.buffer).setUint32(0, length + 1);
  h[4] = FrameType.fileData;
  return h;
}

function request(path: string): TlvWriter {
  return new TlvWriter().string(FileRequestTag.path, checkText("path", path));
}

function checkText(field: string, v: string): string {
  if (v.includes("\0")) throw new InvalidArgumentError(field, "must not contain NUL");
  return v;
}

function checkMode(mode: number): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new InvalidArgumentError("mode", `must be permission bits 0..07777, got ${mode}`);
  }
  return mode;
}

function unexpected(want: string, f: Frame | undefined): AgentProtocolError {
  return new AgentProtocolError(
    `expected ${want}, got ${f ? `frame type 0x${f.type.toString(16)}` : "EOF"}`,
  );
}

function readI64(value: Uint8Array): bigint {
  if (value.length !== 8) throw new AgentProtocolError(`time field of ${value.length} bytes`);
  return new DataView(value.buffer, value.byteOffset, 8).getBigInt64(0);
}

/** Decodes FILE_INFO; the guest is untrusted, so text is sanitized and bounded. */
function decodeInfo(payload: Uint8Array): FileInfo {
  let path = "";
  let name = "";
  let type: FileType | undefined;
  let size = 0;
  let mode = 0;
  let mtimeNs = 0n;
  let symlinkTarget: string | undefined;
  for (const { tag, value } of decodeTlv(payload)) {
    if (tag === FileInfoTag.path) path = sanitizeGuestText(value, GUEST_PATH_MAX_BYTES);
    else if (tag === FileInfoTag.name) name = sanitizeGuestText(value, GUEST_PATH_MAX_BYTES);
    else if (tag === FileInfoTag.type) type = TYPES[readUint(value) - 1];
    else if (tag === FileInfoTag.size) size = readUint(value);
    else if (tag === FileInfoTag.mode) mode = readUint(value) & 0o7777;
    else if (tag === FileInfoTag.mtimeNs) mtimeNs = readI64(value);
    else if (tag === FileInfoTag.symlinkTarget)
      symlinkTarget = sanitizeGuestText(value, GUEST_PATH_MAX_BYTES);
  }
  if (!path || !type) throw new AgentProtocolError("FILE_INFO without a path or a known type");
  return {
    path,
    name,
    type,
    size,
    mode,
    mtimeNs,
    ...(symlinkTarget !== undefined && { symlinkTarget }),
  };
}

function decodeEvent(payload: Uint8Array): FileEvent {
  let path = "";
  let kind: FileEventKind | undefined;
  let timeNs = 0n;
  for (const { tag, value } of decodeTlv(payload)) {
    if (tag === FileEventTag.path) path = sanitizeGuestText(value, GUEST_PATH_MAX_BYTES);
    else if (tag === FileEventTag.kind) kind = KINDS[readUint(value) - 1];
    else if (tag === FileEventTag.timeNs) timeNs = readI64(value);
  }
  if (!path || !kind) throw new AgentProtocolError("FILE_EVENT without a path or a known kind");
  return { path, kind, timeNs };
}

import { AgentProtocolError } from "./errors.js";
import { MAX_FRAME_LENGTH } from "./protocol.js";

/** One decoded frame; `payload` may share memory with the received chunk. */
export interface Frame {
  readonly type: number;
  readonly payload: Uint8Array;
}

/** Encodes a frame: u32 BE length (1 + payload length), u8 type, payload. */
export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (payload.length + 1 > MAX_FRAME_LENGTH) {
    throw new AgentProtocolError(
      `frame of ${payload.length + 1} bytes exceeds the ${MAX_FRAME_LENGTH}-byte limit`,
    );
  }
  const out = new Uint8Array(5 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length + 1);
  out[4] = type;
  out.set(payload, 5);
  return out;
}

/**
 * Incremental frame decoder: `push` received bytes, then call `next` until it
 * returns undefined. Throws AgentProtocolError on a length of 0 or above
 * `maxLength` as soon as the 4 length bytes arrive (nothing oversized is buffered).
 */
export class FrameDecoder {
  readonly maxLength: number;
  private buf: Uint8Array = new Uint8Array(0);

  /** @param maxLength largest accepted length field, bytes (default 1 MiB). */
  constructor(maxLength: number = MAX_FRAME_LENGTH) {
    this.maxLength = maxLength;
  }

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.buf.length;
  }

  /** Appends received bytes. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.buf.length === 0) {
      this.buf = chunk;
      return;
    }
    const merged = new Uint8Array(this.buf.length + chunk.length);
    merged.set(this.buf);
    merged.set(chunk, this.buf.length);
    this.buf = merged;
  }

  /** Returns the next complete frame, or undefined if more bytes are needed. */
  next(): Frame | undefined {
    if (this.buf.length < 4) return undefined;
    const len = new DataView(this.buf.buffer, this.buf.byteOffset, 4).getUint32(0);
    if (len === 0) throw new AgentProtocolError("bad frame length 0");
    if (len > this.maxLength) {
      throw new AgentProtocolError(`frame length ${len} exceeds the ${this.maxLength}-byte limit`);
    }
    if (this.buf.length < 4 + len) return undefined;
    const frame = { type: this.buf[4]!, payload: this.buf.subarray(5, 4 + len) };
    this.buf = this.buf.subarray(4 + len);
    return frame;
  }

  /** Call at end of stream: throws if it ended inside a frame. */
  end(): void {
    if (this.buf.length > 0) {
      throw new AgentProtocolError(`stream truncated: ${this.buf.length} bytes of a partial frame`);
    }
  }
}

/** Builds a TLV list (u8 tag, u32 BE length, value). */
export class TlvWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  bytes(tag: number, value: Uint8Array): this {
    const head = new Uint8Array(5);
    head[0] = tag;
    new DataView(head.buffer).setUint32(1, value.length);
    this.parts.push(head, value);
    this.size += 5 + value.length;
    return this;
  }

  string(tag: number, value: string): this {
    return this.bytes(tag, new TextEncoder().encode(value));
  }

  u8(tag: number, value: number): this {
    return this.bytes(tag, Uint8Array.of(value));
  }

  u32(tag: number, value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value);
    return this.bytes(tag, b);
  }

  /** Unsigned 64-bit big-endian; `value` must be a safe non-negative integer. */
  u64(tag: number, value: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(value));
    return this.bytes(tag, b);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

/** One TLV entry of a decoded list. */
export interface Tlv {
  readonly tag: number;
  readonly value: Uint8Array;
}

/** Decodes a TLV list; throws AgentProtocolError if an entry runs past the end. */
export function decodeTlv(payload: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let off = 0;
  while (off < payload.length) {
    if (payload.length - off < 5) throw new AgentProtocolError("truncated TLV header");
    const len = view.getUint32(off + 1);
    if (len > payload.length - off - 5) throw new AgentProtocolError("TLV value runs past the end");
    out.push({ tag: payload[off]!, value: payload.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

/** Reads an unsigned big-endian integer of 1, 2, 4 or 8 bytes as a number. */
export function readUint(value: Uint8Array): number {
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  switch (value.length) {
    case 1:
      return value[0]!;
    case 2:
      return view.getUint16(0);
    case 4:
      return view.getUint32(0);
    case 8:
      return Number(view.getBigUint64(0));
    default:
      throw new AgentProtocolError(`integer field of ${value.length} bytes`);
  }
}

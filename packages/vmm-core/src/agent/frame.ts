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
 *
 * Linear in the bytes received, however they are split: a partial frame
 * lives in a buffer whose capacity doubles when it is full, so each byte is
 * copied O(1) times on average (a guest sending a 1 MiB frame in 1-byte
 * writes costs ~1 MiB of copying, not ~2^39 bytes). It holds at most one
 * partial frame (≤ 4 + `maxLength` bytes) plus the rest of the last chunk.
 * Bytes handed out in a frame are never written again (payloads may be kept
 * by the caller), so a grown buffer is always a new allocation — unless
 * {@link reuseBuffers} was called.
 */
export class FrameDecoder {
  readonly maxLength: number;
  /** Received bytes live in `buf[head, tail)`; `buf` is a pushed chunk itself while `!owned`. */
  private buf: Uint8Array = new Uint8Array(0);
  private head = 0;
  private tail = 0;
  private owned = false;
  /** With reuseBuffers: the assembly buffer before `buf`, free for the next frame. */
  private spare: Uint8Array | undefined;
  private reuse = false;

  /** @param maxLength largest accepted length field, bytes (default 1 MiB). */
  constructor(maxLength: number = MAX_FRAME_LENGTH) {
    this.maxLength = maxLength;
  }

  /**
   * From now on a payload assembled from several pushes is valid only until
   * the second `push` after it was returned: the buffers it was assembled in
   * are reused (two, alternately) instead of allocating one per frame. For a
   * bulk transfer whose consumer is done with a payload before it asks for the
   * next: fresh memory per 256 KiB frame was the largest cost of a download.
   * Each reused buffer is rounded up to a power of two (≤ 2 × (4 + maxLength)).
   */
  reuseBuffers(): void {
    this.reuse = true;
  }

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.tail - this.head;
  }

  /** Appends received bytes. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const live = this.tail - this.head;
    if (live === 0) {
      // Common case: the chunk holds whole frames; hand them out without copying.
      this.buf = chunk;
      this.head = 0;
      this.tail = chunk.length;
      this.owned = false;
      return;
    }
    if (!this.owned || this.tail + chunk.length > this.buf.length) {
      // Once the length is known, room for the whole frame at once: a 256 KiB file chunk
      // arriving in 64 KiB reads costs one allocation, not one per doubling.
      let size = Math.max(live + chunk.length, 2 * live, 256);
      if (live >= 4) {
        const len = new DataView(this.buf.buffer, this.buf.byteOffset + this.head, 4).getUint32(0);
        if (len <= this.maxLength) size = Math.max(live + chunk.length, 4 + len);
      }
      const spare = this.spare;
      // Reused buffers are rounded up to a power of two, so the next frame of about the
      // same size fits whatever the read boundaries (≤ 2 × (4 + maxLength) each).
      const grown =
        spare !== undefined && spare.length >= size
          ? spare
          : new Uint8Array(this.reuse ? 2 ** Math.ceil(Math.log2(size)) : size);
      if (this.reuse) this.spare = this.owned ? this.buf : undefined;
      grown.set(this.buf.subarray(this.head, this.tail));
      this.buf = grown;
      this.head = 0;
      this.tail = live;
      this.owned = true;
    }
    this.buf.set(chunk, this.tail);
    this.tail += chunk.length;
  }

  /** Returns the next complete frame, or undefined if more bytes are needed. */
  next(): Frame | undefined {
    const live = this.tail - this.head;
    if (live < 4) return undefined;
    const len = new DataView(this.buf.buffer, this.buf.byteOffset + this.head, 4).getUint32(0);
    if (len === 0) throw new AgentProtocolError("bad frame length 0");
    if (len > this.maxLength) {
      throw new AgentProtocolError(`frame length ${len} exceeds the ${this.maxLength}-byte limit`);
    }
    if (live < 4 + len) return undefined;
    const frame = {
      type: this.buf[this.head + 4]!,
      payload: this.buf.subarray(this.head + 5, this.head + 4 + len),
    };
    this.head += 4 + len;
    if (this.head === this.tail) {
      // Drop the reference: the next push starts afresh (and never writes into handed-out
      // bytes, unless reusing: then the buffer waits as `spare`).
      if (this.reuse && this.owned) this.spare = this.buf;
      this.buf = new Uint8Array(0);
      this.head = this.tail = 0;
      this.owned = false;
    }
    return frame;
  }

  /** Call at end of stream: throws if it ended inside a frame. */
  end(): void {
    if (this.pending > 0) {
      throw new AgentProtocolError(`stream truncated: ${this.pending} bytes of a partial frame`);
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

import type { Socket } from "node:net";

/**
 * Pull-based reader over a socket: bytes are read from the kernel only when
 * `read` is called, so a slow consumer applies backpressure to the peer.
 * Read errors (including an abort's reason) reject `read`.
 */
export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private readonly pushedBack: Uint8Array[] = [];

  constructor(socket: Socket) {
    this.it = socket[Symbol.asyncIterator]();
  }

  /** Next chunk, or undefined at end of stream. */
  async read(): Promise<Uint8Array | undefined> {
    const back = this.pushedBack.shift();
    if (back) return back;
    const r = await this.it.next();
    return r.done ? undefined : r.value;
  }

  /** Returns bytes read too far, to be returned first by the next `read`. */
  unshift(chunk: Uint8Array): void {
    if (chunk.length > 0) this.pushedBack.unshift(chunk);
  }
}

import type { OnReadOpts, Socket } from "node:net";

/** Bytes queued (read from the kernel, not yet taken by `read`) above which reading stops. */
export const READ_QUEUE_MAX_BYTES = 64 * 1024;

/** A kernel read shorter than this counts against the small-read budget. */
export const SMALL_READ_BYTES = 1024;

/** Small reads allowed per second once the burst is spent (a token bucket). */
export const SMALL_READS_PER_SECOND = 250;

/** Small reads allowed back to back (the bucket's size). */
export const SMALL_READ_BURST = 64;

/** The kernel reads land here and are copied out at once (callbacks are synchronous). */
const scratch = Buffer.alloc(64 * 1024);

/**
 * Pull-based, rate-limited reader over a socket. Pass `onread` to the socket's
 * constructor (`net.createConnection({ path, onread: reader.onread })`), then
 * `attach(socket)`.
 *
 * - **Backpressure:** the socket reads from the kernel only while fewer than
 *   {@link READ_QUEUE_MAX_BYTES} (or the read-ahead set) wait for `read`, so
 *   a slow consumer slows the peer down instead of growing memory.
 * - **Small-read budget:** every kernel read costs the event loop the same
 *   ~10–20 µs however few bytes it returns, so a peer sending 1-byte writes
 *   could keep a core busy. Reads shorter than {@link SMALL_READ_BYTES} draw
 *   from a token bucket ({@link SMALL_READ_BURST} back to back, then
 *   {@link SMALL_READS_PER_SECOND}/s); when it is empty the socket stops
 *   reading until the next token, and the kernel coalesces what arrives
 *   meanwhile into the next read. That bounds a session's read rate (and so
 *   its CPU) whatever the peer does. Bulk transfers (long reads) and
 *   interactive use (a few small reads) never meet the limit.
 * - **Read-ahead** ({@link setReadAhead}, for file transfers): a larger
 *   bound, so the peer keeps sending while the consumer forwards what it got.
 *
 * Read errors (including a destroy's reason) reject `read`.
 */
export class ByteReader {
  /** For the socket's constructor: reads into a shared buffer, handed to this reader. */
  readonly onread: OnReadOpts;
  private socket: Socket | undefined;
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private ended = false;
  private failure: { error: unknown } | undefined;
  private waiter: (() => void) | undefined;
  private tokens = SMALL_READ_BURST;
  private refilledAt = performance.now();
  private throttle: NodeJS.Timeout | undefined;
  private readAheadBytes = READ_QUEUE_MAX_BYTES;

  constructor() {
    this.onread = { buffer: scratch, callback: (n, buf) => this.received(buf, n) };
  }

  /**
   * Lets up to `bytes` (at least {@link READ_QUEUE_MAX_BYTES}) wait for
   * `read`: the memory bound of the connection's reading.
   */
  setReadAhead(bytes: number): void {
    this.readAheadBytes = Math.max(READ_QUEUE_MAX_BYTES, bytes);
    this.resumeIfRoom();
  }

  /** Binds the reader to the socket created with its `onread`. */
  attach(socket: Socket): void {
    this.socket = socket;
    socket.on("end", () => this.finish());
    socket.on("error", (err) => this.finish(err));
    socket.on("close", () => this.finish(new Error("the connection closed before its end")));
  }

  /** Next chunk, or undefined at end of stream. */
  async read(): Promise<Uint8Array | undefined> {
    for (;;) {
      const chunk = this.queue.shift();
      if (chunk) {
        this.queued -= chunk.length;
        this.resumeIfRoom();
        return chunk;
      }
      if (this.failure) throw this.failure.error;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** Returns bytes read too far, to be returned first by the next `read`. */
  unshift(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.queue.unshift(chunk);
    this.queued += chunk.length;
  }

  /** One kernel read; pauses the socket when the queue is full or the budget spent. */
  private received(buf: Uint8Array, n: number): true {
    this.queue.push(Uint8Array.prototype.slice.call(buf, 0, n));
    this.queued += n;
    this.wake();
    const spent = n < SMALL_READ_BYTES && this.spendSmallRead();
    // pause() (not the callback's `false`) so that isPaused() tells resumeIfRoom to resume.
    if (spent || this.queued >= this.readAheadBytes) this.socket?.pause();
    return true;
  }

  /** Takes a small-read token; true when none is left (reading resumes when one is due). */
  private spendSmallRead(): boolean {
    const now = performance.now();
    const earned = ((now - this.refilledAt) * SMALL_READS_PER_SECOND) / 1000;
    this.tokens = Math.min(SMALL_READ_BURST, this.tokens + earned) - 1;
    this.refilledAt = now;
    if (this.tokens >= 0) return false;
    const waitMs = Math.ceil((-this.tokens * 1000) / SMALL_READS_PER_SECOND);
    this.throttle = setTimeout(() => {
      this.throttle = undefined;
      this.resumeIfRoom();
    }, waitMs);
    this.throttle.unref();
    return true;
  }

  private resumeIfRoom(): void {
    const s = this.socket;
    if (!s || s.destroyed || this.throttle || this.queued >= this.readAheadBytes) return;
    if (s.isPaused()) s.resume();
  }

  private finish(error?: unknown): void {
    if (this.ended || this.failure) return;
    if (error === undefined) this.ended = true;
    else this.failure = { error };
    if (this.throttle) clearTimeout(this.throttle);
    this.throttle = undefined;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

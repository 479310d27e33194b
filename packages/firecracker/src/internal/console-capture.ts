import { closeSync, ftruncateSync, openSync, writeSync } from "node:fs";
import type { Readable } from "node:stream";

/** Bytes of output kept in memory for error messages. */
const tailBytes = 8192;

/**
 * Drains a process's stdout/stderr (the guest serial console is guest-controlled and unbounded,
 * NOTES.md §9) into an optional file bounded to `maxBytes`, truncate-and-continue: a write that
 * would cross the bound truncates the file to zero, writes a marker line and continues. Writes are
 * synchronous (a pipe chunk is ≤ 64 KiB, a local file write is microseconds) so the order of
 * stdout and stderr chunks is kept without a queue.
 */
export interface ConsoleCapture {
  attach(stream: Readable | null): void;
  /** Last ≤ 8 KiB of output, as text (empty once {@link forgetTail} was called). */
  tail(): string;
  /**
   * Stops keeping the tail (the file, if any, is still written). The tail only serves launch
   * errors: a process that started does not need it, and up to 8 KiB per VM adds up.
   */
  forgetTail(): void;
  close(): void;
}

export function createConsoleCapture(path: string | undefined, maxBytes: number): ConsoleCapture {
  let fd = path === undefined ? undefined : openSync(path, "w", 0o600);
  let written = 0;
  let tail: Buffer | undefined = Buffer.alloc(0);
  let truncations = 0;

  const write = (chunk: Buffer) => {
    if (tail !== undefined) {
      tail = Buffer.concat([tail, chunk]);
      // A copy: a view would keep the whole concatenation (up to 8 KiB + a 64 KiB chunk) alive.
      if (tail.length > tailBytes) tail = Buffer.from(tail.subarray(tail.length - tailBytes));
    }
    if (fd === undefined) return;
    try {
      let data = chunk;
      if (written + data.length > maxBytes) {
        truncations++;
        const marker = Buffer.from(
          `[console log truncated ${truncations}x at ${maxBytes} bytes]\n`,
        );
        const room = Math.max(0, maxBytes - marker.length);
        if (data.length > room) data = data.subarray(data.length - room);
        ftruncateSync(fd, 0);
        writeSync(fd, marker, 0, marker.length, 0);
        written = marker.length;
      }
      writeSync(fd, data, 0, data.length, written);
      written += data.length;
    } catch {
      // A full disk must not kill the daemon or block the VM: stop writing, keep draining.
      closeQuietly();
    }
  };

  const closeQuietly = () => {
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch {}
    fd = undefined;
  };

  return {
    attach(stream) {
      stream?.on("data", (c: Buffer) => write(c));
      stream?.on("error", () => {});
    },
    tail: () => tail?.toString("utf8") ?? "",
    forgetTail() {
      tail = undefined;
    },
    close: closeQuietly,
  };
}

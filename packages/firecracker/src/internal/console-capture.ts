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
  /** Last ≤ 8 KiB of output, as text. */
  tail(): string;
  close(): void;
}

export function createConsoleCapture(path: string | undefined, maxBytes: number): ConsoleCapture {
  let fd = path === undefined ? undefined : openSync(path, "w", 0o600);
  let written = 0;
  let tail = Buffer.alloc(0);
  let truncations = 0;

  const write = (chunk: Buffer) => {
    tail = Buffer.concat([tail, chunk]);
    if (tail.length > tailBytes) tail = tail.subarray(tail.length - tailBytes);
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
    tail: () => tail.toString("utf8"),
    close: closeQuietly,
  };
}

import type { OutputStream } from "./command.js";

const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** A one-line spinner with elapsed time; see createSpinner. */
export interface Spinner {
  /** Clears the line and stops redrawing. Safe to call twice. */
  stop(): void;
}

/**
 * Draws `⠋ <text> 1.2s` on `out` every `intervalMs` until stopped, but only
 * when `out` is a terminal: otherwise it prints nothing at all, so logs and
 * pipes stay clean.
 * @param intervalMs redraw period, default 100 ms
 */
export function createSpinner(
  out: OutputStream,
  text: string,
  now: () => number,
  intervalMs = 100,
): Spinner {
  if (!out.isTTY) return { stop() {} };
  const start = now();
  let frame = 0;
  const draw = () => {
    const elapsed = ((now() - start) / 1000).toFixed(1);
    out.write(`\r\x1b[K${frames[frame++ % frames.length]} ${text} ${elapsed}s`);
  };
  draw();
  const timer = setInterval(draw, intervalMs);
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      out.write("\r\x1b[K");
    },
  };
}

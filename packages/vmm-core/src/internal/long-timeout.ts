/** Longest delay `setTimeout` honours, ms (2^31 - 1); a longer one fires at once. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** A pending {@link setLongTimeout}. */
export interface LongTimeout {
  /** Cancels it; no effect once fired. */
  clear(): void;
}

/**
 * `setTimeout` for any delay: Node fires a delay above 2^31-1 ms (~24.8 days)
 * after 1 ms, so a long delay is waited in steps of at most that. The timer
 * is unref'd (it never keeps the process alive). A delay that is not a finite
 * number ≥ 0 throws RangeError.
 */
export function setLongTimeout(fn: () => void, delayMs: number): LongTimeout {
  if (!Number.isFinite(delayMs) || delayMs < 0) {
    throw new RangeError(`timer delay must be a finite number of ms ≥ 0, got ${delayMs}`);
  }
  const due = performance.now() + delayMs;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (left: number) => {
    timer = setTimeout(step, Math.min(Math.max(left, 0), MAX_TIMER_DELAY_MS));
    timer.unref();
  };
  const step = () => {
    const left = due - performance.now();
    if (left > 0.5) return schedule(left);
    timer = undefined;
    fn();
  };
  schedule(delayMs);
  return {
    clear: () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** Node's timers hold at most 2^31-1 ms (~24.8 days); a longer delay fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer made by {@link setLongTimeout}. */
export interface LongTimeout {
  /** Cancels the timer; calling it again (or after it fired) does nothing. */
  clear(): void;
}

/**
 * Calls `fn` after `ms` milliseconds, for any delay a client can ask for:
 * delays above Node's 2^31-1 ms timer limit are scheduled in steps (a single
 * `setTimeout(fn, 2_200_000_000)` fires at once, which made a TTL of
 * 2,200,000 s remove the sandbox immediately). Timers never keep the process
 * alive (unref). `ms` ≤ 0 or not finite fires on the next turn.
 */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  const due = Date.now() + (Number.isFinite(ms) ? Math.max(0, ms) : 0);
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const left = due - Date.now();
    timer = setTimeout(left > MAX_TIMER_MS ? arm : fn, Math.min(Math.max(0, left), MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return {
    clear: () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** A signal that aborts after `ms` (a TimeoutError, like `AbortSignal.timeout`), and its timer. */
export interface Deadline extends Disposable {
  readonly signal: AbortSignal;
}

/**
 * Like `AbortSignal.timeout(ms)`, but disposing clears the timer: a deadline
 * that was met leaves no timer (and no TimeoutError built later) behind.
 */
export function deadlineAfter(ms: number): Deadline {
  const ac = new AbortController();
  const t = setLongTimeout(
    () => ac.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
    ms,
  );
  return { signal: ac.signal, [Symbol.dispose]: () => t.clear() };
}

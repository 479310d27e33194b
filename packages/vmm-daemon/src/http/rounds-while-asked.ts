export interface RoundsWhileAskedOptions {
  /** One background round; the next is scheduled `intervalMs` after it settled. */
  readonly round: () => void | Promise<void>;
  /** Called instead of a round once nobody asked for `idleAfterMs`; rounds stop until the next ask. */
  readonly onIdle: () => void;
  /** Time between two rounds, ms. */
  readonly intervalMs: number;
  /** Rounds stop when nobody asked for this long, ms. */
  readonly idleAfterMs: number;
  readonly now?: () => number;
}

/**
 * Background rounds that run only while somebody keeps asking for their
 * result: `asked()` records an ask and arms the timer; a round that finds the
 * last ask older than `idleAfterMs` calls `onIdle` and stops. The metrics'
 * samplers use it so that a daemon nobody scrapes does no sampling work.
 * A round that throws is simply tried again at the next interval.
 */
export class RoundsWhileAsked {
  readonly #options: RoundsWhileAskedOptions;
  readonly #now: () => number;
  #lastAskedMs = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #closed = false;

  constructor(options: RoundsWhileAskedOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Somebody wants the rounds' results now: keep (or start) running them. */
  asked(): void {
    this.#lastAskedMs = this.#now();
    this.#schedule();
  }

  /** Stops for good: no round runs after this returns. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined || this.#running) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    if (this.#closed) return;
    if (this.#now() - this.#lastAskedMs > this.#options.idleAfterMs) {
      this.#options.onIdle();
      return;
    }
    this.#running = true;
    try {
      await this.#options.round();
    } catch {
      // The next round tries again; what a round reads is best-effort by nature.
    } finally {
      this.#running = false;
    }
    this.#schedule();
  }
}

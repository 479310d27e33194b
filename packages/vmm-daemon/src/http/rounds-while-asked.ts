export interface RoundsWhileAskedOptions {
  /** One background round (a returned promise is awaited); the next is scheduled `intervalMs` after it settled. */
  readonly round: () => unknown;
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
  #state:
    | { readonly kind: "idle" }
    | { readonly kind: "scheduled"; readonly timer: NodeJS.Timeout }
    | { readonly kind: "running" }
    | { readonly kind: "closed" } = { kind: "idle" };

  constructor(options: RoundsWhileAskedOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Somebody wants the rounds' results now: keep (or start) running them. */
  asked(): void {
    this.#lastAskedMs = this.#now();
    if (this.#state.kind === "idle") this.#schedule();
  }

  /** Stops for good: no round runs after this returns. */
  close(): void {
    if (this.#state.kind === "scheduled") clearTimeout(this.#state.timer);
    this.#state = { kind: "closed" };
  }

  #schedule(): void {
    const timer = setTimeout(() => void this.#tick(), this.#options.intervalMs);
    timer.unref();
    this.#state = { kind: "scheduled", timer };
  }

  async #tick(): Promise<void> {
    if (this.#now() - this.#lastAskedMs > this.#options.idleAfterMs) {
      this.#state = { kind: "idle" };
      this.#options.onIdle();
      return;
    }
    this.#state = { kind: "running" };
    try {
      await this.#options.round();
    } catch {
      // The next round tries again; what a round reads is best-effort by nature.
    }
    if (this.#state.kind === "running") this.#schedule();
  }
}

import type { Logger } from "./logger.js";

/**
 * Work started off a request's path (a record write, a disk copy freed, an
 * initial workload): kept until it settles so shutdown can wait for it, and
 * its failure logged rather than lost.
 */
export class BackgroundTasks {
  readonly #running = new Set<Promise<unknown>>();

  constructor(private readonly log: Logger) {}

  /** Keeps `p` until it settles; a rejection is logged as a failed background task. */
  track(p: Promise<unknown>): void {
    this.#running.add(p);
    const forget = () => this.#running.delete(p);
    p.then(forget, (err: unknown) => {
      forget();
      this.log.error({ err }, "background task failed");
    });
  }

  /** Resolves when every task tracked so far has settled. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }
}

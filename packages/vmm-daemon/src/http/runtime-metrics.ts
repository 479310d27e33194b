import { readdir } from "node:fs/promises";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { RoundsWhileAsked } from "./rounds-while-asked.js";

export interface RuntimeMetricsOptions {
  /** Time between two background renders, ms. */
  readonly intervalMs: number;
  /** Background renders stop when nobody asked for this long, ms. */
  readonly idleAfterMs: number;
}

/**
 * prom-client's default metrics of the daemon process (`process_*`,
 * `nodejs_*`), rendered in the background once per interval while the daemon
 * is scraped, so a scrape only copies their text. Rendered on every scrape
 * they were most of its cost once the daemon held hundreds of sandboxes:
 * `process_open_fds` lists /proc/self/fd synchronously (several descriptors
 * per sandbox), `nodejs_active_handles` builds an array of every handle, and
 * the event-loop lag quantiles are computed afresh. Here the fd count is read
 * asynchronously, and what stays synchronous runs once per interval instead
 * of once per scrape. The first scrape after an idle spell renders on the spot.
 */
export class RuntimeMetrics {
  readonly #registry = new Registry();
  readonly #rounds: RoundsWhileAsked;
  #text: string | undefined;

  constructor(options: RuntimeMetricsOptions) {
    collectDefaultMetrics({ register: this.#registry });
    if (this.#registry.getSingleMetric("process_open_fds") !== undefined) {
      this.#registry.removeSingleMetric("process_open_fds");
      new Gauge({
        name: "process_open_fds",
        help: "Number of open file descriptors.",
        registers: [this.#registry],
        async collect() {
          // Minus the descriptor the listing itself held open.
          this.set((await readdir("/proc/self/fd")).length - 1);
        },
      });
    }
    this.#rounds = new RoundsWhileAsked({
      round: () => this.#render(),
      onIdle: () => {
        this.#text = undefined;
      },
      intervalMs: options.intervalMs,
      idleAfterMs: options.idleAfterMs,
    });
  }

  /** The default metrics in Prometheus text format, at most one interval old; ends with a line feed. */
  async text(): Promise<string> {
    this.#rounds.asked();
    return this.#text ?? (await this.#render());
  }

  async #render(): Promise<string> {
    const text = await this.#registry.metrics();
    this.#text = text.endsWith("\n") ? text : `${text}\n`;
    return this.#text;
  }

  close(): void {
    this.#rounds.close();
  }
}

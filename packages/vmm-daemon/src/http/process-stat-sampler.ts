import { ProcessStatReader, type ProcessStats } from "./process-stats.js";
import { RoundsWhileAsked } from "./rounds-while-asked.js";

/** A process to sample: `key` names it in the answer; `pid` undefined = no process now. */
export interface SampledProcess {
  readonly key: string;
  readonly pid: number | undefined;
}

export interface ProcessStatSamplerOptions {
  /** The processes to sample now (called on every round). */
  readonly processes: () => Iterable<SampledProcess>;
  /** Time between two background rounds, ms. */
  readonly intervalMs: number;
  /** Background rounds stop when nobody asked for stats for this long, ms. */
  readonly idleAfterMs: number;
  readonly now?: () => number;
}

/**
 * Keeps the RSS and CPU time of many processes sampled in the background, so
 * a metrics scrape only formats numbers: reading /proc/<pid>/stat costs the
 * kernel ~7 µs per process (it sums every thread's CPU time), which with
 * hundreds of sandboxes was most of a scrape's wall time. Values are at most
 * `intervalMs` old, as with cAdvisor's housekeeping. A process asked for that
 * has no sample yet (a sandbox started since the last round) is read on the
 * spot, so it never appears late; one that is gone is dropped from the
 * answer at once. Rounds run only while stats are asked for: a daemon
 * nobody scrapes reads nothing.
 */
export class ProcessStatSampler {
  readonly #reader = new ProcessStatReader();
  readonly #options: ProcessStatSamplerOptions;
  readonly #rounds: RoundsWhileAsked;
  #sample = new Map<string, ProcessStats & { readonly pid: number }>();

  constructor(options: ProcessStatSamplerOptions) {
    this.#options = options;
    this.#rounds = new RoundsWhileAsked({
      round: () => this.#round(),
      onIdle: () => {
        // Nobody scrapes: forget the sample (a later scrape reads afresh) and close every descriptor.
        this.#sample = new Map();
        this.#reader.readAll([]);
      },
      intervalMs: options.intervalMs,
      idleAfterMs: options.idleAfterMs,
      ...(options.now !== undefined && { now: options.now }),
    });
  }

  /** Stats of each of `processes` (those with a live process), from the last round or read now. */
  stats(processes: readonly SampledProcess[]): Map<string, ProcessStats> {
    const out = new Map<string, ProcessStats>();
    const missing: SampledProcess[] = [];
    for (const p of processes) {
      if (p.pid === undefined) continue;
      const s = this.#sample.get(p.key);
      if (s !== undefined && s.pid === p.pid) out.set(p.key, s);
      else missing.push(p);
    }
    if (missing.length > 0) {
      // Reads only the new ones; the reader keeps the others' descriptors (it is told every key).
      const read = this.#reader.readSome(missing);
      for (const p of missing) {
        const s = read.get(p.key);
        if (s === undefined) continue;
        const sampled = { ...s, pid: p.pid! };
        this.#sample.set(p.key, sampled);
        out.set(p.key, sampled);
      }
    }
    this.#rounds.asked();
    return out;
  }

  /** Stops sampling and closes every descriptor. */
  close(): void {
    this.#rounds.close();
    this.#reader.close();
  }

  #round(): void {
    const processes = [...this.#options.processes()];
    const read = this.#reader.readAll(processes);
    const next = new Map<string, ProcessStats & { readonly pid: number }>();
    for (const p of processes) {
      const s = read.get(p.key);
      if (s !== undefined && p.pid !== undefined) next.set(p.key, { ...s, pid: p.pid });
    }
    this.#sample = next;
  }
}

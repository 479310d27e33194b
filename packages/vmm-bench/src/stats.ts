/** Summary of one phase's samples, all in milliseconds. */
export interface PhaseStats {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** Rounds to microseconds (3 decimals of a millisecond). */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * Least-squares slope of y over x: the growth per unit of x that fits all the
 * points, rather than the difference of two of them. Needs two distinct x.
 */
export function slope(points: ReadonlyArray<readonly [x: number, y: number]>): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  if (!(sxx > 0)) throw new RangeError("slope needs at least two distinct x");
  return sxy / sxx;
}

/**
 * Nearest-rank percentile of ascending `sorted` (p in 0..100): the smallest
 * sample with at least p% of the samples at or below it. Never interpolates,
 * so every reported percentile is a measured value.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of no samples");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is not in 0..100`);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

/** min/p50/p95/p99/max/mean of `samples` (ms). Throws on an empty or non-finite sample set. */
export function summarize(samples: readonly number[]): PhaseStats {
  if (samples.length === 0) throw new RangeError("no samples to summarize");
  for (const x of samples) {
    if (!Number.isFinite(x)) throw new RangeError(`sample ${x} is not a finite number`);
  }
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    min: roundMs(s[0] as number),
    p50: roundMs(percentile(s, 50)),
    p95: roundMs(percentile(s, 95)),
    p99: roundMs(percentile(s, 99)),
    max: roundMs(s[s.length - 1] as number),
    mean: roundMs(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

/** a/b rounded to 3 decimals; undefined when b is 0. */
export function ratio(a: number, b: number): number | undefined {
  if (b === 0) return undefined;
  return Math.round((a / b) * 1000) / 1000;
}

/** Samples per phase name, collected as a benchmark runs. */
export class Samples {
  private readonly byPhase = new Map<string, number[]>();

  add(phase: string, ms: number): void {
    let xs = this.byPhase.get(phase);
    if (!xs) {
      xs = [];
      this.byPhase.set(phase, xs);
    }
    xs.push(ms);
  }

  get(phase: string): readonly number[] {
    return this.byPhase.get(phase) ?? [];
  }

  /** Every phase with at least one sample, summarized, in insertion order. */
  summarize(): Record<string, PhaseStats> {
    const out: Record<string, PhaseStats> = {};
    for (const [phase, xs] of this.byPhase) if (xs.length > 0) out[phase] = summarize(xs);
    return out;
  }
}

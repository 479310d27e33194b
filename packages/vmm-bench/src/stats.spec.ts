import { describe, expect, it } from "vitest";
import { percentile, ratio, Samples, slope, summarize } from "./stats.js";

describe("percentile (nearest rank)", () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
  it("returns measured samples, never interpolations", () => {
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 95)).toBe(95);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4, 5], 50)).toBe(3);
  });
  it("with few samples the high percentiles are the max", () => {
    expect(percentile([3, 7], 95)).toBe(7);
    expect(percentile([5], 99)).toBe(5);
  });
  it("rejects empty input and bad p", () => {
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });
});

describe("summarize", () => {
  it("computes min/p50/p95/p99/max/mean regardless of input order", () => {
    const s = summarize([5, 1, 4, 2, 3]);
    expect(s).toEqual({ n: 5, min: 1, p50: 3, p95: 5, p99: 5, max: 5, mean: 3 });
  });
  it("rounds to microseconds", () => {
    expect(summarize([1.23456789]).mean).toBe(1.235);
  });
  it("rejects empty and non-finite samples", () => {
    expect(() => summarize([])).toThrow(RangeError);
    expect(() => summarize([1, Number.POSITIVE_INFINITY])).toThrow(RangeError);
  });
});

describe("ratio", () => {
  it("is a/b to 3 decimals, undefined for b = 0", () => {
    expect(ratio(110, 100)).toBe(1.1);
    expect(ratio(1, 3)).toBe(0.333);
    expect(ratio(1, 0)).toBeUndefined();
  });
});

describe("Samples", () => {
  it("summarizes each phase in insertion order and skips nothing recorded", () => {
    const s = new Samples();
    s.add("b_ms", 2);
    s.add("a_ms", 1);
    s.add("b_ms", 4);
    const out = s.summarize();
    expect(Object.keys(out)).toEqual(["b_ms", "a_ms"]);
    expect(out.b_ms?.n).toBe(2);
    expect(out.b_ms?.mean).toBe(3);
    expect(s.get("missing")).toEqual([]);
  });
});

describe("slope (least squares)", () => {
  it("is the exact rate on a line, whatever the intercept", () => {
    expect(
      slope([
        [50, 1000],
        [100, 3000],
        [200, 7000],
      ]),
    ).toBeCloseTo(40, 9);
  });

  it("fits noisy points instead of taking the last difference", () => {
    // Last difference is 10, first 70; the fit weighs all four points.
    expect(
      slope([
        [0, 0],
        [1, 70],
        [2, 110],
        [3, 120],
      ]),
    ).toBeCloseTo(40, 9);
  });

  it("rejects fewer than two distinct x", () => {
    expect(() => slope([[5, 1]])).toThrow(RangeError);
    expect(() =>
      slope([
        [5, 1],
        [5, 2],
      ]),
    ).toThrow(RangeError);
  });
});

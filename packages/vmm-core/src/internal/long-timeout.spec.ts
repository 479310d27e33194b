import { afterEach, describe, expect, it, vi } from "vitest";
import { setLongTimeout } from "./long-timeout.js";

describe("setLongTimeout", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([
    ["2,200,000 s (the TTL that fired at once)", 2_200_000_000],
    ["the largest uint32 of seconds", 4_294_967_295_000],
  ])("does not fire early for %s", (_name, ms) => {
    vi.useFakeTimers();
    const fn = vi.fn();
    setLongTimeout(fn, ms);
    vi.advanceTimersByTime(2 ** 31);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(ms - 2 ** 31 - 1);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledOnce();
  });

  it("fires short delays once, and not after clear()", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    setLongTimeout(fired, 50);
    const cleared = vi.fn();
    setLongTimeout(cleared, 50).clear();
    const clearedLate = vi.fn();
    const late = setLongTimeout(clearedLate, 3_000_000_000);
    vi.advanceTimersByTime(2_500_000_000);
    late.clear();
    vi.advanceTimersByTime(1_000_000_000);
    expect(fired).toHaveBeenCalledOnce();
    expect(cleared).not.toHaveBeenCalled();
    expect(clearedLate).not.toHaveBeenCalled();
  });

  it("fires at once for zero, negative and non-finite delays", () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    for (const ms of [0, -5, Number.NaN]) setLongTimeout(fn, ms);
    vi.advanceTimersByTime(0);
    expect(fn).toHaveBeenCalledTimes(3);
  });
});

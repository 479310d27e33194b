import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER_DELAY_MS, setLongTimeout } from "./long-timeout.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("setLongTimeout", () => {
  it("fires after a short delay", async () => {
    const fired = await new Promise<number>((resolve) => {
      const t0 = performance.now();
      setLongTimeout(() => resolve(performance.now() - t0), 30);
    });
    expect(fired).toBeGreaterThanOrEqual(29);
  });

  it.each([
    ["2,200,000 s (2.2e9 ms: overflows a plain setTimeout)", 2_200_000_000],
    ["the uint32 maximum of seconds in ms (4.29e12 ms)", 4_294_967_295_000],
  ])("does not fire early for %s", (_name, delay) => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const fn = vi.fn();
    const t = setLongTimeout(fn, delay);
    vi.advanceTimersByTime(1000);
    expect(fn).not.toHaveBeenCalled(); // a plain setTimeout(fn, delay) would have fired after 1 ms
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(delay - MAX_TIMER_DELAY_MS - 1000 - 1);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2);
    expect(fn).toHaveBeenCalledOnce();
    t.clear();
  });

  it("clear() cancels it, also between steps", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const fn = vi.fn();
    const t = setLongTimeout(fn, 3 * MAX_TIMER_DELAY_MS);
    vi.advanceTimersByTime(MAX_TIMER_DELAY_MS + 5);
    t.clear();
    vi.advanceTimersByTime(3 * MAX_TIMER_DELAY_MS);
    expect(fn).not.toHaveBeenCalled();
  });

  it.each([[-1], [Number.NaN], [Number.POSITIVE_INFINITY]])("rejects a delay of %s", (d) => {
    expect(() => setLongTimeout(() => {}, d)).toThrow(RangeError);
  });
});

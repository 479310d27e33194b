import { readdirSync } from "node:fs";
import { open } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { RuntimeMetrics } from "./runtime-metrics.js";

const gaugeValue = (text: string, name: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in:\n${text}`);
  return Number(line.slice(name.length + 1));
};

describe("RuntimeMetrics", () => {
  it("renders the default process metrics, with the open fd count read asynchronously", async () => {
    const m = new RuntimeMetrics({ intervalMs: 60_000, idleAfterMs: 60_000 });
    try {
      const text = await m.text();
      for (const name of [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "nodejs_eventloop_lag_seconds",
        "nodejs_heap_size_used_bytes",
      ])
        expect(text).toContain(`# TYPE ${name} `);
      expect(text.match(/^# TYPE process_open_fds /gm)).toHaveLength(1);
      expect(text.endsWith("\n")).toBe(true);
      // Within one descriptor or so of a synchronous count (the worker may open one meanwhile).
      expect(
        Math.abs(gaugeValue(text, "process_open_fds") - (readdirSync("/proc/self/fd").length - 1)),
      ).toBeLessThanOrEqual(2);
    } finally {
      m.close();
    }
  });

  it("serves the last background render between rounds, then a fresh one", async () => {
    const m = new RuntimeMetrics({ intervalMs: 1000, idleAfterMs: 60_000 });
    const files = [];
    try {
      const first = await m.text();
      for (let i = 0; i < 5; i++) files.push(await open("/proc/self/status"));
      // Same render until the next round: nothing recomputed per call.
      expect(await m.text()).toBe(first);
      await expect
        .poll(async () => gaugeValue(await m.text(), "process_open_fds"), { timeout: 5000 })
        .toBeGreaterThanOrEqual(gaugeValue(first, "process_open_fds") + 5);
    } finally {
      for (const f of files) await f.close();
      m.close();
    }
  });

  it("stops rendering when nobody asks, and renders on the spot when asked again", async () => {
    const m = new RuntimeMetrics({ intervalMs: 30, idleAfterMs: 100 });
    try {
      const first = await m.text();
      await sleep(400); // idle: the cached render is dropped
      const files = [];
      for (let i = 0; i < 5; i++) files.push(await open("/proc/self/status"));
      try {
        // No stale text: this call renders now and sees the new descriptors.
        expect(gaugeValue(await m.text(), "process_open_fds")).toBeGreaterThanOrEqual(
          gaugeValue(first, "process_open_fds") + 5,
        );
      } finally {
        for (const f of files) await f.close();
      }
    } finally {
      m.close();
    }
  });
});

import { describe, expect, it } from "vitest";
import { renderSandboxSeries } from "./sandbox-series.js";

describe("renderSandboxSeries", () => {
  it("writes each family once with HELP and TYPE, one series per sandbox that has a value", () => {
    const text = renderSandboxSeries(
      [
        { id: "a", state: "ready", pid: 10, diskBytes: 4096 },
        { id: "b", state: "paused", pid: undefined, diskBytes: 8192 },
      ],
      new Map([["a", { rssBytes: 1 << 20, cpuSeconds: 1.5 }]]),
    );
    expect(text.split("\n")).toEqual([
      expect.stringMatching(/^# HELP vmm_sandbox_memory_bytes Resident memory/),
      "# TYPE vmm_sandbox_memory_bytes gauge",
      'vmm_sandbox_memory_bytes{sandbox_id="a"} 1048576',
      expect.stringMatching(/^# HELP vmm_sandbox_cpu_seconds_total /),
      "# TYPE vmm_sandbox_cpu_seconds_total counter",
      'vmm_sandbox_cpu_seconds_total{sandbox_id="a"} 1.5',
      expect.stringMatching(/^# HELP vmm_sandbox_disk_bytes /),
      "# TYPE vmm_sandbox_disk_bytes gauge",
      'vmm_sandbox_disk_bytes{sandbox_id="a"} 4096',
      'vmm_sandbox_disk_bytes{sandbox_id="b"} 8192',
      "",
    ]);
  });

  it("escapes label values as the text format requires", () => {
    const text = renderSandboxSeries(
      [{ id: 'x"y\\z\nw', state: "ready", pid: undefined, diskBytes: 1 }],
      new Map(),
    );
    expect(text).toContain('vmm_sandbox_disk_bytes{sandbox_id="x\\"y\\\\z\\nw"} 1\n');
  });

  it("writes the families with no series when there is no sandbox", () => {
    const text = renderSandboxSeries([], new Map());
    expect(text.match(/^# TYPE /gm)).toHaveLength(3);
    expect(text.match(/^vmm_/gm)).toBeNull();
  });
});

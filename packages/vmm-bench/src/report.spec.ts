import { describe, expect, it } from "vitest";
import { type BenchReport, formatTable, SCHEMA, validateReport } from "./report.js";
import { summarize } from "./stats.js";

function sample(): BenchReport {
  return {
    schema: SCHEMA,
    command: "lifecycle",
    date: new Date(0).toISOString(),
    host: { cpus: 2, memGiB: 23.5, kernel: "6.1.0" },
    backend: {
      firecracker: "/opt/fc/firecracker",
      simulated: false,
      version: "Firecracker v1.14.2",
    },
    params: { iterations: 3 },
    phases: { create_to_ready_ms: summarize([10, 20, 30]), remove_ms: summarize([1]) },
    ratios: { create_to_ready_ms: { p50: 1.05, mean: 1.02 } },
    notes: ["measured"],
  };
}

describe("validateReport", () => {
  it("accepts a well-formed report, also after a JSON round trip", () => {
    expect(validateReport(sample())).toEqual([]);
    expect(validateReport(JSON.parse(JSON.stringify(sample())))).toEqual([]);
  });
  it("accepts a null firecracker (external daemon) and no ratios", () => {
    const { ratios: _r, ...rest } = sample();
    expect(
      validateReport({
        ...rest,
        backend: { firecracker: null, simulated: false, version: "unknown" },
      }),
    ).toEqual([]);
  });
  it.each([
    ["schema", { schema: "vmm-bench/2" }],
    ["date", { date: "yesterday" }],
    ["host.cpus", { host: { cpus: 0, memGiB: 1, kernel: "x" } }],
    ["backend.simulated", { backend: { firecracker: "/x", simulated: "no", version: "v" } }],
    [
      "phases.x.p50",
      { phases: { x: { n: 1, min: 1, p50: "1", p95: 1, p99: 1, max: 1, mean: 1 } } },
    ],
    ["does not hold", { phases: { x: { n: 2, min: 5, p50: 1, p95: 1, p99: 1, max: 5, mean: 3 } } }],
    ["mean", { phases: { x: { n: 2, min: 1, p50: 1, p95: 2, p99: 2, max: 2, mean: 9 } } }],
    ["notes", { notes: [1] }],
    ["ratios", { ratios: [] }],
  ])("rejects a bad %s", (what, patch) => {
    const errs = validateReport({ ...sample(), ...patch });
    expect(errs.join("\n")).toContain(what);
  });
  it("rejects non-objects", () => {
    expect(validateReport(null)).toEqual(["not an object"]);
    expect(validateReport([])).toEqual(["not an object"]);
  });
});

describe("formatTable", () => {
  it("aligns one row per phase under a header", () => {
    const lines = formatTable(sample().phases).split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^phase\s+n\s+min\s+p50\s+p95\s+p99\s+max\s+mean$/);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(lines[1]).toContain("create_to_ready_ms");
  });
});

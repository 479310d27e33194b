import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { validateReport } from "../src/report.js";

const root = resolve(import.meta.dirname, "../../..");
const BENCH = resolve(root, "packages/vmm-bench/dist/vmm-bench.mjs");
const FC_SIM = resolve(root, "packages/fc-sim/dist/fc-sim.mjs");
const DAEMON = resolve(root, "packages/vmm-daemon/dist/vmm-daemon.mjs");
const ready = [BENCH, FC_SIM, DAEMON].every((f) => existsSync(f));

describe.skipIf(!ready)("vmm-bench lifecycle against fc-sim", () => {
  it("prints a valid vmm-bench/1 report with every lifecycle phase", {
    timeout: 30_000,
  }, async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [BENCH, "lifecycle", "--iterations", "2", "--warmup", "0", "--firecracker", FC_SIM],
      { timeout: 25_000, maxBuffer: 1 << 20 },
    );
    const doc = JSON.parse(stdout);
    expect(validateReport(doc)).toEqual([]);
    expect(doc.command).toBe("lifecycle");
    expect(doc.backend).toMatchObject({ firecracker: FC_SIM, simulated: true });
    expect(doc.backend.version).toMatch(/^Firecracker v\d/);
    for (const phase of ["create_to_ready_ms", "first_run_ms", "remove_ms", "total_ms"]) {
      expect(doc.phases[phase]?.n, phase).toBe(2);
      expect(doc.phases[phase].min, phase).toBeGreaterThan(0);
    }
    expect(stderr).toMatch(/create_to_ready_ms\s+2\s/);
  });
});

describe.skipIf(!ready)("vmm-bench run-latency against fc-sim", () => {
  it("measures Run through both gRPC clients and the direct agent call", {
    timeout: 60_000,
  }, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [BENCH, "run-latency", "--iterations", "3", "--firecracker", FC_SIM],
      { timeout: 55_000, maxBuffer: 1 << 20 },
    );
    const doc = JSON.parse(stdout);
    expect(validateReport(doc)).toEqual([]);
    for (const side of ["grpc", "grpcjs", "direct"]) {
      expect(doc.phases[`${side}.run_ms`]?.n, side).toBe(3);
      expect(doc.phases[`${side}.run_ms`].min, side).toBeGreaterThan(0);
    }
    const g = doc.phases["grpc.run_ms"].p50 - doc.phases["direct.run_ms"].p50;
    expect(doc.differences.run_ms.p50).toBeCloseTo(g, 2);
    expect(Object.keys(doc.differences)).toEqual(["run_ms", "run_ms_grpcjs"]);
  });
});

describe.skipIf(!existsSync(BENCH))("vmm-bench option errors", () => {
  it.each([
    ["--settle-ms=-1", /--settle-ms wants an integer >= 0, got -1/],
    ["--settle-ms=2.5", /--settle-ms wants an integer >= 0, got 2.5/],
  ])("%s exits 2 naming the option", async (arg, message) => {
    const err = await promisify(execFile)(process.execPath, [BENCH, "compare", arg], {
      timeout: 10_000,
    }).catch((e: unknown) => e as { code: number; stderr: string });
    expect(err).toMatchObject({ code: 2 });
    expect((err as { stderr: string }).stderr).toMatch(message);
  });
});

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
const IMAGES = ["vmlinux", "rootfs.ext4"].map((f) => resolve(root, ".dev/data/images", f));
const ready = [BENCH, FC_SIM, DAEMON, ...IMAGES].every((f) => existsSync(f));

async function bench(args: string[]) {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    [BENCH, ...args, "--iterations", "2", "--warmup", "0", "--firecracker", FC_SIM],
    { timeout: 55_000, maxBuffer: 1 << 20 },
  );
  const doc = JSON.parse(stdout);
  expect(validateReport(doc)).toEqual([]);
  expect(doc.backend).toMatchObject({ firecracker: FC_SIM, simulated: true });
  expect(doc.host.loadavg.start).toHaveLength(3);
  return { doc, stderr };
}

describe.skipIf(!ready)("vmm-bench compare-restore and golden against fc-sim", () => {
  it("compare-restore: daemon Restore vs raw /snapshot/load, both sides, ratios", {
    timeout: 60_000,
  }, async () => {
    const { doc, stderr } = await bench(["compare-restore"]);
    expect(doc.command).toBe("compare-restore");
    for (const side of ["daemon", "raw"]) {
      for (const phase of ["restore_to_ready_ms", "first_run_ms", "restore_to_first_run_ms"]) {
        expect(doc.phases[`${side}.${phase}`]?.n, `${side}.${phase}`).toBe(2);
        expect(doc.phases[`${side}.${phase}`].min).toBeGreaterThan(0);
      }
    }
    expect(doc.ratios.restore_to_ready_ms.p50).toBeGreaterThan(0);
    expect(doc.params.snapshotDir).toMatch(/\/snapshots\//);
    expect(stderr).toMatch(/restore_to_ready_ms: p50 /);
  });

  it("golden: boot vs golden creates, every one checked through Inspect", {
    timeout: 60_000,
  }, async () => {
    const { doc, stderr } = await bench(["golden"]);
    expect(doc.command).toBe("golden");
    expect(doc.params.createdFromChecked).toEqual({ boot: 2, golden: 2 });
    for (const side of ["boot", "golden"]) {
      expect(doc.phases[`${side}.create_to_ready_ms`]?.n).toBe(2);
    }
    expect(doc.speedup.create_to_ready_ms.p50).toBeGreaterThan(0);
    expect(stderr).toMatch(/speedup create_to_ready_ms/);
  });
});

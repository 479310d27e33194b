import { execFile, execFileSync } from "node:child_process";
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
const hasH2load = (() => {
  try {
    execFileSync("h2load", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

async function bench(args: string[], timeoutMs: number) {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [BENCH, ...args, "--firecracker", FC_SIM],
    { timeout: timeoutMs, maxBuffer: 1 << 22 },
  );
  const doc = JSON.parse(stdout);
  expect(validateReport(doc)).toEqual([]);
  expect(doc.leftovers).toEqual({ processes: [], dirExists: false });
  return doc;
}

describe.skipIf(!ready)("vmm-bench fleet commands against fc-sim (few sandboxes)", () => {
  it("restart: every sandbox re-adopted and runnable after a SIGKILL of the daemon", {
    timeout: 90_000,
  }, async () => {
    const doc = await bench(["restart", "--sandboxes", "3"], 85_000);
    expect(doc.runsOkAfterRestart).toBe(3);
    expect(doc.processesAliveAfterKill).toBeGreaterThanOrEqual(3);
    const p = doc.phases;
    expect(p.serving_ms.p50).toBeLessThanOrEqual(p.all_listed_ready_ms.p50);
    expect(p.all_listed_ready_ms.p50).toBeLessThanOrEqual(p.all_run_ms.p50);
  });

  it.skipIf(!hasH2load)(
    "api-load: h2load List and Inspect over TCP with the token, all 2xx",
    {
      timeout: 90_000,
    },
    async () => {
      const doc = await bench(
        ["api-load", "--sandboxes", "3", "--requests", "500", "--clients", "2", "--streams", "4"],
        85_000,
      );
      for (const m of ["List", "Inspect"]) {
        expect(doc.h2load[m].status["2xx"], m).toBe(500);
        expect(doc.h2load[m].reqPerSec, m).toBeGreaterThan(0);
        expect(doc.targets[`${m}_calls_per_s`].value).toBe(doc.h2load[m].reqPerSec);
        expect(doc.h2load[m].args.join(" ")).not.toMatch(/Bearer [0-9a-f]{8}/); // token redacted
      }
    },
  );
});

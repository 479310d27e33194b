import * as net from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import cases from "./differential-cases.json" with { type: "json" };
import {
  makeRootfs,
  rawRequest,
  removeDir,
  request,
  startVm,
  tempDir,
  testKernel,
} from "./helpers.js";

type Step = { method: string; path: string; body?: unknown; rawBody?: string };
type Case = { name: string; setup: Step[]; request: Step | { raw: string }; status: number };

const all = (cases as { cases: Case[] }).cases;
const realBin = process.env.FIRECRACKER_BIN;

function subst(v: unknown, kernel: string): unknown {
  return (
    JSON.parse(JSON.stringify(v ?? null).replaceAll('"$KERNEL"', JSON.stringify(kernel))) ??
    undefined
  );
}

/** Runs one case in a fresh process and dir; returns the status of the request under test. */
async function runCase(c: Case, bin: string | undefined): Promise<number> {
  const dir = tempDir("fcd-");
  const kernel = testKernel(dir);
  makeRootfs(join(dir, "rootfs.ext4"));
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(join(dir, "exists.sock"), () => r()));
  const vm = await startVm({
    ...(bin ? { bin } : {}),
    dir,
    args: ["--mmds-size-limit", "100"],
    env: { FC_SIM_AGENT: "none" },
  });
  try {
    for (const s of c.setup) {
      const r = await request(vm.sock, s.method, s.path, subst(s.body, kernel));
      expect(r.status, `setup ${s.method} ${s.path}: ${r.text}`).toBeLessThan(300);
    }
    const q = c.request;
    if ("raw" in q) return (await rawRequest(vm.sock, q.raw)).status;
    return (
      await request(
        vm.sock,
        q.method,
        q.path,
        q.rawBody === undefined ? subst(q.body, kernel) : undefined,
        q.rawBody,
      )
    ).status;
  } finally {
    await vm.kill(); // a real VM whose guest cannot boot spins a core: kill right away
    blocker.close();
    removeDir(dir);
  }
}

describe("differential cases against fc-sim", () => {
  it("has at least 40 cases", () => {
    expect(all.length).toBeGreaterThanOrEqual(40);
  });
  it.each(all.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    expect(await runCase(c, undefined)).toBe(c.status);
  });
});

describe.skipIf(!realBin)(
  realBin
    ? `differential cases against ${realBin}`
    : "differential cases against real Firecracker (skipped: FIRECRACKER_BIN not set)",
  () => {
    it.each(all.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
      expect(await runCase(c, realBin)).toBe(c.status);
    });
  },
);

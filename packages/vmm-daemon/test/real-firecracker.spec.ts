import { readlinkSync, realpathSync } from "node:fs";
import { resolve } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvmUnavailable } from "./kvm.js";
import {
  leftovers,
  processesMatching,
  type SimDaemon,
  startSimDaemon,
  subscribe,
  waitForState,
} from "./sim-daemon.js";

const FIRECRACKER_BIN = process.env.FIRECRACKER_BIN;
const noKvm = kvmUnavailable();
if (FIRECRACKER_BIN && noKvm)
  process.stderr.write(`real-firecracker.spec: skipping the tests that start a VM: ${noKvm}\n`);
/** `it` for a test that needs a started VM: skipped, saying why, without KVM. */
const itStartsVm = (name: string, fn: () => Promise<void>) =>
  it.skipIf(noKvm !== undefined)(noKvm ? `${name} (skipped: ${noKvm})` : name, fn);

// The guest kernel cannot boot here (no nested virtualization), so readiness is
// "vmm": the sandbox is ready once InstanceStart returned. A started VM whose
// guest cannot boot spins a core: every VM is removed as soon as possible.
describe.skipIf(!FIRECRACKER_BIN)(
  FIRECRACKER_BIN
    ? `lifecycle against the real Firecracker (${FIRECRACKER_BIN})`
    : "real-Firecracker lifecycle (skipped: FIRECRACKER_BIN not set)",
  () => {
    let d: SimDaemon;
    let bin: string;
    beforeAll(async () => {
      bin = realpathSync(FIRECRACKER_BIN!);
      d = await startSimDaemon({
        firecracker: FIRECRACKER_BIN!,
        sections: '[agent]\nreadiness = "vmm"',
      });
      expect(d.stderr()).not.toMatch(/SIMULATED/);
    });
    afterAll(async () => {
      await d?.[Symbol.asyncDispose]();
    });

    itStartsVm(
      "create → ready → inspect → stop (falls back to kill after 1 s) → remove, nothing left",
      async () => {
        const id = "rfc-life";
        const sub = await subscribe(d, { id });
        let pid = 0;
        try {
          await d.sandboxes.create({ id });
          const info = await waitForState(d, id, "ready", 20_000);
          pid = Number(info.pid);
          expect(pid).toBeGreaterThan(0);
          expect(readlinkSync(`/proc/${pid}/exe`)).toBe(bin);
          expect(info.kernel).toMatch(/vmlinux$/);
          expect(info.createdFrom).toBe("boot");
          expect(info.network).toBeUndefined();

          // No agent: Run is refused, saying why.
          const err = await (async () => {
            for await (const _ of d.sandboxes.run({ id, cmd: ["true"] })) break;
          })().then(
            () => undefined,
            (e: unknown) => ConnectError.from(e),
          );
          expect(err?.code).toBe(Code.FailedPrecondition);
          expect(err?.rawMessage).toMatch(/readiness/);

          const t0 = Date.now();
          await d.sandboxes.stop({ id, timeoutSeconds: 1 });
          const took = Date.now() - t0;
          expect(took).toBeGreaterThanOrEqual(900); // it did wait for a graceful stop first
          expect(took).toBeLessThan(6000);
          const stopped = await d.sandboxes.inspect({ id });
          expect(stopped.state).toBe("stopped");
          expect(processesMatching(resolve(d.dataDir, "sandboxes", id))).toEqual([]);

          await d.sandboxes.remove({ id });
          const actions = await sub.waitFor((a) => a.includes("removed"));
          expect(actions).toEqual(["created", "ready", "stopping", "stopped", "removed"]);
          expect(sub.events.find((e) => e.action === "stopped")?.attributes.signal).toBe("SIGKILL");
          expect(leftovers(d, [id], [pid])).toEqual([]);
        } finally {
          sub.close();
          await d.sandboxes.remove({ id, force: true }).catch(() => {});
        }
      },
    );

    itStartsVm("removes a just-created sandbox with force promptly, leaving nothing", async () => {
      const id = "rfc-force";
      try {
        await d.sandboxes.create({ id });
        const info = await waitForState(d, id, "ready", 20_000);
        const pid = Number(info.pid);
        expect(readlinkSync(`/proc/${pid}/exe`)).toBe(bin);
        const t0 = Date.now();
        await d.sandboxes.remove({ id, force: true });
        expect(Date.now() - t0).toBeLessThan(2000);
        await expect(d.sandboxes.inspect({ id })).rejects.toThrow(/not found/i);
        expect(leftovers(d, [id], [pid])).toEqual([]);
      } finally {
        await d.sandboxes.remove({ id, force: true }).catch(() => {});
      }
    });

    it("removes a sandbox with force while it is still starting", async () => {
      const id = "rfc-starting";
      try {
        const created = await d.sandboxes.create({ id });
        expect(created.state).toBe("starting");
        const t0 = Date.now();
        await d.sandboxes.remove({ id, force: true });
        expect(Date.now() - t0).toBeLessThan(2000);
        expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
        expect(leftovers(d, [id], [])).toEqual([]);
      } finally {
        await d.sandboxes.remove({ id, force: true }).catch(() => {});
      }
    });
  },
);

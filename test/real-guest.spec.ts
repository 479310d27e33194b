import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvmUnavailable } from "../packages/vmm-daemon/test/kvm.js";
import {
  leftovers,
  runShell,
  type SimDaemon,
  startSimDaemon,
  waitForState,
} from "../packages/vmm-daemon/test/sim-daemon.js";

/**
 * The real-guest suite (`pnpm test:real-guest`): our kernel and rootfs booted by the real Firecracker,
 * the agent reached over vsock. It needs a host where guests boot: VMM_REAL_GUEST=1, FIRECRACKER_BIN,
 * a usable /dev/kvm and a built guest kernel (bash guest/kernel/build.sh). Elsewhere it skips, saying
 * which of these is missing.
 */
const root = resolve(import.meta.dirname, "..");
const FIRECRACKER_BIN = process.env.FIRECRACKER_BIN;

function prerequisites(): { ready: true; kernel: string } | { ready: false; why: string } {
  if (process.env.VMM_REAL_GUEST !== "1") return { ready: false, why: "VMM_REAL_GUEST=1 not set" };
  if (!FIRECRACKER_BIN) return { ready: false, why: "FIRECRACKER_BIN not set" };
  const noKvm = kvmUnavailable();
  if (noKvm) return { ready: false, why: noKvm };
  const check = spawnSync("bash", [resolve(root, "guest/kernel/build.sh"), "--check"], {
    encoding: "utf8",
  });
  if (check.status !== 0)
    return { ready: false, why: "no guest kernel built (bash guest/kernel/build.sh)" };
  return { ready: true, kernel: check.stdout.trim() };
}

const pre = prerequisites();
if (process.env.VMM_REAL_GUEST === "1" && !pre.ready) {
  process.stderr.write(`real-guest.spec: skipped: ${pre.why}\n`);
}

/** Runs `fn`, returning its result and how long it took in ms. */
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await fn();
  return [out, Math.round(performance.now() - t0)];
}

describe.skipIf(!pre.ready)(
  pre.ready ? "real guest under Firecracker" : `real guest under Firecracker (skipped: ${pre.why})`,
  () => {
    let d: SimDaemon;
    const ids: string[] = [];
    const fcPids: number[] = [];
    const times: Record<string, number> = {};

    beforeAll(async () => {
      d = await startSimDaemon({
        firecracker: FIRECRACKER_BIN!,
        sections: `[defaults]\nmemory_mib = 256\nkernel = "${pre.ready ? pre.kernel : ""}"`,
      });
      expect(d.stderr()).not.toMatch(/SIMULATED/);
    });
    afterAll(async () => {
      // A VM whose guest misbehaves spins a core: remove everything first, then report.
      for (const id of ids) await d?.sandboxes.remove({ id, force: true }).catch(() => {});
      if (d) expect(leftovers(d, ids, fcPids)).toEqual([]);
      await d?.[Symbol.asyncDispose]();
      console.info(`real-guest times (ms): ${JSON.stringify(times)}`);
    });

    it("boots to ready through the agent; the guest is our kernel with the agent as PID 1", async () => {
      const id = "rg-boot";
      ids.push(id);
      const [info, ms] = await timed(async () => {
        await d.sandboxes.create({ id });
        return waitForState(d, id, "ready", 60_000);
      });
      times.bootToReady = ms;
      fcPids.push(Number(info.pid));
      const r = await runShell(d, id, "readlink /proc/1/exe; hostname; uname -r");
      expect(r.exit).toBe(0);
      const [init, hostname, kernel] = r.out.trim().split("\n");
      expect(init).toBe("/sbin/vmm-agent");
      expect(hostname).toBe(id);
      expect(kernel).toMatch(/^6\.1\./);
    });

    it("runs Exec on a TTY", async () => {
      let out = "";
      let exit = -1;
      async function* inputs() {
        yield {
          payload: {
            case: "init" as const,
            value: {
              id: "rg-boot",
              cmd: ["sh", "-c", "tty; stty size"],
              tty: true,
              ttySize: { width: 90, height: 30 },
            },
          },
        };
      }
      for await (const o of d.sandboxes.exec(inputs())) {
        if (o.done) exit = o.exitCode;
        else out += Buffer.from(o.data).toString();
      }
      expect(exit).toBe(0);
      expect(out).toMatch(/\/dev\/pts\/\d+\r?\n30 90/);
    });

    it("checkpoints and restores: the clone answers, re-identified (its own hostname)", async () => {
      const snap = await d.snapshots.checkpoint({ sandboxId: "rg-boot", name: "rg" });
      const id = "rg-clone";
      ids.push(id);
      const [, ms] = await timed(() => d.snapshots.restore({ snapshotId: snap.snapshotId, id }));
      times.restoreToReady = ms;
      fcPids.push(Number((await d.sandboxes.inspect({ id })).pid));
      expect(await runShell(d, id, "hostname")).toEqual({ out: `${id}\n`, exit: 0 });
      expect(await runShell(d, "rg-boot", "hostname")).toEqual({ out: "rg-boot\n", exit: 0 });
    });

    it("pauses and resumes: memory to disk, no process, then answers again", async () => {
      const [, pauseMs] = await timed(() => d.sandboxes.pause({ id: "rg-clone" }));
      times.pause = pauseMs;
      const [, resumeMs] = await timed(() => d.sandboxes.resume({ id: "rg-clone" }));
      times.resumeToReady = resumeMs;
      expect((await runShell(d, "rg-clone", "echo back")).out).toBe("back\n");
    });
  },
);

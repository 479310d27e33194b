// One sandbox's life through the CLI, against two daemons:
// - the daemon's services in this process (in-process-daemon.ts, always);
// - the daemon binary driving fc-sim, started by the daemon's own test harness
//   (startSimDaemon: the built dist/vmm-daemon.mjs with a generated config).
//   It runs by default whenever the daemon is built (the vitest global setup
//   builds it); VMM_E2E_DAEMON=0 skips it, VMM_E2E_DAEMON=1 makes a missing
//   build an error, and VMM_E2E_SOCKET points it at an already running daemon.
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAEMON_BIN } from "../../vmm-daemon/test/daemon-process.js";
import { startSimDaemon } from "../../vmm-daemon/test/sim-daemon.js";
import { runVmm, startVmm } from "./harness.js";
import { startInProcessDaemon } from "./in-process-daemon.js";

interface Target {
  readonly socket: string;
  close(): Promise<void>;
}

const wantReal = process.env.VMM_E2E_DAEMON ?? "auto";
const external = process.env.VMM_E2E_SOCKET;
const realAvailable = external !== undefined || existsSync(DAEMON_BIN);
if (wantReal === "1" && !realAvailable) {
  throw new Error(`VMM_E2E_DAEMON=1 but ${DAEMON_BIN} is not built (run scripts/build.mjs)`);
}
const runReal = wantReal !== "0" && realAvailable;

async function startReal(): Promise<Target> {
  if (external) return { socket: external, close: async () => {} };
  const d = await startSimDaemon();
  return {
    socket: d.socket,
    close: async () => {
      await d[Symbol.asyncDispose]();
    },
  };
}

async function startInProcess(): Promise<Target> {
  const d = await startInProcessDaemon();
  return {
    socket: d.socket,
    close: async () => {
      await d[Symbol.asyncDispose]();
    },
  };
}

function lifecycle(name: string, start: () => Promise<Target>) {
  describe(`sandbox lifecycle through vmm (${name})`, () => {
    let d: Target;
    const id = `life-${process.pid}`;
    const vmm = (args: string[]) => runVmm(args, { socket: d.socket, timeoutMs: 60_000 });

    beforeAll(async () => {
      d = await start();
    });
    afterAll(async () => {
      if (d) await vmm(["rm", "--force", id]);
      await d?.close();
    });

    it("create --wait, list, inspect, run, stop, remove", async () => {
      const c = await vmm(["create", "--id", id, "--label", "suite=lifecycle", "--wait"]);
      expect(c.stderr).toBe("");
      expect(c.code).toBe(0);
      expect(c.out).toBe(`${id}\n`);

      const l = JSON.parse((await vmm(["list", "--label", "suite=lifecycle", "-o", "json"])).out);
      expect(l.sandboxes.map((s: { id: string }) => s.id)).toEqual([id]);

      const i = JSON.parse((await vmm(["inspect", id, "-o", "json"])).out);
      expect(i).toMatchObject({ id, state: "ready", labels: { suite: "lifecycle" } });

      const r = await vmm(["run", id, "--", "echo", "hello", "world"]);
      expect(r.code).toBe(0);
      expect(r.out).toBe("hello world\n");

      const v = await vmm(["version"]);
      expect(v.code).toBe(0);
      expect(v.out).toMatch(/^Client: .+\nDaemon: .+\n$/);

      expect((await vmm(["stop", id])).code).toBe(0);
      expect(JSON.parse((await vmm(["inspect", id, "-o", "json"])).out).state).toBe("stopped");
      expect((await vmm(["rm", id])).out).toBe(`${id}\n`);
      expect((await vmm(["inspect", id])).code).toBe(3);
    });
  });
}

lifecycle("in-process daemon", startInProcess);

describe.skipIf(!runReal)(
  runReal
    ? "the CLI against the real daemon (fc-sim)"
    : "the CLI against the real daemon (skipped: daemon not built or VMM_E2E_DAEMON=0)",
  () => {
    lifecycle("real daemon", startReal);

    describe("commands that need a real guest", () => {
      let d: Target;
      const id = `cli-e2e-${process.pid}`;
      const vmm = (args: string[], input?: string) =>
        runVmm(args, {
          socket: d.socket,
          timeoutMs: 60_000,
          ...(input !== undefined && { input }),
        });

      beforeAll(async () => {
        d = await startReal();
      });
      afterAll(async () => {
        if (d) await vmm(["rm", "--force", id]);
        await d?.close();
      });

      it("run passes the exit code and keeps stdout/stderr apart; exec -i forwards stdin; events streams the life", async () => {
        // Events from before the sandbox exists (--id may name a future sandbox).
        const events = startVmm(["events", "--id", id, "-o", "json"], {
          socket: d.socket,
          timeoutMs: 60_000,
        });
        await sleep(500); // let the subscription register before the first event

        const c = await vmm(["create", "--id", id, "--wait"]);
        expect(c.code).toBe(0);
        expect(c.out).toBe(`${id}\n`);

        const r = await vmm(["run", id, "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
        expect(r.code).toBe(3);
        expect(r.out).toBe("out\n");
        expect(r.stderr).toBe("err\n");
        expect((await vmm(["run", id, "--", "sh", "-c", "kill -9 $$"])).code).toBe(137);
        expect((await vmm(["run", id, "--", "/no/such/binary"])).code).toBe(127);

        const e = await vmm(
          ["exec", "-i", id, "--", "sh", "-c", "tr a-z A-Z; exit 4"],
          "hello\nvm\n",
        );
        expect(e.code).toBe(4);
        expect(e.out).toBe("HELLO\nVM\n");

        const i = JSON.parse((await vmm(["inspect", id, "-o", "json"])).out);
        expect(i).toMatchObject({ id, state: "ready" });

        expect((await vmm(["stop", "--timeout", "5s", id])).code).toBe(0);
        expect(JSON.parse((await vmm(["inspect", id, "-o", "json"])).out).state).toBe("stopped");
        expect((await vmm(["rm", id])).code).toBe(0);
        expect((await vmm(["inspect", id])).code).toBe(3);

        await sleep(300);
        events.child.kill("SIGINT");
        const ev = await events.result;
        expect(ev.code).toBe(0);
        const lines = ev.out
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => JSON.parse(l) as { sandboxId?: string; action: string });
        expect(lines.every((l) => l.sandboxId === id)).toBe(true);
        expect(lines.map((l) => l.action)).toEqual([
          "created",
          "ready",
          ...Array(4).fill(["running", "idle"]).flat(),
          "stopping",
          "stopped",
          "removed",
        ]);
      });
    });
  },
);

import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SimDaemon, startSimDaemon, subscribe, waitForState } from "./sim-daemon.js";

// The daemon caches the proto messages of each sandbox view (vmm-grpc
// ViewMessages) as long as SandboxManager hands out the same view object.
// These checks read List and Inspect right after each change, with no
// polling, after having read them (filling the caches) before it.

const code = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: unknown) => (e instanceof ConnectError ? Code[e.code] : String(e)),
  );

describe("List and Inspect never show a stale sandbox (fc-sim)", () => {
  let d: SimDaemon;
  beforeAll(async () => {
    d = await startSimDaemon({
      sections: "[agent]\nboot_timeout_ms = 60000",
      env: { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" },
    });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  /** Inspect and the List entry of `id`, each read twice (the second from the caches). */
  const read = async (id: string) => {
    const labels = { suite: "fresh" };
    await d.sandboxes.inspect({ id });
    await d.sandboxes.list({ labels });
    const info = await d.sandboxes.inspect({ id });
    const listed = (await d.sandboxes.list({ labels })).sandboxes.find((s) => s.id === id);
    return { info, listed };
  };

  it("state, readyAt, lastExitCode, lastExitedAt and error show at once; labels stay", async () => {
    const id = "fresh-1";
    const sub = await subscribe(d, { id });
    try {
      await d.sandboxes.create({ id, labels: { suite: "fresh", team: "a" } });
      const starting = await read(id);
      // Still booting (fc-sim takes far longer than four local calls): nothing ready yet.
      expect(starting.info).toMatchObject({ state: "starting", readyAt: 0n, lastExitCode: 0 });
      expect(starting.listed).toMatchObject({ state: "starting" });

      await sub.waitFor((a) => a.includes("ready"), 60_000);
      const ready = await read(id);
      expect(ready.info.state).toBe("ready");
      expect(ready.info.readyAt).toBeGreaterThan(0n);
      expect(ready.listed).toMatchObject({ state: "ready", labels: { suite: "fresh", team: "a" } });

      // A Run with output: Inspect reads "running" between its messages.
      for await (const o of d.sandboxes.run({ id, cmd: ["sh", "-c", "echo x; sleep 0.3"] })) {
        if (!o.done) expect((await read(id)).info.state).toBe("running");
      }
      expect((await read(id)).info.state).toBe("ready");

      for (const exitCode of [3, 5]) {
        let done = -1;
        for await (const o of d.sandboxes.run({ id, cmd: ["sh", "-c", `exit ${exitCode}`] })) {
          if (o.done) done = o.exitCode;
        }
        expect(done).toBe(exitCode);
        const after = await read(id);
        expect(after.info).toMatchObject({ state: "ready", lastExitCode: exitCode });
        expect(after.info.lastExitedAt).toBeGreaterThan(0n);
        expect(after.listed).toMatchObject({ state: "ready" });
      }

      process.kill(Number(ready.info.pid), "SIGKILL");
      await sub.waitFor((a) => a.includes("failed"), 10_000);
      const failed = await read(id);
      expect(failed.info.state).toBe("failed");
      expect(failed.info.error).toContain("SIGKILL");
      expect(failed.info.lastExitCode).toBe(5);
      expect(failed.info.labels).toEqual({ suite: "fresh", team: "a" });
      expect(failed.listed).toMatchObject({ state: "failed" });

      await d.sandboxes.remove({ id });
      await expect(code(d.sandboxes.inspect({ id }))).resolves.toBe("NotFound");
      expect((await d.sandboxes.list({ labels: { suite: "fresh" } })).sandboxes).toEqual([]);
    } finally {
      sub.close();
    }
  });

  it("stop: stopping then stopped, each visible as soon as its event arrives", async () => {
    const id = "fresh-2";
    const sub = await subscribe(d, { id });
    try {
      await d.sandboxes.create({ id, labels: { suite: "fresh" } });
      await waitForState(d, id, "ready", 60_000);
      await read(id);
      const stopped = d.sandboxes.stop({ id, timeoutSeconds: 5 });
      await sub.waitFor((a) => a.includes("stopping"));
      expect(["stopping", "stopped"]).toContain((await read(id)).info.state);
      await stopped;
      const after = await read(id);
      expect(after.info.state).toBe("stopped");
      expect(after.listed).toMatchObject({ state: "stopped" });
      await d.sandboxes.remove({ id });
    } finally {
      sub.close();
    }
  });
});

import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { EVENT_ACTIONS, SANDBOX_STATES } from "@vmm/proto/wire";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  leftovers,
  processesMatching,
  type SimDaemon,
  settledLeftovers,
  startSimDaemon,
  subscribe,
  waitForState,
} from "./sim-daemon.js";

const code = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: unknown) => (e instanceof ConnectError ? Code[e.code] : String(e)),
  );

describe("sandbox lifecycle over gRPC with fc-sim", () => {
  let d: SimDaemon;
  beforeAll(async () => {
    // fc-sim is a Node process: 50 of them starting at once on 2 cores take seconds.
    d = await startSimDaemon({
      sections:
        "[limits]\nmax_concurrent_creates = 64\nmax_sandboxes = 64\n[agent]\nboot_timeout_ms = 60000",
      env: { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" },
    });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
  });

  it("create → ready → run → stop → remove, with events in order and nothing left", async () => {
    const id = "life-1";
    const sub = await subscribe(d, { id });
    const created = await d.sandboxes.create({ id, labels: { team: "a" } });
    expect(created).toMatchObject({ id, state: "starting", ipAddress: "" });
    const info = await waitForState(d, id, "ready");
    expect(info.labels).toEqual({ team: "a" });
    expect(Number(info.limits?.memoryMib)).toBe(128);
    expect(info.limits?.vcpus).toBe(1);
    expect(info.createdFrom).toBe("boot");
    expect(info.readyAt).toBeGreaterThanOrEqual(info.createdAt);
    const pid = Number(info.pid);
    expect(pid).toBeGreaterThan(0);

    const out: string[] = [];
    let exit = -1;
    for await (const o of d.sandboxes.run({
      id,
      cmd: ["sh", "-c", "echo hi; echo oops >&2; exit 7"],
    })) {
      if (o.done) exit = o.exitCode;
      else out.push(`${o.stream}:${Buffer.from(o.data).toString()}`);
    }
    expect(exit).toBe(7);
    expect(out).toEqual(["stdout:hi\n", "stderr:oops\n"]);
    const after = await d.sandboxes.inspect({ id });
    expect(after.lastExitCode).toBe(7);
    expect(after.state).toBe("ready");

    await d.sandboxes.stop({ id, timeoutSeconds: 5 });
    expect((await d.sandboxes.inspect({ id })).state).toBe("stopped");
    await d.sandboxes.remove({ id });
    await expect(code(d.sandboxes.inspect({ id }))).resolves.toBe("NotFound");
    const actions = await sub.waitFor((a) => a.includes("removed"));
    sub.close();
    expect(actions).toEqual([
      "created",
      "ready",
      "running",
      "idle",
      "stopping",
      "stopped",
      "removed",
    ]);
    expect(sub.events.find((e) => e.action === "idle")?.attributes.exit_code).toBe("7");
    expect(leftovers(d, [id], [pid])).toEqual([]);
  });

  it("is idempotent by id: same spec returns the sandbox, a different spec is ALREADY_EXISTS", async () => {
    const id = "idem-1";
    const a = await d.sandboxes.create({ id, labels: { x: "1" } });
    const b = await d.sandboxes.create({ id, labels: { x: "1" } });
    expect(b.id).toBe(a.id);
    await expect(code(d.sandboxes.create({ id, labels: { x: "2" } }))).resolves.toBe(
      "AlreadyExists",
    );
    await waitForState(d, id, "ready");
    await d.sandboxes.remove({ id, force: true });
  });

  it("filters List by state and labels and rejects unknown states and actions", async () => {
    await d.sandboxes.create({ id: "flt-a", labels: { env: "dev", team: "x" } });
    await d.sandboxes.create({ id: "flt-b", labels: { env: "prod" } });
    await waitForState(d, "flt-a", "ready");
    await waitForState(d, "flt-b", "ready");
    const dev = await d.sandboxes.list({ labels: { env: "dev" } });
    expect(dev.sandboxes.map((s) => s.id)).toEqual(["flt-a"]);
    const both = await d.sandboxes.list({ labels: { env: "dev", team: "y" } });
    expect(both.sandboxes).toEqual([]);
    const ready = await d.sandboxes.list({ state: "ready" });
    expect(ready.sandboxes.map((s) => s.id)).toEqual(expect.arrayContaining(["flt-a", "flt-b"]));
    expect((await d.sandboxes.list({ state: "stopped" })).sandboxes.map((s) => s.id)).not.toContain(
      "flt-a",
    );
    await expect(code(d.sandboxes.list({ state: "sleeping" }))).resolves.toBe("InvalidArgument");
    const bad = d.sandboxes.events({ action: "exploded" });
    await expect(
      code(
        (async () => {
          for await (const _ of bad) break;
        })(),
      ),
    ).resolves.toBe("InvalidArgument");
    await d.sandboxes.remove({ id: "flt-a" });
    await d.sandboxes.remove({ id: "flt-b" });
  });

  it("List and Events filters accept exactly the wire contract's lists (@vmm/proto/wire)", async () => {
    for (const state of SANDBOX_STATES)
      await expect(code(d.sandboxes.list({ state }))).resolves.toBe("ok");
    expect(SANDBOX_STATES).toContain("paused");
    // Anything else is refused, with the list.
    const unknown = await d.sandboxes.list({ state: "hibernated" }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(ConnectError);
    expect((unknown as ConnectError).code).toBe(Code.InvalidArgument);
    expect((unknown as ConnectError).rawMessage).toBe(
      `state: unknown state "hibernated"; use one of ${SANDBOX_STATES.join(", ")}`,
    );
    expect(EVENT_ACTIONS).toEqual(
      expect.arrayContaining(["paused", "resumed", "checkpointed", "restored"]),
    );
    // Each action is a valid filter: the stream opens and waits (ended here by the client).
    await Promise.all(
      EVENT_ACTIONS.map(async (action) => {
        const stream = d.sandboxes.events({ action }, { signal: AbortSignal.timeout(500) });
        await expect(
          code(
            (async () => {
              for await (const _ of stream) break;
            })(),
          ),
        ).resolves.toBe("Canceled");
      }),
    );
  });

  it("removes a sandbox when its TTL expires, saying so in the event", async () => {
    const id = "ttl-1";
    const sub = await subscribe(d, { id, action: "removed" });
    await d.sandboxes.create({ id, ttlSeconds: 1 });
    const info = await d.sandboxes.inspect({ id });
    expect(Number(info.expiresAt) - Number(info.createdAt)).toBe(1);
    await sub.waitFor((a) => a.includes("removed"), 5000);
    sub.close();
    expect(sub.events[0]?.attributes.reason).toBe("ttl");
    await expect(code(d.sandboxes.inspect({ id }))).resolves.toBe("NotFound");
  });

  it("marks the sandbox failed within 1 s when Firecracker is killed from outside, releasing it", async () => {
    const id = "kill-1";
    await d.sandboxes.create({ id });
    const info = await waitForState(d, id, "ready");
    const pid = Number(info.pid);
    const t0 = Date.now();
    process.kill(pid, "SIGKILL");
    const failed = await waitForState(d, id, "failed", 1000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(failed.error).toContain("SIGKILL");
    await expect(
      code(
        d.sandboxes
          .run({ id, cmd: ["true"] })
          [Symbol.asyncIterator]()
          .next(),
      ),
    ).resolves.toBe("FailedPrecondition");
    await d.sandboxes.remove({ id });
    expect(await settledLeftovers(d, [id], [pid])).toEqual([]);
  });

  it("rejects bad input with the right codes, naming the field", async () => {
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [() => d.sandboxes.create({ id: "../etc" }), "InvalidArgument", /id/],
      [() => d.sandboxes.create({ id: "A".repeat(3) }), "InvalidArgument", /id/],
      [() => d.sandboxes.create({ id: "x".repeat(200) }), "InvalidArgument", /id/],
      [() => d.sandboxes.create({ image: "Bad Ref" }), "InvalidArgument", /image/],
      [
        () => d.sandboxes.create({ image: "127.0.0.1:9/a:1", rootfs: "rootfs.ext4" }),
        "InvalidArgument",
        /image/,
      ],
      [
        () => d.sandboxes.create({ network: { mode: "bridge" } }),
        "InvalidArgument",
        /network\.mode/,
      ],
      [() => d.sandboxes.create({ limits: { vcpus: 99 } }), "InvalidArgument", /limits\.vcpus/],
      [() => d.sandboxes.create({ limits: { vcpus: 3 } }), "InvalidArgument", /limits\.vcpus/],
      [
        () => d.sandboxes.create({ limits: { memoryMib: 1n } }),
        "InvalidArgument",
        /limits\.memory_mib/,
      ],
      [() => d.sandboxes.create({ kernel: "../../../etc/passwd" }), "InvalidArgument", /kernel/],
      [() => d.sandboxes.create({ rootfs: "missing.ext4" }), "NotFound", /rootfs/],
      [() => d.sandboxes.create({ env: { A: "b" } }), "InvalidArgument", /cmd/],
      [() => d.sandboxes.create({ labels: { "": "x" } }), "InvalidArgument", /labels/],
      [() => d.sandboxes.create({ bootArgs: "a\nb" }), "InvalidArgument", /boot_args/],
      [() => d.sandboxes.create({ bootArgs: "x".repeat(1600) }), "InvalidArgument", /boot_args/],
      [() => d.sandboxes.create({ cmd: ["echo", "a\0b"] }), "InvalidArgument", /cmd\[1\]/],
      [
        () => d.sandboxes.create({ cmd: ["true"], workingDir: "tmp" }),
        "InvalidArgument",
        /working_dir/,
      ],
      [
        () => d.sandboxes.create({ mounts: [{ source: "/", target: "/h" }] }),
        "Unimplemented",
        /mounts/,
      ],
      [() => d.sandboxes.inspect({ id: "" }), "InvalidArgument", /id/],
      [() => d.sandboxes.inspect({ id: "nope" }), "NotFound", /nope/],
      [() => d.sandboxes.stop({ id: "nope" }), "NotFound", /nope/],
      [() => d.sandboxes.remove({ id: "nope" }), "NotFound", /nope/],
    ];
    for (const [call, want, msg] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e as ConnectError,
      );
      expect(err, `${want} ${msg}`).toBeInstanceOf(ConnectError);
      expect(Code[err!.code]).toBe(want);
      expect(err!.rawMessage).toMatch(msg);
    }
    expect((await d.sandboxes.list({})).sandboxes.map((s) => s.id)).toEqual([]);
  });

  it("refuses Remove while a workload runs unless forced; force kills it", async () => {
    const id = "busy-1";
    await d.sandboxes.create({ id });
    await waitForState(d, id, "ready");
    const run = (async () => {
      for await (const _ of d.sandboxes.run({ id, cmd: ["sleep", "30"] })) {
        // Output is not expected.
      }
    })().then(
      () => "ended",
      (e: unknown) => (e instanceof ConnectError ? Code[e.code] : String(e)),
    );
    await waitForState(d, id, "running");
    const err = await d.sandboxes.remove({ id }).catch((e: ConnectError) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((err as ConnectError).rawMessage).toMatch(/running a workload.*force/);
    expect((await d.sandboxes.inspect({ id })).state).toBe("running");
    await d.sandboxes.remove({ id, force: true });
    await expect(code(d.sandboxes.inspect({ id }))).resolves.toBe("NotFound");
    expect(await run).not.toBe("ended");
  });

  it("creates 50 sandboxes concurrently, then removes them all, leaving nothing", async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `many-${i}`);
    await Promise.all(ids.map((id) => d.sandboxes.create({ id })));
    const infos = await Promise.all(ids.map((id) => waitForState(d, id, "ready", 60_000)));
    const pids = infos.map((i) => Number(i.pid));
    expect(new Set(pids).size).toBe(50);
    await Promise.all(ids.map((id) => d.sandboxes.remove({ id })));
    expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
    expect(leftovers(d, ids, pids)).toEqual([]);
  }, 120_000);
});

describe("limits, boot timeout and restart", () => {
  it("fails with RESOURCE_EXHAUSTED naming the limit that ran out", async () => {
    await using d = await startSimDaemon({
      sections: "[limits]\nmax_sandboxes = 2\nmax_total_memory_mib = 1000",
    });
    await d.sandboxes.create({ id: "lim-1" });
    await expect(
      code(d.sandboxes.create({ id: "lim-big", limits: { memoryMib: 1000n } })),
    ).resolves.toBe("ResourceExhausted");
    await d.sandboxes.create({ id: "lim-2" });
    const err = await d.sandboxes.create({ id: "lim-3" }).catch((e: ConnectError) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toContain("limits.max_sandboxes");
    await waitForState(d, "lim-1", "ready");
    await waitForState(d, "lim-2", "ready");
  });

  it("fails a boot that exceeds agent.boot_timeout_ms and releases everything", async () => {
    // A guest without an agent never answers: the boot must time out.
    await using d = await startSimDaemon({
      sections: "[agent]\nboot_timeout_ms = 800",
      env: { FC_SIM_AGENT: "none" },
    });
    const sub = await subscribe(d, { id: "slow-1" });
    await d.sandboxes.create({ id: "slow-1" });
    const info = await waitForState(d, "slow-1", "failed", 5000);
    expect(info.error).toMatch(/boot timed out after 800 ms/);
    await sub.waitFor((a) => a.includes("failed"));
    sub.close();
    expect(sub.events.map((e) => e.action)).toEqual(["created", "failed"]);
    expect(processesMatching(resolve(d.dataDir, "sandboxes/slow-1"))).toEqual([]);
    await d.sandboxes.remove({ id: "slow-1" });
  });

  it("keeps records across a daemon crash: a live sandbox is re-adopted, one whose firecracker died meanwhile is failed and listed", async () => {
    const d1 = await startSimDaemon();
    await d1.sandboxes.create({ id: "keep-live" });
    await d1.sandboxes.create({ id: "keep-dead" });
    const live = await waitForState(d1, "keep-live", "ready");
    const dead = await waitForState(d1, "keep-dead", "ready");
    d1.child.kill("SIGKILL");
    await new Promise((r) => d1.child.once("exit", r));
    process.kill(Number(dead.pid), "SIGKILL");
    await sleep(100);
    const d2 = await startSimDaemon({ env: { VMM_FIRECRACKER_DATA_DIR: d1.dataDir } });
    try {
      const list = await d2.sandboxes.list({});
      expect(list.sandboxes.map((s) => [s.id, s.state])).toEqual([
        ["keep-live", "ready"],
        ["keep-dead", "failed"],
      ]);
      const info = await d2.sandboxes.inspect({ id: "keep-live" });
      expect(info.error).toBe("");
      expect(info.pid).toBe(live.pid);
      let exit = -1;
      for await (const o of d2.sandboxes.run({ id: "keep-live", cmd: ["true"] }))
        if (o.done) exit = o.exitCode;
      expect(exit).toBe(0);
      expect((await d2.sandboxes.inspect({ id: "keep-dead" })).error).toMatch(
        /exited while the daemon was down/,
      );
      await d2.sandboxes.remove({ id: "keep-live", force: true });
      await d2.sandboxes.remove({ id: "keep-dead" });
      expect(processesMatching(`${d1.dataDir}/sandboxes/keep-live`)).toEqual([]);
      expect(Number(live.pid)).toBeGreaterThan(0);
    } finally {
      await d2[Symbol.asyncDispose]();
      rmSync(d1.dir, { recursive: true, force: true });
    }
  });
});

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FailedPreconditionError } from "../errors.js";
import { silentLogger } from "../internal/index.js";
import { SandboxDir } from "../storage/index.js";
import { isLive, Sandbox, type SandboxPhase, type SandboxSpec, wireState } from "./sandbox.js";
import { SandboxRegistry } from "./sandbox-registry.js";
import type { SandboxView } from "./types.js";

const dataDir = await mkdtemp(join(tmpdir(), "vmm-sandbox-"));
afterAll(() => rm(dataDir, { recursive: true, force: true }));
let n = 0;

const spec = (id: string): SandboxSpec => ({
  id,
  requestKey: "k",
  labels: {},
  kernel: "/k",
  rootfs: "/r",
  bootArgs: "",
  vcpus: 1,
  memoryMib: 128,
  network: "none",
  ttlSeconds: 0,
  workload: undefined,
  createdFrom: "boot",
  snapshotId: undefined,
  createdAt: new Date(0),
  diskBytes: 0,
  hidden: false,
  autoPauseSeconds: 0,
});

const sandbox = async (phase?: SandboxPhase) => {
  const id = `sb-${++n}`;
  const dir = await SandboxDir.create(dataDir, id);
  return new Sandbox(spec(id), {
    dir,
    slot: undefined,
    log: silentLogger,
    ...(phase && { phase }),
  });
};

const view = (s: Sandbox): SandboxView =>
  ({ state: s.shownState, readyAt: s.readyAt }) as SandboxView;

describe("Sandbox phase (one discriminated union)", () => {
  it("derives the wire state: checkpointing shows ready, failing shows where it failed from", () => {
    const cases: [SandboxPhase, string][] = [
      [{ kind: "starting" }, "starting"],
      [{ kind: "checkpointing" }, "ready"],
      [{ kind: "running", workloads: 3 }, "running"],
      [{ kind: "stopping", done: Promise.resolve() }, "stopping"],
      [{ kind: "failing", from: "running", error: "x" }, "running"],
      [{ kind: "failed", error: "x" }, "failed"],
    ];
    for (const [phase, state] of cases) expect(wireState(phase), phase.kind).toBe(state);
    expect(isLive({ kind: "checkpointing" })).toBe(true);
    expect(isLive({ kind: "failing", from: "ready", error: "x" })).toBe(false);
    expect(isLive({ kind: "stopping", done: Promise.resolve() })).toBe(false);
  });

  it("changes the wire state only through the registry, which checks the state machine", async () => {
    const s = await sandbox({ kind: "ready" });
    expect(() => s.enter({ kind: "stopped" })).toThrow(/must go through the registry/);
    s.enter({ kind: "checkpointing" }); // same wire state: allowed directly
    s.endCheckpoint();
    expect(s.phase.kind).toBe("ready");
    const stopped = await sandbox({ kind: "stopped" });
    const registry = new SandboxRegistry(silentLogger);
    registry.readd(stopped);
    await expect(registry.transition(stopped, { kind: "ready" }, {})).rejects.toBeInstanceOf(
      FailedPreconditionError,
    );
    expect(stopped.state).toBe("stopped");
  });

  it("a checkpoint ending after a Stop leaves the sandbox stopping", async () => {
    const s = await sandbox({ kind: "checkpointing" });
    const registry = new SandboxRegistry(silentLogger);
    registry.readd(s);
    await registry.transition(s, { kind: "stopping", done: Promise.resolve() }, {});
    s.endCheckpoint();
    expect(s.state).toBe("stopping");
  });

  it("settles when it leaves starting, and writes the record before the event", async () => {
    const s = await sandbox();
    let settled = false;
    void s.settled.then(() => {
      settled = true;
    });
    const registry = new SandboxRegistry(silentLogger);
    registry.add(s, {});
    const ac = new AbortController();
    const events = registry.events({ id: s.id }, ac.signal)[Symbol.asyncIterator]();
    const first = events.next(); // subscribes
    await registry.transition(s, { kind: "ready" }, {});
    const next = await first;
    expect(next.value?.action).toBe("ready");
    expect((await s.dir.readRecord()) as { state: string }).toMatchObject({ state: "ready" });
    expect(settled).toBe(true);
    ac.abort();
  });

  it("keeps one view object until something about the sandbox changes", async () => {
    const s = await sandbox({ kind: "ready" });
    const a = s.view(view);
    expect(s.view(view)).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    s.markReady(new Date(5));
    const b = s.view(view);
    expect(b).not.toBe(a);
    expect(b.readyAt).toEqual(new Date(5));
    s.enter({ kind: "checkpointing" });
    expect(s.view(view)).not.toBe(b);
  });

  it("shows a new state only once its record is on disk", async () => {
    const s = await sandbox();
    const registry = new SandboxRegistry(silentLogger);
    registry.add(s, {});
    const written = registry.transition(s, { kind: "ready" }, {});
    const stopping = registry.transition(s, { kind: "stopping", done: Promise.resolve() }, {});
    expect(s.state).toBe("stopping"); // decided
    expect(s.shownState).toBe("starting"); // not on disk yet
    expect(s.view(view).state).toBe("starting");
    await written;
    await stopping;
    expect(s.shownState).toBe("stopping");
    expect((await s.dir.readRecord()) as { state: string }).toMatchObject({ state: "stopping" });
    // ready ⇄ running is not written: shown at once.
    const r = await sandbox({ kind: "ready" });
    registry.readd(r);
    const running = registry.transition(r, { kind: "running", workloads: 1 }, {});
    expect(r.shownState).toBe("running");
    await running;
  });
});

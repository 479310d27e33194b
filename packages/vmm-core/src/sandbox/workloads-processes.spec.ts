import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { AgentClient, AgentProcess, OutputEvent } from "../agent/index.js";
import { AlreadyExistsError, FailedPreconditionError, VmmError } from "../errors.js";
import { BackgroundTasks, silentLogger } from "../internal/index.js";
import { SandboxDir } from "../storage/index.js";
import type { SandboxContext } from "./context.js";
import { ProcessNotFoundError } from "./process-table.js";
import { Processes } from "./processes.js";
import { Sandbox, type SandboxPhase, type SandboxSpec } from "./sandbox.js";
import { SandboxRegistry } from "./sandbox-registry.js";
import type { ProcessOutput, ProcessSpec } from "./types.js";
import { Workloads } from "./workloads.js";

// Workloads fills each sandbox's ProcessTable; Processes answers from it. The agent is a
// fake that behaves like ours: STARTED gives the pid, a SIGNAL ends the process with EXIT.

const dataDir = await mkdtemp(join(tmpdir(), "vmm-processes-"));
afterAll(() => rm(dataDir, { recursive: true, force: true }));

/** An agent process whose exit comes when it is signalled (or `exit()` is called). */
class FakeProcess {
  readonly kills: number[] = [];
  closed = false;
  #end: (e: OutputEvent) => void = () => {};
  readonly #ended = new Promise<OutputEvent>((r) => (this.#end = r));
  constructor(readonly pid: number | undefined) {}
  async *[Symbol.asyncIterator](): AsyncGenerator<OutputEvent> {
    if (this.pid === undefined) {
      yield { exit: { code: 127, timedOut: false, error: "not found" } };
      return;
    }
    yield await this.#ended;
  }
  async kill(signal: number): Promise<void> {
    if (this.closed) throw new FailedPreconditionError("the process session is closed");
    this.kills.push(signal);
    this.#end({ exit: { code: null, signal, timedOut: false } });
  }
  exit(code: number): void {
    this.#end({ exit: { code, timedOut: false } });
  }
  close(): void {
    this.closed = true;
  }
}

let n = 0;
async function setup(options: { phase?: SandboxPhase; runFails?: boolean } = {}) {
  const registry = new SandboxRegistry(silentLogger);
  const ctx = {
    opts: { agent: { readiness: "agent" }, lifecycle: { autoResume: false } },
    registry,
    tasks: new BackgroundTasks(silentLogger),
    log: silentLogger,
    closing: () => false,
  } as unknown as SandboxContext;
  const id = `wp-${++n}`;
  const spec = { id, hidden: false, autoPauseSeconds: 0, labels: {} } as unknown as SandboxSpec;
  const s = new Sandbox(spec, {
    dir: await SandboxDir.create(dataDir, id),
    slot: undefined,
    log: silentLogger,
    phase: options.phase ?? { kind: "ready" },
  });
  registry.readd(s);
  const started: FakeProcess[] = [];
  let nextPid = 100;
  const agent = {
    run: async (req: { argv: readonly string[] }) => {
      if (options.runFails) throw new VmmError("unavailable", "agent gone");
      const p = new FakeProcess(req.argv[0] === "missing" ? undefined : nextPid++);
      started.push(p);
      return p as unknown as AgentProcess;
    },
    close: () => {},
  } as unknown as AgentClient;
  s.setAgent(agent);
  const workloads = new Workloads(ctx, async () => {});
  return { id, s, workloads, processes: new Processes(ctx), started };
}

const spec = (over: Partial<ProcessSpec> = {}): ProcessSpec => ({
  cmd: ["sleep", "1000"],
  env: {},
  tty: false,
  timeoutSeconds: 0,
  ...over,
});

async function drain(output: AsyncIterable<ProcessOutput>): Promise<ProcessOutput[]> {
  const out: ProcessOutput[] = [];
  for await (const o of output) out.push(o);
  return out;
}

describe("Workloads → ProcessTable → Processes", () => {
  it("lists a process from STARTED; a TERM by tag reaches its group and its EXIT unlists it", async () => {
    const { id, workloads, processes, started } = await setup();
    const before = Date.now();
    const session = await workloads.exec(
      id,
      spec({ tag: "web", tty: true }),
      AbortSignal.timeout(10_000),
    );
    const [listed] = processes.list(id);
    expect(listed).toMatchObject({ pid: 100, cmd: ["sleep", "1000"], tag: "web", tty: true });
    expect(listed?.startedAt.getTime()).toBeGreaterThanOrEqual(before);
    const out = drain(session.output);
    await processes.signal(id, { tag: "web" }, "TERM");
    expect(started[0]?.kills).toEqual([15]);
    expect((await out).at(-1)).toMatchObject({ kind: "exit", exitCode: 143, signal: "SIGTERM" });
    expect(processes.list(id)).toEqual([]);
    await expect(processes.signal(id, { pid: 100 }, "KILL")).rejects.toThrow(ProcessNotFoundError);
  });

  it("the EXIT unlists the process before the caller sees the final output", async () => {
    const { id, workloads, processes, started } = await setup();
    const session = await workloads.run(id, spec({ tag: "job" }), AbortSignal.timeout(10_000));
    started[0]?.exit(0);
    for await (const o of session.output) {
      if (o.kind === "exit") expect(processes.list(id)).toEqual([]);
    }
  });

  it("a second start with a tag in use is ALREADY_EXISTS; the tag is free once the first ends", async () => {
    const { id, workloads, processes, started } = await setup();
    const first = await workloads.exec(id, spec({ tag: "dup" }), AbortSignal.timeout(10_000));
    await expect(
      workloads.exec(id, spec({ tag: "dup" }), AbortSignal.timeout(10_000)),
    ).rejects.toThrow(AlreadyExistsError);
    expect(started).toHaveLength(1); // the agent was never asked
    started[0]?.exit(0);
    await drain(first.output);
    const again = await workloads.exec(id, spec({ tag: "dup" }), AbortSignal.timeout(10_000));
    expect(processes.list(id).map((p) => p.tag)).toEqual(["dup"]);
    started[1]?.exit(0);
    await drain(again.output);
  });

  it("two concurrent starts with one tag: exactly one wins", async () => {
    const { id, workloads } = await setup();
    const results = await Promise.allSettled([
      workloads.exec(id, spec({ tag: "race" }), AbortSignal.timeout(10_000)),
      workloads.exec(id, spec({ tag: "race" }), AbortSignal.timeout(10_000)),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
  });

  it("a process that could not start is never listed and frees its tag; so does a failed agent call", async () => {
    const { id, workloads, processes } = await setup();
    const missing = await workloads.exec(
      id,
      spec({ cmd: ["missing"], tag: "m" }),
      AbortSignal.timeout(10_000),
    );
    expect(processes.list(id)).toEqual([]);
    expect((await drain(missing.output)).at(-1)).toMatchObject({ exitCode: 127 });
    const failing = await setup({ runFails: true });
    await expect(
      failing.workloads.exec(failing.id, spec({ tag: "t" }), AbortSignal.timeout(10_000)),
    ).rejects.toThrow(/agent gone/);
    expect(() => failing.s.processes.claimTag("t")).not.toThrow();
  });

  it("a caller that goes away unlists its process at once", async () => {
    const { id, workloads, processes } = await setup();
    const ac = new AbortController();
    await workloads.exec(id, spec({ tag: "leaver" }), ac.signal);
    expect(processes.list(id)).toHaveLength(1);
    ac.abort();
    expect(processes.list(id)).toEqual([]);
  });

  it("a session closed between lookup and signal is NOT_FOUND, not FAILED_PRECONDITION", async () => {
    const { id, workloads, processes, started } = await setup();
    await workloads.exec(id, spec({ tag: "closing" }), AbortSignal.timeout(10_000));
    started[0]?.close();
    await expect(processes.signal(id, { tag: "closing" }, "TERM")).rejects.toThrow(
      ProcessNotFoundError,
    );
  });

  it.for([
    ["paused", { kind: "paused", at: new Date() }],
    ["starting", { kind: "starting" }],
    ["stopped", { kind: "stopped" }],
    ["failed", { kind: "failed", error: "x" }],
  ] as const)(
    "a %s sandbox refuses signals (FAILED_PRECONDITION) and lists nothing",
    async ([, phase]) => {
      const { id, processes } = await setup({ phase: phase as SandboxPhase });
      await expect(processes.signal(id, { pid: 1 }, "TERM")).rejects.toThrow(
        FailedPreconditionError,
      );
      expect(processes.list(id)).toEqual([]);
    },
  );

  it("bad pid and signal are INVALID_ARGUMENT before the sandbox is looked at", async () => {
    const { processes } = await setup();
    await expect(processes.signal("nope", { pid: -1 }, "TERM")).rejects.toThrow(
      /pid: must be a positive/,
    );
    await expect(processes.signal("nope", { pid: 1 }, "SEGV")).rejects.toThrow(
      /signal: unknown signal/,
    );
    await expect(processes.signal("nope", { pid: 1 }, "TERM")).rejects.toThrow(/not found/);
  });
});

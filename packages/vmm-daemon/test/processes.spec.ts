// ListProcesses and SignalProcess (docs/processes.md) through gRPC with fc-sim: processes
// started through Run and Exec, found by tag and by pid, signalled through the agent's
// SIGNAL frame; every bad input with its code.
import * as net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type ExecInputSchema, type ProcessInfo, SandboxService } from "@vmm/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processesMatching, type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";

type ExecInput = MessageInitShape<typeof ExecInputSchema>;
type Output = { stream: string; data: Uint8Array; exitCode: number; done: boolean };

/** How a Run/Exec call ended: exit code of its final message, or its error code. */
interface Ended {
  exit: number | undefined;
  finals: number;
  error: Code | undefined;
}

async function ended(stream: AsyncIterable<Output>): Promise<Ended> {
  const r: Ended = { exit: undefined, finals: 0, error: undefined };
  try {
    for await (const o of stream) {
      if (o.done) {
        r.exit = o.exitCode;
        r.finals++;
      }
    }
  } catch (err) {
    r.error = ConnectError.from(err).code;
  }
  return r;
}

async function code(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** An Exec input stream that stays open until `end()` (the process keeps its stdin). */
function openInputs(init: Record<string, unknown>) {
  let end!: () => void;
  const closed = new Promise<void>((r) => (end = r));
  const inputs = (async function* (): AsyncGenerator<ExecInput> {
    yield { payload: { case: "init", value: init as never } };
    await closed;
  })();
  return { inputs, end };
}

let uniq = 0;
/** A unique sleep argument, so the sleeping process can be found on the host by its argv. */
const marker = () => `${1000 + (process.pid % 1000)}.${Date.now() % 100000}${uniq++}`;

describe("ListProcesses and SignalProcess with fc-sim", () => {
  let d: SimDaemon;
  const id = "ps-1";
  /** Streams and markers a test left behind, ended in afterAll even when it failed. */
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  const list = async (sandbox = id): Promise<ProcessInfo[]> =>
    (await d.sandboxes.listProcesses({ id: sandbox })).processes;

  /** Polls ListProcesses until a process tagged `tag` shows (a Run gives no sign it started). */
  async function waitListed(tag: string, sandbox = id): Promise<ProcessInfo> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const p = (await list(sandbox)).find((x) => x.tag === tag);
      if (p) return p;
      if (Date.now() > deadline) throw new Error(`no process tagged ${tag} listed`);
      await sleep(20);
    }
  }

  /** Starts an Exec of `sleep <marker>` that stays attached; its end and a way to hang up. */
  function execSleeper(sandbox: string, extra: Record<string, unknown> = {}) {
    const m = marker();
    const { inputs, end } = openInputs({ id: sandbox, cmd: ["sleep", m], ...extra });
    const ac = new AbortController();
    const result = ended(
      d.sandboxes.exec(inputs, { signal: ac.signal }) as AsyncIterable<Output>,
    ).finally(end);
    const hangUp = () => {
      ac.abort();
      return result;
    };
    cleanups.push(hangUp);
    return { marker: m, result, hangUp };
  }

  beforeAll(async () => {
    d = await startSimDaemon({
      sections: ["[agent]", "boot_timeout_ms = 60000"].join("\n"),
      env: { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" },
    });
    await d.sandboxes.create({ id });
    await waitForState(d, id, "ready", 60_000);
  });
  afterAll(async () => {
    for (const c of cleanups) await Promise.resolve(c()).catch(() => {});
    if (!d) return;
    await d.sandboxes.remove({ id, force: true }).catch(() => {});
    await d[Symbol.asyncDispose]();
  });

  it("a tagged Run is listed (to a second client too), TERM by tag ends its stream with 143, then it is gone", async () => {
    const m = marker();
    const before = BigInt(Math.floor(Date.now() / 1000));
    const ac = new AbortController();
    const run = ended(
      d.sandboxes.run(
        { id, cmd: ["sleep", m], tag: "sleeper" },
        { signal: ac.signal },
      ) as AsyncIterable<Output>,
    );
    cleanups.push(() => {
      ac.abort();
      return run;
    });
    const listed = await waitListed("sleeper");
    expect(listed).toMatchObject({ cmd: ["sleep", m], tag: "sleeper", tty: false });
    expect(listed.pid).toBeGreaterThan(0);
    expect(listed.startedAt).toBeGreaterThanOrEqual(before);
    expect(listed.startedAt).toBeLessThanOrEqual(BigInt(Math.ceil(Date.now() / 1000)));

    // Another client, on its own connection, sees what the first started.
    const transport = createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => net.connect(d.socket) },
    });
    const other = createClient(SandboxService, transport);
    const seen = (await other.listProcesses({ id })).processes;
    expect(seen.map((p) => [p.pid, p.tag])).toEqual([[listed.pid, "sleeper"]]);

    await other.signalProcess({ id, tag: "sleeper", signal: "TERM" });
    expect(await run).toEqual({ exit: 143, finals: 1, error: undefined });
    // The stream ended after the agent's EXIT: the table dropped it before the final message.
    expect(await list()).toEqual([]);
    expect(processesMatching(m)).toEqual([]);
    expect((await d.sandboxes.inspect({ id })).lastExitCode).toBe(143);
    // The tag is free again.
    const again = ended(
      d.sandboxes.run({ id, cmd: ["true"], tag: "sleeper" }) as AsyncIterable<Output>,
    );
    expect(await again).toEqual({ exit: 0, finals: 1, error: undefined });
  });

  it("Exec on a TTY is listed with tty; KILL by pid ends it with 137; SIGKILL and default TERM are accepted", async () => {
    const a = execSleeper(id, { tty: true, tag: "term-a" });
    const pa = await waitListed("term-a");
    const b = execSleeper(id, { tag: "term-b" });
    const pb = await waitListed("term-b");
    expect(pa.tty).toBe(true);
    expect(pb.tty).toBe(false);
    expect((await list()).map((p) => p.tag)).toEqual(["term-a", "term-b"]); // oldest first
    await d.sandboxes.signalProcess({ id, pid: pa.pid, signal: "SIGKILL" });
    expect(await a.result).toEqual({ exit: 137, finals: 1, error: undefined });
    expect((await list()).map((p) => p.tag)).toEqual(["term-b"]);
    await d.sandboxes.signalProcess({ id, pid: pb.pid }); // empty signal = TERM
    expect(await b.result).toEqual({ exit: 143, finals: 1, error: undefined });
    expect(processesMatching(a.marker)).toEqual([]);
    expect(processesMatching(b.marker)).toEqual([]);
  });

  it("STOP and CONT reach the process group (a stopped process does not finish until CONT)", async () => {
    const ac = new AbortController();
    cleanups.push(() => ac.abort());
    const out: string[] = [];
    const run = (async () => {
      for await (const o of d.sandboxes.run(
        { id, cmd: ["sh", "-c", "echo up; sleep 0.5; echo done"], tag: "pausable" },
        { signal: ac.signal },
      )) {
        if (o.done) return o.exitCode;
        out.push(Buffer.from(o.data).toString());
      }
      return undefined;
    })();
    await waitListed("pausable");
    await d.sandboxes.signalProcess({ id, tag: "pausable", signal: "STOP" });
    await sleep(1000);
    expect(out.join("")).not.toContain("done");
    expect((await list()).map((p) => p.tag)).toEqual(["pausable"]);
    await d.sandboxes.signalProcess({ id, tag: "pausable", signal: "CONT" });
    expect(await run).toBe(0);
    expect(out.join("")).toBe("up\ndone\n");
  });

  it("a tag in use by a running process is ALREADY_EXISTS until that process ends", async () => {
    const first = execSleeper(id, { tag: "dup" });
    await waitListed("dup");
    const second = ended(
      d.sandboxes.exec(
        openInputs({ id, cmd: ["true"], tag: "dup" }).inputs,
      ) as AsyncIterable<Output>,
    );
    expect((await second).error).toBe(Code.AlreadyExists);
    expect((await list()).filter((p) => p.tag === "dup")).toHaveLength(1);
    await d.sandboxes.signalProcess({ id, tag: "dup", signal: "KILL" });
    expect((await first.result).exit).toBe(137);
    const third = openInputs({ id, cmd: ["true"], tag: "dup" });
    const r = await ended(d.sandboxes.exec(third.inputs) as AsyncIterable<Output>);
    third.end();
    expect(r).toEqual({ exit: 0, finals: 1, error: undefined });
  });

  it("a client that goes away takes its process out of the list", async () => {
    const s = execSleeper(id, { tag: "leaver" });
    await waitListed("leaver");
    await s.hangUp(); // the agent kills the group
    expect((await s.result).error).toBe(Code.Canceled);
    const deadline = Date.now() + 5_000;
    while ((await list()).length > 0 && Date.now() < deadline) await sleep(20);
    expect(await list()).toEqual([]);
  });

  describe("bad input", () => {
    const bad = [
      ["tag with a space", "has space"],
      ["tag of only digits", "1234"],
      ["tag of 65 characters", "x".repeat(65)],
      ["tag with a slash", "a/b"],
    ] as const;

    it.for(bad)("Run: %s is INVALID_ARGUMENT", async ([, tag]) => {
      const r = await ended(d.sandboxes.run({ id, cmd: ["true"], tag }) as AsyncIterable<Output>);
      expect(r.error).toBe(Code.InvalidArgument);
    });

    it.for(bad)("Exec: %s is INVALID_ARGUMENT", async ([, tag]) => {
      const i = openInputs({ id, cmd: ["true"], tag });
      const r = await ended(d.sandboxes.exec(i.inputs) as AsyncIterable<Output>);
      i.end();
      expect(r.error).toBe(Code.InvalidArgument);
    });

    it.for([
      ["empty id", { id: "" }, Code.InvalidArgument],
      ["unknown sandbox", { id: "no-such-sandbox" }, Code.NotFound],
    ] as const)("ListProcesses: %s", async ([, req, want]) => {
      expect(await code(d.sandboxes.listProcesses(req))).toBe(want);
    });

    it.for([
      ["empty id", { id: "", tag: "x" }, Code.InvalidArgument],
      ["neither pid nor tag", { id }, Code.InvalidArgument],
      ["both pid and tag", { id, pid: 1, tag: "x" }, Code.InvalidArgument],
      ["negative pid", { id, pid: -5 }, Code.InvalidArgument],
      ["unknown signal", { id, tag: "x", signal: "SEGV" }, Code.InvalidArgument],
      ["lowercase signal", { id, tag: "x", signal: "term" }, Code.InvalidArgument],
      ["no process with that pid", { id, pid: 999_999 }, Code.NotFound],
      ["no process with that tag", { id, tag: "nobody" }, Code.NotFound],
      ["unknown sandbox", { id: "no-such-sandbox", tag: "x" }, Code.NotFound],
    ] as const)("SignalProcess: %s", async ([, req, want]) => {
      expect(await code(d.sandboxes.signalProcess(req))).toBe(want);
    });
  });

  it("a stopped sandbox lists nothing and refuses signals (FAILED_PRECONDITION)", async () => {
    const sid = "ps-stop";
    cleanups.push(() => d.sandboxes.remove({ id: sid, force: true }));
    await d.sandboxes.create({ id: sid });
    await waitForState(d, sid, "ready", 60_000);
    const s = execSleeper(sid, { tag: "victim" });
    await waitListed("victim", sid);
    await d.sandboxes.stop({ id: sid, timeoutSeconds: 1 });
    await s.result;
    expect(await list(sid)).toEqual([]);
    expect(await code(d.sandboxes.signalProcess({ id: sid, tag: "victim" }))).toBe(
      Code.FailedPrecondition,
    );
    expect(processesMatching(s.marker)).toEqual([]);
  });

  it("a paused sandbox lists nothing without resuming and refuses signals", async () => {
    const sid = "ps-pause";
    cleanups.push(() => d.sandboxes.remove({ id: sid, force: true }));
    await d.sandboxes.create({ id: sid });
    await waitForState(d, sid, "ready", 60_000);
    expect((await d.sandboxes.pause({ id: sid })).state).toBe("paused");
    expect(await list(sid)).toEqual([]);
    expect(await code(d.sandboxes.signalProcess({ id: sid, pid: 1 }))).toBe(
      Code.FailedPrecondition,
    );
    expect((await d.sandboxes.inspect({ id: sid })).state).toBe("paused");
  });

  it("Create's cmd (the initial workload) is listed untagged; KILL by pid ends it and the sandbox is ready", async () => {
    const sid = "ps-init";
    cleanups.push(() => d.sandboxes.remove({ id: sid, force: true }));
    const m = marker();
    await d.sandboxes.create({ id: sid, cmd: ["sleep", m] });
    await waitForState(d, sid, "running", 60_000);
    const [p] = await list(sid);
    expect(p).toMatchObject({ cmd: ["sleep", m], tag: "", tty: false });
    await d.sandboxes.signalProcess({ id: sid, pid: p?.pid ?? 0, signal: "KILL" });
    await waitForState(d, sid, "ready");
    expect(await list(sid)).toEqual([]);
    expect((await d.sandboxes.inspect({ id: sid })).lastExitCode).toBe(137);
  });

  it("a removed sandbox's processes end with it; both calls say NOT_FOUND", async () => {
    const sid = "ps-rm";
    cleanups.push(() => d.sandboxes.remove({ id: sid, force: true }));
    await d.sandboxes.create({ id: sid });
    await waitForState(d, sid, "ready", 60_000);
    const s = execSleeper(sid, { tag: "orphan" });
    const listed = await waitListed("orphan", sid);
    await d.sandboxes.remove({ id: sid, force: true });
    const r = await s.result;
    expect(r.finals === 1 || r.error !== undefined).toBe(true);
    expect(await code(d.sandboxes.listProcesses({ id: sid }))).toBe(Code.NotFound);
    expect(await code(d.sandboxes.signalProcess({ id: sid, pid: listed.pid }))).toBe(Code.NotFound);
    expect(processesMatching(s.marker)).toEqual([]);
  });
});

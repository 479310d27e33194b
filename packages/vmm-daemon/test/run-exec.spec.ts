import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ExecInputSchema } from "@vmm/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  processesMatching,
  type SimDaemon,
  startSimDaemon,
  subscribe,
  waitForState,
} from "./sim-daemon.js";

type ExecInput = MessageInitShape<typeof ExecInputSchema>;
type Output = { stream: string; data: Uint8Array; exitCode: number; done: boolean };

interface Collected {
  /** Output chunks in arrival order (not the final message). */
  chunks: { stream: string; data: Buffer }[];
  /** exit_code of the final message; undefined when none arrived. */
  exit: number | undefined;
  /** How many final (done) messages arrived. */
  finals: number;
  /** The error that ended the call, if any. */
  error: ConnectError | undefined;
}

async function collect(
  stream: AsyncIterable<Output>,
  onChunk?: (c: { stream: string; data: Buffer }) => void,
  onDone?: () => void,
): Promise<Collected> {
  const r: Collected = { chunks: [], exit: undefined, finals: 0, error: undefined };
  try {
    for await (const o of stream) {
      if (o.done) {
        r.exit = o.exitCode;
        r.finals++;
        onDone?.();
      } else {
        const c = { stream: o.stream, data: Buffer.from(o.data) };
        r.chunks.push(c);
        onChunk?.(c);
      }
    }
  } catch (err) {
    r.error = ConnectError.from(err);
  }
  return r;
}

const text = (c: Collected, stream: string) =>
  Buffer.concat(c.chunks.filter((x) => x.stream === stream).map((x) => x.data)).toString();

/** A push-driven input stream for Exec. */
class Inputs implements AsyncIterable<ExecInput> {
  private readonly queue: ExecInput[] = [];
  private ended = false;
  private wake: () => void = () => {};
  push(m: ExecInput): void {
    this.queue.push(m);
    this.wake();
  }
  stdin(data: string | Uint8Array): void {
    this.push({
      payload: {
        case: "stdin",
        value: typeof data === "string" ? Buffer.from(data) : data,
      },
    });
  }
  end(): void {
    this.ended = true;
    this.wake();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<ExecInput> {
    for (;;) {
      const m = this.queue.shift();
      if (m) {
        yield m;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

const init = (value: Record<string, unknown>): ExecInput => ({
  payload: { case: "init", value: value as never },
});

/** An Exec call; by default the client half-closes on the final message, as a careful client does. */
function startExec(
  d: SimDaemon,
  request: Record<string, unknown>,
  opts: { endOnDone?: boolean; onChunk?: (c: { stream: string; data: Buffer }) => void } = {},
) {
  const inputs = new Inputs();
  inputs.push(init(request));
  let sawDone!: () => void;
  const done = new Promise<void>((r) => (sawDone = r));
  const result = collect(d.sandboxes.exec(inputs) as AsyncIterable<Output>, opts.onChunk, () => {
    sawDone();
    if (opts.endOnDone !== false) inputs.end();
  }).finally(() => inputs.end());
  return { inputs, done, result };
}

/** True when `p` settles within `ms`. */
const within = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true), sleep(ms).then(() => false)]);

let uniq = 0;
/** A unique fractional sleep argument, so the sleeping process can be found by its argv. */
const marker = () => `${(process.pid % 1000) + 10}.${Date.now() % 100000}${uniq++}`;

async function waitGone(needle: string, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = processesMatching(needle);
    if (left.length === 0 || Date.now() > deadline) return left;
    await sleep(50);
  }
}

describe("Run and Exec over gRPC with fc-sim", () => {
  let d: SimDaemon;
  const id = "rx-1";
  const run = (req: Record<string, unknown>, signal?: AbortSignal) =>
    collect(
      d.sandboxes.run({ id, ...req } as never, signal ? { signal } : {}) as AsyncIterable<Output>,
    );

  beforeAll(async () => {
    d = await startSimDaemon();
    await d.sandboxes.create({ id });
    await waitForState(d, id, "ready");
  });
  afterAll(async () => {
    if (!d) return;
    await d.sandboxes.remove({ id, force: true }).catch(() => {});
    await d[Symbol.asyncDispose]();
  });

  it("reports exit codes 0 and 7, and 128+N for a signal", async () => {
    const ok = await run({ cmd: ["true"] });
    expect(ok).toMatchObject({ exit: 0, finals: 1, error: undefined });
    const seven = await run({ cmd: ["sh", "-c", "exit 7"] });
    expect(seven).toMatchObject({ exit: 7, finals: 1, error: undefined });
    const killed = await run({ cmd: ["sh", "-c", "kill -9 $$"] });
    expect(killed).toMatchObject({ exit: 137, finals: 1, error: undefined });
    expect((await d.sandboxes.inspect({ id })).lastExitCode).toBe(137);
  });

  it("keeps stdout and stderr apart and each in order", async () => {
    const r = await run({
      cmd: [
        "sh",
        "-c",
        "echo o1; sleep 0.1; echo e1 >&2; sleep 0.1; echo o2; sleep 0.1; echo e2 >&2; sleep 0.1; seq 1 20000; seq 30001 50000 >&2",
      ],
    });
    expect(r.error).toBeUndefined();
    expect(r.exit).toBe(0);
    const seq = (a: number, b: number) =>
      Array.from({ length: b - a + 1 }, (_, i) => `${a + i}\n`).join("");
    expect(text(r, "stdout")).toBe(`o1\no2\n${seq(1, 20000)}`);
    expect(text(r, "stderr")).toBe(`e1\ne2\n${seq(30001, 50000)}`);
    // The paced lines arrive in the order they were written.
    const firstFour = r.chunks.slice(0, 4).map((c) => `${c.stream}:${c.data.toString()}`);
    expect(firstFour).toEqual(["stdout:o1\n", "stderr:e1\n", "stdout:o2\n", "stderr:e2\n"]);
    expect(r.chunks.every((c) => c.stream === "stdout" || c.stream === "stderr")).toBe(true);
  });

  it("passes env, working_dir and user", async () => {
    const env = await run({ cmd: ["sh", "-c", 'printf %s "$FOO"'], env: { FOO: "bar baz" } });
    expect(text(env, "stdout")).toBe("bar baz");
    const cwd = await run({ cmd: ["pwd"], workingDir: "/tmp" });
    expect(text(cwd, "stdout")).toBe("/tmp\n");
    const user = await run({ cmd: ["id", "-u"], user: "nobody" });
    expect(text(user, "stdout")).toBe("65534\n");
    const root = await run({ cmd: ["id", "-u"] });
    expect(text(root, "stdout")).toBe("0\n");
  });

  it("reports a missing binary as exit 127", async () => {
    const r = await run({ cmd: ["/no/such/binary-xyz"] });
    expect(r.error).toBeUndefined();
    expect(r.exit).toBe(127);
  });

  it("returns binary output byte-exact", async () => {
    const fmt = Array.from({ length: 256 }, (_, i) => `\\${i.toString(8).padStart(3, "0")}`).join(
      "",
    );
    const r = await run({ cmd: ["sh", "-c", `for i in 1 2 3 4; do printf '${fmt}'; done`] });
    expect(r.exit).toBe(0);
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(
      Buffer.concat(r.chunks.map((c) => c.data)).equals(Buffer.concat([all, all, all, all])),
    ).toBe(true);
  });

  it("kills a command at timeout_seconds: output first, then DEADLINE_EXCEEDED, no process left", async () => {
    const m = marker();
    const t0 = Date.now();
    const r = await run({
      cmd: ["sh", "-c", `echo before; sleep ${m}; echo after`],
      timeoutSeconds: 1,
    });
    const took = Date.now() - t0;
    expect(text(r, "stdout")).toBe("before\n");
    expect(r.error?.code).toBe(Code.DeadlineExceeded);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(4000);
    expect(await waitGone(m, 2000)).toEqual([]);
    expect((await waitForState(d, id, "ready", 2000)).state).toBe("ready");
  });

  it("streams 100 MB completely while the daemon stays under 250 MB RSS", async () => {
    const pid = d.child.pid!;
    const rss = () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return Number(m?.[1] ?? 0) * 1024;
    };
    let peak = rss();
    const timer = setInterval(() => {
      peak = Math.max(peak, rss());
    }, 50);
    let bytes = 0;
    let nonZero = 0;
    let r: Collected;
    try {
      r = await collect(
        d.sandboxes.run({
          id,
          cmd: ["head", "-c", "100000000", "/dev/zero"],
        }) as AsyncIterable<Output>,
        (c) => {
          bytes += c.data.length;
          if (c.data.some((b) => b !== 0)) nonZero++;
          c.data = Buffer.alloc(0); // keep the test's own memory flat
        },
      );
    } finally {
      clearInterval(timer);
    }
    expect(r.error?.message).toBeUndefined();
    expect(r.exit).toBe(0);
    expect(bytes).toBe(100_000_000);
    expect(nonZero).toBe(0);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(250 * 1024 * 1024);
  }, 60_000);

  // Regression (fc-sim vsock splice): a guest closing its end must not discard what
  // is still buffered for a slow host reader. Up to 10 tries, stopping at the first
  // truncation (with the bug about half of them truncated).
  it("delivers every byte to a slow reader (fc-sim vsock splice)", async () => {
    const results: string[] = [];
    for (let k = 0; k < 10; k++) {
      let bytes = 0;
      let exit: number | undefined;
      let error: ConnectError | undefined;
      try {
        for await (const o of d.sandboxes.run({
          id,
          cmd: ["head", "-c", "1000000", "/dev/zero"],
        })) {
          // A slow client: the daemon, and so fc-sim's host side, back up.
          await sleep(bytes === 0 ? 300 : 20);
          bytes += o.data.length;
          if (o.done) exit = o.exitCode;
        }
      } catch (err) {
        error = ConnectError.from(err);
      }
      const r = { error, exit };
      results.push(r.error ? `${bytes}: ${r.error.rawMessage}` : `${bytes}: exit ${r.exit}`);
      if (r.error || r.exit !== 0 || bytes !== 1_000_000) break;
    }
    expect(results).toEqual(Array(10).fill("1000000: exit 0"));
  }, 30_000);

  it("kills the command when the client disconnects; the sandbox goes back to ready with an idle event", async () => {
    const m = marker();
    const sub = await subscribe(d, { id });
    const ac = new AbortController();
    let started!: () => void;
    const gotOutput = new Promise<void>((r) => (started = r));
    const call = collect(
      d.sandboxes.run(
        { id, cmd: ["sh", "-c", `echo started; sleep ${m}`] },
        { signal: ac.signal },
      ) as AsyncIterable<Output>,
      () => started(),
    );
    await Promise.race([gotOutput, sleep(5000)]);
    expect(processesMatching(m).length).toBeGreaterThan(0);
    expect((await d.sandboxes.inspect({ id })).state).toBe("running");
    ac.abort();
    const r = await call;
    expect(r.error?.code).toBe(Code.Canceled);
    expect(await waitGone(m, 2000)).toEqual([]);
    await sub.waitFor((a) => a.includes("idle"), 3000);
    sub.close();
    expect(sub.events.map((e) => e.action)).toEqual(["running", "idle"]);
    expect((await d.sandboxes.inspect({ id })).state).toBe("ready");
  });

  it("fails a Run while another Run is in progress with FAILED_PRECONDITION", async () => {
    const m = marker();
    const ac = new AbortController();
    let started!: () => void;
    const gotOutput = new Promise<void>((r) => (started = r));
    const first = collect(
      d.sandboxes.run(
        { id, cmd: ["sh", "-c", `echo started; sleep ${m}`] },
        { signal: ac.signal },
      ) as AsyncIterable<Output>,
      () => started(),
    );
    try {
      await Promise.race([gotOutput, sleep(5000)]);
      const second = await run({ cmd: ["true"] });
      expect(second.error?.code).toBe(Code.FailedPrecondition);
      expect(second.finals).toBe(0);
    } finally {
      ac.abort();
      await first;
    }
    expect(await waitGone(m, 2000)).toEqual([]);
    await waitForState(d, id, "ready", 3000);
  });

  it("echoes stdin through Exec (binary-safe); an empty chunk closes stdin", async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    // The client keeps its side open after the empty chunk: only that chunk may end cat.
    const s = startExec(d, { id, cmd: ["cat"] }, { endOnDone: false });
    s.inputs.stdin("hello\n");
    s.inputs.stdin(all);
    s.inputs.stdin(new Uint8Array(0));
    const exited = await within(s.done, 5000);
    s.inputs.end();
    const got = await s.result;
    expect(exited, "cat did not exit after the empty stdin chunk").toBe(true);
    expect(got.error).toBeUndefined();
    expect(got.exit).toBe(0);
    const echoed = Buffer.concat(got.chunks.map((c) => c.data));
    expect(echoed.equals(Buffer.concat([Buffer.from("hello\n"), all]))).toBe(true);
  });

  it("runs Exec on a TTY with the requested size", async () => {
    const s = startExec(d, {
      id,
      cmd: ["sh", "-c", "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && stty size"],
      tty: true,
      ttySize: { width: 100, height: 40 },
    });
    const got = await s.result;
    expect(got.error).toBeUndefined();
    expect(got.exit).toBe(0);
    expect(text(got, "stdout")).toMatch(/^40 100\r?\n$/);
    expect(text(got, "stderr")).toBe("");
  });

  it("resizes the TTY mid-session", async () => {
    let out = "";
    let first!: () => void;
    const sawFirst = new Promise<void>((r) => (first = r));
    const s = startExec(
      d,
      {
        id,
        cmd: ["sh", "-c", "stty size; read x; stty size"],
        tty: true,
        ttySize: { width: 100, height: 40 },
      },
      {
        onChunk: (c) => {
          out += c.data.toString();
          if (out.includes("40 100")) first();
        },
      },
    );
    expect(await within(sawFirst, 5000)).toBe(true);
    s.inputs.push({ payload: { case: "resize", value: { width: 120, height: 50 } } });
    s.inputs.stdin("go\n");
    expect(await within(s.done, 5000), "no exit after the stdin line").toBe(true);
    const got = await s.result;
    expect(got.error).toBeUndefined();
    expect(got.exit).toBe(0);
    const lines = text(got, "stdout").split(/\r?\n/);
    expect(lines[0]).toBe("40 100");
    expect(lines).toContain("go"); // the terminal's echo of the line
    expect(lines.at(-2)).toBe("50 120");
  });

  it("runs 20 concurrent Execs, each with its own output", async () => {
    const results = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          startExec(d, {
            id,
            cmd: ["sh", "-c", 'sleep 0.2; echo "out-$N"; echo "err-$N" >&2; exit $N'],
            env: { N: String(i) },
          }).result,
      ),
    );
    results.forEach((r, i) => {
      expect(r.error, `exec ${i}`).toBeUndefined();
      expect(r.exit).toBe(i);
      expect(text(r, "stdout")).toBe(`out-${i}\n`);
      expect(text(r, "stderr")).toBe(`err-${i}\n`);
    });
    await waitForState(d, id, "ready", 3000);
  });

  // Regression: the call ends with the process, not when the client half-closes its input.
  it("ends an Exec call once the process exited, even while the client keeps its input open", async () => {
    const s = startExec(d, { id, cmd: ["sh", "-c", "echo bye"] }, { endOnDone: false });
    expect(await within(s.done, 5000), "no final message").toBe(true);
    const ended = await within(s.result, 3000);
    s.inputs.end();
    const got = await s.result;
    expect(got.exit).toBe(0);
    expect((await d.sandboxes.inspect({ id })).state).toBe("ready");
    expect(ended, "the Exec call was still open 3 s after the final message").toBe(true);
  });

  it("rejects bad requests with the right codes, naming the field", async () => {
    const codeOf = async (p: Promise<Collected>) => {
      const r = await p;
      return { code: r.error ? Code[r.error.code] : "ok", msg: r.error?.rawMessage ?? "" };
    };
    expect(
      await codeOf(
        collect(d.sandboxes.run({ id: "nope", cmd: ["true"] }) as AsyncIterable<Output>),
      ),
    ).toMatchObject({ code: "NotFound", msg: expect.stringContaining("nope") });
    expect(await codeOf(run({ cmd: [] }))).toMatchObject({
      code: "InvalidArgument",
      msg: expect.stringMatching(/\bcmd\b/),
    });
    expect(await codeOf(run({ cmd: ["env"], env: { "A=B": "c" } }))).toMatchObject({
      code: "InvalidArgument",
      msg: expect.stringMatching(/env/),
    });
    expect(await codeOf(run({ cmd: ["pwd"], workingDir: "tmp" }))).toMatchObject({
      code: "InvalidArgument",
      msg: expect.stringMatching(/working_dir/),
    });
    const inputs = new Inputs();
    inputs.stdin("not init");
    inputs.end();
    expect(await codeOf(collect(d.sandboxes.exec(inputs) as AsyncIterable<Output>))).toMatchObject({
      code: "InvalidArgument",
      msg: expect.stringMatching(/init/),
    });
    // Nothing above started a workload.
    expect((await d.sandboxes.inspect({ id })).state).toBe("ready");
  });

  it("fails a Run on a sandbox that is not ready yet with FAILED_PRECONDITION", async () => {
    const early = "rx-early";
    try {
      await d.sandboxes.create({ id: early });
      const r = await collect(
        d.sandboxes.run({ id: early, cmd: ["true"] }) as AsyncIterable<Output>,
      );
      expect(r.error?.code).toBe(Code.FailedPrecondition);
      expect(r.finals).toBe(0);
    } finally {
      await d.sandboxes.remove({ id: early, force: true }).catch(() => {});
    }
  });

  it("runs Create's cmd as the initial workload: created, ready, running, idle with its exit code", async () => {
    const wid = "rx-initial";
    const sub = await subscribe(d, { id: wid });
    try {
      await d.sandboxes.create({ id: wid, cmd: ["sh", "-c", "exit 5"] });
      const actions = await sub.waitFor((a) => a.includes("idle"), 15_000);
      expect(actions).toEqual(["created", "ready", "running", "idle"]);
      expect(sub.events.find((e) => e.action === "idle")?.attributes.exit_code).toBe("5");
      const info = await d.sandboxes.inspect({ id: wid });
      expect(info.state).toBe("ready");
      expect(info.lastExitCode).toBe(5);
    } finally {
      sub.close();
      await d.sandboxes.remove({ id: wid, force: true }).catch(() => {});
    }
  });
});

// Regression: a bad input message (a second init, a 0x0 resize, stdin after the
// closing empty chunk) once escaped as an unhandled rejection and took the whole
// daemon down. It must end that call only. Each case gets its own daemon.
describe("Exec input errors end that call only", () => {
  async function misbehave(
    extra: ExecInput[],
  ): Promise<{ d: SimDaemon; got: Collected; ended: boolean; m: string; pid: number }> {
    const d = await startSimDaemon();
    const id = "rx-bad";
    await d.sandboxes.create({ id });
    const pid = Number((await waitForState(d, id, "ready")).pid);
    const m = marker();
    const s = startExec(
      d,
      { id, cmd: ["sh", "-c", `sleep ${m}`], tty: true },
      { endOnDone: false },
    );
    await sleep(200);
    for (const x of extra) s.inputs.push(x);
    const ended = await within(s.result, 3000);
    s.inputs.end();
    return { d, got: await s.result, ended, m, pid };
  }
  async function expectSurvived(r: { d: SimDaemon; m: string; pid: number }) {
    const { d, m, pid } = r;
    try {
      await sleep(200);
      expect(d.child.exitCode, `daemon died:\n${d.stderr().slice(-600)}`).toBeNull();
      expect(await waitGone(m, 3000)).toEqual([]);
      await waitForState(d, "rx-bad", "ready", 3000);
    } finally {
      await d.sandboxes.remove({ id: "rx-bad", force: true }).catch(() => {});
      await d[Symbol.asyncDispose]();
      // A dead daemon cannot remove its sandbox: kill what it left (fc-sim takes its agent along).
      // Only this daemon's Firecrackers have its (unique, temporary) data dir in their argv.
      for (const p of processesMatching(d.dataDir)) process.kill(p, "SIGKILL");
      expect(await waitGone(d.dataDir, 3000)).toEqual([]);
      expect(await waitGone(`/tmp/fcsim-${pid}`, 3000)).toEqual([]);
    }
  }

  it("a second init fails the call with INVALID_ARGUMENT; the daemon lives on", async () => {
    const r = await misbehave([init({ id: "rx-bad", cmd: ["true"] })]);
    await expectSurvived(r);
    const { got, ended } = r;
    expect(ended, "the call did not end after a second init").toBe(true);
    expect(got.error?.code).toBe(Code.InvalidArgument);
    expect(got.error?.rawMessage).toMatch(/init/);
  });

  it("a 0x0 resize fails the call with INVALID_ARGUMENT; the daemon lives on", async () => {
    const r = await misbehave([{ payload: { case: "resize", value: { width: 0, height: 0 } } }]);
    await expectSurvived(r);
    const { got, ended } = r;
    expect(ended, "the call did not end after a bad resize").toBe(true);
    expect(got.error?.code).toBe(Code.InvalidArgument);
  });

  it("stdin after the closing empty chunk does not take the daemon down", async () => {
    const r = await misbehave([
      { payload: { case: "stdin", value: new Uint8Array(0) } },
      { payload: { case: "stdin", value: Buffer.from("late") } },
    ]);
    await expectSurvived(r);
  });
});

describe('Run with [agent] readiness = "vmm"', () => {
  it("fails with FAILED_PRECONDITION mentioning readiness", async () => {
    await using d = await startSimDaemon({ sections: '[agent]\nreadiness = "vmm"' });
    const id = "rx-vmm";
    await d.sandboxes.create({ id });
    await waitForState(d, id, "ready");
    try {
      const r = await collect(d.sandboxes.run({ id, cmd: ["true"] }) as AsyncIterable<Output>);
      expect(r.error?.code).toBe(Code.FailedPrecondition);
      expect(r.error?.rawMessage).toMatch(/readiness/);
      expect(r.finals).toBe(0);
    } finally {
      await d.sandboxes.remove({ id, force: true });
    }
  });
});

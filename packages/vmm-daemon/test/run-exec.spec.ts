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
): Promise<Collected> {
  const r: Collected = { chunks: [], exit: undefined, finals: 0, error: undefined };
  try {
    for await (const o of stream) {
      if (o.done) {
        r.exit = o.exitCode;
        r.finals++;
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
    expect(r.error).toBeUndefined();
    expect(r.exit).toBe(0);
    expect(bytes).toBe(100_000_000);
    expect(nonZero).toBe(0);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(250 * 1024 * 1024);
  }, 60_000);

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
    const inputs = new Inputs();
    inputs.push(init({ id, cmd: ["cat"] }));
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    inputs.stdin("hello\n");
    inputs.stdin(all);
    inputs.stdin(new Uint8Array(0));
    const r = collect(d.sandboxes.exec(inputs) as AsyncIterable<Output>);
    // The process must end on the empty chunk alone, with the input still open.
    const res = await Promise.race([r, sleep(5000).then(() => undefined)]);
    inputs.end();
    const got = res ?? (await r);
    expect(res, "cat did not exit after the empty stdin chunk").toBeDefined();
    expect(got.error).toBeUndefined();
    expect(got.exit).toBe(0);
    expect(
      Buffer.concat(got.chunks.map((c) => c.data)).equals(
        Buffer.concat([Buffer.from("hello\n"), all]),
      ),
    ).toBe(true);
  });

  it("runs Exec on a TTY with the requested size", async () => {
    const inputs = new Inputs();
    inputs.push(
      init({
        id,
        cmd: ["sh", "-c", "[ -t 0 ] && [ -t 1 ] && stty size"],
        tty: true,
        ttySize: { width: 100, height: 40 },
      }),
    );
    const r = collect(d.sandboxes.exec(inputs) as AsyncIterable<Output>);
    const got = await r.finally(() => inputs.end());
    expect(got.error).toBeUndefined();
    expect(got.exit).toBe(0);
    expect(text(got, "stdout")).toContain("40 100");
    expect(text(got, "stderr")).toBe("");
  });

  it("resizes the TTY mid-session", async () => {
    const inputs = new Inputs();
    inputs.push(
      init({
        id,
        cmd: ["sh", "-c", "stty size; read x; stty size"],
        tty: true,
        ttySize: { width: 100, height: 40 },
      }),
    );
    let out = "";
    let first!: () => void;
    const sawFirst = new Promise<void>((r) => (first = r));
    const r = collect(d.sandboxes.exec(inputs) as AsyncIterable<Output>, (c) => {
      out += c.data.toString();
      if (out.includes("40 100")) first();
    });
    await Promise.race([sawFirst, sleep(5000)]);
    inputs.push({ payload: { case: "resize", value: { width: 120, height: 50 } } });
    inputs.stdin("go\n");
    const got = await Promise.race([r, sleep(5000).then(() => undefined)]);
    inputs.end();
    const res = got ?? (await r);
    expect(res.error).toBeUndefined();
    expect(res.exit).toBe(0);
    const lines = text(res, "stdout").split(/\r?\n/);
    expect(lines[0]).toBe("40 100");
    expect(lines).toContain("50 120");
  });

  it("runs 20 concurrent Execs, each with its own output", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const inputs = new Inputs();
        inputs.push(
          init({
            id,
            cmd: ["sh", "-c", 'sleep 0.2; echo "out-$N"; echo "err-$N" >&2; exit $N'],
            env: { N: String(i) },
          }),
        );
        inputs.end();
        return collect(d.sandboxes.exec(inputs) as AsyncIterable<Output>);
      }),
    );
    results.forEach((r, i) => {
      expect(r.error, `exec ${i}`).toBeUndefined();
      expect(r.exit).toBe(i);
      expect(text(r, "stdout")).toBe(`out-${i}\n`);
      expect(text(r, "stderr")).toBe(`err-${i}\n`);
    });
    await waitForState(d, id, "ready", 3000);
  });

  it("ends an Exec when the process exits, even while the client keeps its input open", async () => {
    const inputs = new Inputs();
    inputs.push(init({ id, cmd: ["sh", "-c", "echo bye"] }));
    const r = collect(d.sandboxes.exec(inputs) as AsyncIterable<Output>);
    const got = await Promise.race([r, sleep(3000).then(() => undefined)]);
    inputs.end();
    await r;
    expect(got, "the Exec call did not end after the final message").toBeDefined();
    expect(got?.exit).toBe(0);
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

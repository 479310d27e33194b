import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentClient,
  AgentError,
  type AgentProcess,
  AgentUnavailableError,
  type ExitStatus,
  encodeFrame,
  FrameType,
  TlvWriter,
} from "../../src/agent/index.js";
import { DeadlineExceededError } from "../../src/errors.js";
import { type AgentUnderTest, startAgent } from "./agent-fixture.js";

let agent: AgentUnderTest;
let client: AgentClient;

beforeAll(async () => {
  agent = await startAgent();
  client = agent.client;
});

afterAll(async () => {
  const pid = agent?.process.pid;
  await agent?.stop();
  // No sanitizer report from the agent or any of its handler processes.
  expect(agent?.stderr() ?? "").not.toMatch(/Sanitizer|runtime error/);
  expect(pid).toBeDefined();
});

interface Collected {
  stdout: Buffer;
  stderr: Buffer;
  exit: ExitStatus;
  order: string[];
}

async function collect(proc: AgentProcess): Promise<Collected> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const order: string[] = [];
  for await (const ev of proc) {
    if ("exit" in ev) {
      order.push("exit");
      return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), exit: ev.exit, order };
    }
    order.push(ev.stream);
    (ev.stream === "stdout" ? out : err).push(Buffer.from(ev.data));
  }
  throw new Error("no exit event");
}

const sh = (script: string, extra: Record<string, unknown> = {}) =>
  client.run({ argv: ["sh", "-c", script], ...extra }).then(collect);

function pgrep(pattern: string): string {
  try {
    return execFileSync("pgrep", ["-f", pattern], { encoding: "utf8" }).trim();
  } catch {
    return ""; // exit 1: no match
  }
}

async function waitGone(pattern: string, ms: number): Promise<string> {
  const end = Date.now() + ms;
  let left = pgrep(pattern);
  while (left && Date.now() < end) {
    await sleep(50);
    left = pgrep(pattern);
  }
  return left;
}

describe("health", () => {
  it("reports version, boot id, uptime and pid", async () => {
    const info = await client.health();
    expect(info.protocolVersion).toBe(2);
    expect(info.agentVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(info.bootId).toMatch(/^[0-9a-f]{32}$/);
    expect(info.pid).toBe(agent.process.pid);
    expect(info.mode).toBe("unix");
    const later = await client.health();
    expect(later.bootId).toBe(info.bootId);
    expect(later.uptimeMs).toBeGreaterThanOrEqual(info.uptimeMs);
  });

  it("waitReady names the socket and the last failure when nothing listens", async () => {
    const nobody = new AgentClient({
      endpoint: { kind: "unix", path: join(agent.dir, "none.sock") },
    });
    const err = await nobody.waitReady({ timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as Error).message).toContain("none.sock");
    expect((err as Error).message).toMatch(/last error: .*ENOENT/);
  });

  it("waitReady returns the signal's reason when aborted", async () => {
    const nobody = new AgentClient({
      endpoint: { kind: "unix", path: join(agent.dir, "none.sock") },
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("stop waiting")), 50);
    await expect(nobody.waitReady({ signal: ac.signal })).rejects.toThrow("stop waiting");
  });
});

describe("run", () => {
  it.each([0, 1, 3, 255])("reports exit code %i", async (code) => {
    const r = await sh(`exit ${code}`);
    expect(r.exit).toEqual({ code, timedOut: false });
  });

  it("keeps stdout and stderr apart, in order", async () => {
    const r = await sh("echo out; sleep 0.05; echo err >&2; sleep 0.05; echo out2");
    expect(r.stdout.toString()).toBe("out\nout2\n");
    expect(r.stderr.toString()).toBe("err\n");
    expect(r.order).toEqual(["stdout", "stderr", "stdout", "exit"]);
  });

  it("reports a terminating signal separately from the code", async () => {
    const r = await sh("kill -TERM $$");
    expect(r.exit).toEqual({ code: null, signal: 15, signalName: "SIGTERM", timedOut: false });
  });

  it("kill() signals the process group", async () => {
    const proc = await client.run({ argv: ["sleep", "30"] });
    expect(proc.pid).toBeGreaterThan(0);
    await proc.kill("SIGINT");
    const r = await collect(proc);
    expect(r.exit.signal).toBe(2);
  });

  it("reports a missing program as exit 127 with the exec error", async () => {
    const proc = await client.run({ argv: ["/nonexistent/vmm-test-binary"] });
    expect(proc.pid).toBeUndefined();
    const r = await collect(proc);
    expect(r.exit).toEqual({
      code: 127,
      timedOut: false,
      error: "exec failed: No such file or directory",
    });
  });

  it("reports a bad cwd as exit 126", async () => {
    const r = await client.run({ argv: ["true"], cwd: "/nonexistent-dir" }).then(collect);
    expect(r.exit.code).toBe(126);
    expect(r.exit.error).toBe("chdir /nonexistent-dir failed: No such file or directory");
  });

  it("echoes stdin through cat and closes it", async () => {
    const proc = await client.run({ argv: ["cat"] });
    const done = collect(proc);
    await proc.writeStdin("hello ");
    await proc.writeStdin(new Uint8Array([0x77, 0x6f, 0x72, 0x6c, 0x64]));
    await proc.closeStdin();
    const r = await done;
    expect(r.stdout.toString()).toBe("hello world");
    expect(r.exit.code).toBe(0);
    await expect(proc.writeStdin("late")).rejects.toThrow(/stdin of the process is closed/);
  });

  it("streams a large stdin with backpressure (4 MiB through cat | wc -c)", async () => {
    const proc = await client.run({ argv: ["sh", "-c", "wc -c"] });
    const done = collect(proc);
    const chunk = new Uint8Array(1 << 20).fill(0x61);
    for (let i = 0; i < 4; i++) await proc.writeStdin(chunk);
    await proc.closeStdin();
    const r = await done;
    expect(r.stdout.toString().trim()).toBe(String(4 << 20));
  });

  it("gives /dev/null as stdin when stdin is false", async () => {
    const r = await client.run({ argv: ["cat"], stdin: false }).then(collect);
    expect(r.exit.code).toBe(0);
    expect(r.stdout.length).toBe(0);
  });

  it("sets env (over the defaults), cwd and user by name", async () => {
    const r = await sh('echo "$FOO|$PATH|$USER"; pwd; id -u; id -g', {
      env: { FOO: "bar baz", PATH: "/usr/bin:/bin" },
      cwd: "/tmp",
      user: "nobody",
    });
    expect(r.stdout.toString()).toBe("bar baz|/usr/bin:/bin|nobody\n/tmp\n65534\n65534\n");
  });

  it("runs as a numeric uid, with a default PATH", async () => {
    const r = await sh('id -u; echo "$PATH"', { user: 65534 });
    expect(r.stdout.toString()).toBe(
      "65534\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
  });

  it("rejects an unknown user with invalid_argument", async () => {
    const err = await client
      .run({ argv: ["true"], user: "no-such-user-vmm" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).kind).toBe("invalid_argument");
    expect((err as Error).message).toContain("no-such-user-vmm");
  });

  it("kills the process group on timeout and says so", async () => {
    const t0 = Date.now();
    const r = await client.run({ argv: ["sleep", "30"], timeoutMs: 200 }).then(collect);
    expect(r.exit).toMatchObject({ code: null, signal: 9, timedOut: true });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("is binary-safe", async () => {
    const all = Buffer.alloc(256 * 64);
    for (let i = 0; i < all.length; i++) all[i] = i % 256;
    const file = join(agent.dir, "binary.bin");
    await writeFile(file, all);
    const r = await client.run({ argv: ["cat", file] }).then(collect);
    expect(r.stdout.equals(all)).toBe(true);
  });
});

describe("tty", () => {
  it("runs on a pty of the requested size", async () => {
    const r = await sh("[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty; stty size; echo $TERM", {
      tty: { cols: 100, rows: 30 },
    });
    expect(r.stdout.toString()).toBe("tty\r\n30 100\r\nxterm-256color\r\n");
    expect(r.exit.code).toBe(0);
  });

  it("resizes", async () => {
    const proc = await client.run({
      argv: ["sh", "-c", "stty -echo; echo ready; read x; stty size"],
      tty: { cols: 80, rows: 24 },
    });
    const it = proc[Symbol.asyncIterator]();
    let seen = "";
    while (!seen.includes("ready")) {
      const ev = await it.next();
      if (ev.done || "exit" in ev.value) throw new Error(`ended early: ${seen}`);
      seen += Buffer.from(ev.value.data).toString();
    }
    await proc.resize(120, 40);
    await proc.writeStdin("go\n");
    let rest = "";
    for (;;) {
      const ev = await it.next();
      if (ev.done) break;
      if ("exit" in ev.value) {
        expect(ev.value.exit.code).toBe(0);
        break;
      }
      rest += Buffer.from(ev.value.data).toString();
    }
    expect(rest).toContain("40 120");
  });
});

describe("big output and backpressure", () => {
  it("delivers 100 MB with bounded host memory", async () => {
    const proc = await client.run({ argv: ["head", "-c", "100000000", "/dev/zero"] });
    let total = 0;
    let growthWhilePaused = -1;
    for await (const ev of proc) {
      if ("exit" in ev) {
        expect(ev.exit.code).toBe(0);
        break;
      }
      total += ev.data.length;
      if (growthWhilePaused < 0 && total >= 50_000_000) {
        // Stop consuming for a while: with backpressure nothing piles up on the host.
        const before = process.memoryUsage().arrayBuffers;
        await sleep(300);
        growthWhilePaused = process.memoryUsage().arrayBuffers - before;
      }
    }
    expect(total).toBe(100_000_000);
    expect(growthWhilePaused).toBeLessThan(4 * 1024 * 1024);
  });

  it("delivers output still in the pipe at exit to a consumer that paused past the drain window", async () => {
    // The process ends while its last bytes sit in the pipe and the agent's send buffer is
    // full (nobody reads): the agent must keep draining once the consumer resumes, not take
    // the pause for a quiet pipe held open by a background child (it closed it after 50 ms).
    for (const bytes of [400_000, 700_000, 1_000_000, 1_500_000]) {
      const proc = await client.run({ argv: ["sh", "-c", `head -c ${bytes} /dev/zero; exit 7`] });
      await sleep(300);
      let total = 0;
      let code: number | null | undefined;
      for await (const ev of proc) {
        if ("exit" in ev) {
          code = ev.exit.code;
          break;
        }
        total += ev.data.length;
      }
      expect({ bytes, total, code }).toEqual({ bytes, total: bytes, code: 7 });
    }
  });

  it("stops the process while the consumer does not read", async () => {
    const marker = join(agent.dir, "wrote-all");
    const proc = await client.run({
      argv: ["sh", "-c", `head -c 20000000 /dev/zero; touch ${marker}`],
    });
    const it = proc[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    await sleep(500);
    // 20 MB cannot fit in the socket buffers and the agent's 256 KiB window: head must be blocked.
    expect(pgrep(`head -c 20000000`)).not.toBe("");
    let total = first.done || "exit" in first.value ? 0 : first.value.data.length;
    for (;;) {
      const ev = await it.next();
      if (ev.done || "exit" in ev.value) break;
      total += ev.value.data.length;
    }
    expect(total).toBe(20_000_000);
  });
});

describe("no orphans", () => {
  it("kills the process group when the client disconnects (SIGHUP, then SIGKILL)", async () => {
    const tag = `vmm-orphan-${process.pid}-${Date.now()}`;
    const proc = await client.run({
      argv: ["sh", "-c", `trap '' HUP; sleep 3001 & wait # ${tag}`],
    });
    await sleep(100);
    expect(pgrep(tag)).not.toBe("");
    proc.close();
    expect(await waitGone(tag, 4000)).toBe("");
    expect(await waitGone("sleep 3001", 1000)).toBe("");
  });

  it("aborting the run's signal ends the iteration and the process", async () => {
    const tag = `vmm-abort-${process.pid}-${Date.now()}`;
    const ac = new AbortController();
    const proc = await client.run({ argv: ["sh", "-c", `sleep 3002 # ${tag}`], signal: ac.signal });
    const done = collect(proc).catch((e: unknown) => e);
    await sleep(100);
    ac.abort(new Error("user gave up"));
    expect(await done).toMatchObject({ message: "user gave up" });
    expect(await waitGone(tag, 4000)).toBe("");
  });
});

describe("concurrency", () => {
  it("serves 25 concurrent runs", async () => {
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => sh(`sleep 0.3; echo ${i}`)),
    );
    results.forEach((r, i) => {
      expect(r.stdout.toString()).toBe(`${i}\n`);
    });
  });
});

describe("hardened decoder", () => {
  const hello = encodeFrame(FrameType.hello, Uint8Array.of(0, 1));

  /** Sends raw bytes (optionally half-closing), returns everything received until the agent closes. */
  async function raw(bytes: Uint8Array, end: boolean): Promise<Buffer> {
    const s = connect({ path: agent.socketPath });
    const chunks: Buffer[] = [];
    s.on("data", (d: Buffer) => chunks.push(d));
    await new Promise<void>((r, j) => {
      s.once("connect", () => r());
      s.once("error", j);
    });
    s.write(bytes);
    if (end) s.end();
    await new Promise<void>((r) => {
      s.once("close", () => r());
      s.once("error", () => r());
    });
    return Buffer.concat(chunks);
  }

  const cases: [string, Uint8Array, boolean][] = [
    ["an oversized length", Buffer.concat([hello, Buffer.from([0x7f, 0xff, 0xff, 0xff])]), false],
    ["a zero length", Buffer.concat([hello, Buffer.from([0, 0, 0, 0])]), false],
    ["an unknown request type", Buffer.concat([hello, encodeFrame(0x42)]), false],
    ["no HELLO first", encodeFrame(FrameType.health), false],
    ["garbage", Buffer.from("GET / HTTP/1.1\r\n\r\n"), false],
    [
      "a truncated frame",
      Buffer.concat([hello, encodeFrame(FrameType.health).subarray(0, 3)]),
      true,
    ],
    [
      "a malformed RUN TLV",
      Buffer.concat([hello, encodeFrame(FrameType.run, Uint8Array.of(1, 0, 0, 0, 9, 0x61))]),
      false,
    ],
  ];

  it.each(cases)("closes the connection on %s and keeps serving", async (_name, bytes, end) => {
    const got = await raw(bytes, end);
    // If anything came back after HELLO, it is an ERROR frame.
    const afterHello = got.subarray(got[4] === FrameType.helloReply ? 4 + got.readUInt32BE(0) : 0);
    if (afterHello.length > 0) expect(afterHello[4]).toBe(FrameType.error);
    expect((await client.health()).protocolVersion).toBe(2);
  });

  it("a bad frame inside a RUN session kills that process only", async () => {
    const tag = `vmm-badframe-${process.pid}-${Date.now()}`;
    const run = encodeFrame(
      FrameType.run,
      new TlvWriter().string(1, "sh").string(1, "-c").string(1, `sleep 3003 # ${tag}`).finish(),
    );
    const other = await client.run({ argv: ["sh", "-c", "sleep 0.5; echo alive"] });
    const otherDone = collect(other);
    const s = connect({ path: agent.socketPath });
    s.on("error", () => {});
    s.resume(); // read (and drop) what the agent sends, so its EOF is seen
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    s.write(Buffer.concat([hello, run]));
    await sleep(150);
    expect(pgrep(tag)).not.toBe("");
    s.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await closed;
    expect(await waitGone(tag, 4000)).toBe("");
    expect((await otherDone).stdout.toString()).toBe("alive\n");
  });

  it("an empty SET_IDENTITY is an invalid argument, not a crash", async () => {
    const got = await raw(Buffer.concat([hello, encodeFrame(FrameType.setIdentity)]), false);
    const rest = got.subarray(4 + got.readUInt32BE(0));
    expect(rest[4]).toBe(FrameType.error);
    expect(rest[5]).toBe(3);
    expect(rest.subarray(6).toString()).toBe("SET_IDENTITY needs a hostname");
  });

  it("an unavailable endpoint is a retryable AgentUnavailableError", async () => {
    const c = new AgentClient({ endpoint: { kind: "unix", path: join(agent.dir, "nope.sock") } });
    await expect(c.health()).rejects.toBeInstanceOf(AgentUnavailableError);
  });
});

import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentClient,
  type AgentError,
  AgentFiles,
  AgentTooOldError,
  encodeFrame,
  FrameDecoder,
  FrameType,
} from "../../src/agent/index.js";
import { FILE_IN_FLIGHT_BYTES } from "../../src/agent/protocol.js";
import { type AgentUnderTest, startAgent } from "./agent-fixture.js";

// The agent's file operations (protocol 2) against the ASan/UBSan build in `--unix` mode: a host
// process, so the paths are this test's temp dir. The daemon-level suite (vmm-daemon
// test/files.spec.ts) runs the same operations inside fc-sim's disk guest.

let agent: AgentUnderTest;
let files: AgentFiles;
const signal = new AbortController().signal;

beforeAll(async () => {
  agent = await startAgent();
  files = new AgentFiles(agent.client);
});

afterAll(async () => {
  await agent?.stop();
  // Sanitizer reports (a leak, an overflow in the new parsers or walkers) fail the suite.
  expect(agent.stderr()).not.toMatch(/AddressSanitizer|runtime error|LeakSanitizer/);
});

async function* bytes(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield new TextEncoder().encode(p);
}

async function text(it: AsyncIterable<Uint8Array>): Promise<string> {
  let s = "";
  for await (const c of it) s += Buffer.from(c).toString();
  return s;
}

describe("file operations", () => {
  it("write (atomic, mode, parents), read ranges, stat, list, mkdir, remove", async () => {
    const p = join(agent.dir, "a/b/f.txt");
    const info = await files.writeFile(
      p,
      { mode: 0o604, makeParents: true },
      bytes("hello ", "world"),
      signal,
    );
    expect(info).toMatchObject({ path: p, name: "f.txt", type: "file", size: 11, mode: 0o604 });
    expect(await readFile(p, "utf8")).toBe("hello world");
    expect((await stat(p)).mode & 0o7777).toBe(0o604);
    expect(await readdir(join(agent.dir, "a/b"))).toEqual(["f.txt"]); // no temp file left

    const r = await files.readFile(p, { offset: 6, length: 3 }, signal);
    expect(r.info.size).toBe(11);
    expect(await text(r.chunks)).toBe("wor");
    expect(await text((await files.readFile(p, {}, signal)).chunks)).toBe("hello world");

    await files.mkdir(join(agent.dir, "a/c/d"), { parents: true }, signal);
    const list = await files.listDir(join(agent.dir, "a"), { depth: 2, maxEntries: 100 }, signal);
    expect(list.map((e) => `${e.name}:${e.type}`).sort()).toEqual([
      "b:dir",
      "c:dir",
      "d:dir",
      "f.txt:file",
    ]);
    await expect(
      files.listDir(join(agent.dir, "a"), { depth: 2, maxEntries: 3 }, signal),
    ).rejects.toMatchObject({ kind: "resource_exhausted" });

    await expect(files.remove(join(agent.dir, "a"), {}, signal)).rejects.toMatchObject({
      kind: "failed_precondition",
    });
    await files.remove(join(agent.dir, "a"), { recursive: true }, signal);
    await expect(files.stat(join(agent.dir, "a"), signal)).rejects.toMatchObject({
      kind: "not_found",
    });
  });

  it("maps the guest's errors to kinds", async () => {
    const kind = (p: Promise<unknown>) =>
      p.then(
        () => "ok",
        (e: AgentError) => e.kind,
      );
    expect(await kind(files.stat(join(agent.dir, "missing"), signal))).toBe("not_found");
    expect(await kind(files.readFile(agent.dir, {}, signal))).toBe("failed_precondition");
    expect(await kind(files.writeFile(agent.dir, {}, bytes("x"), signal))).toBe(
      "failed_precondition",
    );
    expect(await kind(files.stat("relative", signal))).toBe("invalid_argument");
    expect(
      await kind(files.writeFile(join(agent.dir, "u"), { user: "no-such-user" }, bytes(), signal)),
    ).toBe("invalid_argument");
  });

  it("an upload whose connection ends before FILE_END leaves nothing behind", async () => {
    const dir = join(agent.dir, "cancel");
    await mkdir(dir);
    const ac = new AbortController();
    const data = async function* () {
      yield new Uint8Array(1 << 20);
      ac.abort(new Error("gone"));
      await sleep(200);
    };
    await expect(files.writeFile(join(dir, "x"), {}, data(), ac.signal)).rejects.toThrow();
    for (let i = 0; i < 100 && (await readdir(dir)).length > 0; i++) await sleep(20);
    expect(await readdir(dir)).toEqual([]);
  });

  it("watch: create/write/chmod/rename/remove, new subdirectories, ends when the path goes", async () => {
    const dir = join(agent.dir, "w");
    await mkdir(dir);
    const events = await files.watch(dir, { recursive: true }, signal);
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of events) seen.push(`${e.kind} ${e.path.slice(dir.length)}`);
    })();
    await mkdir(join(dir, "sub"));
    await sleep(50);
    await writeFile(join(dir, "sub/f"), "x");
    await import("node:fs/promises").then(async (fs) => {
      await fs.chmod(join(dir, "sub/f"), 0o600);
      await fs.rename(join(dir, "sub/f"), join(dir, "g"));
      await fs.rm(join(dir, "g"));
      await fs.rm(dir, { recursive: true });
    });
    await Promise.race([done, sleep(5000)]);
    expect(seen).toEqual(
      expect.arrayContaining([
        "create /sub",
        "create /sub/f",
        "write /sub/f",
        "chmod /sub/f",
        "rename /sub/f",
        "rename /g",
        "remove /g",
        "remove ",
      ]),
    );
  });
});

describe("an upload to a guest that stops reading", () => {
  it("pulls the data only FILE_IN_FLIGHT_BYTES (plus the socket's buffers) ahead", async () => {
    const path = join(agent.dir, "stalled-agent.sock");
    const sockets: Socket[] = [];
    const server = createServer((s) => {
      sockets.push(s);
      const d = new FrameDecoder();
      const onData = (chunk: Buffer) => {
        d.push(new Uint8Array(chunk));
        for (let f = d.next(); f; f = d.next()) {
          if (f.type === FrameType.hello) {
            s.write(encodeFrame(FrameType.helloReply, Uint8Array.of(0, 2)));
          } else if (f.type === FrameType.writeFile) {
            s.write(encodeFrame(FrameType.ok));
            // The guest's disk is stuck: nothing more is read from the connection.
            s.off("data", onData);
            s.pause();
            return;
          }
        }
      };
      s.on("data", onData);
    });
    await new Promise<void>((r) => server.listen(path, () => r()));
    const ac = new AbortController();
    try {
      const stalled = new AgentFiles(new AgentClient({ endpoint: { kind: "unix", path } }));
      let pulled = 0;
      const data = async function* () {
        for (;;) {
          pulled += 64 * 1024;
          yield new Uint8Array(64 * 1024);
        }
      };
      const upload = stalled.writeFile("/x", {}, data(), ac.signal);
      upload.catch(() => {});
      let before = -1;
      for (let i = 0; i < 100 && pulled !== before; i++) {
        before = pulled;
        await sleep(100);
      }
      // More than one chunk in flight (the guest and the producer do not take turns), and
      // never more than the bound plus what the kernel's socket buffers took.
      expect(pulled).toBeGreaterThanOrEqual(FILE_IN_FLIGHT_BYTES);
      expect(pulled).toBeLessThanOrEqual(FILE_IN_FLIGHT_BYTES + 2 * 1024 * 1024);
      ac.abort(new Error("test over"));
      await expect(upload).rejects.toThrow("test over");
    } finally {
      ac.abort();
      // A paused socket never sees the client go: close it, or server.close() waits forever.
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe("an agent of protocol 1", () => {
  it("file calls fail with AgentTooOldError (failed_precondition), the request never served", async () => {
    const path = join(agent.dir, "old-agent.sock");
    const served: number[] = [];
    const server = createServer((s) => {
      const d = new FrameDecoder();
      s.on("data", (chunk: Buffer) => {
        d.push(new Uint8Array(chunk));
        for (let f = d.next(); f; f = d.next()) {
          if (f.type === FrameType.hello) {
            s.write(encodeFrame(FrameType.helloReply, Buffer.from("\u0000\u00010.2.0")));
          } else {
            served.push(f.type);
            s.end(encodeFrame(FrameType.error, Buffer.from("\u0001unknown request")));
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, () => r()));
    try {
      const old = new AgentFiles(new AgentClient({ endpoint: { kind: "unix", path } }));
      const err = await old.stat("/etc", signal).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentTooOldError);
      expect(err).toMatchObject({
        kind: "failed_precondition",
        message: "agent too old (protocol 1); rebuild the rootfs with the current agent",
      });
      // The stand-in may have read the pipelined request, but no reply to it was used.
      expect(served.every((t) => t === FrameType.stat)).toBe(true);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

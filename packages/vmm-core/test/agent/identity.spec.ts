import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, connect as netConnect } from "node:net";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentClient,
  AgentError,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  IdentityTag,
  TlvWriter,
} from "../../src/agent/index.js";
import { InvalidArgumentError } from "../../src/errors.js";
import { type AgentUnderTest, startAgent } from "./agent-fixture.js";

// SET_IDENTITY against `vmm-agent-asan --unix`: a simulated agent, i.e. a host
// process. It must record the identity and never change the host's hostname,
// entropy pool or clock (the tests run as root, so a bug would really change them).

let agent: AgentUnderTest;
let client: AgentClient;
const hostHostname = osHostname();

beforeAll(async () => {
  agent = await startAgent();
  client = agent.client;
});

afterAll(async () => {
  await agent?.stop();
  expect(agent?.stderr() ?? "").not.toMatch(/Sanitizer|runtime error/);
  // Hygiene if the simulated mode ever leaked: put the host's name back (the tests still fail).
  if (osHostname() !== hostHostname) execFileSync("hostname", [hostHostname]);
});

/** The host's identity as the kernel sees it, bypassing any caching. */
function hostKernelHostname(): string {
  return readFileSync("/proc/sys/kernel/hostname", "utf8").trim();
}

/** Sends raw bytes; returns the frames received until the agent closes the connection. */
async function rawFrames(bytes: Uint8Array): Promise<Frame[]> {
  const s = netConnect({ path: agent.socketPath });
  const d = new FrameDecoder();
  const frames: Frame[] = [];
  s.on("data", (chunk: Buffer) => {
    d.push(new Uint8Array(chunk));
    for (let f = d.next(); f; f = d.next()) frames.push(f);
  });
  await new Promise<void>((r, j) => {
    s.once("connect", () => r());
    s.once("error", j);
  });
  s.write(bytes);
  await new Promise<void>((r) => {
    s.once("close", () => r());
    s.once("error", () => r());
  });
  d.end();
  return frames;
}

const hello = encodeFrame(FrameType.hello, Uint8Array.of(0, 1));
const setIdentityFrame = (tlv: TlvWriter) =>
  Buffer.concat([hello, encodeFrame(FrameType.setIdentity, tlv.finish())]);

describe("setIdentity on a simulated agent", () => {
  it("records hostname and a new boot id, reports simulated, leaves the host alone", async () => {
    const before = await client.health();
    const name = `clone-${process.pid}`;
    const wallBefore = Date.now();
    const monoBefore = performance.now();
    const result = await client.setIdentity({
      hostname: name,
      seed: randomBytes(64),
      // One day back: a leak into the host clock would be obvious (and limited).
      timeMs: Date.now() - 86_400_000,
    });
    expect(result).toEqual({
      hostname: name,
      bootId: expect.stringMatching(/^[0-9a-f]{32}$/),
      simulated: true,
      applied: { hostname: false, entropy: "none", clock: false },
    });
    expect(result.bootId).not.toBe(before.bootId);

    // Later HEALTH (new connections, other handler processes) sees the recorded identity.
    for (let i = 0; i < 3; i++) {
      const after = await client.health();
      expect(after.hostname).toBe(name);
      expect(after.bootId).toBe(result.bootId);
      expect(after.pid).toBe(before.pid); // same agent: nothing restarted
      expect(after.mode).toBe("unix");
    }

    // The host kept its hostname (also as seen by a process the agent runs) and its clock.
    expect(osHostname()).toBe(hostHostname);
    expect(hostKernelHostname()).toBe(hostHostname);
    const proc = await client.run({ argv: ["uname", "-n"] });
    let out = "";
    for await (const ev of proc) {
      if ("exit" in ev) expect(ev.exit.code).toBe(0);
      else out += Buffer.from(ev.data).toString();
    }
    expect(out.trim()).toBe(hostHostname);
    const drift = Date.now() - (wallBefore + (performance.now() - monoBefore));
    expect(Math.abs(drift)).toBeLessThan(5000);
  });

  it("gives every call its own boot id; the last identity wins", async () => {
    const a = await client.setIdentity({ hostname: "clone-a", seed: randomBytes(16) });
    const b = await client.setIdentity({ hostname: "CLONE-b-2", seed: randomBytes(512) });
    expect(a.bootId).not.toBe(b.bootId);
    const info = await client.health();
    expect(info).toMatchObject({ hostname: "CLONE-b-2", bootId: b.bootId });
    expect(hostKernelHostname()).toBe(hostHostname);
  });

  it("concurrent calls and health checks see a consistent identity", async () => {
    const names = Array.from({ length: 8 }, (_, i) => `c${i}`);
    const results = await Promise.all(
      names.map((hostname) => client.setIdentity({ hostname, seed: randomBytes(32) })),
    );
    expect(new Set(results.map((r) => r.bootId)).size).toBe(names.length);
    const info = await client.health();
    // Whatever call landed last, hostname and boot id come from the same call.
    const last = results.find((r) => r.bootId === info.bootId);
    expect(last?.hostname).toBe(info.hostname);
  });
});

describe("invalid SET_IDENTITY requests", () => {
  const seed = randomBytes(32);
  const cases: [string, TlvWriter, string][] = [
    [
      "a hostname with an underscore",
      new TlvWriter().string(IdentityTag.hostname, "bad_name").bytes(IdentityTag.seed, seed),
      "hostname must be 1-64 characters of [A-Za-z0-9-]",
    ],
    [
      "an empty hostname",
      new TlvWriter().string(IdentityTag.hostname, "").bytes(IdentityTag.seed, seed),
      "hostname must be 1-64 characters of [A-Za-z0-9-]",
    ],
    [
      "a 65-character hostname",
      new TlvWriter().string(IdentityTag.hostname, "a".repeat(65)).bytes(IdentityTag.seed, seed),
      "hostname must be 1-64 characters of [A-Za-z0-9-]",
    ],
    [
      "a hostname with a NUL",
      new TlvWriter().string(IdentityTag.hostname, "ab\0cd").bytes(IdentityTag.seed, seed),
      "hostname must be 1-64 characters of [A-Za-z0-9-]",
    ],
    [
      "a 15-byte seed",
      new TlvWriter().string(IdentityTag.hostname, "ok").bytes(IdentityTag.seed, randomBytes(15)),
      "entropy seed must be 16-512 bytes",
    ],
    [
      "a 513-byte seed",
      new TlvWriter().string(IdentityTag.hostname, "ok").bytes(IdentityTag.seed, randomBytes(513)),
      "entropy seed must be 16-512 bytes",
    ],
    [
      "no seed",
      new TlvWriter().string(IdentityTag.hostname, "ok"),
      "SET_IDENTITY needs an entropy seed",
    ],
    [
      "a 4-byte time",
      new TlvWriter()
        .string(IdentityTag.hostname, "ok")
        .bytes(IdentityTag.seed, seed)
        .u32(IdentityTag.timeMs, 1),
      "time must be u64 Unix ms",
    ],
    [
      "a truncated TLV",
      new TlvWriter().string(IdentityTag.hostname, "ok").bytes(IdentityTag.seed, seed).u8(9, 0),
      "",
    ],
  ];

  it.each(cases)(
    "%s → ERROR(invalid argument), close, identity unchanged",
    async (_n, tlv, msg) => {
      const before = await client.health();
      let bytes = setIdentityFrame(tlv);
      let expected = msg;
      if (!msg) {
        // Cut the last TLV short but keep the frame well-formed: a TLV running past the payload.
        const payload = tlv.finish();
        const cut = payload.subarray(0, payload.length - 1);
        bytes = Buffer.concat([hello, encodeFrame(FrameType.setIdentity, cut)]);
        expected = "malformed TLV in SET_IDENTITY request";
      }
      const frames = await rawFrames(bytes);
      expect(frames.map((f) => f.type)).toEqual([FrameType.helloReply, FrameType.error]);
      const err = frames[1]!.payload;
      expect(err[0]).toBe(3);
      expect(Buffer.from(err.subarray(1)).toString()).toBe(expected);
      // The agent keeps serving, and nothing was recorded.
      const after = await client.health();
      expect(after.bootId).toBe(before.bootId);
      expect(after.hostname).toBe(before.hostname);
      expect(hostKernelHostname()).toBe(hostHostname);
    },
  );

  it("ignores unknown tags (forward compatible)", async () => {
    const frames = await rawFrames(
      setIdentityFrame(
        new TlvWriter()
          .string(IdentityTag.hostname, "fwd-compat")
          .bytes(IdentityTag.seed, seed)
          .string(42, "from a newer client"),
      ),
    );
    expect(frames.map((f) => f.type)).toEqual([FrameType.helloReply, FrameType.identitySet]);
    expect((await client.health()).hostname).toBe("fwd-compat");
  });
});

describe("setIdentity client validation", () => {
  // Points at no socket: validation must throw before anything is dialed.
  const offline = () =>
    new AgentClient({ endpoint: { kind: "unix", path: join(agent.dir, "none.sock") } });

  it.each([
    ["hostname", { hostname: "has space", seed: new Uint8Array(16) }],
    ["hostname", { hostname: "", seed: new Uint8Array(16) }],
    ["hostname", { hostname: "x".repeat(65), seed: new Uint8Array(16) }],
    ["hostname", { hostname: "dot.ted", seed: new Uint8Array(16) }],
    ["seed", { hostname: "ok", seed: new Uint8Array(15) }],
    ["seed", { hostname: "ok", seed: new Uint8Array(513) }],
    ["seed", { hostname: "ok", seed: "0123456789abcdef0123" as unknown as Uint8Array }],
    ["timeMs", { hostname: "ok", seed: new Uint8Array(16), timeMs: -1 }],
    ["timeMs", { hostname: "ok", seed: new Uint8Array(16), timeMs: 1.5 }],
    ["timeMs", { hostname: "ok", seed: new Uint8Array(16), timeMs: 2 ** 53 }],
  ])("rejects a bad %s before sending", async (field, identity) => {
    const err = await offline()
      .setIdentity(identity)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
  });

  it("accepts the limits: 64-character hostname, 16- and 512-byte seeds", async () => {
    const long = `${"A1-".repeat(21)}z`;
    expect(long).toHaveLength(64);
    const r = await client.setIdentity({ hostname: long, seed: new Uint8Array(16), timeMs: 0 });
    expect(r.hostname).toBe(long);
    expect((await client.health()).hostname).toBe(long);
  });

  it("an agent before 0.2.0 answers ERROR(unsupported): AgentError unimplemented", async () => {
    // A stand-in for a version-1 agent of 0.1.0: HELLO, then ERROR(4) for SET_IDENTITY.
    const path = join(agent.dir, "old-agent.sock");
    let requestType = -1;
    const server = createServer((s) => {
      const d = new FrameDecoder();
      s.on("data", (chunk: Buffer) => {
        d.push(new Uint8Array(chunk));
        for (let f = d.next(); f; f = d.next()) {
          if (f.type === FrameType.hello) {
            s.write(encodeFrame(FrameType.helloReply, Buffer.from("\u0000\u00010.1.0")));
          } else {
            requestType = f.type;
            const msg = Buffer.from("SET_IDENTITY is not supported by this agent version");
            s.end(encodeFrame(FrameType.error, Buffer.concat([Uint8Array.of(4), msg])));
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, () => r()));
    try {
      const old = new AgentClient({ endpoint: { kind: "unix", path } });
      const err = await old
        .setIdentity({ hostname: "x", seed: new Uint8Array(16) })
        .catch((e: unknown) => e);
      expect(requestType).toBe(FrameType.setIdentity);
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).kind).toBe("unimplemented");
      expect((err as AgentError).agentCode).toBe(4);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

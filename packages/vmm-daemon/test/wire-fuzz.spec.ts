import { readdirSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { healthV1 } from "@vmm/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leftovers, type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";
import { type FuzzCase, type FuzzPool, hexHead, makeCase, send } from "./wire-fuzz.js";

/** VMM_FUZZ_SEED replays a run; the default keeps `pnpm test` deterministic. */
const SEED = Number(process.env.VMM_FUZZ_SEED ?? 20_260_101);
const CASES = Number(process.env.VMM_FUZZ_CASES ?? 10_000);
const CONCURRENCY = 24;
const BATCH = 2000;
const BASE_ID = "fuzz-base";

/** Answers that mean a bug in the daemon (or a decode error mapped as one). */
const BUG_CODES = new Set(["internal", "unknown", "no_status", "no_answer", "http 500"]);

describe("garbage on the wire (fc-sim)", () => {
  let d: SimDaemon;
  let session: http2.ClientHttp2Session | undefined;
  let baseSnapshot = "";
  const seenIds = new Set<string>([BASE_ID]);

  const h2 = () => {
    if (session === undefined || session.closed || session.destroyed) {
      session = http2.connect("http://localhost", {
        createConnection: () => net.connect(d.socket),
      });
      session.on("error", () => {});
    }
    return session;
  };

  beforeAll(async () => {
    d = await startSimDaemon({
      sections: [
        "[limits]",
        "max_sandboxes = 4",
        "max_concurrent_creates = 2",
        "max_snapshots_per_sandbox = 1",
        "[agent]",
        "boot_timeout_ms = 60000",
      ].join("\n"),
      env: { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" },
    });
    await d.sandboxes.create({ id: BASE_ID });
    await waitForState(d, BASE_ID, "ready", 60_000);
    baseSnapshot = (await d.snapshots.checkpoint({ sandboxId: BASE_ID })).snapshotId;
  });
  afterAll(async () => {
    session?.destroy();
    await d?.[Symbol.asyncDispose]();
  });

  /** Removes every sandbox and snapshot but `keep`'s, remembering the sandbox ids seen. */
  async function removeAll(keep: { sandbox?: string; snapshot?: string } = {}): Promise<void> {
    const ignoreNotFound = (e: unknown) => {
      if (!(e instanceof ConnectError && e.code === Code.NotFound)) throw e;
    };
    const ids: string[] = [];
    let pageToken = "";
    do {
      const page = await d.sandboxes.list({ pageToken });
      ids.push(...page.sandboxes.map((s) => s.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    for (const id of ids) seenIds.add(id);
    await Promise.all(
      ids
        .filter((id) => id !== keep.sandbox)
        .map((id) => d.sandboxes.remove({ id, force: true }).catch(ignoreNotFound)),
    );
    const snaps: string[] = [];
    do {
      const page = await d.snapshots.listSnapshots({ pageToken });
      snaps.push(...page.snapshots.map((s) => s.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    await Promise.all(
      snaps
        .filter((id) => id !== keep.snapshot)
        .map((id) => d.snapshots.deleteSnapshot({ snapshotId: id }).catch(ignoreNotFound)),
    );
  }

  /** Sends `cases` with bounded concurrency; returns the ones answered with a bug code. */
  async function run(cases: readonly FuzzCase[]): Promise<string[]> {
    const bad: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++] as FuzzCase;
        const a = await send(h2(), c, 20_000);
        if (BUG_CODES.has(a.code)) {
          bad.push(
            `case ${c.index} ${c.method.name} over ${c.protocol} (${c.mutation}): ${a.code} ${JSON.stringify(a.message)}; body ${hexHead(c.body)}`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return bad;
  }

  const caseOf = (protocol: FuzzCase["protocol"], path: string, body: Uint8Array, extra = {}) => {
    const [, service = "", method = ""] = path.split("/");
    const grpc = protocol.startsWith("grpc");
    const headers = {
      ":method": "POST",
      ":path": path,
      "content-type": {
        grpc: "application/grpc",
        "grpc+json": "application/grpc+json",
        "grpc-web": "application/grpc-web+proto",
        connect: "application/proto",
        "connect+json": "application/json",
      }[protocol],
      ...(grpc ? { te: "trailers" } : { "connect-protocol-version": "1" }),
      ...extra,
    };
    return {
      index: 0,
      method: { name: `${service}/${method}` } as FuzzCase["method"],
      protocol,
      mutation: "",
      headers,
      body,
    } satisfies FuzzCase;
  };
  const enveloped = (b: Uint8Array, flags = 0) => {
    const out = Buffer.alloc(5 + b.length);
    out[0] = flags;
    out.writeUInt32BE(b.length, 1);
    out.set(b, 5);
    return out;
  };

  it("known garbage answers INVALID_ARGUMENT over gRPC, gRPC-Web and Connect, saying what failed", async () => {
    const create = "/sandbox.v1.SandboxService/Create";
    const restore = "/sandbox.v1.SandboxSnapshotService/Restore";
    // Field 1 (id) says 5 bytes, 1 follows.
    const prematureEof = new Uint8Array([0x0a, 0x05, 0x61]);
    const wireType7 = new Uint8Array([0x0f, 0x01]);
    const deepGroups = new Uint8Array(200_000).fill(0x0b); // 200k nested start-group tags
    const json = (s: string) => new TextEncoder().encode(s);
    const { gzipSync } = await import("node:zlib");
    const truncatedGzip = gzipSync(Buffer.from("x".repeat(100))).subarray(0, 12);
    const cases: [string, FuzzCase, RegExp][] = [
      [
        "gRPC, premature EOF",
        caseOf("grpc", create, enveloped(prematureEof)),
        /CreateSandboxRequest \(protobuf binary\): premature EOF/,
      ],
      [
        "gRPC-Web, premature EOF",
        caseOf("grpc-web", create, enveloped(prematureEof)),
        /CreateSandboxRequest \(protobuf binary\): premature EOF/,
      ],
      [
        "Connect, premature EOF",
        caseOf("connect", create, prematureEof),
        /CreateSandboxRequest \(protobuf binary\): premature EOF/,
      ],
      [
        "gRPC, wire type 7",
        caseOf("grpc", restore, enveloped(wireType7)),
        /RestoreRequest \(protobuf binary\)/,
      ],
      [
        "Connect, 200k nested groups",
        caseOf("connect", create, deepGroups),
        /CreateSandboxRequest \(protobuf binary\)/,
      ],
      [
        "Connect, bad JSON",
        caseOf("connect+json", create, json('{"id": ')),
        /CreateSandboxRequest \(JSON\)/,
      ],
      [
        "gRPC, bad JSON",
        caseOf("grpc+json", create, enveloped(json("[1,"))),
        /CreateSandboxRequest \(JSON\)/,
      ],
      [
        "Connect, JSON wrong type",
        caseOf("connect+json", create, json('{"ttlSeconds": "soon"}')),
        /ttl_seconds/,
      ],
      [
        "Connect, JSON negative uint64",
        caseOf("connect+json", create, json('{"limits": {"memoryMib": -1}}')),
        /memory_mib/,
      ],
      [
        "gRPC, JSON with a lone surrogate",
        caseOf(
          "grpc+json",
          "/sandbox.v1.SandboxService/Remove",
          enveloped(json('{"force": "\\ud800"}')),
        ),
        /RemoveSandboxRequest \(JSON\).*force/,
      ],
      [
        "Connect, JSON map of numbers",
        caseOf("connect+json", create, json('{"labels": {"a": 1}}')),
        /labels/,
      ],
      [
        "gRPC, compressed flag without grpc-encoding",
        caseOf("grpc", create, enveloped(new Uint8Array(0), 1)),
        /compressed/,
      ],
      [
        "gRPC, truncated gzip",
        caseOf("grpc", create, enveloped(truncatedGzip, 1), { "grpc-encoding": "gzip" }),
        /not valid gzip data/,
      ],
      [
        "Connect, truncated gzip",
        caseOf("connect", create, truncatedGzip, { "content-encoding": "gzip" }),
        /not valid gzip data/,
      ],
    ];
    const got = await Promise.all(cases.map(([, c]) => send(h2(), c, 10_000)));
    const summary = (i: number) => `${cases[i]?.[0]}: ${got[i]?.code} ${got[i]?.message}`;
    for (let i = 0; i < cases.length; i++) {
      expect(got[i]?.code, summary(i)).toBe("invalid_argument");
      expect(got[i]?.message, summary(i)).toMatch(cases[i]?.[2] as RegExp);
    }
  });

  it("an envelope over the message limit with more body behind it: RESOURCE_EXHAUSTED before the body is read", async () => {
    // 2 GiB declared, 1 MiB sent: the daemon answers after the 5-byte prefix.
    const body = Buffer.alloc(5 + (1 << 20));
    body.writeUInt32BE(2 ** 31, 1);
    for (const protocol of ["grpc", "grpc-web"] as const) {
      const a = await send(h2(), caseOf(protocol, "/sandbox.v1.SandboxService/List", body), 5_000);
      expect(a.code, `${protocol}: ${a.message}`).toBe("resource_exhausted");
    }
  });

  it(`${CASES.toLocaleString("en")} random and mutated bodies over the sixteen unary RPCs: no INTERNAL or UNKNOWN, no crash, nothing left`, async () => {
    const pool: FuzzPool = {
      sandboxIds: [BASE_ID, "fuzz-1", "fuzz-2", "fuzz-3"],
      snapshotIds: [baseSnapshot],
    };
    const started = performance.now();
    const bad: string[] = [];
    for (let from = 0; from < CASES; from += BATCH) {
      const cases = Array.from({ length: Math.min(BATCH, CASES - from) }, (_, i) =>
        makeCase(SEED, from + i, pool),
      );
      bad.push(...(await run(cases)));
      // Random-but-valid Creates, Restores and Checkpoints made things: free them for the next batch.
      await removeAll({ sandbox: BASE_ID, snapshot: baseSnapshot });
      if (!(await d.sandboxes.list({})).sandboxes.some((s) => s.id === BASE_ID))
        await d.sandboxes.create({ id: BASE_ID }).catch(() => {});
    }
    const seconds = (performance.now() - started) / 1000;
    // No crash: the daemon still serves, and never logged an error or an uncaught exception.
    const errors = d
      .stderr()
      .split("\n")
      .filter((l) => /"level":(5|6)\d/.test(l) || /uncaught|unhandled/i.test(l));
    expect({ bad, errors }, `seed ${SEED}`).toEqual({ bad: [], errors: [] });
    expect(d.child.exitCode).toBeNull();
    const health = createClient(
      healthV1.Health,
      createGrpcTransport({
        baseUrl: "http://localhost",
        nodeOptions: { createConnection: () => net.connect(d.socket) },
      }),
    );
    expect((await health.check({})).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );

    // Nothing left: every sandbox and snapshot removed, no process or directory behind.
    await removeAll();
    expect((await d.sandboxes.list({})).sandboxes).toEqual([]);
    expect((await d.snapshots.listSnapshots({})).snapshots).toEqual([]);
    // Remove renames a directory aside (".<id>.deleting-…") and frees it in the background.
    const sandboxesDir = join(d.dataDir, "sandboxes");
    for (let i = 0; i < 100 && readdirSync(sandboxesDir).length > 0; i++) await sleep(50);
    expect(readdirSync(sandboxesDir)).toEqual([]);
    expect(leftovers(d, [...seenIds], [])).toEqual([]);
    console.log(`wire fuzz: ${CASES} cases, seed ${SEED}, ${seconds.toFixed(1)} s`);
  }, 180_000);
});

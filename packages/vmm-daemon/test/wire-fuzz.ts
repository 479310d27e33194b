import * as http2 from "node:http2";
import { gzipSync } from "node:zlib";
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  ScalarType,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { HostService, SandboxService, SandboxSnapshotService } from "@vmm/proto";

/** The unary RPCs of sandbox.v1 (Run, Exec and Events stream) and of our additions. */
export const UNARY_METHODS: readonly DescMethod[] = [
  SandboxService.method.create,
  SandboxService.method.stop,
  SandboxService.method.remove,
  SandboxService.method.inspect,
  SandboxService.method.list,
  SandboxService.method.pause,
  SandboxService.method.resume,
  SandboxService.method.listProcesses,
  SandboxService.method.signalProcess,
  SandboxService.method.exposePort,
  SandboxService.method.updateNetworkPolicy,
  SandboxSnapshotService.method.checkpoint,
  SandboxSnapshotService.method.restore,
  SandboxSnapshotService.method.listSnapshots,
  SandboxSnapshotService.method.deleteSnapshot,
  HostService.method.checkHost,
];

/** A field of `desc` to corrupt, or field 1 of a message that has none (e.g. CheckHostRequest). */
function someField(desc: DescMessage, rng: Rng): { number: number; desc?: DescField } {
  if (desc.fields.length === 0) return { number: 1 };
  const f = rng.pick(desc.fields);
  return { number: f.number, desc: f };
}

/** Mulberry32: a small seeded PRNG, so that a seed and a case number replay the same bytes. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Names the random messages draw from, so that some requests reach real sandboxes and snapshots. */
export interface FuzzPool {
  readonly sandboxIds: readonly string[];
  readonly snapshotIds: readonly string[];
}

/** The wire protocols (and codecs) a case is sent with. */
export type Protocol = "grpc" | "grpc+json" | "grpc-web" | "connect" | "connect+json";

/** One request: method, protocol, what was done to the body, the HTTP/2 headers and body. */
export interface FuzzCase {
  readonly index: number;
  readonly method: DescMethod;
  readonly protocol: Protocol;
  readonly mutation: string;
  readonly headers: http2.OutgoingHttpHeaders;
  readonly body: Uint8Array;
}

/**
 * Case `index` of run `seed`: a random message of a random one of the
 * methods, encoded for a random protocol, then (mostly) mutated. Each case
 * has its own PRNG, so a failing case replays alone from (seed, index).
 */
export function makeCase(seed: number, index: number, pool: FuzzPool): FuzzCase {
  const rng = new Rng(seed ^ Math.imul(index + 1, 0x9e3779b1));
  const method = rng.pick(UNARY_METHODS);
  const protocol = rng.pick<Protocol>([
    "grpc",
    "grpc",
    "grpc",
    "grpc+json",
    "grpc-web",
    "connect",
    "connect",
    "connect+json",
    "connect+json",
  ]);
  const msg = randomMessage(method.input, rng, pool, 0);
  const json = protocol.endsWith("+json");
  const { bytes, mutation } = json
    ? mutateJson(toJsonString(method.input, msg), method.input, rng)
    : mutateBinary(toBinary(method.input, msg), method.input, rng);
  return { index, method, protocol, ...frame(protocol, method, bytes, mutation, rng) };
}

// --- random messages ---------------------------------------------------------

const SAFE_CMDS: readonly string[][] = [[], ["true"], ["sleep", "0"], ["no-such-command-x"]];

function randomMessage(desc: DescMessage, rng: Rng, pool: FuzzPool, depth: number) {
  const init: Record<string, unknown> = {};
  for (const f of desc.fields) {
    if (f.oneof !== undefined || !rng.chance(0.6)) continue;
    // The fc-sim guest runs a Create's cmd on this host: only harmless commands.
    if (f.name === "cmd") init[f.localName] = rng.pick(SAFE_CMDS);
    else init[f.localName] = randomField(f, rng, pool, depth);
  }
  return create(desc, init as never);
}

function randomField(f: DescField, rng: Rng, pool: FuzzPool, depth: number): unknown {
  const count = () => (rng.chance(0.05) ? 20 + rng.int(200) : rng.int(4));
  switch (f.fieldKind) {
    case "scalar":
      return randomScalar(f.scalar, f.name, rng, pool);
    case "enum":
      return rng.chance(0.8) ? rng.pick(f.enum.values).number : rng.int(1000) - 500;
    case "message":
      return depth > 3 ? undefined : randomMessage(f.message, rng, pool, depth + 1);
    case "list":
      return Array.from({ length: count() }, () =>
        f.listKind === "scalar"
          ? randomScalar(f.scalar, f.name, rng, pool)
          : f.listKind === "enum"
            ? rng.pick(f.enum.values).number
            : randomMessage(f.message, rng, pool, depth + 1),
      );
    case "map": {
      const out: Record<string, unknown> = {};
      for (let i = count(); i > 0; i--) {
        const key = String(randomScalar(f.mapKey, "key", rng, pool));
        out[key] =
          f.mapKind === "scalar"
            ? randomScalar(f.scalar, "value", rng, pool)
            : f.mapKind === "enum"
              ? rng.pick(f.enum.values).number
              : randomMessage(f.message, rng, pool, depth + 1);
      }
      return out;
    }
  }
}

const U32_EDGES = [0, 1, 2, 5, 30, 255, 65_535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1];
const U64_EDGES = [0n, 1n, 16n, 128n, 4096n, 2n ** 31n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n];

function randomScalar(t: ScalarType, name: string, rng: Rng, pool: FuzzPool): unknown {
  switch (t) {
    case ScalarType.STRING:
      return randomString(name, rng, pool);
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.BYTES:
      return rng.bytes(rng.int(64));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return rng.chance(0.7) ? rng.pick(U32_EDGES) : rng.int(2 ** 32);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return rng.chance(0.5) ? -rng.int(2 ** 31) : rng.int(2 ** 31);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return rng.chance(0.7) ? rng.pick(U64_EDGES) : BigInt(rng.int(2 ** 32)) * BigInt(rng.int(8));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return rng.pick([0n, -1n, 1n, -(2n ** 63n), 2n ** 63n - 1n]);
    default:
      return rng.next() * 1e6;
  }
}

function randomString(name: string, rng: Rng, pool: FuzzPool): string {
  if (name.endsWith("id") && rng.chance(0.5)) {
    return name.startsWith("snapshot") && pool.snapshotIds.length > 0
      ? rng.pick(pool.snapshotIds)
      : rng.pick(pool.sandboxIds);
  }
  switch (rng.int(12)) {
    case 0:
      return "";
    case 1:
      return rng.pick([...pool.sandboxIds, ...pool.snapshotIds]);
    case 2:
      return rng.pick(["ready", "starting", "stopped", "failed", "bogus", "READY", "none", "tap"]);
    case 3:
      return rng.pick(["vmlinux", "rootfs.ext4", "../../../etc/passwd", "/proc/self/mem", "/"]);
    case 4:
      return rng.pick(["team", "a.b/c-d_e", "x".repeat(128), "x".repeat(129), "-", "k=v"]);
    case 5:
      return "x".repeat(rng.pick([47, 48, 49, 63, 64, 1024, 1025, 4096, 16_385]));
    case 6:
      return randomChars(rng, rng.int(20_000), 0x10ffff);
    case 7:
      return randomChars(rng, rng.int(64), 0x7f);
    default:
      return randomChars(rng, 1 + rng.int(40), 0, "abcdefghijklmnopqrstuvwxyz0123456789-");
  }
}

function randomChars(rng: Rng, n: number, maxCodePoint: number, alphabet?: string): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    if (alphabet !== undefined) s += alphabet[rng.int(alphabet.length)];
    else {
      const cp = rng.int(maxCodePoint + 1);
      // Lone surrogates become U+FFFD when encoded; keep them: they are what a client can send.
      s += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
    }
  }
  return s;
}

// --- binary mutations --------------------------------------------------------

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const tag = (field: number, wireType: number) => varint((BigInt(field) << 3n) | BigInt(wireType));

/** The wire type a field's value is encoded with (2 for packed, string, bytes, message, map). */
function wireTypeOf(f: DescField): number {
  if (f.fieldKind !== "scalar") return 2;
  switch (f.scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return 2;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 1;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return 5;
    default:
      return 0;
  }
}

function splice(b: Uint8Array, at: number, cut: number, insert: ArrayLike<number>): Uint8Array {
  const removed = Math.min(cut, b.length - at);
  const out = new Uint8Array(b.length - removed + insert.length);
  out.set(b.subarray(0, at));
  out.set(insert, at);
  out.set(b.subarray(at + removed), at + insert.length);
  return out;
}

type Mutator = (b: Uint8Array, desc: DescMessage, rng: Rng) => Uint8Array;

const BINARY_MUTATORS: Record<string, Mutator> = {
  "bit flips": (b, _, rng) => {
    const out = b.length > 0 ? b.slice() : new Uint8Array([0]);
    for (let i = 1 + rng.int(8); i > 0; i--) {
      const at = rng.int(out.length);
      out[at] = (out[at] as number) ^ (1 << rng.int(8));
    }
    return out;
  },
  truncated: (b, _, rng) => b.subarray(0, rng.int(Math.max(1, b.length))),
  "inserted bytes": (b, _, rng) => splice(b, rng.int(b.length + 1), 0, rng.bytes(1 + rng.int(16))),
  "random varint": (b, _, rng) => {
    const v = rng.chance(0.2)
      ? [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01] // 11 bytes: overlong
      : varint(BigInt(rng.int(2 ** 32)) << BigInt(rng.int(33)));
    return splice(b, rng.int(b.length + 1), rng.chance(0.5) ? Math.min(v.length, b.length) : 0, v);
  },
  "wrong wire type": (b, desc, rng) => {
    const f = someField(desc, rng);
    const wrong = rng.pick(
      [0, 1, 2, 3, 4, 5, 6, 7].filter((w) => !f.desc || w !== wireTypeOf(f.desc)),
    );
    const payload = { 0: varint(BigInt(rng.int(1000))), 1: [...rng.bytes(8)], 2: [3, 1, 2, 3] }[
      wrong
    ] ?? [...rng.bytes(rng.int(8))];
    return splice(b, rng.chance(0.5) ? 0 : b.length, 0, [...tag(f.number, wrong), ...payload]);
  },
  "huge length": (b, desc, rng) => {
    const f = someField(desc, rng);
    const len = rng.pick([2n ** 31n - 1n, 2n ** 31n, 2n ** 32n + 5n, 2n ** 63n, 2n ** 64n - 1n]);
    return splice(b, b.length, 0, [...tag(f.number, 2), ...varint(len), 1, 2, 3]);
  },
  "unterminated group": (b, desc, rng) =>
    splice(b, b.length, 0, [...tag(someField(desc, rng).number, 3), ...rng.bytes(rng.int(6))]),
  "deep groups": (b, _, rng) => {
    const depth = rng.pick([1000, 20_000, 100_000]);
    const open = tag(99, 3);
    const out: number[] = [];
    for (let i = 0; i < depth; i++) out.push(...open);
    return splice(b, 0, 0, out);
  },
  "invalid utf-8": (b, desc, rng) => {
    const strings = desc.fields.filter(
      (f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING,
    );
    const f = strings.length > 0 ? rng.pick(strings) : someField(desc, rng);
    const bad = rng.pick([
      [0xff],
      [0xc3, 0x28],
      [0xed, 0xa0, 0x80],
      [0xf8, 0x88, 0x80, 0x80, 0x80],
    ]);
    return splice(b, b.length, 0, [...tag(f.number, 2), bad.length, ...bad]);
  },
  "bad field number": (b, _, rng) =>
    splice(b, 0, 0, [...tag(rng.pick([0, 2 ** 29, 2 ** 29 + 7, 2 ** 32]), rng.int(6)), 0]),
  "random bytes": (_b, _, rng) => rng.bytes(rng.int(rng.chance(0.1) ? 4096 : 64)),
  duplicated: (b) => splice(b, b.length, 0, b),
};

function mutateBinary(
  valid: Uint8Array,
  desc: DescMessage,
  rng: Rng,
): { bytes: Uint8Array; mutation: string } {
  if (rng.chance(0.12)) return { bytes: valid, mutation: "valid binary" };
  const names = Object.keys(BINARY_MUTATORS);
  const applied: string[] = [];
  let bytes = valid;
  for (let i = rng.chance(0.25) ? 2 + rng.int(2) : 1; i > 0; i--) {
    const name = rng.pick(names);
    applied.push(name);
    bytes = (BINARY_MUTATORS[name] as Mutator)(bytes, desc, rng);
  }
  return { bytes, mutation: applied.join(" + ") };
}

// --- JSON mutations ----------------------------------------------------------

function randomJsonValue(rng: Rng, depth: number): unknown {
  switch (rng.int(depth > 3 ? 6 : 8)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([-1, 0, 1.5, -0, 1e300, 2 ** 53 + 2, 2 ** 64, 4294967296, -2147483649]);
    case 3:
      return rng.pick(["", "abc", "NaN", "Infinity", "-1", "1.5", "1e3", "18446744073709551616"]);
    case 4:
      return randomChars(rng, rng.int(30), 0xffff);
    case 5:
      return rng.pick(["AAAA", "!!!", "YQ", "YQ==", "a-_b"]);
    case 6:
      return Array.from({ length: rng.int(4) }, () => randomJsonValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(4); i > 0; i--)
        o[randomChars(rng, 1 + rng.int(8), 0x7f)] = randomJsonValue(rng, depth + 1);
      return o;
    }
  }
}

function mutateJson(
  valid: string,
  desc: DescMessage,
  rng: Rng,
): { bytes: Uint8Array; mutation: string } {
  const enc = (s: string) => new TextEncoder().encode(s);
  const obj = JSON.parse(valid) as Record<string, unknown>;
  switch (rng.int(9)) {
    case 0:
      return { bytes: enc(valid), mutation: "valid JSON" };
    case 1:
    case 2: {
      const f = someField(desc, rng).desc;
      if (f === undefined) break; // no fields: an unknown key is covered by the other cases
      const key = rng.chance(0.5) ? f.jsonName : f.name;
      obj[key] = randomJsonValue(rng, 0);
      return { bytes: enc(JSON.stringify(obj)), mutation: `JSON wrong type for ${key}` };
    }
    case 3: {
      const f = rng.pick(
        desc.fields.filter((x) => x.fieldKind === "message" || x.fieldKind === "map"),
      );
      if (f === undefined) break;
      obj[f.jsonName] = {
        [rng.pick(["vcpus", "memoryMib", "mode", "a"])]: randomJsonValue(rng, 1),
      };
      return {
        bytes: enc(JSON.stringify(obj)),
        mutation: `JSON nested wrong type in ${f.jsonName}`,
      };
    }
    case 4:
      return { bytes: enc(JSON.stringify(randomJsonValue(rng, 0))), mutation: "random JSON" };
    case 5: {
      const n = rng.pick([100, 10_000, 200_000]);
      const deep = "[".repeat(n) + "]".repeat(n);
      const f = someField(desc, rng).desc;
      return {
        bytes: enc(rng.chance(0.5) || !f ? deep : `{"${f.jsonName}":${deep}}`),
        mutation: `JSON nested ${n} deep`,
      };
    }
    case 6: {
      const b = enc(valid);
      return {
        bytes: splice(b, rng.int(b.length + 1), 0, [rng.pick([0xff, 0xc3, 0xed, 0x80])]),
        mutation: "JSON invalid utf-8",
      };
    }
    default:
      break;
  }
  const mutated = BINARY_MUTATORS[
    rng.pick(["bit flips", "truncated", "inserted bytes"])
  ] as Mutator;
  return { bytes: mutated(enc(valid), desc, rng), mutation: "JSON text bytes mutated" };
}

// --- framing -----------------------------------------------------------------

function envelope(flags: number, data: Uint8Array, declaredLength = data.length): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, declaredLength >>> 0);
  out.set(data, 5);
  return out;
}

function frame(
  protocol: Protocol,
  method: DescMethod,
  message: Uint8Array,
  mutation: string,
  rng: Rng,
): { headers: http2.OutgoingHttpHeaders; body: Uint8Array; mutation: string } {
  const path = `/${method.parent.typeName}/${method.name}`;
  const json = protocol.endsWith("+json");
  if (protocol.startsWith("connect")) {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": json ? "application/json" : "application/proto",
      "connect-protocol-version": "1",
    };
    if (rng.chance(0.05)) {
      const gz = gzipSync(message);
      const body = rng.chance(0.5) ? gz : gz.subarray(0, rng.int(gz.length));
      return {
        headers: { ...headers, "content-encoding": "gzip" },
        body,
        mutation: `${mutation}, gzip${body === gz ? "" : " truncated"}`,
      };
    }
    return { headers, body: message, mutation };
  }
  const web = protocol === "grpc-web";
  const headers: http2.OutgoingHttpHeaders = {
    ":method": "POST",
    ":path": path,
    "content-type": web
      ? "application/grpc-web+proto"
      : json
        ? "application/grpc+json"
        : "application/grpc",
    ...(web ? { "x-grpc-web": "1" } : { te: "trailers" }),
  };
  if (!rng.chance(0.1)) return { headers, body: envelope(0, message), mutation };
  switch (rng.int(6)) {
    case 0:
      return {
        headers,
        body: envelope(1, message),
        mutation: `${mutation}, compressed flag, no encoding`,
      };
    case 1: {
      const gz = gzipSync(message);
      const body = rng.chance(0.5) ? gz : gz.subarray(0, rng.int(gz.length));
      return {
        headers: { ...headers, "grpc-encoding": "gzip" },
        body: envelope(1, body),
        mutation: `${mutation}, gzip${body === gz ? "" : " truncated"}`,
      };
    }
    case 2:
      return {
        headers,
        body: envelope(0, message, message.length + 1 + rng.int(100)),
        mutation: `${mutation}, envelope longer than body`,
      };
    case 3:
      return {
        headers,
        body: envelope(0, message, rng.int(message.length + 1)),
        mutation: `${mutation}, envelope shorter than body`,
      };
    case 4:
      return {
        headers,
        body: envelope(0, message, rng.pick([2 ** 31, 2 ** 32 - 1])),
        mutation: `${mutation}, envelope of 2 GiB`,
      };
    default:
      return {
        headers,
        body: envelope(rng.int(256), message),
        mutation: `${mutation}, random envelope flags`,
      };
  }
}

// --- sending -----------------------------------------------------------------

/** What the daemon answered: a status code in snake case ("ok", "invalid_argument", …) and message. */
export interface Answer {
  readonly code: string;
  readonly message: string;
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
const grpcCode = (status: string) =>
  status === "0" ? "ok" : snake(Code[Number(status)] ?? `code ${status}`);

/**
 * Sends one case on `session` and reads the status, whatever the protocol
 * carries it in. Settles once the daemon has sent its whole answer (it may
 * answer before reading the whole body, RFC 9113 §8.1), then drops the stream.
 */
export function send(
  session: http2.ClientHttp2Session,
  c: FuzzCase,
  timeoutMs: number,
): Promise<Answer> {
  return new Promise((resolve) => {
    const req = session.request(c.headers);
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let settled = false;
    const settle = (a: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(a);
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
    };
    const timer = setTimeout(
      () => settle({ code: "no_answer", message: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    req.on("response", (h) => (headers = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (b: Buffer) => chunks.push(b));
    req.on("error", () => {});
    const done = () =>
      settle(answerOf(c.protocol, headers, trailers, Buffer.concat(chunks), req.rstCode));
    req.on("end", done);
    req.on("close", done);
    req.end(c.body);
  });
}

function answerOf(
  protocol: Protocol,
  headers: http2.IncomingHttpHeaders,
  trailers: http2.IncomingHttpHeaders,
  body: Buffer,
  rstCode: number,
): Answer {
  const status = Number(headers[":status"] ?? 0);
  if (protocol.startsWith("connect")) {
    if (status === 200) return { code: "ok", message: "" };
    try {
      const e = JSON.parse(body.toString()) as { code?: string; message?: string };
      return { code: e.code ?? `http ${status}`, message: e.message ?? "" };
    } catch {
      return { code: `http ${status}`, message: body.toString().slice(0, 200) };
    }
  }
  let fields: Record<string, string | string[] | undefined> = { ...headers, ...trailers };
  if (protocol === "grpc-web" && fields["grpc-status"] === undefined) {
    // gRPC-Web carries trailers in the body's last envelope (flag 0x80).
    for (let at = 0; at + 5 <= body.length; ) {
      const len = body.readUInt32BE(at + 1);
      if ((body[at] as number) & 0x80) {
        fields = {};
        for (const line of body
          .subarray(at + 5, at + 5 + len)
          .toString()
          .split("\r\n")) {
          const i = line.indexOf(":");
          if (i > 0) fields[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
      }
      at += 5 + len;
    }
  }
  const grpcStatus = fields["grpc-status"];
  if (typeof grpcStatus !== "string") {
    // Refusals at the HTTP/2 layer, mapped as gRPC clients do (gRPC over HTTP/2 spec).
    if (rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)
      return { code: "resource_exhausted", message: "stream reset: ENHANCE_YOUR_CALM" };
    if (rstCode === http2.constants.NGHTTP2_REFUSED_STREAM)
      return { code: "unavailable", message: "stream reset: REFUSED_STREAM" };
    return { code: "no_status", message: `http ${status}, stream reset code ${rstCode}` };
  }
  const message = fields["grpc-message"];
  return {
    code: grpcCode(grpcStatus),
    message: typeof message === "string" ? decodeURIComponent(message) : "",
  };
}

/** Hex of at most the first `max` bytes, to quote a failing body. */
export function hexHead(b: Uint8Array, max = 96): string {
  return (
    Buffer.from(b.subarray(0, max)).toString("hex") +
    (b.length > max ? `… (${b.length} bytes)` : "")
  );
}

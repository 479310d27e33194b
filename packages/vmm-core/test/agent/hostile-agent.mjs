// A hostile stand-in for vmm-agent (docs/agent-protocol.md), for tests of what a
// guest that replaced the agent can do to the daemon. It answers HELLO, HEALTH
// and SET_IDENTITY correctly (so a sandbox boots on it), and misbehaves on RUN
// as argv[0] says (see `behaviours`). Plain JavaScript with no imports from
// the repo, so fc-sim can spawn it as its guest agent.
//
// Usage: node hostile-agent.mjs --unix PATH
//        node hostile-agent.mjs --unix-dir DIR --cmdline "... vmm.agent_port=N ..."
// With --health-error first, HEALTH gets an ERROR frame of 262 KB of escapes (a boot that fails).
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

const T = {
  hello: 0x01,
  health: 0x02,
  run: 0x03,
  setIdentity: 0x04,
  helloReply: 0x81,
  info: 0x82,
  started: 0x83,
  identitySet: 0x84,
  stdout: 0x90,
  exit: 0x92,
  error: 0xff,
};

function frame(type, payload = Buffer.alloc(0)) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + 1, 0);
  head[4] = type;
  return Buffer.concat([head, payload]);
}

function tlv(tag, value) {
  const head = Buffer.alloc(5);
  head[0] = tag;
  head.writeUInt32BE(value.length, 1);
  return Buffer.concat([head, value]);
}

const u8 = (n) => Buffer.from([n]);
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const started = () => frame(T.started, u32(4242));
const exit = (...tlvs) => frame(T.exit, Buffer.concat(tlvs));

/** 262 KB of terminal escapes, control bytes and text, as seen at boot in the review. */
function ansiJunk() {
  const unit =
    "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b[31;1mFATAL\x1b[0m\r\n\x00\x07\x08\x7f\u009b1m\u202e";
  return Buffer.from(unit.repeat(Math.ceil(262_000 / unit.length)), "utf8");
}

const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes `bytes` one byte per write(2), straight on the socket's fd (no Node
 * coalescing); when the socket is full it sleeps 0.2 ms (no busy loop, which
 * would starve the reader of CPU on a small machine).
 */
function writeByteByByte(socket, bytes) {
  const fd = socket._handle.fd;
  for (let i = 0; i < bytes.length; ) {
    try {
      i += writeSync(fd, bytes, i, 1);
    } catch (err) {
      if (err.code !== "EAGAIN") throw err;
      Atomics.wait(nap, 0, 0, 0.2);
    }
  }
}

/** What a RUN does, by argv[0]. Each gets the socket and the RUN's argv. */
const behaviours = {
  // Item 2: acknowledges and never sends EXIT, ignoring TIMEOUT_MS.
  "never-exit": (s) => s.write(started()),
  // Item 3: an ERROR frame full of escapes; the daemon must bound and sanitize it.
  "error-ansi": (s) => s.end(frame(T.error, Buffer.concat([u8(3), ansiJunk()]))),
  "exit-error-ansi": (s) => s.end(exit(tlv(1, u32(126)), tlv(4, ansiJunk()), tlv(3, u8(0)))),
  "error-bad-utf8": (s) =>
    s.end(frame(T.error, Buffer.from([3, 0x62, 0x61, 0x64, 0xff, 0xfe, 0xc3, 0x28, 0x21]))),
  // Item 4: out-of-range EXIT values.
  "exit-signal-2^64": (s) => {
    s.write(started());
    s.end(exit(tlv(2, Buffer.alloc(8, 0xff)), tlv(3, u8(0))));
  },
  "exit-signal-65": (s) => s.end(Buffer.concat([started(), exit(tlv(2, u8(65)))])),
  "exit-signal-0": (s) => s.end(Buffer.concat([started(), exit(tlv(2, u8(0)))])),
  "exit-code-300": (s) => s.end(Buffer.concat([started(), exit(tlv(1, u32(300)))])),
  "exit-code-negative": (s) => s.end(Buffer.concat([started(), exit(tlv(1, u32(-1)))])),
  "exit-code-and-signal": (s) =>
    s.end(Buffer.concat([started(), exit(tlv(1, u32(0)), tlv(2, u8(9)))])),
  "exit-empty": (s) => s.end(Buffer.concat([started(), exit()])),
  "exit-bad-tlv": (s) =>
    s.end(Buffer.concat([started(), frame(T.exit, Buffer.from([1, 0, 0, 0, 9, 0]))])),
  "bad-frame-type": (s) => s.end(Buffer.concat([started(), frame(0x55, Buffer.from("x"))])),
  "zero-length": (s) => s.end(Buffer.concat([started(), Buffer.from([0, 0, 0, 0, 0x90])])),
  "oversize-length": (s) =>
    s.end(Buffer.concat([started(), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x90, 1, 2])])),
  truncated: (s) =>
    s.end(Buffer.concat([started(), frame(T.stdout, Buffer.alloc(100)).subarray(0, 50)])),
  "started-bad": (s) => s.end(frame(T.started, Buffer.from([1, 2, 3]))),
  "no-exit": (s) => s.end(Buffer.concat([started(), frame(T.stdout, Buffer.from("hi\n"))])),
  // Item 1: one 1 MiB STDOUT frame in 1-byte writes, then a clean exit.
  "one-byte-frame": (s) => {
    s.write(started(), () => {
      writeByteByByte(s, frame(T.stdout, Buffer.alloc((1 << 20) - 1, 0x61)));
      s.end(exit(tlv(1, u32(0)), tlv(3, u8(0))));
    });
  },
  // Item 5: STDOUT as fast as the socket takes it; argv[1] is a file that gets the byte count.
  "stdout-flood": (s, argv) => {
    const chunk = frame(T.stdout, Buffer.alloc(64 * 1024, 0x62));
    let sent = 0;
    s.write(started());
    const pump = () => {
      while (!s.destroyed) {
        sent += chunk.length;
        if (argv[1]) writeFileSync(argv[1], String(sent));
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
    };
    pump();
  },
  // An honest process: exits 0 at once.
  ok: (s) => s.end(Buffer.concat([started(), exit(tlv(1, u32(0)), tlv(3, u8(0)))])),
};

const bootId = randomBytes(16).toString("hex");
const startedAt = Date.now();
let hostname = "hostile";
let healthError = false;

function info() {
  const up = Buffer.alloc(8);
  up.writeBigUInt64BE(BigInt(Date.now() - startedAt), 0);
  const v = Buffer.alloc(2);
  v.writeUInt16BE(1, 0);
  return frame(
    T.info,
    Buffer.concat([
      tlv(1, Buffer.from("hostile-0")),
      tlv(2, v),
      tlv(3, Buffer.from(bootId)),
      tlv(4, up),
      tlv(5, u32(process.pid)),
      tlv(6, Buffer.from(hostname)),
      tlv(7, Buffer.from("unix")),
    ]),
  );
}

function decodeTlv(p) {
  const out = [];
  for (let off = 0; off + 5 <= p.length; ) {
    const len = p.readUInt32BE(off + 1);
    out.push({ tag: p[off], value: p.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

function serve(socket) {
  socket.on("error", () => {});
  let buf = Buffer.alloc(0);
  let busy = false;
  socket.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    while (!busy && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const len = buf.readUInt32BE(0);
      const type = buf[4];
      const payload = buf.subarray(5, 4 + len);
      buf = buf.subarray(4 + len);
      if (type === T.hello) {
        const v = Buffer.alloc(2);
        v.writeUInt16BE(1, 0);
        socket.write(frame(T.helloReply, Buffer.concat([v, Buffer.from("hostile-0")])));
      } else if (type === T.health) {
        socket.end(healthError ? frame(T.error, Buffer.concat([u8(5), ansiJunk()])) : info());
      } else if (type === T.setIdentity) {
        const host = decodeTlv(payload).find((t) => t.tag === 1);
        if (host) hostname = host.value.toString();
        socket.end(
          frame(
            T.identitySet,
            Buffer.concat([
              tlv(1, Buffer.from(hostname)),
              tlv(2, Buffer.from(bootId)),
              tlv(3, u8(1)),
              tlv(4, u8(0)),
              tlv(5, Buffer.from("none")),
              tlv(6, u8(0)),
            ]),
          ),
        );
      } else if (type === T.run) {
        busy = true; // later frames (STDIN, SIGNAL…) are ignored, as a hostile agent may
        const argv = decodeTlv(payload)
          .filter((t) => t.tag === 1)
          .map((t) => t.value.toString());
        const behave = behaviours[argv[0]];
        if (behave) behave(socket, argv);
        else
          socket.end(exit(tlv(1, u32(127)), tlv(4, Buffer.from(`unknown behaviour ${argv[0]}`))));
      }
    }
  });
}

function main() {
  const args = process.argv.slice(2);
  if (args[0] === "--health-error") {
    healthError = true;
    args.shift();
  }
  let path;
  if (args[0] === "--unix") path = args[1];
  else if (args[0] === "--unix-dir") {
    const port = /(?:^|\s)vmm\.agent_port=(\d+)/.exec(args[3] ?? "")?.[1] ?? "1024";
    path = join(args[1], `${port}.sock`);
  } else {
    process.stderr.write(
      "usage: hostile-agent.mjs --unix PATH | --unix-dir DIR --cmdline CMDLINE\n",
    );
    process.exit(2);
  }
  rmSync(path, { force: true });
  const server = createServer(serve);
  server.listen(path);
  const stop = () => {
    server.close();
    rmSync(path, { force: true });
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (import.meta.url === `file://${process.argv[1]}`) main();

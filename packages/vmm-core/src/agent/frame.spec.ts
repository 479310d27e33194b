import { describe, expect, it } from "vitest";
import { AgentProtocolError } from "./errors.js";
import { decodeTlv, encodeFrame, FrameDecoder, readUint, TlvWriter } from "./frame.js";
import { MAX_FRAME_LENGTH } from "./protocol.js";

const bytes = (...b: number[]) => Uint8Array.from(b);

describe("encodeFrame", () => {
  it("writes u32 BE length of type + payload, then type and payload", () => {
    expect(encodeFrame(0x90, bytes(1, 2, 3))).toEqual(bytes(0, 0, 0, 4, 0x90, 1, 2, 3));
    expect(encodeFrame(0x02)).toEqual(bytes(0, 0, 0, 1, 0x02));
  });
  it("rejects a payload above the limit", () => {
    expect(() => encodeFrame(1, new Uint8Array(MAX_FRAME_LENGTH))).toThrow(AgentProtocolError);
    expect(encodeFrame(1, new Uint8Array(MAX_FRAME_LENGTH - 1)).length).toBe(MAX_FRAME_LENGTH + 4);
  });
});

describe("FrameDecoder", () => {
  it("decodes frames split at every byte boundary", () => {
    const wire = new Uint8Array([...encodeFrame(0x90, bytes(9, 8)), ...encodeFrame(0x92)]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const got: { type: number; payload: number[] }[] = [];
      for (const part of [wire.subarray(0, cut), wire.subarray(cut)]) {
        d.push(part);
        for (let f = d.next(); f; f = d.next()) got.push({ type: f.type, payload: [...f.payload] });
      }
      expect(got).toEqual([
        { type: 0x90, payload: [9, 8] },
        { type: 0x92, payload: [] },
      ]);
      expect(() => d.end()).not.toThrow();
    }
  });

  it.each([
    ["length 0", bytes(0, 0, 0, 0, 1)],
    ["length above 1 MiB", bytes(0, 0x10, 0, 1)],
    ["length 0xffffffff", bytes(0xff, 0xff, 0xff, 0xff)],
  ])("rejects %s as soon as the length arrives", (_name, wire) => {
    const d = new FrameDecoder();
    d.push(wire);
    expect(() => d.next()).toThrow(AgentProtocolError);
  });

  it("accepts exactly the maximum length", () => {
    const d = new FrameDecoder();
    d.push(encodeFrame(0x90, new Uint8Array(MAX_FRAME_LENGTH - 1)));
    expect(d.next()?.payload.length).toBe(MAX_FRAME_LENGTH - 1);
  });

  it("reassembles a 1 MiB frame pushed 1 byte at a time in linear time (< 1 s of CPU)", () => {
    const payload = new Uint8Array(MAX_FRAME_LENGTH - 1).map((_, i) => i * 7);
    const wire = encodeFrame(0x90, payload);
    const d = new FrameDecoder();
    const cpu0 = process.cpuUsage();
    let frame: ReturnType<FrameDecoder["next"]>;
    for (let i = 0; i < wire.length; i++) {
      d.push(wire.subarray(i, i + 1));
      frame = d.next();
    }
    const cpu = process.cpuUsage(cpu0);
    // The old decoder copied the whole partial frame on every push: ~2^39 bytes, minutes of CPU.
    expect((cpu.user + cpu.system) / 1e6).toBeLessThan(1);
    expect(frame?.type).toBe(0x90);
    expect(Buffer.from(frame!.payload).equals(Buffer.from(payload))).toBe(true);
    expect(d.pending).toBe(0);
  });

  it("never overwrites a payload it handed out, whatever the split (seeded random cuts)", () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const sent = Array.from({ length: 300 }, (_, i) =>
      new Uint8Array(rand(3000)).map((_, j) => (i + j) & 0xff),
    );
    const wire = Buffer.concat(sent.map((p, i) => encodeFrame(0x90 + (i % 2), p)));
    const d = new FrameDecoder();
    const got: Uint8Array[] = [];
    for (let off = 0; off < wire.length; ) {
      const n = 1 + rand(rand(4) === 0 ? 5000 : 20);
      d.push(new Uint8Array(wire.subarray(off, off + n)));
      off += n;
      for (let f = d.next(); f; f = d.next()) got.push(f.payload);
    }
    expect(got.length).toBe(sent.length);
    for (const [i, p] of sent.entries())
      expect(Buffer.from(got[i]!).equals(Buffer.from(p))).toBe(true);
    expect(() => d.end()).not.toThrow();
  });

  it("with reuseBuffers, a payload is intact until the next push (seeded random cuts)", () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const sent = Array.from({ length: 300 }, (_, i) =>
      new Uint8Array(rand(3000)).map((_, j) => (i * 3 + j) & 0xff),
    );
    const wire = Buffer.concat(sent.map((p) => encodeFrame(0x90, p)));
    const d = new FrameDecoder();
    d.reuseBuffers();
    let got = 0;
    for (let off = 0; off < wire.length; ) {
      const n = 1 + rand(rand(4) === 0 ? 5000 : 20);
      d.push(new Uint8Array(wire.subarray(off, off + n)));
      off += n;
      // The consumer's side of the contract: each payload is checked before the next push.
      for (let f = d.next(); f; f = d.next()) {
        expect(Buffer.from(f.payload).equals(Buffer.from(sent[got]!))).toBe(true);
        got++;
      }
    }
    expect(got).toBe(sent.length);
    expect(() => d.end()).not.toThrow();
  });

  it("with reuseBuffers, assembles 256 KiB frames split over reads in two buffers", () => {
    const frames = Array.from({ length: 40 }, (_, i) => new Uint8Array(256 * 1024).fill(i + 1));
    const wire = Buffer.concat(frames.map((p) => encodeFrame(0x91, p)));
    const d = new FrameDecoder();
    d.reuseBuffers();
    const pushed = new Set<ArrayBufferLike>();
    const assembled = new Set<ArrayBufferLike>();
    let got = 0;
    // 64 KiB + 3 bytes per read: frames never line up with reads.
    for (let off = 0; off < wire.length; off += 65539) {
      const chunk = new Uint8Array(wire.subarray(off, off + 65539));
      pushed.add(chunk.buffer);
      d.push(chunk);
      for (let f = d.next(); f; f = d.next()) {
        expect(f.payload.every((b) => b === got + 1)).toBe(true);
        if (!pushed.has(f.payload.buffer)) assembled.add(f.payload.buffer);
        got++;
      }
    }
    expect(got).toBe(frames.length);
    expect(assembled.size).toBeLessThanOrEqual(2);
  });

  it("reports a stream truncated inside a frame", () => {
    const d = new FrameDecoder();
    d.push(encodeFrame(0x90, bytes(1, 2, 3)).subarray(0, 6));
    expect(d.next()).toBeUndefined();
    expect(() => d.end()).toThrow(/truncated/);
  });
});

describe("TLV", () => {
  it("round-trips strings and integers", () => {
    const p = new TlvWriter().string(1, "héllo").u8(2, 7).u32(3, 0xdeadbeef).finish();
    const t = decodeTlv(p);
    expect(t.map((x) => x.tag)).toEqual([1, 2, 3]);
    expect(new TextDecoder().decode(t[0]!.value)).toBe("héllo");
    expect(readUint(t[1]!.value)).toBe(7);
    expect(readUint(t[2]!.value)).toBe(0xdeadbeef);
  });
  it.each([
    ["a truncated header", bytes(1, 0, 0)],
    ["a value past the end", bytes(1, 0, 0, 0, 5, 1, 2)],
  ])("rejects %s", (_n, p) => {
    expect(() => decodeTlv(p)).toThrow(AgentProtocolError);
  });
  it("rejects integers of odd sizes", () => {
    expect(() => readUint(bytes(1, 2, 3))).toThrow(AgentProtocolError);
  });
});

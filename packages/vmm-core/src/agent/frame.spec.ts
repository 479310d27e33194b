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

import { describe, expect, it } from "vitest";
import { crc64, decodeVmstate, describeVmstate, encodeVmstate } from "./vmstate-file.js";

describe("vmstate file", () => {
  it("CRC-64/ECMA-182 check value", () => {
    expect(crc64(Buffer.from("123456789")).toString(16)).toBe("6c40df5f0b497347");
  });
  it("round-trips and reports v8.0.0", () => {
    const buf = encodeVmstate({ drives: [{ path_on_host: "rootfs.ext4" }] });
    expect(decodeVmstate(buf)).toEqual({ drives: [{ path_on_host: "rootfs.ext4" }] });
    expect(describeVmstate(buf)).toBe("v8.0.0");
  });
  it.each([
    [
      "flipped payload byte",
      (b: Buffer) => {
        b[20] = (b[20] ?? 0) ^ 1;
      },
      /CRC64 validation failed/,
    ],
    [
      "bad magic",
      (b: Buffer) => {
        b[0] = 0;
      },
      /magic/,
    ],
  ] as const)("rejects %s", (_n, spoil, re) => {
    const buf = encodeVmstate({ a: 1 });
    spoil(buf);
    expect(() => decodeVmstate(buf)).toThrow(re);
  });
});

import { describe, expect, it } from "vitest";
import { isDimension, parseClientMessage } from "./terminal-protocol.js";

describe("parseClientMessage", () => {
  it("reads a resize", () => {
    expect(parseClientMessage('{"type":"resize","cols":120,"rows":40}')).toEqual({
      type: "resize",
      cols: 120,
      rows: 40,
    });
  });

  it.each([
    ["not JSON", "resize 1 2", "not JSON"],
    ["null", "null", "no object"],
    ["an unknown type", '{"type":"paste"}', 'unknown control message type "paste"'],
    ["zero cols", '{"type":"resize","cols":0,"rows":1}', "integers 1..65535"],
    ["a fraction", '{"type":"resize","cols":1.5,"rows":1}', "integers 1..65535"],
    ["too many rows", '{"type":"resize","cols":1,"rows":65536}', "integers 1..65535"],
    ["a string size", '{"type":"resize","cols":"80","rows":24}', "integers 1..65535"],
  ])("refuses %s", (_name, text, message) => {
    expect(() => parseClientMessage(text)).toThrow(message);
  });
});

describe("isDimension", () => {
  it.each([
    [1, true],
    [65535, true],
    [0, false],
    [65536, false],
    [Number.NaN, false],
    ["80", false],
  ])("%s → %s", (v, ok) => {
    expect(isDimension(v)).toBe(ok);
  });
});

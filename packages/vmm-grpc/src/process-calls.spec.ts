import { describe, expect, it } from "vitest";
import { LISTED_CMD_MAX_BYTES, listedCmd, processTargetFromProto } from "./process-calls.js";

describe("listedCmd", () => {
  it("keeps an argv within the budget as it is", () => {
    expect(listedCmd(["sleep", "1000"])).toEqual(["sleep", "1000"]);
    const exact = ["a".repeat(LISTED_CMD_MAX_BYTES)];
    expect(listedCmd(exact)).toEqual(exact);
  });

  it("cuts a long script to the budget and marks the cut", () => {
    const out = listedCmd(["sh", "-c", "x".repeat(100_000), "more"]);
    expect(out.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(out[2]).toHaveLength(LISTED_CMD_MAX_BYTES - 4);
    expect(out.at(-1)).toBe("…");
    expect(out).toHaveLength(4);
  });

  it("never splits a UTF-8 character", () => {
    const out = listedCmd(["é".repeat(LISTED_CMD_MAX_BYTES)]);
    expect(out[0]).toBe("é".repeat(LISTED_CMD_MAX_BYTES / 2));
    expect(listedCmd(["a", "é".repeat(LISTED_CMD_MAX_BYTES)])[1]).toBe(
      "é".repeat(LISTED_CMD_MAX_BYTES / 2 - 1),
    );
  });
});

describe("processTargetFromProto", () => {
  it.for([
    [{ pid: 5, tag: "" }, { pid: 5 }],
    [{ pid: 0, tag: "web" }, { tag: "web" }],
  ] as const)("%j → %j", ([req, want]) => {
    expect(processTargetFromProto(req)).toEqual(want);
  });
  it.for([
    { pid: 5, tag: "web" },
    { pid: 0, tag: "" },
  ])("%j is INVALID_ARGUMENT", (req) => {
    expect(() => processTargetFromProto(req)).toThrow(/pid: give/);
  });
});

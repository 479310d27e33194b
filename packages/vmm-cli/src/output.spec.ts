import { create } from "@bufbuild/protobuf";
import { ListSandboxesResponseSchema } from "@vmm/proto";
import { describe, expect, it } from "vitest";
import {
  formatAge,
  formatLabels,
  formatTable,
  parseOutputFormat,
  renderMessage,
} from "./output.js";
import { pickByPrefix } from "./resolve.js";

describe("output", () => {
  it("aligns tables, pads all but the last column, shows empty cells as -", () => {
    expect(
      formatTable(
        ["ID", "STATE", "LABELS"],
        [
          ["a", "ready", "x=1"],
          ["long-id", "", ""],
        ],
      ),
    ).toBe("ID        STATE   LABELS\na         ready   x=1\nlong-id   -       -\n");
  });
  it.each([
    [0, "0s"],
    [59_000, "59s"],
    [60_000, "1m"],
    [7_200_000, "2h"],
    [3 * 86_400_000, "3d"],
  ])("age of %i ms is %s", (ms, age) => {
    expect(formatAge(1_000_000, 1_000_000 + ms)).toBe(age);
  });
  it("sorts labels", () => {
    expect(formatLabels({ b: "2", a: "1" })).toBe("a=1,b=2");
  });
  it("renders one JSON document from the message, with implicit fields", () => {
    const msg = create(ListSandboxesResponseSchema, {
      sandboxes: [{ id: "a", state: "ready", createdAt: 5n }],
    });
    expect(JSON.parse(renderMessage("json", ListSandboxesResponseSchema, msg))).toEqual({
      sandboxes: [{ id: "a", state: "ready", labels: {}, ipAddress: "", createdAt: "5" }],
      nextPageToken: "",
    });
    expect(renderMessage("yaml", ListSandboxesResponseSchema, msg)).toMatch(
      /^sandboxes:\n {2}- id: a\n/,
    );
  });
  it("checks -o against the command's formats", () => {
    expect(parseOutputFormat(undefined, ["table", "json"])).toBe("table");
    expect(() => parseOutputFormat("wide", ["table", "json"])).toThrow(
      /-o wants one of table, json/,
    );
  });
});

describe("pickByPrefix", () => {
  const ids = ["abc-1", "abc-2", "abd-1", "ab"];
  it("prefers an exact match, then a unique prefix", () => {
    expect(pickByPrefix("sandbox", "ab", ids)).toBe("ab");
    expect(pickByPrefix("sandbox", "abd", ids)).toBe("abd-1");
  });
  it("is a usage error listing candidates when ambiguous, not found when nothing matches", () => {
    expect(() => pickByPrefix("sandbox", "abc", ids)).toThrow(/ambiguous: it matches abc-1, abc-2/);
    expect(() => pickByPrefix("snapshot", "zz", ids)).toThrow(/no snapshot matches "zz"/);
  });
});

import { describe, expect, it } from "vitest";
import {
  diffConstructors,
  type HeapSnapshot,
  inspectorUrlFromLog,
  summarizeHeapSnapshot,
} from "./inspector.js";

// The shape V8 writes (node_fields and node_types as in Node 24), three nodes' worth.
function snapshot(nodes: Array<[type: number, name: number, selfSize: number]>): HeapSnapshot {
  return {
    snapshot: {
      meta: {
        node_fields: ["type", "name", "id", "self_size", "edge_count", "detachedness"],
        node_types: [
          ["hidden", "array", "string", "object", "code", "closure", "regexp", "number", "native"],
        ],
      },
    },
    nodes: nodes.flatMap(([t, n, size], i) => [t, n, i + 1, size, 0, 0]),
    strings: ["Promise", "Socket", "run"],
  };
}

describe("summarizeHeapSnapshot", () => {
  it("counts objects by constructor and other nodes by V8 type, with self bytes", () => {
    const s = summarizeHeapSnapshot(
      snapshot([
        [3, 0, 48],
        [3, 0, 48],
        [3, 1, 320],
        [5, 2, 56],
      ]),
    );
    expect(Object.fromEntries(s)).toEqual({
      Promise: { count: 2, selfSize: 96 },
      Socket: { count: 1, selfSize: 320 },
      "(closure)": { count: 1, selfSize: 56 },
    });
  });
});

describe("diffConstructors", () => {
  it("lists growth by bytes, largest first, including constructors new in `after`", () => {
    const before = new Map([["Promise", { count: 10, selfSize: 480 }]]);
    const after = new Map([
      ["Promise", { count: 12, selfSize: 576 }],
      ["Socket", { count: 4, selfSize: 1280 }],
    ]);
    expect(diffConstructors(before, after, 5)).toEqual([
      { name: "Socket", count: 4, selfSize: 1280 },
      { name: "Promise", count: 2, selfSize: 96 },
    ]);
  });
});

describe("inspectorUrlFromLog", () => {
  it("finds Node's debugger URL among the daemon's log lines", () => {
    const log = `{"level":30,"msg":"starting"}\nDebugger listening on ws://127.0.0.1:40123/5f1c-aa\nFor help, see: https://nodejs.org/en/docs/inspector\n`;
    expect(inspectorUrlFromLog(log)).toBe("ws://127.0.0.1:40123/5f1c-aa");
    expect(inspectorUrlFromLog('{"msg":"serving"}\n')).toBeUndefined();
  });
});

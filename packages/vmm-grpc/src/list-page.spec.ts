import { toBinary } from "@bufbuild/protobuf";
import {
  compareByCreation,
  InvalidArgumentError,
  REQUEST_LIMITS,
  type SandboxView,
} from "@vmm/core";
import * as pb from "@vmm/proto";
import { describe, expect, it } from "vitest";
import { sandboxSummaryToProto } from "./convert.js";
import { DEFAULT_LIST_PAGING, type PageRequest, takePage } from "./list-page.js";

interface Item {
  id: string;
  createdAt: Date;
  size: number;
}

const items = (n: number, size = 100): Item[] =>
  Array.from({ length: n }, (_, i) => ({
    id: `sb-${String(i).padStart(2, "0")}`,
    createdAt: new Date(1_000 + Math.floor(i / 3)), // three per millisecond: ids break ties
    size,
  })).sort(compareByCreation);

const req = (over: Partial<PageRequest<Item>> = {}): PageRequest<Item> => ({
  listing: "sandboxes",
  filter: { state: "", labels: {} },
  pageSize: 0,
  pageToken: "",
  keyOf: (x) => ({ createdAtMs: x.createdAt.getTime(), id: x.id }),
  sizeOf: (x) => x.size,
  ...over,
});

function all(list: () => Item[], pageSize: number, between?: (page: number) => void): string[][] {
  const pages: string[][] = [];
  let token = "";
  do {
    const p = takePage(list(), req({ pageSize, pageToken: token }), DEFAULT_LIST_PAGING);
    pages.push(p.items.map((x) => x.id));
    token = p.nextPageToken;
    between?.(pages.length);
  } while (token !== "" && pages.length < 100);
  return pages;
}

describe("takePage", () => {
  it("25 items, page_size 10: three pages, every id once, in order", () => {
    const list = items(25);
    const pages = all(() => list, 10);
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(list.map((x) => x.id));
  });

  it("page_size 0 is the default page, and a larger page_size is capped by it", () => {
    const list = items(25);
    const paging = { ...DEFAULT_LIST_PAGING, pageSize: 7 };
    expect(takePage(list, req(), paging).items).toHaveLength(7);
    expect(takePage(list, req({ pageSize: 1_000_000 }), paging).items).toHaveLength(7);
    expect(takePage(list, req({ pageSize: 3 }), paging).items).toHaveLength(3);
  });

  it("few items without page_size: all of them and no token", () => {
    const p = takePage(items(5), req(), DEFAULT_LIST_PAGING);
    expect(p.items).toHaveLength(5);
    expect(p.nextPageToken).toBe("");
  });

  it("items removed or added between pages neither repeat nor hide the others", () => {
    let list = items(25);
    const pages = all(
      () => list,
      10,
      (n) => {
        if (n !== 1) return;
        // The last item of page 1 and one item of page 2 go; a newer one arrives.
        list = list.filter((x) => x.id !== "sb-09" && x.id !== "sb-12");
        list.push({ id: "sb-99", createdAt: new Date(99_999), size: 100 });
      },
    );
    const seen = pages.flat();
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([
      ...items(25)
        .map((x) => x.id)
        .filter((id) => id !== "sb-12"),
      "sb-99",
    ]);
  });

  it("ends a page before the byte budget and always takes at least one item", () => {
    const paging = { pageSize: 1000, maxMessageBytes: 10_000 }; // budget 5000
    const list = items(10, 1000); // 1064 each with the allowance
    expect(takePage(list, req(), paging).items).toHaveLength(4);
    const huge = items(3, 50_000);
    const p = takePage(huge, req(), paging);
    expect(p.items).toHaveLength(1);
    expect(p.nextPageToken).not.toBe("");
  });

  it.for([
    ["garbage", "not a token!"],
    ["base64 of garbage", Buffer.from("{").toString("base64url")],
    ["wrong shape", Buffer.from('{"v":1,"f":"x","t":"1","i":"a"}').toString("base64url")],
    ["far too long", "A".repeat(5000)],
  ])("refuses a malformed token (%s) with INVALID_ARGUMENT", ([, token]) => {
    expect(() => takePage(items(3), req({ pageToken: token! }), DEFAULT_LIST_PAGING)).toThrow(
      InvalidArgumentError,
    );
  });

  it("refuses a token of another listing or of other filters", () => {
    const token = takePage(items(5), req({ pageSize: 2 }), DEFAULT_LIST_PAGING).nextPageToken;
    expect(token).not.toBe("");
    for (const other of [
      req({ pageToken: token, listing: "snapshots" }),
      req({ pageToken: token, filter: { state: "ready", labels: {} } }),
      req({ pageToken: token, filter: { state: "", labels: { a: "b" } } }),
    ]) {
      expect(() => takePage(items(5), other, DEFAULT_LIST_PAGING)).toThrow(
        /page_token: was made for another listing or other filters/,
      );
    }
    // Same filters, keys in another order: the same listing.
    const a = req({ pageSize: 2, filter: { labels: { x: "1", y: "2" }, state: "" } });
    const t = takePage(items(5), a, DEFAULT_LIST_PAGING).nextPageToken;
    const b = req({ pageToken: t, filter: { state: "", labels: { y: "2", x: "1" } } });
    expect(takePage(items(5), b, DEFAULT_LIST_PAGING).items.map((x) => x.id)).toEqual([
      "sb-02",
      "sb-03",
      "sb-04",
    ]);
  });

  it("the default page of summaries with the largest labels fits the default message size", () => {
    // 64 labels, 16 KiB of keys and values: the largest SandboxSummary the bounds allow.
    const labels: Record<string, string> = {};
    for (let i = 0; i < REQUEST_LIMITS.labels.maxCount; i++) {
      labels[`k${String(i).padStart(2, "0")}`] = "v".repeat(
        REQUEST_LIMITS.labels.maxTotalBytes / REQUEST_LIMITS.labels.maxCount - 3,
      );
    }
    const view = (i: number) =>
      ({
        id: `${"s".repeat(57)}-${String(i).padStart(5, "0")}`,
        state: "starting",
        labels,
        network: { ipAddress: "255.255.255.255" },
        createdAt: new Date(1000 + i),
      }) as unknown as SandboxView;
    const one = toBinary(pb.SandboxSummarySchema, sandboxSummaryToProto(view(0))).length;
    expect(one).toBeGreaterThan(16 * 1024);
    expect(one).toBeLessThan(17.5 * 1024);
    const views = Array.from({ length: 2000 }, (_, i) => view(i));
    const page = takePage<SandboxView>(
      views,
      {
        listing: "sandboxes",
        filter: {},
        pageSize: 0,
        pageToken: "",
        keyOf: (v) => ({ createdAtMs: v.createdAt.getTime(), id: v.id }),
        sizeOf: (v) => toBinary(pb.SandboxSummarySchema, sandboxSummaryToProto(v)).length,
      },
      DEFAULT_LIST_PAGING,
    );
    const response = pb.ListSandboxesResponseSchema;
    const bytes = toBinary(response, {
      $typeName: response.typeName,
      sandboxes: page.items.map(sandboxSummaryToProto),
      nextPageToken: page.nextPageToken,
    } as never).length;
    // 1000 such summaries would be ~17 MiB: the byte budget ends the page first.
    expect(page.items.length).toBeGreaterThan(100);
    expect(page.items.length).toBeLessThan(1000);
    expect(bytes).toBeLessThanOrEqual(DEFAULT_LIST_PAGING.maxMessageBytes / 2);
    const json = JSON.stringify(
      page.items.map((v) => ({ id: v.id, state: v.state, labels: v.labels, createdAt: "1" })),
    );
    expect(json.length).toBeLessThan(DEFAULT_LIST_PAGING.maxMessageBytes);
  });
});

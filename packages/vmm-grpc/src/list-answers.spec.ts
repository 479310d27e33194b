import { create } from "@bufbuild/protobuf";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";
import * as pb from "@vmm/proto";
import { describe, expect, it } from "vitest";
import { ListAnswers } from "./list-answers.js";

const a = Object.freeze({ id: "a" });
const b = Object.freeze({ id: "b" });

function counting() {
  let built = 0;
  const build = (p: { items: readonly { id: string }[]; nextPageToken: string }) => {
    built++;
    return { ids: p.items.map((x) => x.id), token: p.nextPageToken };
  };
  return { build, built: () => built };
}

describe("ListAnswers", () => {
  it("hands out the same frozen answer while the page holds the same items", () => {
    const answers = new ListAnswers<{ id: string }, { ids: string[]; token: string }>();
    const c = counting();
    const first = answers.answer("k", { items: [a, b], nextPageToken: "" }, c.build);
    const again = answers.answer("k", { items: [a, b], nextPageToken: "" }, c.build);
    expect(again).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(c.built()).toBe(1);
  });

  it("builds a new answer when an item changed (a new view object), was added or removed", () => {
    const answers = new ListAnswers<{ id: string }, { ids: string[]; token: string }>();
    const c = counting();
    const first = answers.answer("k", { items: [a, b], nextPageToken: "" }, c.build);
    const changedB = Object.freeze({ id: "b" });
    const changed = answers.answer("k", { items: [a, changedB], nextPageToken: "" }, c.build);
    expect(changed).not.toBe(first);
    expect(answers.answer("k", { items: [a], nextPageToken: "" }, c.build).ids).toEqual(["a"]);
    expect(answers.answer("k", { items: [a, b, b], nextPageToken: "" }, c.build).ids).toHaveLength(
      3,
    );
    expect(c.built()).toBe(4);
  });

  it("never reuses an answer whose items are not frozen (they can change in place)", () => {
    const answers = new ListAnswers<{ id: string }, { ids: string[]; token: string }>();
    const c = counting();
    const open = { id: "o" };
    const first = answers.answer("k", { items: [a, open], nextPageToken: "" }, c.build);
    open.id = "changed";
    const second = answers.answer("k", { items: [a, open], nextPageToken: "" }, c.build);
    expect(second).not.toBe(first);
    expect(second.ids).toEqual(["a", "changed"]);
  });

  it("builds a new answer when only the next page token differs", () => {
    const answers = new ListAnswers<{ id: string }, { ids: string[]; token: string }>();
    const c = counting();
    answers.answer("k", { items: [a], nextPageToken: "" }, c.build);
    expect(answers.answer("k", { items: [a], nextPageToken: "t" }, c.build).token).toBe("t");
    expect(c.built()).toBe(2);
  });

  it("keeps request shapes apart and forgets the oldest beyond eight", () => {
    const answers = new ListAnswers<{ id: string }, { ids: string[]; token: string }>();
    const c = counting();
    const page = { items: [a], nextPageToken: "" };
    const byKey = new Map<string, unknown>();
    for (let i = 0; i < 8; i++) byKey.set(`k${i}`, answers.answer(`k${i}`, page, c.build));
    expect(c.built()).toBe(8);
    for (let i = 0; i < 8; i++)
      expect(answers.answer(`k${i}`, page, c.build)).toBe(byKey.get(`k${i}`));
    expect(c.built()).toBe(8);
    answers.answer("k8", page, c.build); // evicts k0, the least recently built
    answers.answer("k0", page, c.build);
    expect(c.built()).toBe(10);
  });
});

describe("the patched connect serialization (reuseFrozenEncoding)", () => {
  const method = pb.SandboxService.method.list;
  const lookup = createMethodSerializationLookup(method, undefined, undefined, {
    readMaxBytes: 1 << 20,
    writeMaxBytes: 1 << 20,
  });
  const answer = () =>
    create(pb.ListSandboxesResponseSchema, {
      sandboxes: [create(pb.SandboxSummarySchema, { id: "a", state: "ready" })],
    });

  for (const binary of [true, false]) {
    const format = binary ? "binary" : "JSON";
    it(`encodes a frozen answer once (${format}) and every other answer per call`, () => {
      const out = lookup.getO(binary);
      const frozen = Object.freeze(answer());
      const first = out.serialize(frozen);
      expect(out.serialize(frozen)).toBe(first);
      const open = answer();
      const a = out.serialize(open);
      open.sandboxes.push(create(pb.SandboxSummarySchema, { id: "b" }));
      const b = out.serialize(open);
      expect(b).not.toBe(a);
      expect(b.byteLength).toBeGreaterThan(a.byteLength);
      expect(out.parse(first)).toEqual(frozen);
    });
  }
});

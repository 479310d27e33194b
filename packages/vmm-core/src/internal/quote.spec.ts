import { describe, expect, it } from "vitest";
import { QUOTE_MAX_CHARS, quote } from "./quote.js";

describe("quote", () => {
  it.for([
    ["", '""'],
    ["abc", '"abc"'],
    ['a"b', '"a\\"b"'],
    ["x".repeat(QUOTE_MAX_CHARS), `"${"x".repeat(QUOTE_MAX_CHARS)}"`],
  ])("quotes %j whole", ([value, want]) => {
    expect(quote(value!)).toBe(want);
  });

  it("cuts a long value and says its length", () => {
    const q = quote("y".repeat(5_000_000));
    expect(q).toBe(`"${"y".repeat(QUOTE_MAX_CHARS)}"… (5000000 characters)`);
  });
});

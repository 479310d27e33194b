import { describe, expect, it } from "vitest";
import { InputError } from "./errors.js";
import { parseLabels } from "./labels.js";

describe("parseLabels", () => {
  it.each([
    ["", {}],
    ["a=1", { a: "1" }],
    [" team = web , env=dev ", { team: "web", env: "dev" }],
    ["a=1\nb=x=y,", { a: "1", b: "x=y" }],
    ["empty=", { empty: "" }],
  ])("reads %j", (text, labels) => {
    expect(parseLabels(text)).toEqual(labels);
  });

  it.each(["novalue", "=v", "a=1, b"])("refuses %j, naming the pair", (text) => {
    expect(() => parseLabels(text)).toThrow(InputError);
    expect(() => parseLabels(text)).toThrow(/is not key=value/);
  });
});

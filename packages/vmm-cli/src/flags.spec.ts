import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.js";
import { parseDurationSeconds, parseFlags, parseKeyValues, parseMemoryMib } from "./flags.js";

const table = {
  name: { type: "string", description: "" },
  label: { type: "string", multiple: true, description: "" },
  tty: { type: "boolean", short: "t", description: "" },
  interactive: { type: "boolean", short: "i", description: "" },
} as const;

describe("parseFlags", () => {
  it("splits positionals from the words after --", () => {
    const r = parseFlags(table, [
      "-it",
      "--name",
      "x",
      "id",
      "--label",
      "a=1",
      "--label",
      "b=2",
      "--",
      "ls",
      "-l",
      "--name",
    ]);
    expect(r.values).toEqual({ name: "x", label: ["a=1", "b=2"], tty: true, interactive: true });
    expect(r.positionals).toEqual(["id"]);
    expect(r.rest).toEqual(["ls", "-l", "--name"]);
  });
  it("defaults booleans to false, repeatables to [] and rest to undefined", () => {
    const r = parseFlags(table, []);
    expect(r.values).toEqual({ name: undefined, label: [], tty: false, interactive: false });
    expect(r.rest).toBeUndefined();
  });
  it.each([["--bogus"], ["--name"], ["--tty=yes"]])("%s is a usage error", (arg) => {
    expect(() => parseFlags(table, [arg])).toThrow(UsageError);
  });
});

describe("value parsers", () => {
  it.each([
    ["90", 90],
    ["90s", 90],
    ["5m", 300],
    ["1h30m", 5400],
    ["2d", 172800],
    ["0.5m", 30],
  ])("duration %s = %i s", (text, seconds) =>
    expect(parseDurationSeconds("ttl", text)).toBe(seconds),
  );
  it.each([["soon"], ["-1"], ["1.5s"], ["5x"], [""]])("duration %j is a usage error", (text) => {
    expect(() => parseDurationSeconds("ttl", text)).toThrow(/--ttl wants a duration/);
  });
  it.each([
    ["512", 512],
    ["512M", 512],
    ["512MiB", 512],
    ["2G", 2048],
    ["1gib", 1024],
  ])("memory %s = %i MiB", (text, mib) => expect(parseMemoryMib("memory", text)).toBe(mib));
  it.each([["lots"], ["1T"], ["-5"]])("memory %j is a usage error", (text) => {
    expect(() => parseMemoryMib("memory", text)).toThrow(UsageError);
  });
  it("key=value keeps = in values and rejects missing keys", () => {
    expect(parseKeyValues("label", ["a=1", "b=x=y", "c="])).toEqual({ a: "1", b: "x=y", c: "" });
    expect(() => parseKeyValues("label", ["=v"])).toThrow(/--label wants KEY=VALUE/);
    expect(() => parseKeyValues("label", ["novalue"])).toThrow(UsageError);
  });
});

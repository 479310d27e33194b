import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../errors.js";
import { PROCESS_SIGNALS, parseProcessSignal } from "./processes.js";

describe("parseProcessSignal", () => {
  it.for([
    ["TERM", 15],
    ["KILL", 9],
    ["INT", 2],
    ["HUP", 1],
    ["STOP", 19],
    ["CONT", 18],
    ["USR1", 10],
    ["USR2", 12],
    ["SIGKILL", 9],
    ["", 15],
  ] as const)("%j is Linux signal %i", ([name, num]) => {
    expect(parseProcessSignal(name)).toBe(num);
  });

  it.for(["term", "SIGSEGV", "9", "SIG", "QUIT", "constructor", "toString", " TERM"])(
    "refuses %j",
    (name) => {
      expect(() => parseProcessSignal(name)).toThrow(InvalidArgumentError);
      expect(() => parseProcessSignal(name)).toThrow(/use one of HUP, INT, KILL/);
    },
  );

  it("covers exactly the wire's eight names", () => {
    expect(Object.keys(PROCESS_SIGNALS).sort()).toEqual(
      ["CONT", "HUP", "INT", "KILL", "STOP", "TERM", "USR1", "USR2"].sort(),
    );
  });
});

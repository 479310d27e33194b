import { describe, expect, it } from "vitest";
import { AlreadyExistsError, InvalidArgumentError } from "../errors.js";
import {
  ProcessNotFoundError,
  ProcessTable,
  type TrackedProcess,
  validateTag,
} from "./process-table.js";

function proc(pid: number, tag?: string, kills: number[] = []): TrackedProcess {
  return {
    pid,
    cmd: ["sleep", "1000"],
    tag,
    startedAt: new Date(1_700_000_000_000 + pid),
    tty: false,
    kill: async (n) => {
      kills.push(n);
    },
  };
}

describe("validateTag", () => {
  it.for(["web", "a", "job-1.x_y", "x".repeat(64), "0web", "1.5"])("accepts %j", (tag) => {
    expect(() => validateTag(tag)).not.toThrow();
  });
  it.for(["", "x".repeat(65), "has space", "a/b", "é", "nul\0", "12345", "0"])(
    "refuses %j",
    (tag) => {
      expect(() => validateTag(tag)).toThrow(InvalidArgumentError);
    },
  );
});

describe("ProcessTable", () => {
  it("finds a process by pid and by tag, lists in start order, forgets it when deleted", () => {
    const t = new ProcessTable("sb");
    const a = proc(10, "web");
    const b = proc(5);
    t.claimTag("web");
    t.add(a);
    t.add(b);
    expect(t.find({ pid: 10 })).toBe(a);
    expect(t.find({ tag: "web" })).toBe(a);
    expect(t.find({ pid: 5 })).toBe(b);
    expect(t.list().map((p) => p.pid)).toEqual([10, 5]);
    expect(t.list()[0]).toEqual({
      pid: 10,
      cmd: ["sleep", "1000"],
      tag: "web",
      startedAt: a.startedAt,
      tty: false,
    });
    t.delete(a);
    t.delete(a); // idempotent
    expect(() => t.find({ tag: "web" })).toThrow(ProcessNotFoundError);
    expect(() => t.find({ pid: 10 })).toThrow(/no running process with pid 10/);
    expect(t.size).toBe(1);
  });

  it("refuses a tag held by a running process or by a start in progress", () => {
    const t = new ProcessTable("sb");
    t.claimTag("web");
    expect(() => t.claimTag("web")).toThrow(AlreadyExistsError);
    t.add(proc(1, "web"));
    expect(() => t.claimTag("web")).toThrow(/used by running process 1/);
  });

  it("gives a released claim back, and a tag back once its process is gone", () => {
    const t = new ProcessTable("sb");
    t.claimTag("web");
    t.releaseTag("web");
    t.claimTag("web");
    const p = proc(1, "web");
    t.add(p);
    t.releaseTag("web"); // no-op: a process holds it
    expect(t.find({ tag: "web" })).toBe(p);
    t.delete(p);
    expect(() => t.claimTag("web")).not.toThrow();
  });

  it("a recycled pid: deleting the older entry keeps the newer", () => {
    const t = new ProcessTable("sb");
    const old = proc(7);
    const young = proc(7);
    t.add(old);
    t.add(young);
    t.delete(old);
    expect(t.find({ pid: 7 })).toBe(young);
    expect(t.list()).toHaveLength(1);
  });
});

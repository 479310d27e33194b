import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ProcessStatReader, parseStat } from "./process-stats.js";

const openFds = () => readdirSync("/proc/self/fd").length;

describe("parseStat", () => {
  it("reads utime+stime and rss after a command name with spaces and parentheses", () => {
    // Fields 3… : state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    // cutime cstime priority nice threads itrealvalue starttime vsize rss
    const rest = "S 1 1 1 0 -1 0 0 0 0 0 250 150 0 0 20 0 1 0 100 1000000 2560";
    const s = parseStat(`42 (fc (x) y) ${rest}\n`);
    expect(s?.cpuSeconds).toBeCloseTo(400 / 100, 0); // CLK_TCK is 100 on Linux
    expect(s!.rssBytes % 2560).toBe(0);
    expect(s!.rssBytes).toBeGreaterThanOrEqual(2560 * 4096);
    expect(parseStat("garbage")).toBeUndefined();
    expect(parseStat("42 (fc) S 1 1")).toBeUndefined(); // cut short
    expect(parseStat(`42 (fc) ${rest.replace(" 250 ", " 2x0 ")}`)).toBeUndefined();
  });
});

describe("ProcessStatReader", () => {
  it("reads live processes, drops exited ones and closes every descriptor it opened", async () => {
    const before = openFds();
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const reader = new ProcessStatReader();
    try {
      const asked = [
        { key: "self", pid: process.pid },
        { key: "child", pid: child.pid },
        { key: "none", pid: undefined },
      ];
      const first = reader.readAll(asked);
      expect([...first.keys()].sort()).toEqual(["child", "self"]);
      expect(first.get("self")!.rssBytes).toBeGreaterThan(10 << 20);
      expect(first.get("self")!.cpuSeconds).toBeGreaterThan(0);
      expect(openFds()).toBe(before + 2);
      child.kill("SIGKILL");
      await once(child, "exit");
      // Reaped: the kept descriptor now fails to read and is closed.
      const second = reader.readAll(asked);
      expect([...second.keys()]).toEqual(["self"]);
      expect(openFds()).toBe(before + 1);
      // A key no longer asked for is forgotten.
      reader.readAll([]);
      expect(openFds()).toBe(before);
    } finally {
      child.kill("SIGKILL");
      reader.close();
    }
  });
});

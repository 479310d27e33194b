import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { ProcessStatSampler, type SampledProcess } from "./process-stat-sampler.js";

const openFds = () => readdirSync("/proc/self/fd").length;
const children: ChildProcess[] = [];
/** A `sleep 30` that has started sleeping: read earlier, a just-exec'd process can show 0 bytes RSS. */
const sleeper = async () => {
  const c = spawn("sleep", ["30"], { stdio: "ignore" });
  children.push(c);
  const state = () => readFileSync(`/proc/${c.pid}/stat`, "latin1").split(") ")[1]?.[0];
  await expect.poll(state, { timeout: 5000 }).toBe("S");
  return c;
};
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

describe("ProcessStatSampler", () => {
  it("reads a new process at once, then serves the background sample until the next round", async () => {
    const a = await sleeper();
    const procs: SampledProcess[] = [
      { key: "a", pid: a.pid },
      { key: "none", pid: undefined },
    ];
    const sampler = new ProcessStatSampler({
      processes: () => procs,
      intervalMs: 100,
      idleAfterMs: 10_000,
    });
    try {
      const first = sampler.stats(procs);
      expect([...first.keys()]).toEqual(["a"]);
      expect(first.get("a")!.rssBytes).toBeGreaterThan(0);
      // Within the interval: the same sample, nothing read again.
      expect(sampler.stats(procs).get("a")).toBe(first.get("a"));
      // A process added since the round is read on the spot.
      const b = await sleeper();
      const withB = [...procs, { key: "b", pid: b.pid }];
      const second = sampler.stats(withB);
      expect(second.get("a")).toBe(first.get("a"));
      expect(second.get("b")!.rssBytes).toBeGreaterThan(0);
      // After a round: a fresh sample.
      procs.push({ key: "b", pid: b.pid });
      await expect
        .poll(() => sampler.stats(procs).get("a") !== first.get("a"), { timeout: 2000 })
        .toBe(true);
      // A process that exits leaves the sample at the next round.
      b.kill("SIGKILL");
      await once(b, "exit");
      await expect.poll(() => sampler.stats(procs).has("b"), { timeout: 2000 }).toBe(false);
    } finally {
      sampler.close();
    }
  });

  it("a reused key with another pid is read afresh, not served from the old process", async () => {
    const a = await sleeper();
    const b = await sleeper();
    const sampler = new ProcessStatSampler({
      processes: () => [],
      intervalMs: 10_000,
      idleAfterMs: 10_000,
    });
    try {
      const first = sampler.stats([{ key: "k", pid: a.pid }]).get("k");
      const second = sampler.stats([{ key: "k", pid: b.pid }]).get("k");
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
    } finally {
      sampler.close();
    }
  });

  it("stops sampling and closes its descriptors when nobody asks, and on close", async () => {
    const before = openFds();
    const a = await sleeper();
    const procs = [{ key: "a", pid: a.pid }];
    let rounds = 0;
    const sampler = new ProcessStatSampler({
      processes: () => {
        rounds++;
        return procs;
      },
      intervalMs: 30,
      idleAfterMs: 100,
    });
    try {
      sampler.stats(procs);
      expect(openFds()).toBe(before + 1);
      await sleep(400);
      const settled = rounds;
      expect(settled).toBeGreaterThan(0);
      expect(openFds()).toBe(before);
      await sleep(200);
      expect(rounds).toBe(settled);
      // Asked again: read afresh, and sampling resumes.
      expect(sampler.stats(procs).has("a")).toBe(true);
      await expect.poll(() => rounds, { timeout: 2000 }).toBeGreaterThan(settled);
    } finally {
      sampler.close();
    }
    expect(openFds()).toBe(before);
  });
});

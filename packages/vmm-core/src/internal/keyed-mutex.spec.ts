import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { KeyedMutex } from "./keyed-mutex.js";

describe("KeyedMutex", () => {
  it("serializes one key, not different keys, and survives rejections", async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const op = (key: string, name: string, ms: number, fail = false) =>
      m.run(key, async () => {
        log.push(`${name}+`);
        await sleep(ms);
        log.push(`${name}-`);
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([
      op("a", "a1", 30, true),
      op("a", "a2", 1),
      op("b", "b1", 5),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
    expect(log.indexOf("a2+")).toBeGreaterThan(log.indexOf("a1-"));
    expect(log.indexOf("b1+")).toBeLessThan(log.indexOf("a1-"));
    expect(m.isBusy("a")).toBe(false);
    expect(m.isBusy("b")).toBe(false);
  });
});

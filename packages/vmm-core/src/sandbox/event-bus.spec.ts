import { describe, expect, it } from "vitest";
import { EventBus } from "./event-bus.js";

describe("EventBus", () => {
  it("removes a subscriber as soon as its signal aborts, even one that never got an event", async () => {
    const bus = new EventBus();
    const streams = Array.from({ length: 1000 }, () => {
      const ac = new AbortController();
      const it = bus.subscribe({}, ac.signal)[Symbol.asyncIterator]();
      const first = it.next(); // starts the generator: it registers and waits
      return { ac, first };
    });
    await new Promise((r) => setImmediate(r));
    expect(bus.subscriberCount).toBe(1000);
    for (const s of streams) s.ac.abort();
    await Promise.all(streams.map((s) => s.first));
    expect(bus.subscriberCount).toBe(0);
  });
});

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { AgentClient, type AgentProcess } from "../../src/agent/index.js";
import { type AgentUnderTest, startAgent, startVsockProxy } from "./agent-fixture.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function output(
  proc: AgentProcess,
): Promise<{ out: string; code: number | null | undefined }> {
  let out = "";
  let code: number | null | undefined;
  for await (const ev of proc) {
    if ("stream" in ev) out += Buffer.from(ev.data).toString();
    else code = ev.exit.code;
  }
  return { out, code };
}

/** An agent behind a vsock stand-in that counts connections and can switch agents. */
async function setup(options: { spareMaxAgeMs?: number } = {}) {
  let agent: AgentUnderTest = await startAgent();
  cleanups.push(() => agent.stop());
  // Not in the agent's dir: restartAgent removes that.
  const dir = await mkdtemp(join(tmpdir(), "vmm-spare-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const uds = join(dir, "v.sock");
  const proxy = await startVsockProxy(uds, 1024, () => agent.socketPath);
  cleanups.push(() => proxy.close());
  let accepted = 0;
  let open = 0;
  proxy.server.on("connection", (s) => {
    accepted++;
    open++;
    s.once("close", () => open--);
  });
  const client = new AgentClient({
    endpoint: { kind: "vsock", udsPath: uds },
    spareConnection: true,
    ...options,
  });
  cleanups.push(async () => client.close());
  return {
    client,
    accepted: () => accepted,
    open: () => open,
    /** Replaces the agent: every existing connection to the old one dies. */
    async restartAgent() {
      const next = await startAgent();
      const old = agent;
      agent = next;
      await old.stop();
      cleanups.push(() => next.stop());
    },
  };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("AgentClient spareConnection", () => {
  it("dials the next connection after an operation and uses it for the next one", async () => {
    const t = await setup();
    const first = await output(await t.client.run({ argv: ["echo", "one"], stdin: false }));
    expect(first).toEqual({ out: "one\n", code: 0 });
    await until(() => t.accepted() === 2 && t.open() === 1, "the spare");
    const second = t.client.run({ argv: ["echo", "two"], stdin: false });
    // The run goes over the spare: no new connection until it is over.
    const proc = await second;
    expect(t.accepted()).toBe(2);
    expect(await output(proc)).toEqual({ out: "two\n", code: 0 });
    await until(() => t.accepted() === 3, "the next spare");
    expect((await t.client.health()).mode).toBe("unix");
  });

  it("falls back to a new dial when the spare died (agent restarted), running the command once", async () => {
    const t = await setup();
    await output(await t.client.run({ argv: ["true"], stdin: false }));
    await until(() => t.accepted() === 2, "the spare");
    await t.restartAgent(); // the spare's session is gone
    const { out, code } = await output(
      await t.client.run({ argv: ["sh", "-c", "echo ran"], stdin: false }),
    );
    expect(out).toBe("ran\n");
    expect(code).toBe(0);
  });

  it("closes an unused spare once it is spareMaxAgeMs old; the next operation dials and works", async () => {
    const t = await setup({ spareMaxAgeMs: 300 });
    await output(await t.client.run({ argv: ["true"], stdin: false }));
    await until(() => t.accepted() === 2 && t.open() === 1, "the spare");
    // Closed by the client, well before the agent's own 10 s limit.
    await until(() => t.open() === 0, "the idle spare to close");
    const again = await output(await t.client.run({ argv: ["echo", "again"], stdin: false }));
    expect(again).toEqual({ out: "again\n", code: 0 });
    expect(t.accepted()).toBe(3);
    await until(() => t.accepted() === 4 && t.open() === 1, "a new spare");
  });

  it("a spare in use is not closed by its age", async () => {
    const t = await setup({ spareMaxAgeMs: 300 });
    await t.client.health();
    await until(() => t.open() === 1, "the spare");
    const proc = await t.client.run({ argv: ["sh", "-c", "sleep 0.6; echo late"], stdin: false });
    expect(await output(proc)).toEqual({ out: "late\n", code: 0 });
  });

  it("close() drops the spare and later operations dial per call", async () => {
    const t = await setup();
    await t.client.health();
    await until(() => t.open() === 1, "the spare");
    t.client.close();
    await until(() => t.open() === 0, "the spare to close");
    expect((await t.client.health()).mode).toBe("unix");
    await sleep(50);
    expect(t.open()).toBe(0);
  });

  it("an operation aborted while waiting for the spare leaves nothing open", async () => {
    const t = await setup();
    await t.client.health();
    const ac = new AbortController();
    ac.abort(new Error("caller gave up"));
    await expect(t.client.run({ argv: ["true"], signal: ac.signal })).rejects.toThrow(
      "caller gave up",
    );
    t.client.close();
    await until(() => t.open() === 0, "every connection to close");
  });
});

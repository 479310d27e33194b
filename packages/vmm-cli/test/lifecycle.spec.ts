// One sandbox's life through the CLI. Runs against the in-test fake, or the
// real daemon with VMM_E2E_DAEMON=1 (see harness.ts), so it only uses what
// both provide: a guest `echo`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { e2e, runVmm, startTestDaemon, type TestDaemon } from "./harness.js";

describe(`sandbox lifecycle through vmm (${e2e ? "real daemon" : "fake daemon"})`, () => {
  let d: TestDaemon;
  const id = `life-${process.pid}`;
  const vmm = (args: string[]) => runVmm(args, { socket: d.socket, timeoutMs: 60_000 });

  beforeAll(async () => {
    d = await startTestDaemon();
  });
  afterAll(async () => {
    if (d) await vmm(["rm", "--force", id]);
    await d?.close();
  });

  it("create --wait, list, inspect, run, stop, remove", async () => {
    const c = await vmm(["create", "--id", id, "--label", "suite=lifecycle", "--wait"]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    expect(c.out).toBe(`${id}\n`);

    const l = JSON.parse((await vmm(["list", "--label", "suite=lifecycle", "-o", "json"])).out);
    expect(l.sandboxes.map((s: { id: string }) => s.id)).toEqual([id]);

    const i = JSON.parse((await vmm(["inspect", id, "-o", "json"])).out);
    expect(i).toMatchObject({ id, state: "ready", labels: { suite: "lifecycle" } });

    const r = await vmm(["run", id, "--", "echo", "hello", "world"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("hello world\n");

    const v = await vmm(["version"]);
    expect(v.code).toBe(0);
    expect(v.out).toMatch(/^Client: .+\nDaemon: .+\n$/);

    expect((await vmm(["stop", id])).code).toBe(0);
    expect(JSON.parse((await vmm(["inspect", id, "-o", "json"])).out).state).toBe("stopped");
    expect((await vmm(["rm", id])).out).toBe(`${id}\n`);
    expect((await vmm(["inspect", id])).code).toBe(3);
  });
});

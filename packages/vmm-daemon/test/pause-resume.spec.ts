import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import {
  killDaemon,
  pidAlive,
  runShell,
  type SimDaemon,
  startSimDaemon,
  subscribe,
  waitForState,
} from "./sim-daemon.js";

// Pause and resume (docs/pause-resume.md) through gRPC with fc-sim: Pause writes the
// VM to disk and ends its process; Resume restores it in the same directory. fc-sim's
// guest processes do not survive a pause (the simulated guest starts again from its
// disk); what the tests check is what a real pause keeps: files, identity, address.

const daemons: SimDaemon[] = [];
afterAll(async () => {
  for (const d of daemons) await Promise.resolve(d[Symbol.asyncDispose]()).catch(() => {});
});

const sections = (extra = "") =>
  ["[agent]", "boot_timeout_ms = 60000", "[limits]", "max_sandboxes = 16", extra].join("\n");
const env = { VMM_FIRECRACKER_START_TIMEOUT_MS: "60000" };

async function start(extra = "", reuseDir?: string): Promise<SimDaemon> {
  const d = await startSimDaemon({
    sections: sections(extra),
    env,
    ...(reuseDir && { reuseDir }),
  });
  daemons.push(d);
  return d;
}

async function code(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("Pause and Resume (gRPC, fc-sim)", () => {
  it("pause ends the process and keeps the sandbox; it survives a daemon restart and resumes with its files", async () => {
    const d = await start();
    const id = `pz-${randomBytes(3).toString("hex")}`;
    const file = `/root/${id}`;
    const events = await subscribe(d, { id });
    await d.sandboxes.create({ id, labels: { team: "a" } });
    const ready = await waitForState(d, id, "ready", 60_000);
    const pid = Number(ready.pid);
    expect(pid).toBeGreaterThan(0);
    expect((await runShell(d, id, `echo kept > ${file}`)).exit).toBe(0);

    const paused = await d.sandboxes.pause({ id });
    expect(paused.state).toBe("paused");
    expect(paused.pausedAt).toBeGreaterThan(0n);
    expect(paused.pid).toBe(0n);
    // Its disk and the memory + vmstate files it just wrote (128 MiB guest).
    expect(paused.diskBytes).toBeGreaterThan(128n * 1024n * 1024n);
    expect(pidAlive(pid)).toBe(false);
    const dir = join(d.dataDir, "sandboxes", id);
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(["paused.mem", "paused.vmstate"]));
    await events.waitFor((a) => a.includes("paused"));
    expect((await d.sandboxes.list({ state: "paused" })).sandboxes.map((s) => s.id)).toEqual([id]);
    // Idempotent.
    expect((await d.sandboxes.pause({ id })).state).toBe("paused");
    events.close();

    // A daemon killed outright: the paused sandbox is files and a record, nothing to adopt.
    await killDaemon(d);
    const d2 = await start("", d.dir);
    const after = await d2.sandboxes.inspect({ id });
    expect(after).toMatchObject({
      state: "paused",
      pausedAt: paused.pausedAt,
      labels: { team: "a" },
    });
    const ev2 = await subscribe(d2, { id });
    const resumed = await d2.sandboxes.resume({ id });
    expect(resumed).toMatchObject({ state: "ready", pausedAt: 0n });
    expect(Number(resumed.pid)).toBeGreaterThan(0);
    await ev2.waitFor((a) => a.includes("resumed"));
    expect((await runShell(d2, id, `cat ${file}; rm -f ${file}`)).out).toBe("kept\n");
    // Resume of a ready sandbox is a success that changes nothing.
    expect((await d2.sandboxes.resume({ id })).pid).toBe(resumed.pid);
    ev2.close();
    await d2.sandboxes.remove({ id, force: true });
    expect(existsSync(dir)).toBe(false);
  }, 240_000);

  it("auto-pause after the idle time; Run on a paused sandbox resumes it first", async () => {
    const d = await start();
    const id = `pa-${randomBytes(3).toString("hex")}`;
    await d.sandboxes.create({ id, labels: {}, autoPauseSeconds: 2 });
    await waitForState(d, id, "ready", 60_000);
    // A Run restarts the idle clock; paused some 2 s after it ends.
    expect((await runShell(d, id, "true")).exit).toBe(0);
    const info = await waitForState(d, id, "paused", 30_000);
    expect(info.pausedAt).toBeGreaterThan(0n);
    const r = await runShell(d, id, "echo awake");
    expect(r).toEqual({ out: "awake\n", exit: 0 });
    expect((await d.sandboxes.inspect({ id })).state).not.toBe("paused");
    await d.sandboxes.remove({ id, force: true });
  }, 180_000);

  it("with auto_resume off, Run on a paused sandbox is FAILED_PRECONDITION naming the state", async () => {
    const d = await start("[lifecycle]\nauto_resume = false");
    const id = `pn-${randomBytes(3).toString("hex")}`;
    await d.sandboxes.create({ id, labels: {} });
    await waitForState(d, id, "ready", 60_000);
    await d.sandboxes.pause({ id });
    const err = await runShell(d, id, "true").catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((err as ConnectError).rawMessage).toMatch(/is paused/);
    expect((await d.sandboxes.inspect({ id })).state).toBe("paused");
    await d.sandboxes.resume({ id });
    expect((await runShell(d, id, "echo ok")).out).toBe("ok\n");
    await d.sandboxes.remove({ id, force: true });
  }, 180_000);

  it("wrong states and bad input get their codes and change nothing", async () => {
    const d = await start();
    const id = `pw-${randomBytes(3).toString("hex")}`;
    await d.sandboxes.create({ id, labels: {} });
    await waitForState(d, id, "ready", 60_000);
    expect(await code(d.sandboxes.pause({ id: "" }))).toBe(Code.InvalidArgument);
    expect(await code(d.sandboxes.pause({ id: "no-such" }))).toBe(Code.NotFound);
    expect(await code(d.sandboxes.resume({ id: "no-such" }))).toBe(Code.NotFound);

    // Pause with a workload attached.
    const ac = new AbortController();
    const attached = (async () => {
      for await (const _ of d.sandboxes.run({ id, cmd: ["sleep", "30"] }, { signal: ac.signal })) {
        // no output
      }
    })().catch(() => {});
    await waitForState(d, id, "running");
    expect(await code(d.sandboxes.pause({ id }))).toBe(Code.FailedPrecondition);
    ac.abort();
    await attached;
    await waitForState(d, id, "ready");

    // A paused sandbox can be stopped; a stopped one can be neither paused nor resumed.
    await d.sandboxes.pause({ id });
    await d.sandboxes.stop({ id, timeoutSeconds: 1 });
    expect((await d.sandboxes.inspect({ id })).state).toBe("stopped");
    expect(await code(d.sandboxes.pause({ id }))).toBe(Code.FailedPrecondition);
    expect(await code(d.sandboxes.resume({ id }))).toBe(Code.FailedPrecondition);
    await d.sandboxes.remove({ id });
    expect(existsSync(join(d.dataDir, "sandboxes", id))).toBe(false);
  }, 180_000);

  it("a paused sandbox's memory does not count against max_total_memory_mib; resuming it does", async () => {
    const d = await start("max_total_memory_mib = 128");
    const a = `pm-a-${randomBytes(2).toString("hex")}`;
    const b = `pm-b-${randomBytes(2).toString("hex")}`;
    await d.sandboxes.create({ id: a, labels: {} });
    await waitForState(d, a, "ready", 60_000);
    expect(await code(d.sandboxes.create({ id: b, labels: {} }))).toBe(Code.ResourceExhausted);
    await d.sandboxes.pause({ id: a });
    await d.sandboxes.create({ id: b, labels: {} });
    await waitForState(d, b, "ready", 60_000);
    const refused = await d.sandboxes.resume({ id: a }).catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((refused as ConnectError).rawMessage).toMatch(/max_total_memory_mib/);
    expect((await d.sandboxes.inspect({ id: a })).state).toBe("paused");
    await d.sandboxes.remove({ id: b, force: true });
    expect((await d.sandboxes.resume({ id: a })).state).toBe("ready");
    await d.sandboxes.remove({ id: a, force: true });
  }, 180_000);
});

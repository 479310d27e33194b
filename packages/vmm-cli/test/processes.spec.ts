import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processesMatching } from "../../vmm-daemon/test/sim-daemon.js";
import { runVmm, startVmm, until, type VmmProcess } from "./harness.js";
import { type InProcessDaemon, startInProcessDaemon } from "./in-process-daemon.js";

// `vmm run/exec --tag`, `vmm ps` and `vmm kill` against the real services in this process
// (in-process-daemon.ts): the processes are real ones run by fc-sim's guest agent.
describe("vmm ps and vmm kill (in-process daemon, fc-sim)", () => {
  let d: InProcessDaemon;
  const id = "procs-0001";
  const started: VmmProcess[] = [];
  const vmm = (args: string[]) => runVmm(args, { socket: d.socket });
  const start = (args: string[]) => {
    const p = startVmm(args, { socket: d.socket, timeoutMs: 60_000 });
    started.push(p);
    return p;
  };
  let uniq = 0;
  const marker = () => `${2000 + (process.pid % 1000)}.${Date.now() % 100000}${uniq++}`;

  /** Polls `vmm ps --json` until a process tagged `tag` is listed. */
  async function waitListed(tag: string) {
    let found:
      | { pid: number; tag: string; cmd: string[]; tty: boolean; startedAt: string }
      | undefined;
    const deadline = Date.now() + 15_000;
    while (!found) {
      const r = await vmm(["ps", "--json", id]);
      expect(r.code, r.stderr).toBe(0);
      found = JSON.parse(r.out).processes.find((p: { tag: string }) => p.tag === tag);
      if (Date.now() > deadline) throw new Error(`no process tagged ${tag}`);
    }
    return found;
  }

  beforeAll(async () => {
    d = await startInProcessDaemon();
    await d.createReady(id);
  });
  afterAll(async () => {
    for (const p of started) p.child.kill("SIGKILL");
    await Promise.all(started.map((p) => p.result));
    await d?.[Symbol.asyncDispose]();
  });

  it("run --tag is listed by ps (table and --json); kill by tag ends the run with 143", async () => {
    const m = marker();
    const run = start(["run", "--tag", "web", id, "--", "sleep", m]);
    const listed = await waitListed("web");
    expect(listed).toMatchObject({ tag: "web", cmd: ["sleep", m], tty: false });
    expect(listed.pid).toBeGreaterThan(0);
    expect(Number(listed.startedAt)).toBeGreaterThan(0);

    const table = await vmm(["ps", id]);
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^PID\s+TAG\s+TTY\s+AGE\s+COMMAND$/);
    expect(lines[1]).toMatch(new RegExp(`^${listed.pid}\\s+web\\s+no\\s+\\d+s\\s+sleep ${m}$`));
    const yaml = await vmm(["ps", "-o", "yaml", id]);
    expect(yaml.out).toContain("tag: web");

    const kill = await vmm(["kill", id, "web"]);
    expect(kill).toMatchObject({ code: 0, stderr: "", out: "" });
    expect((await run.result).code).toBe(143);
    expect(processesMatching(m)).toEqual([]);
    expect((await vmm(["ps", id])).out.trimEnd().split("\n")).toHaveLength(1); // header only
  });

  it("exec --tag on a TTY; kill -s kill by pid ends it with 137", async () => {
    const m = marker();
    const exec = start(["exec", "-t", "--tag", "shell", id, "--", "sleep", m]);
    const listed = await waitListed("shell");
    expect(listed.tty).toBe(true);
    const kill = await vmm(["kill", "-s", "sigkill", id, String(listed.pid)]);
    expect(kill.code, kill.stderr).toBe(0);
    expect((await exec.result).code).toBe(137);
    await until(() => processesMatching(m).length === 0, "the sleeper to end");
  });

  it("a tag in use: the second run/exec fails (ALREADY_EXISTS, exit 125)", async () => {
    const m = marker();
    start(["exec", "--tag", "only", id, "--", "sleep", m]);
    await waitListed("only");
    const second = await vmm(["exec", "--tag", "only", id, "--", "true"]);
    expect(second.code).toBe(125);
    expect(second.stderr).toMatch(/tag "only" is used by running process/);
    expect((await vmm(["kill", "-s", "KILL", id, "only"])).code).toBe(0);
  });

  it.for([
    [
      "kill of a tag nobody has: NOT_FOUND, exit 3",
      ["kill", id, "nobody"],
      3,
      /no running process tagged "nobody"/,
    ],
    [
      "kill of a pid nobody has: exit 3",
      ["kill", id, "999999"],
      3,
      /no running process with pid 999999/,
    ],
    [
      "kill with an unknown signal: usage, exit 2",
      ["kill", "-s", "SEGV", id, "x"],
      2,
      /-s wants one of TERM/,
    ],
    ["kill of pid 0: usage, exit 2", ["kill", id, "0"], 2, /out of range/],
    ["kill without a target: usage, exit 2", ["kill", id], 2, /PID\|TAG/],
    ["ps of an unknown sandbox: exit 3", ["ps", "no-such-sandbox"], 3, /no-such-sandbox/],
    ["ps --json -o yaml: usage, exit 2", ["ps", "--json", "-o", "yaml", id], 2, /contradict/],
    [
      "run --tag of digits: INVALID_ARGUMENT, exit 125",
      ["run", "--tag", "42", id, "--", "true"],
      125,
      /tag: must not be only digits/,
    ],
    [
      "exec --tag with a space: exit 125",
      ["exec", "--tag", "a b", id, "--", "true"],
      125,
      /tag: must be 1-64 characters/,
    ],
  ] as const)("%s", async ([, args, code, message]) => {
    const r = await vmm([...args]);
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(message);
  });
});

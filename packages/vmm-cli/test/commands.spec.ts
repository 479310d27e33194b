import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processesMatching } from "../../vmm-daemon/test/sim-daemon.js";
import { runVmm, startVmm, until } from "./harness.js";
import {
  DAEMON_VERSION,
  IMAGES,
  type InProcessDaemon,
  PAGE_SIZE,
  startInProcessDaemon,
} from "./in-process-daemon.js";

// Every command of `vmm` against the real sandbox.v1 service in this process
// (see in-process-daemon.ts): workloads are real commands run by the guest agent.
describe("vmm against the daemon's services (in-process, fc-sim)", () => {
  let d: InProcessDaemon;
  /** Ends the workload that keeps busy-0001 "running". */
  const busy = new AbortController();
  /** Snapshot ids by name, taken in beforeAll. */
  const snaps: Record<string, string> = {};
  const vmm = (args: string[], opts: Parameters<typeof runVmm>[1] = {}) =>
    runVmm(args, { socket: d.socket, ...opts });

  beforeAll(async () => {
    d = await startInProcessDaemon();
    const seeds: [string, Record<string, string>][] = [
      ["alpha-1111", { team: "a" }],
      ["alpha-2222", { team: "b" }],
      ["beta-0001", { team: "a", tier: "x" }],
      ["busy-0001", {}],
      ["victim-01", {}],
      ["stopme-01", {}],
    ];
    // One after the other: List orders by creation time, the tests rely on this order.
    for (const [id, labels] of seeds) await d.sandboxes.create({ id, labels });
    await Promise.all(seeds.map(([id]) => d.waitForState(id, "ready")));
    for (const [sandboxId, name] of [
      ["alpha-1111", "first"],
      ["alpha-1111", "second"],
      ["beta-0001", "third"],
    ] as const) {
      snaps[name] = (await d.snapshots.checkpoint({ sandboxId, name })).snapshotId;
    }
    // busy-0001 runs a workload until the suite ends.
    void (async () => {
      for await (const _ of d.sandboxes.run(
        { id: "busy-0001", cmd: ["sleep", "600"] },
        { signal: busy.signal },
      ));
    })().catch(() => {});
    await d.waitForState("busy-0001", "running");
  });
  afterAll(async () => {
    busy.abort();
    await d?.[Symbol.asyncDispose]();
  });

  it("list prints an aligned table with ID STATE IP AGE LABELS", async () => {
    const r = await vmm(["list", "--label", "team=a"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATE\s+IP\s+AGE\s+LABELS$/);
    expect(lines).toHaveLength(3);
    // Network mode none: no address, shown as "-".
    expect(lines[1]).toMatch(/^alpha-1111\s+ready\s+-\s+\d+s\s+team=a$/);
    expect(lines[2]).toMatch(/^beta-0001\s+ready\s+-\s+\d+s\s+team=a,tier=x$/);
    // Columns align: STATE starts at the same offset on every line.
    const col = lines[0]!.indexOf("STATE");
    for (const l of lines.slice(1)) expect(l.slice(col, col + 5)).toBe("ready");
  });

  it("list and snapshot ls fetch every page (the daemon pages by PAGE_SIZE)", async () => {
    const all = await vmm(["list", "-q"]);
    expect(all.code).toBe(0);
    const ids = all.out.trimEnd().split("\n");
    expect(ids.length).toBeGreaterThan(PAGE_SIZE * 2);
    expect(ids).toEqual(expect.arrayContaining(["alpha-1111", "stopme-01", "victim-01"]));
    expect(new Set(ids).size).toBe(ids.length);
    // Exactly what the service holds, in its order.
    const direct: string[] = [];
    let pageToken = "";
    do {
      const page = await d.sandboxes.list({ pageToken });
      direct.push(...page.sandboxes.map((s) => s.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(ids).toEqual(direct);
    const json = JSON.parse((await vmm(["list", "-o", "json"])).out);
    expect(json.sandboxes).toHaveLength(ids.length);
    expect(json.nextPageToken ?? "").toBe("");
    const listed = await vmm(["snapshot", "ls", "-q"]);
    expect(listed.out.trimEnd().split("\n")).toEqual([snaps.first, snaps.second, snaps.third]);
    // An id prefix whose sandbox is on the last page still resolves.
    const inspect = await vmm(["inspect", "-o", "json", "stopme"]);
    expect(inspect.code).toBe(0);
    expect(JSON.parse(inspect.out).id).toBe("stopme-01");
  });

  it("list -o json prints exactly one JSON document from the message", async () => {
    const r = await vmm(["list", "--state", "running", "-o", "json"]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.sandboxes).toEqual([
      expect.objectContaining({
        id: "busy-0001",
        state: "running",
        labels: {},
        ipAddress: "",
        createdAt: expect.any(String),
      }),
    ]);
  });

  it("list -o yaml, -o wide and -q", async () => {
    const y = await vmm(["list", "--label", "tier=x", "-o", "yaml"]);
    expect(y.code).toBe(0);
    expect(y.out).toMatch(/^sandboxes:\n {2}- id: beta-0001\n/);
    const w = await vmm(["ls", "--label", "tier=x", "-o", "wide"]);
    expect(w.out.split("\n")[0]).toMatch(/^ID\s+STATE\s+IP\s+CREATED\s+AGE\s+LABELS$/);
    expect(w.out).toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    const q = await vmm(["list", "-q", "--label", "team=a"]);
    expect(q.out).toBe("alpha-1111\nbeta-0001\n");
  });

  it("an unknown state is INVALID_ARGUMENT from the daemon: exit 2", async () => {
    const r = await vmm(["list", "--state", "sleeping"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vmm: INVALID_ARGUMENT: state: .*"sleeping"/);
    expect(r.out).toBe("");
  });

  it("inspect resolves a unique prefix; -o json and yaml", async () => {
    const r = await vmm(["inspect", "beta"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ID:\s+beta-0001$/m);
    expect(r.out).toMatch(/^State:\s+ready$/m);
    expect(r.out).toMatch(/^Labels:\s+team=a,tier=x$/m);
    const j = JSON.parse((await vmm(["inspect", "beta-0001", "-o", "json"])).out);
    expect(j).toMatchObject({
      id: "beta-0001",
      state: "ready",
      kernel: "vmlinux",
      rootfs: "rootfs.ext4",
      createdFrom: "boot",
      limits: { vcpus: 1, memoryMib: "128" },
    });
    const y = await vmm(["inspect", "beta-0", "-o", "yaml"]);
    expect(y.out).toMatch(/^id: beta-0001$/m);
  });

  it("an ambiguous prefix is a usage error listing the candidates (exit 2)", async () => {
    const r = await vmm(["inspect", "alpha"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'sandbox id prefix "alpha" is ambiguous: it matches alpha-1111, alpha-2222',
    );
    expect(r.out).toBe("");
  });

  it("a prefix matching nothing is not found (exit 3)", async () => {
    const r = await vmm(["inspect", "zzz"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^vmm: NOT_FOUND: no sandbox matches "zzz"\n/);
  });

  it("usage errors exit 2 with a hint", async () => {
    const r = await vmm(["inspect"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("vmm: usage: inspect needs ID\nsee 'vmm inspect --help'\n");
    expect((await vmm(["frobnicate"])).code).toBe(2);
    expect((await vmm(["list", "--bogus"])).stderr).toContain("unknown option --bogus");
    expect((await vmm(["list", "-o", "xml"])).code).toBe(2);
  });

  it("--help works for every command", async () => {
    for (const args of [
      ["--help"],
      ["create", "--help"],
      ["snapshot", "--help"],
      ["snapshot", "restore", "-h"],
      ["help", "exec"],
    ]) {
      const r = await vmm(args);
      expect(r.code, args.join(" ")).toBe(0);
      expect(r.out).toMatch(/Usage: vmm /);
    }
  });

  it("create sends every flag and prints the id; -- CMD is the workload", async () => {
    const marker = join(d.scratch, "made-1.out");
    const r = await vmm([
      "create",
      "--id",
      "made-1",
      "--vcpus",
      "2",
      "--memory",
      "1G",
      "--kernel",
      IMAGES.otherKernel,
      "--rootfs",
      IMAGES.otherRootfs,
      "--boot-args",
      "console=ttyS0 reboot=k panic=1 made-1-marker",
      "--label",
      "a=1",
      "--label",
      "b=x=y",
      "--ttl",
      "1h30m",
      "--network",
      "none",
      "--env",
      "FOO=bar",
      "--workdir",
      d.scratch,
      "--user",
      "root",
      "--wait",
      "--",
      "sh",
      "-c",
      `printf '%s|%s|%s' "$FOO" "$PWD" "$(id -un)" > ${marker}`,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe("made-1\n");
    const info = await d.sandboxes.inspect({ id: "made-1" });
    expect(info).toMatchObject({
      kernel: IMAGES.otherKernel,
      rootfs: IMAGES.otherRootfs,
      labels: { a: "1", b: "x=y" },
      limits: { vcpus: 2, memoryMib: 1024n },
    });
    expect(info.bootArgs).toContain("made-1-marker");
    expect(info.expiresAt - info.createdAt).toBe(5400n);
    // The initial workload ran in the guest with the given env, working dir and user.
    await until(() => existsSync(marker) && readFileSync(marker, "utf8") !== "", "the workload");
    expect(readFileSync(marker, "utf8")).toBe(`bar|${d.scratch}|root`);
    await d.sandboxes.remove({ id: "made-1", force: true });
  });

  it("create --wait waits for ready (silent when stderr is not a TTY); -o json", async () => {
    const r = await vmm(["create", "--id", "waited-1", "--wait", "-o", "json"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.out)).toEqual({ id: "waited-1", ipAddress: "", state: "ready" });
    expect((await d.sandboxes.inspect({ id: "waited-1" })).state).toBe("ready");
    await d.sandboxes.remove({ id: "waited-1" });
  });

  it("create --wait exits 1 when the boot fails, with the daemon's reason", async () => {
    const r = await vmm(["create", "--id", "doomed-1", "--kernel", IMAGES.brokenKernel, "--wait"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/sandbox doomed-1 did not boot: boot failed: .*Invalid Elf magic/);
    expect((await d.sandboxes.inspect({ id: "doomed-1" })).state).toBe("failed");
    await d.sandboxes.remove({ id: "doomed-1" });
  });

  it("create with a different spec for an existing id is ALREADY_EXISTS (exit 1)", async () => {
    expect((await vmm(["create", "--id", "dup-1"])).code).toBe(0);
    expect((await vmm(["create", "--id", "dup-1"])).code).toBe(0); // same spec: idempotent
    const r = await vmm(["create", "--id", "dup-1", "--label", "x=y"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vmm: ALREADY_EXISTS: sandbox dup-1 .*\n/);
    await d.waitForState("dup-1", "ready");
    await d.sandboxes.remove({ id: "dup-1" });
  });

  it("bad flag values are usage errors", async () => {
    expect((await vmm(["create", "--ttl", "soon"])).stderr).toContain("--ttl wants a duration");
    expect((await vmm(["create", "--memory", "lots"])).code).toBe(2);
    expect((await vmm(["create", "--label", "novalue"])).stderr).toContain(
      "--label wants KEY=VALUE",
    );
    expect((await vmm(["create", "--network", "bridge"])).code).toBe(2);
  });

  it("run keeps stdout and stderr apart, binary-safe, and exits with the command's code", async () => {
    const o = randomBytes(300_000);
    o[0] = 0;
    const e = Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x80]);
    const oFile = join(d.scratch, "run-out.bin");
    const eFile = join(d.scratch, "run-err.bin");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(oFile, o);
    writeFileSync(eFile, e);
    const r = await vmm([
      "run",
      "alpha-2",
      "--",
      "sh",
      "-c",
      `cat ${oFile}; cat ${eFile} >&2; exit 42`,
    ]);
    expect(r.code).toBe(42);
    expect(r.stdout.equals(o)).toBe(true);
    expect(Buffer.from(r.stderr, "latin1").length).toBeGreaterThan(0);
  });

  it("run: stderr bytes arrive unchanged", async () => {
    const r = await vmm(["run", "alpha-2222", "--", "sh", "-c", "printf 'err\\303\\251\\n' >&2"]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toBe("err\u00e9\n");
  });

  it("run passes env, workdir, user, tty and timeout", async () => {
    const r = await vmm([
      "run",
      "-t",
      "--env",
      "A=1",
      "--env",
      "B=2=3",
      "-w",
      "/tmp",
      "-u",
      "0",
      "--timeout",
      "5m",
      "alpha-2222",
      "--",
      "sh",
      "-c",
      'printf "%s|%s|%s|%s|" "$A" "$B" "$PWD" "$(id -u)"; [ -t 1 ] && echo tty || echo notty',
    ]);
    expect(r.code).toBe(0);
    expect(r.out.replace(/\r/g, "")).toBe("1|2=3|/tmp|0|tty\n");
    // --timeout reaches the daemon: a workload past it is stopped (124, see below).
  });

  it("run: command not found is the command's 127; vmm's own failures are 125, timeout 124", async () => {
    expect((await vmm(["run", "alpha-2222", "--", "/no/such/binary"])).code).toBe(127);
    const nf = await vmm(["run", "nosuch", "--", "echo", "hi"]);
    expect(nf.code).toBe(125);
    expect(nf.stderr).toContain('NOT_FOUND: no sandbox matches "nosuch"');
    const busyRun = await vmm(["run", "busy-0001", "--", "echo"]);
    expect(busyRun.code).toBe(125);
    expect(busyRun.stderr).toMatch(/^vmm: FAILED_PRECONDITION: /);
    const to = await vmm(["run", "--timeout", "1", "alpha-2222", "--", "sleep", "30"]);
    expect(to.code).toBe(124);
    expect(to.stderr).toMatch(/^vmm: DEADLINE_EXCEEDED: .*timeout_seconds/);
    const missing = await vmm(["run", "alpha-2222"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("run needs a command");
  });

  it("exec -i forwards stdin (pipe, no TTY) and closes it at EOF", async () => {
    const input = Buffer.concat([Buffer.from("hello\n"), randomBytes(200_000)]);
    const r = await vmm(
      ["exec", "-i", "alpha-2222", "--", "sh", "-c", "cat; [ -t 0 ] && echo TTY >&2; exit 0"],
      { input },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.equals(input)).toBe(true);
  });

  it("exec without -i does not forward stdin; without -t Ctrl-C ends the call (130)", async () => {
    const marker = join(d.scratch, "exec-wait.started");
    const tag = `600.${process.pid}`; // a sleep only this test runs
    // The workload itself (the vmm process's command line contains the same words).
    const workload = () =>
      processesMatching(`sleep ${tag}`).filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8") === `sleep\0${tag}\0`;
        } catch {
          return false;
        }
      });
    const noStdin = await vmm(
      ["exec", "alpha-2222", "--", "sh", "-c", 'read line; echo "read:$line:$?"'],
      { input: "ignored\n" },
    );
    // Not forwarded, and closed: the process reads EOF at once (read fails with 1).
    expect(noStdin.code).toBe(0);
    expect(noStdin.out).toBe("read::1\n");
    const p = startVmm(
      ["exec", "alpha-2222", "--", "sh", "-c", `touch ${marker}; exec sleep ${tag}`],
      { socket: d.socket, input: "ignored" },
    );
    await until(() => existsSync(marker), "the exec call to start");
    await until(() => workload().length === 1, "the workload");
    p.child.kill("SIGINT");
    const r = await p.result;
    expect(r.code).toBe(130);
    expect(r.stderr).toBe("");
    // The daemon saw the cancel: the workload is gone and the sandbox takes work again.
    await until(() => workload().length === 0, "the workload to end");
    await d.waitForState("alpha-2222", "ready");
  });

  it("stop passes the timeout and prints the id", async () => {
    const r = await vmm(["stop", "--timeout", "2m", "stopme"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("stopme-01\n");
    expect(JSON.parse((await vmm(["inspect", "stopme-01", "-o", "json"])).out).state).toBe(
      "stopped",
    );
    expect((await vmm(["stop", "--timeout", "forever", "stopme"])).code).toBe(2);
  });

  it("remove needs --force while running; rm is an alias", async () => {
    const r = await vmm(["remove", "busy-0001"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vmm: FAILED_PRECONDITION: sandbox busy-0001 is running a workload/);
    expect(r.stderr).toContain("use --force");
    const f = await vmm(["rm", "-f", "busy"]);
    expect(f.code).toBe(0);
    expect(f.out).toBe("busy-0001\n");
    expect((await vmm(["inspect", "busy-0001"])).code).toBe(3);
  });

  it("snapshot create/list/restore/delete", async () => {
    const c = await vmm(["snapshot", "create", "victim", "--name", "snap-one", "--label", "k=v"]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    const snapId = c.out.trim();
    expect(snapId).toMatch(/^snap-/);

    const l = await vmm(["snapshot", "list", "--sandbox-id", "victim-01"]);
    const lines = l.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+SANDBOX\s+CREATED\s+LABELS$/);
    expect(lines[1]).toMatch(new RegExp(`^${snapId}\\s+snap-one\\s+victim-01\\s+\\d+s\\s+k=v$`));
    const j = JSON.parse((await vmm(["snapshot", "ls", "--label", "k=v", "-o", "json"])).out);
    expect(j.snapshots).toEqual([
      expect.objectContaining({ id: snapId, name: "snap-one", usable: true }),
    ]);
    const size = Number(j.snapshots[0].sizeBytes);
    expect(size).toBeGreaterThan(0);
    expect(
      (await vmm(["snapshot", "list", "-o", "wide", "--sandbox-id", "victim-01"])).out,
    ).toMatch(/USABLE\s+DIR\n.*\d+(\.\d)?[KMG]?i?B\s+yes\s+\S+/);

    const r = await vmm([
      "snapshot",
      "restore",
      snapId,
      "--id",
      "clone-1",
      "--ttl",
      "10m",
      "--label",
      "from=snap",
      "-o",
      "json",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ id: "clone-1", ipAddress: "" });
    const clone = await d.waitForState("clone-1", "ready");
    expect(clone).toMatchObject({ createdFrom: "restore", snapshotId: snapId });
    expect(clone.labels).toMatchObject({ from: "snap" });
    expect(clone.expiresAt).toBeGreaterThan(0n);
    await d.sandboxes.remove({ id: "clone-1" });

    expect((await vmm(["snapshot", "delete", snapId])).out).toBe(`${snapId}\n`);
    const again = await vmm(["snapshot", "delete", snapId]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/^vmm: NOT_FOUND: /);
  });

  it("snapshot ids resolve by prefix: ambiguous exit 2, unique ok", async () => {
    const a = await vmm(["snapshot", "restore", "snap-"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain(`${snaps.first}, ${snaps.second}`);
    const ids = Object.values(snaps);
    const third = snaps.third!;
    let n = "snap-".length + 1;
    while (ids.filter((s) => s.startsWith(third.slice(0, n))).length > 1) n++;
    const r = await vmm(["snapshot", "restore", third.slice(0, n)]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const id = r.out.trim();
    expect((await d.waitForState(id, "ready")).snapshotId).toBe(third);
    await d.sandboxes.remove({ id });
  });

  it("checkpoint of a sandbox that is not ready is FAILED_PRECONDITION (exit 1)", async () => {
    await d.sandboxes.create({ id: "stopped-2" });
    await d.waitForState("stopped-2", "ready");
    await d.sandboxes.stop({ id: "stopped-2" });
    const r = await vmm(["snapshot", "create", "stopped-2"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vmm: FAILED_PRECONDITION: .*stopped-2.*stopped/);
    await d.sandboxes.remove({ id: "stopped-2" });
  });

  it("events streams filtered events until SIGINT, then exits 0", async () => {
    const before = d.eventStreams();
    const p = startVmm(["events", "--id", "ev-1", "-o", "json"], { socket: d.socket });
    let live = "";
    p.child.stdout.on("data", (b: Buffer) => {
      live += b.toString();
    });
    let err = "";
    p.child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    await until(
      () => d.eventStreams() > before || p.child.exitCode !== null,
      "the events subscription",
      20_000,
    );
    expect(err).toBe("");
    expect(p.child.exitCode).toBe(null);
    expect((await vmm(["create", "--id", "ev-1"])).code).toBe(0);
    expect((await vmm(["create", "--id", "ev-2"])).code).toBe(0);
    // ev-2's events must not show up.
    await until(() => live.includes('"ready"'), "the ready event", 20_000);
    p.child.kill("SIGINT");
    const r = await p.result;
    expect(r.code).toBe(0);
    // The daemon ended the stream when the client went away.
    await until(() => d.eventStreams() === before, "the stream to close");
    const events = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.action)).toEqual(["created", "ready"]);
    expect(events.every((e) => e.sandboxId === "ev-1")).toBe(true);
    await d.waitForState("ev-2", "ready");
    for (const id of ["ev-1", "ev-2"]) await d.sandboxes.remove({ id });
  });

  it("events with an unknown action is a usage error from the daemon (exit 2)", async () => {
    const r = await vmm(["events", "--action", "exploded"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vmm: INVALID_ARGUMENT: action: .*"exploded"/);
  });

  it("version shows the client's and the daemon's version (header vmm-version)", async () => {
    const r = await vmm(["version"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`Client: ${r.out.match(/^Client: (\S+)/)![1]}\nDaemon: ${DAEMON_VERSION}\n`);
    const j = JSON.parse((await vmm(["version", "-o", "json"])).out);
    expect(j).toEqual({ client: expect.any(String), daemon: DAEMON_VERSION });
  });

  it("doctor prints the daemon's host checks, host paths redacted, exit 1 only on a failed check", async () => {
    const r = await vmm(["doctor"]);
    const lines = r.out.trim().split("\n");
    for (const name of ["kvm", "firecracker", "kernel", "rootfs", "cgroup v2", "socket paths"]) {
      expect(
        lines.some((l) => new RegExp(`^(ok  |WARN|FAIL)  ${name}: `).test(l)),
        name,
      ).toBe(true);
    }
    const failed = lines.filter((l) => l.startsWith("FAIL")).length;
    expect(r.code).toBe(failed > 0 ? 1 : 0);
    expect(lines.at(-1)).toBe(failed > 0 ? `${failed} check(s) failed` : "no failures");
    // fc-sim: the simulator is named as such; images are shown under <images_dir>, not as host paths.
    expect(r.out).toMatch(/^WARN {2}firecracker: .*fc-sim/m);
    expect(r.out).toMatch(/^ok {4}rootfs: <images_dir>\/\S+: \/sbin\/init is \/sbin\/vmm-agent$/m);
    expect(r.out).not.toMatch(/vmm-cli-/); // the temp dir of images and data_dir
    const j = JSON.parse((await vmm(["doctor", "-o", "json"])).out);
    expect(j.checks.length).toBe(
      lines.length - 1 - lines.filter((l) => l.startsWith("      fix:")).length,
    );
    expect(j.ok ?? false).toBe(failed === 0);
  });

  it("a missing socket is UNAVAILABLE: exit 4 with the daemon hint; version still prints the client", async () => {
    const r = await vmm(["list"], { socket: `${d.socket}.missing` });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /^vmm: UNAVAILABLE: cannot connect to socket .*\.missing: no such file\nis the daemon running\? start it with `pnpm start`/,
    );
    const v = await vmm(["version"], { socket: `${d.socket}.missing` });
    expect(v.code).toBe(4);
    expect(v.out).toMatch(/^Client: /);
  });

  it("--socket overrides VMM_SOCKET; the Unix socket needs no token", async () => {
    const r = await vmm(["--socket", d.socket, "list", "-q", "--label", "tier=x"], {
      env: { VMM_SOCKET: "/nonexistent.sock" },
    });
    expect(r.stderr).toBe("");
    expect(r.out).toBe("beta-0001\n");
    const t = await vmm(["list", "-q", "--label", "tier=x", "--token", "whatever"]);
    expect(t.out).toBe("beta-0001\n");
  });

  it("--address dials TCP with the bearer token (--token or VMM_TOKEN); flags and env are checked", async () => {
    const tcp = (args: string[], env: Record<string, string | undefined> = {}) =>
      vmm(args, { socket: undefined, env: { VMM_SOCKET: undefined, ...env } });
    const r = await tcp([
      "list",
      "-q",
      "--label",
      "tier=x",
      "--address",
      d.tcpAddress,
      "--token",
      d.token,
    ]);
    expect(r.stderr).toBe("");
    expect(r.out).toBe("beta-0001\n");
    const fromEnv = await tcp(["list", "-q", "--label", "tier=x", "--address", d.tcpAddress], {
      VMM_TOKEN: d.token,
    });
    expect(fromEnv.out).toBe("beta-0001\n");
    const wrong = await tcp(["list", "--address", d.tcpAddress, "--token", "not-the-token"]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/^vmm: UNAUTHENTICATED: /);
    const none = await tcp(["list", "--address", d.tcpAddress]);
    expect(none.stderr).toMatch(/^vmm: UNAUTHENTICATED: /);
    const env = await tcp(["version", "-o", "json"], {
      VMM_ADDRESS: d.tcpAddress,
      VMM_TOKEN: d.token,
    });
    expect(JSON.parse(env.out).daemon).toBe(DAEMON_VERSION);
    expect((await vmm(["list", "--address", "nohostport"])).code).toBe(2);
    expect((await vmm(["list", "--socket", "/x", "--address", "h:1"])).stderr).toContain(
      "mutually exclusive",
    );
    expect((await vmm(["list", "--tls"])).stderr).toContain("--tls and --ca need --address");
  });
});

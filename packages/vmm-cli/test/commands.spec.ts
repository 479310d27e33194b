import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAKE_PAGE_SIZE, fakeDaemonVersion } from "./fake-daemon.js";
import { e2e, runVmm, startTestDaemon, startVmm, type TestDaemon, until } from "./harness.js";

// Fake-only: these scripts depend on the fake's workloads and recorded requests.
describe.skipIf(e2e)("vmm against the fake daemon", () => {
  let d: TestDaemon;
  const vmm = (args: string[], opts: Parameters<typeof runVmm>[1] = {}) =>
    runVmm(args, { socket: d.socket, ...opts });

  beforeAll(async () => {
    d = await startTestDaemon({ bootDelayMs: 300 });
    const f = d.fake!;
    f.seed("alpha-1111", "ready", { team: "a" });
    f.seed("alpha-2222", "ready", { team: "b" });
    f.seed("beta-0001", "ready", { team: "a", tier: "x" });
    f.seed("busy-0001", "running");
    f.seed("victim-01", "ready");
    f.seed("stopme-01", "ready");
    f.seedSnapshot("snap-aa01", "alpha-1111", "first");
    f.seedSnapshot("snap-aa02", "alpha-1111", "second");
    f.seedSnapshot("snap-bb01", "beta-0001", "third");
  });
  afterAll(async () => {
    await d?.close();
  });

  it("list prints an aligned table with ID STATE IP AGE LABELS", async () => {
    const r = await vmm(["list", "--label", "team=a"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATE\s+IP\s+AGE\s+LABELS$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^alpha-1111\s+ready\s+10\.200\.0\.\d+\s+\d+s\s+team=a$/);
    expect(lines[2]).toMatch(/^beta-0001\s+ready\s+10\.200\.0\.\d+\s+\d+s\s+team=a,tier=x$/);
    // Columns align: STATE starts at the same offset on every line.
    const col = lines[0]!.indexOf("STATE");
    for (const l of lines.slice(1)) expect(l.slice(col, col + 5)).toBe("ready");
  });

  it("list and snapshot ls fetch every page (the fake pages by FAKE_PAGE_SIZE)", async () => {
    const all = await vmm(["list", "-q"]);
    expect(all.code).toBe(0);
    const ids = all.out.trimEnd().split("\n");
    expect(ids.length).toBeGreaterThan(FAKE_PAGE_SIZE * 2);
    expect(ids).toEqual(expect.arrayContaining(["alpha-1111", "stopme-01", "victim-01"]));
    expect(new Set(ids).size).toBe(ids.length);
    const json = JSON.parse((await vmm(["list", "-o", "json"])).out);
    expect(json.sandboxes).toHaveLength(ids.length);
    expect(json.nextPageToken ?? "").toBe("");
    const snaps = await vmm(["snapshot", "ls", "-q"]);
    expect(snaps.out.trimEnd().split("\n")).toEqual(["snap-aa01", "snap-aa02", "snap-bb01"]);
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
        ipAddress: expect.any(String),
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
    expect(r.stderr).toMatch(/^vmm: INVALID_ARGUMENT: state: unknown state "sleeping"\n/);
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
      network: { gateway: "10.200.0.1" },
      limits: { vcpus: 1, memoryMib: "256" },
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
    const r = await vmm([
      "create",
      "--id",
      "made-1",
      "--vcpus",
      "2",
      "--memory",
      "1G",
      "--kernel",
      "k1",
      "--rootfs",
      "r1",
      "--boot-args",
      "console=ttyS0",
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
      "/srv",
      "--user",
      "app",
      "--",
      "python3",
      "-m",
      "http.server",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe("made-1\n");
    const req = d.fake!.record.creates.find((c) => c.id === "made-1")!;
    expect(req).toMatchObject({
      kernel: "k1",
      rootfs: "r1",
      bootArgs: "console=ttyS0",
      labels: { a: "1", b: "x=y" },
      ttlSeconds: 5400,
      network: { mode: "none" },
      env: { FOO: "bar" },
      workingDir: "/srv",
      user: "app",
      cmd: ["python3", "-m", "http.server"],
      limits: { vcpus: 2, memoryMib: 1024n },
    });
  });

  it("create --wait waits for ready (silent when stderr is not a TTY); -o json", async () => {
    const t0 = Date.now();
    const r = await vmm(["create", "--id", "waited-1", "--wait", "-o", "json"]);
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.out)).toEqual({
      id: "waited-1",
      ipAddress: expect.stringMatching(/^10\.200/),
      state: "ready",
    });
    expect((await vmm(["inspect", "waited-1", "-o", "json"])).out).toContain('"state": "ready"');
  });

  it("create --wait exits 1 when the boot fails", async () => {
    const r = await vmm(["create", "--id", "doomed-1", "--kernel", "bad", "--wait"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("sandbox doomed-1 did not boot: kernel panic: bad kernel");
  });

  it("create with a different spec for an existing id is ALREADY_EXISTS (exit 1)", async () => {
    expect((await vmm(["create", "--id", "dup-1"])).code).toBe(0);
    expect((await vmm(["create", "--id", "dup-1"])).code).toBe(0); // same spec: idempotent
    const r = await vmm(["create", "--id", "dup-1", "--label", "x=y"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vmm: ALREADY_EXISTS: sandbox dup-1 exists with a different spec\n/);
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
    const o = randomBytes(90_000); // base64 in one argv word stays under Linux's 128 KiB limit
    o[0] = 0;
    const e = Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x80]);
    const r = await vmm([
      "run",
      "alpha-2",
      "--",
      "emit",
      o.toString("base64"),
      e.toString("base64"),
      "42",
    ]);
    expect(r.code).toBe(42);
    expect(r.stdout.equals(o)).toBe(true);
    expect(Buffer.from(r.stderr, "latin1").length).toBeGreaterThan(0);
  });

  it("run: stderr bytes arrive unchanged", async () => {
    const e = Buffer.from("err\u00e9\n", "utf8");
    const r = await vmm(["run", "alpha-2222", "--", "emit", "", e.toString("base64"), "0"]);
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
      "1000",
      "--timeout",
      "5m",
      "alpha-2222",
      "--",
      "env",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      env: { A: "1", B: "2=3" },
      workingDir: "/tmp",
      user: "1000",
      tty: true,
    });
    expect(d.fake!.record.runs.at(-1)?.timeoutSeconds).toBe(300);
  });

  it("run: command not found is the command's 127; vmm's own failures are 125, timeout 124", async () => {
    expect((await vmm(["run", "alpha-2222", "--", "nope"])).code).toBe(127);
    const nf = await vmm(["run", "nosuch", "--", "echo", "hi"]);
    expect(nf.code).toBe(125);
    expect(nf.stderr).toContain('NOT_FOUND: no sandbox matches "nosuch"');
    const busy = await vmm(["run", "busy-0001", "--", "echo"]);
    expect(busy.code).toBe(125);
    expect(busy.stderr).toMatch(/^vmm: FAILED_PRECONDITION: /);
    const to = await vmm(["run", "--timeout", "1", "alpha-2222", "--", "sleep", "1"]);
    expect(to.code).toBe(124);
    expect(to.stderr).toMatch(/^vmm: DEADLINE_EXCEEDED: command timed out after 1s\n/);
    const missing = await vmm(["run", "alpha-2222"]);
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("run needs a command");
  });

  it("exec -i forwards stdin (pipe, no TTY) and closes it at EOF", async () => {
    const input = Buffer.concat([Buffer.from("hello\n"), randomBytes(70_000)]);
    const r = await vmm(["exec", "-i", "alpha-2222", "--", "cat"], { input });
    expect(r.code).toBe(0);
    expect(r.stdout.equals(input)).toBe(true);
    expect(d.fake!.record.execInits.at(-1)).toMatchObject({
      id: "alpha-2222",
      cmd: ["cat"],
      tty: false,
    });
  });

  it("exec without -i does not forward stdin; without -t Ctrl-C ends the call (130)", async () => {
    const before = d.fake!.record.execStdin.length;
    const cancelled = d.fake!.record.execCancelled;
    const p = startVmm(["exec", "alpha-2222", "--", "wait"], {
      socket: d.socket,
      input: "ignored",
    });
    await until(() => d.fake!.record.execInits.at(-1)?.cmd[0] === "wait", "the exec call");
    p.child.kill("SIGINT");
    const r = await p.result;
    expect(r.code).toBe(130);
    expect(r.stderr).toBe("");
    await until(
      () => d.fake!.record.execCancelled === cancelled + 1,
      "the daemon to see the cancel",
    );
    expect(d.fake!.record.execStdin.length).toBe(before);
  });

  it("stop passes the timeout and prints the id", async () => {
    const r = await vmm(["stop", "--timeout", "2m", "stopme"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("stopme-01\n");
    expect(d.fake!.record.stops.at(-1)).toEqual({ id: "stopme-01", timeoutSeconds: 120 });
    expect(JSON.parse((await vmm(["inspect", "stopme-01", "-o", "json"])).out).state).toBe(
      "stopped",
    );
  });

  it("remove needs --force while running; rm is an alias", async () => {
    const r = await vmm(["remove", "busy-0001"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("use --force");
    const f = await vmm(["rm", "-f", "busy"]);
    expect(f.code).toBe(0);
    expect(f.out).toBe("busy-0001\n");
    expect((await vmm(["inspect", "busy-0001"])).code).toBe(3);
  });

  it("snapshot create/list/restore/delete", async () => {
    const c = await vmm(["snapshot", "create", "victim", "--name", "snap-one", "--label", "k=v"]);
    expect(c.code).toBe(0);
    const snapId = c.out.trim();
    expect(snapId).toMatch(/^snap-/);

    const l = await vmm(["snapshot", "list", "--sandbox-id", "victim-01"]);
    const lines = l.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+NAME\s+SANDBOX\s+CREATED\s+LABELS$/);
    expect(lines[1]).toMatch(new RegExp(`^${snapId}\\s+snap-one\\s+victim-01\\s+\\d+s\\s+k=v$`));
    const j = JSON.parse((await vmm(["snapshot", "ls", "--label", "k=v", "-o", "json"])).out);
    expect(j.snapshots).toEqual([
      expect.objectContaining({
        id: snapId,
        name: "snap-one",
        usable: true,
        sizeBytes: "268435456",
      }),
    ]);
    expect(
      (await vmm(["snapshot", "list", "-o", "wide", "--sandbox-id", "victim-01"])).out,
    ).toMatch(/USABLE\s+DIR\n.*256\.0MiB\s+yes\s+\//);

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
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ id: "clone-1", ipAddress: expect.any(String) });

    expect((await vmm(["snapshot", "delete", snapId])).out).toBe(`${snapId}\n`);
    expect((await vmm(["snapshot", "delete", snapId])).code).toBe(3);
  });

  it("snapshot ids resolve by prefix: ambiguous exit 2, unique ok", async () => {
    const a = await vmm(["snapshot", "restore", "snap-aa"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("snap-aa01, snap-aa02");
    const r = await vmm(["snapshot", "restore", "snap-bb"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^sb-/);
  });

  it("checkpoint of a sandbox that is not ready is FAILED_PRECONDITION (exit 1)", async () => {
    const r = await vmm(["snapshot", "create", "stopme-01"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^vmm: FAILED_PRECONDITION: sandbox stopme-01 is stopped, not ready\n/,
    );
  });

  it("events streams filtered events until SIGINT, then exits 0", async () => {
    const subs = d.fake!.subscriberCount();
    const p = startVmm(["events", "--id", "ev-1", "-o", "json"], { socket: d.socket });
    let live = "";
    p.child.stdout.on("data", (b: Buffer) => {
      live += b.toString();
    });
    await until(() => d.fake!.subscriberCount() > subs, "the events subscription");
    expect((await vmm(["create", "--id", "ev-1"])).code).toBe(0);
    expect((await vmm(["create", "--id", "ev-2"])).code).toBe(0);
    // ev-1 boots in 300 ms; ev-2's events must not show up.
    await until(() => live.includes('"ready"'), "the ready event");
    p.child.kill("SIGINT");
    const r = await p.result;
    expect(r.code).toBe(0);
    const events = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.action)).toEqual(["created", "ready"]);
    expect(events.every((e) => e.sandboxId === "ev-1")).toBe(true);
  });

  it("events with an unknown action is a usage error from the daemon (exit 2)", async () => {
    expect((await vmm(["events", "--action", "exploded"])).code).toBe(2);
  });

  it("version shows the client's and the daemon's version (header vmm-version)", async () => {
    const r = await vmm(["version"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Client: \d+\.\d+\.\d+\nDaemon: 9\.8\.7-fake\n$/);
    const j = JSON.parse((await vmm(["version", "-o", "json"])).out);
    expect(j).toEqual({ client: expect.any(String), daemon: fakeDaemonVersion });
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

  it("--socket overrides VMM_SOCKET, and --token is sent as a bearer token", async () => {
    const r = await vmm(["--socket", d.socket, "list", "-q", "--token", "s3cret"], {
      env: { VMM_SOCKET: "/nonexistent.sock" },
    });
    expect(r.code).toBe(0);
    expect(d.fake!.record.authorization.at(-1)).toBe("Bearer s3cret");
    await vmm(["list", "-q"], { env: { VMM_TOKEN: "fromenv" } });
    expect(d.fake!.record.authorization.at(-1)).toBe("Bearer fromenv");
  });

  it("--address dials TCP with the bearer token; flags and env are checked", async () => {
    const r = await vmm([
      "list",
      "-q",
      "--label",
      "tier=x",
      "--address",
      d.fake!.tcpAddress,
      "--token",
      "tcp-token",
    ]);
    expect(r.stderr).toBe("");
    expect(r.out).toBe("beta-0001\n");
    expect(d.fake!.record.authorization.at(-1)).toBe("Bearer tcp-token");
    const env = await vmm(["version", "-o", "json"], { env: { VMM_ADDRESS: d.fake!.tcpAddress } });
    expect(JSON.parse(env.out).daemon).toBe(fakeDaemonVersion);
    expect((await vmm(["list", "--address", "nohostport"])).code).toBe(2);
    expect((await vmm(["list", "--socket", "/x", "--address", "h:1"])).stderr).toContain(
      "mutually exclusive",
    );
    expect((await vmm(["list", "--tls"])).stderr).toContain("--tls and --ca need --address");
  });
});

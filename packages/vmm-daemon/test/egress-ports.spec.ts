import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import {
  killDaemon,
  leftovers,
  type SimDaemon,
  startSimDaemon,
  waitForState,
} from "./sim-daemon.js";
import { links, testNetns } from "./test-netns.js";

// Egress policy and exposed ports, end to end with fc-sim (docs/networking.md).
//
//   <tag>host0  plays the host: the daemon runs *in* it (ExposePort dials the sandbox IP from
//               the daemon's namespace), holds the veth host ends and the uplink <tag>up
//   <tag>inet   plays the internet: servers at .2, .3 and .4 of 10.233.<octet>.0/24
//
// fc-sim's guest (a host process, FC_SIM_GUEST=host, so busybox and node are at hand) runs in
// the sandbox's slot namespace: its connections take the output path the policy covers.
const { tag, prefix, octet, ours, makeHostNetns } = testNetns("ep");
const net24 = `10.233.${octet}`;
const A = `${net24}.2`;
const B = `${net24}.3`;
const C = `${net24}.4`;
const SERVER_PORT = 7000;
const inetNs = `${tag}inet`;
const uplink = `${tag}up`;

// stderr piped: `ip link add … netns` prints a kernel warning on success; a failure still throws with it.
const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

async function expectCode(p: Promise<unknown>, code: Code): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(err, `expected ${Code[code]}`).toBeInstanceOf(ConnectError);
  expect(Code[err!.code]).toBe(Code[code]);
  return err!;
}

/**
 * A connection attempt from inside the guest: prints `OK <echo>`, or the
 * error code (ECONNREFUSED = a reset, the policy refusing), or TIMEOUT after 3 s.
 */
const probeScript = `
const [host, port] = process.argv.slice(1);
const s = require("net").connect(Number(port), host);
const t = setTimeout(() => { console.log("TIMEOUT"); process.exit(0); }, 3000);
s.on("connect", () => s.write("hello\\n"));
s.on("data", (d) => { clearTimeout(t); console.log("OK " + d.toString().trim()); s.destroy(); });
s.on("error", (e) => { clearTimeout(t); console.log(e.code); });
`;

/** A long-lived connection from the guest: pings every 100 ms, prints echoes, then how it ended. */
const holdScript = `
const [host, port] = process.argv.slice(1);
const s = require("net").connect(Number(port), host);
let n = 0;
s.on("connect", () => setInterval(() => s.write("ping " + ++n + "\\n"), 100));
s.on("data", (d) => process.stdout.write(d));
s.on("error", (e) => { console.log("ERROR " + e.code); process.exit(3); });
s.on("close", () => { console.log("CLOSED"); process.exit(2); });
`;

async function probe(d: SimDaemon, id: string, host: string, port = SERVER_PORT): Promise<string> {
  // Exec, not Run: a probe runs beside a held connection (a sandbox runs one Run at a time).
  async function* input() {
    yield {
      payload: {
        case: "init" as const,
        value: { id, cmd: [process.execPath, "-e", probeScript, host, String(port)] },
      },
    };
  }
  let out = "";
  for await (const o of d.sandboxes.exec(input()))
    if (!o.done) out += Buffer.from(o.data).toString();
  return out.trim();
}

/** `curl` from the namespace the daemon runs in (where its forwarders listen). */
function curlInHost(hostNetns: string, address: string): string {
  const r = spawnSync(
    "ip",
    ["netns", "exec", hostNetns, "curl", "-s", "--max-time", "5", `http://${address}/`],
    { encoding: "utf8" },
  );
  return r.status === 0 ? r.stdout : `curl exit ${r.status}: ${r.stderr}`;
}

async function until(f: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

describe.skipIf(process.getuid?.() !== 0)("egress policy and exposed ports (fc-sim)", () => {
  let hostNetns: string;
  let server: ChildProcess | undefined;
  let d: SimDaemon | undefined;
  let webDir: string;
  const fcPids: number[] = [];
  const sections = () =>
    [
      "[network]",
      'mode = "tap"',
      `host_cidr = "10.231.${octet}.0/24"`,
      `netns_prefix = "${prefix}"`,
      `host_netns = "${hostNetns}"`,
      `uplink = "${uplink}"`,
      "pool_size = 1",
      "[daemon]",
      'on_shutdown = "keep"',
    ].join("\n");
  const start = (reuseDir?: string) =>
    startSimDaemon({
      sections: sections(),
      env: { FC_SIM_GUEST: "host" },
      wrapper: ["ip", "netns", "exec", hostNetns],
      ...(reuseDir && { reuseDir }),
    });

  beforeAll(async () => {
    hostNetns = makeHostNetns();
    sh("ip", ["netns", "add", inetNs]);
    sh("ip", ["-n", inetNs, "link", "set", "lo", "up"]);
    sh("ip", [
      "-n",
      hostNetns,
      "link",
      "add",
      uplink,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      inetNs,
    ]);
    sh("ip", ["-n", hostNetns, "addr", "add", `${net24}.1/24`, "dev", uplink]);
    sh("ip", ["-n", hostNetns, "link", "set", uplink, "up"]);
    for (const a of [A, B, C]) sh("ip", ["-n", inetNs, "addr", "add", `${a}/24`, "dev", "eth0"]);
    sh("ip", ["-n", inetNs, "link", "set", "eth0", "up"]);
    // One echo server on every "internet" address.
    server = spawn(
      "ip",
      [
        "netns",
        "exec",
        inetNs,
        process.execPath,
        "-e",
        `require("net").createServer((s) => { s.on("error", () => {}); s.pipe(s); }).listen(${SERVER_PORT}, "0.0.0.0", () => console.log("up"))`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => server!.stdout!.once("data", () => resolve()));
    webDir = mkdtempSync(join(tmpdir(), "vmm-ep-web-"));
    writeFileSync(join(webDir, "index.html"), "hello from the guest\n");
    d = await start();
  });

  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    server?.kill("SIGKILL");
    for (const n of ours()) spawnSync("ip", ["netns", "del", n]);
    rmSync(webDir, { recursive: true, force: true });
    expect(ours()).toEqual([]);
    expect(links().filter((n) => n.startsWith(tag))).toEqual([]);
  });

  it("exposes a guest port on the daemon's host: busybox httpd in the guest answers there", async () => {
    const id = "ep-port";
    await d!.sandboxes.create({ id });
    const info = await waitForState(d!, id, "ready");
    fcPids.push(Number(info.pid));
    const httpd = new AbortController();
    const serving = (async () => {
      for await (const _ of d!.sandboxes.run(
        { id, cmd: ["busybox", "httpd", "-f", "-p", "8080", "-h", webDir] },
        { signal: httpd.signal },
      ));
    })().catch(() => {});
    try {
      const { hostAddress, url } = await d!.sandboxes.exposePort({ id, guestPort: 8080 });
      expect(hostAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(url).toBe("");
      expect(await until(() => curlInHost(hostNetns, hostAddress).includes("hello"), 10_000)).toBe(
        true,
      );
      // The same port again: the same address; Inspect lists it.
      expect((await d!.sandboxes.exposePort({ id, guestPort: 8080 })).hostAddress).toBe(
        hostAddress,
      );
      const shown = await d!.sandboxes.inspect({ id });
      expect(shown.exposedPorts.map((p) => [p.guestPort, p.hostAddress])).toEqual([
        [8080, hostAddress],
      ]);
      // Removing the sandbox closes the listener.
      httpd.abort();
      await serving;
      await d!.sandboxes.remove({ id, force: true });
      expect(curlInHost(hostNetns, hostAddress)).toMatch(/^curl exit 7/); // connection refused
      expect(leftovers(d!, [id], fcPids)).toEqual([]);
    } finally {
      httpd.abort();
      await d!.sandboxes.remove({ id, force: true }).catch(() => {});
    }
  });

  it("keeps an exposed port across Pause; a connection to it resumes the sandbox (auto_resume)", async () => {
    const id = "ep-pause";
    try {
      await d!.sandboxes.create({ id });
      await waitForState(d!, id, "ready");
      const { hostAddress } = await d!.sandboxes.exposePort({ id, guestPort: 8082 });
      await d!.sandboxes.pause({ id });
      expect((await d!.sandboxes.inspect({ id })).state).toBe("paused");
      expect((await d!.sandboxes.exposePort({ id, guestPort: 8082 })).hostAddress).toBe(
        hostAddress,
      );
      // Nothing listens on 8082 in the guest: the point is the resume the connection causes.
      curlInHost(hostNetns, hostAddress);
      expect((await waitForState(d!, id, "ready", 20_000)).exposedPorts).toHaveLength(1);
    } finally {
      await d!.sandboxes.remove({ id, force: true }).catch(() => {});
    }
  });

  it("internet off + one allowed CIDR: allowed reachable, other refused fast, flipped live; an established allowed connection survives", async () => {
    const id = "ep-policy";
    // Even when an assertion fails: no fc-sim may outlive the test.
    onTestFinished(() =>
      d!.sandboxes.remove({ id, force: true }).then(
        () => undefined,
        () => undefined,
      ),
    );
    await d!.sandboxes.create({
      id,
      networkPolicy: { internet: false, allowOut: [`${A}/32`] },
    });
    await waitForState(d!, id, "ready");
    const shown = (await d!.sandboxes.inspect({ id })).networkPolicy;
    expect(shown?.internet).toBe(false);
    expect(shown?.allowOut).toEqual([`${A}/32`]);

    expect(await probe(d!, id, A)).toBe("OK hello");
    expect(await probe(d!, id, B)).toBe("ECONNREFUSED"); // a reset, not a timeout
    // Link-local (cloud metadata) is refused in every mode.
    expect(await probe(d!, id, "169.254.169.254", 80)).toBe("ECONNREFUSED");

    // A connection to A held open across updates.
    let held = "";
    const hold = new AbortController();
    // Exec, not Run: the probes below are Runs, and a sandbox runs one Run at a time.
    async function* holdInput() {
      yield {
        payload: {
          case: "init" as const,
          value: { id, cmd: [process.execPath, "-e", holdScript, A, String(SERVER_PORT)] },
        },
      };
      await new Promise((resolve) => hold.signal.addEventListener("abort", resolve));
    }
    const holding = (async () => {
      for await (const o of d!.sandboxes.exec(holdInput(), { signal: hold.signal }))
        if (!o.done) held += Buffer.from(o.data).toString();
    })().catch(() => {});
    try {
      expect(await until(() => held.includes("ping 2"), 10_000)).toBe(true);
      // Flip: B allowed as well, A still allowed; the held connection keeps going.
      await d!.sandboxes.updateNetworkPolicy({
        id,
        policy: { internet: false, allowOut: [A, B] },
      });
      const seen = held.length;
      expect(await until(() => held.length > seen + 20, 5000)).toBe(true);
      expect(held).not.toMatch(/CLOSED|ERROR/);
      expect(await probe(d!, id, B)).toBe("OK hello");
      expect(await probe(d!, id, C)).toBe("ECONNREFUSED");

      // Flip again: only B. The held connection to A is now denied: it is cut (reset).
      await d!.sandboxes.updateNetworkPolicy({ id, policy: { internet: false, allowOut: [B] } });
      expect(await until(() => /ERROR|CLOSED/.test(held), 5000)).toBe(true);
      expect(await probe(d!, id, A)).toBe("ECONNREFUSED");
      expect(await probe(d!, id, B)).toBe("OK hello");
    } finally {
      hold.abort();
      await holding;
    }

    // deny_out wins over allow_out and over internet on.
    await d!.sandboxes.updateNetworkPolicy({
      id,
      policy: { internet: true, allowOut: [`${net24}.0/24`], denyOut: [A] },
    });
    expect(await probe(d!, id, A)).toBe("ECONNREFUSED");
    expect(await probe(d!, id, B)).toBe("OK hello");
    expect(await probe(d!, id, C)).toBe("OK hello");
    // Internet on still refuses link-local.
    expect(await probe(d!, id, "169.254.169.254", 80)).toBe("ECONNREFUSED");
    // No policy message = the default: internet on, nothing denied.
    await d!.sandboxes.updateNetworkPolicy({ id });
    expect(await probe(d!, id, A)).toBe("OK hello");
    expect((await d!.sandboxes.inspect({ id })).networkPolicy?.internet).toBe(true);
    await d!.sandboxes.remove({ id, force: true });
  });

  it("answers every bad input with its code", async () => {
    const id = "ep-bad";
    const none = "ep-none";
    await d!.sandboxes.create({ id });
    await d!.sandboxes.create({ id: none, network: { mode: "none" } });
    try {
      await waitForState(d!, id, "ready");
      const badPolicy = async (policy: object, match: RegExp) => {
        const err = await expectCode(
          d!.sandboxes.updateNetworkPolicy({ id, policy }),
          Code.InvalidArgument,
        );
        expect(err.rawMessage).toMatch(match);
      };
      await badPolicy({ allowOut: ["10.0.0.0/33"] }, /allow_out\[0\].*not an IPv4 CIDR/);
      await badPolicy({ denyOut: ["10.0.0.1/8"] }, /deny_out\[0\].*host bits/);
      await badPolicy({ allowOut: [""] }, /allow_out\[0\].*empty/);
      await badPolicy({ allowOut: ["no.such.host.invalid"] }, /no\.such\.host\.invalid/);
      await badPolicy(
        { denyOut: Array.from({ length: 257 }, (_, i) => `10.1.${i % 256}.${i >> 8}`) },
        /at most 256/,
      );
      await expectCode(
        d!.sandboxes.updateNetworkPolicy({ id: none, policy: { internet: true } }),
        Code.FailedPrecondition,
      );
      await expectCode(
        d!.sandboxes.updateNetworkPolicy({ id: "ep-nobody", policy: {} }),
        Code.NotFound,
      );
      // Create: a bad policy takes nothing; a policy with mode none is refused.
      await expectCode(
        d!.sandboxes.create({ id: "ep-bad2", networkPolicy: { allowOut: ["x y"] } }),
        Code.InvalidArgument,
      );
      await expectCode(d!.sandboxes.inspect({ id: "ep-bad2" }), Code.NotFound);
      await expectCode(
        d!.sandboxes.create({
          id: "ep-bad3",
          network: { mode: "none" },
          networkPolicy: { internet: true },
        }),
        Code.FailedPrecondition,
      );

      await expectCode(d!.sandboxes.exposePort({ id, guestPort: 0 }), Code.InvalidArgument);
      await expectCode(d!.sandboxes.exposePort({ id, guestPort: 65536 }), Code.InvalidArgument);
      await expectCode(
        d!.sandboxes.exposePort({ id, guestPort: 80, protocol: "sctp" }),
        Code.InvalidArgument,
      );
      await expectCode(
        d!.sandboxes.exposePort({ id, guestPort: 80, protocol: "udp" }),
        Code.Unimplemented,
      );
      await expectCode(
        d!.sandboxes.exposePort({ id: none, guestPort: 80 }),
        Code.FailedPrecondition,
      );
      await expectCode(d!.sandboxes.exposePort({ id: "ep-nobody", guestPort: 80 }), Code.NotFound);
      // A stopped sandbox has no network left.
      await d!.sandboxes.stop({ id, timeoutSeconds: 1 });
      await expectCode(d!.sandboxes.exposePort({ id, guestPort: 80 }), Code.FailedPrecondition);
      await expectCode(
        d!.sandboxes.updateNetworkPolicy({ id, policy: {} }),
        Code.FailedPrecondition,
      );
    } finally {
      for (const x of [id, none]) await d!.sandboxes.remove({ id: x, force: true }).catch(() => {});
    }
  });

  it("a sandbox restored from a snapshot keeps the origin's policy", async () => {
    const ids = ["ep-snap-origin", "ep-snap-clone"];
    let snapshotId = "";
    try {
      await d!.sandboxes.create({ id: ids[0], networkPolicy: { internet: false, allowOut: [A] } });
      await waitForState(d!, ids[0]!, "ready");
      snapshotId = (await d!.snapshots.checkpoint({ sandboxId: ids[0]!, name: "ep-policy" }))
        .snapshotId;
      await d!.snapshots.restore({ snapshotId, id: ids[1] });
      const info = await waitForState(d!, ids[1]!, "ready");
      expect([info.networkPolicy?.internet, info.networkPolicy?.allowOut]).toEqual([false, [A]]);
      expect(await probe(d!, ids[1]!, A)).toBe("OK hello");
      expect(await probe(d!, ids[1]!, B)).toBe("ECONNREFUSED");
    } finally {
      for (const id of ids) await d!.sandboxes.remove({ id, force: true }).catch(() => {});
      if (snapshotId) await d!.snapshots.deleteSnapshot({ snapshotId }).catch(() => {});
    }
  });

  it("keeps the policy and the exposed port across a daemon restart", async () => {
    const id = "ep-restart";
    await d!.sandboxes.create({
      id,
      networkPolicy: { internet: false, allowOut: [A], denyOut: [] },
    });
    await waitForState(d!, id, "ready");
    const { hostAddress } = await d!.sandboxes.exposePort({ id, guestPort: 8081 });
    await killDaemon(d!);
    d = await start(d!.dir);
    const info = await waitForState(d, id, "ready");
    expect(info.networkPolicy?.internet).toBe(false);
    expect(info.networkPolicy?.allowOut).toEqual([A]);
    expect(info.exposedPorts.map((p) => p.hostAddress)).toEqual([hostAddress]);
    // Still enforced (the rules live in the sandbox's namespace, which the restart kept).
    expect(await probe(d, id, A)).toBe("OK hello");
    expect(await probe(d, id, B)).toBe("ECONNREFUSED");
    // The reopened forwarder reaches a guest server started now.
    const httpd = new AbortController();
    const serving = (async () => {
      for await (const _ of d!.sandboxes.run(
        { id, cmd: ["busybox", "httpd", "-f", "-p", "8081", "-h", webDir] },
        { signal: httpd.signal },
      ));
    })().catch(() => {});
    try {
      expect(await until(() => curlInHost(hostNetns, hostAddress).includes("hello"), 10_000)).toBe(
        true,
      );
    } finally {
      httpd.abort();
      await serving;
    }
    await d.sandboxes.remove({ id, force: true });
    await until(() => leftovers(d!, [id], []).length === 0, 5000);
    expect(leftovers(d, [id], [])).toEqual([]);
  });
});

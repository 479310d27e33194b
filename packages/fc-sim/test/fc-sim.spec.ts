import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makeRootfs, removeDir, startVm, tempDir, testKernel, type Vm } from "./helpers.js";

/** A stand-in guest agent: listens on <unix-dir>/<agent_port>.sock and echoes; exits when the cmdline says so. */
const fakeAgent = `#!/usr/bin/env node
import net from "node:net";
import { writeFileSync } from "node:fs";
const a = process.argv.slice(2);
const dir = a[a.indexOf("--unix-dir") + 1];
const cmdline = a[a.indexOf("--cmdline") + 1];
writeFileSync(process.env.AGENT_LOG, JSON.stringify({ dir, cmdline, pid: process.pid }) + "\\n", { flag: "a" });
const port = /agent_port=(\\d+)/.exec(cmdline)?.[1];
const die = /die_after_ms=(\\d+)/.exec(cmdline)?.[1];
if (die) setTimeout(() => process.exit(3), Number(die));
net.createServer((s) => s.pipe(s)).listen(dir + "/" + port + ".sock");
`;

/** Waits (up to 2 s) until `pid` no longer exists (a killed orphan is reaped by init shortly after). */
async function gone(pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 20));
  expect(alive(), `process ${pid} still alive`).toBe(false);
}

/** Waits (up to 2 s) for the fake agent's first log line and returns its pid. */
async function agentPidFrom(log: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const text = existsSync(log) ? readFileSync(log, "utf8") : "";
    if (text.endsWith("\n")) return (JSON.parse(text.trim()) as { pid: number }).pid;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`agent did not start (no line in ${log})`);
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sandbox(): { dir: string; kernel: string; agent: string; agentLog: string } {
  const dir = tempDir("fcs-");
  cleanups.push(() => removeDir(dir));
  makeRootfs(join(dir, "rootfs.ext4"));
  const agent = join(dir, "agent.mjs");
  writeFileSync(agent, fakeAgent);
  chmodSync(agent, 0o755);
  return { dir, kernel: testKernel(dir), agent, agentLog: join(dir, "agent.log") };
}

async function vm(dir: string, env: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<Vm> {
  const v = await startVm({ dir, env, args });
  cleanups.push(async () => {
    // SIGTERM first: fc-sim then kills the fake agent's group (which, unlike the real agent, has no PDEATHSIG).
    if (v.proc.exitCode === null && v.proc.signalCode === null) v.proc.kill("SIGTERM");
    await Promise.race([v.exited, new Promise((r) => setTimeout(r, 1000))]);
    await v.kill();
  });
  return v;
}

async function bootConfig(
  v: Vm,
  kernel: string,
  bootArgs = "reboot=k panic=1 agent_port=52",
): Promise<void> {
  const ok = async (m: string, p: string, b: unknown): Promise<void> => {
    const r = await v.call(m, p, b);
    expect(r.status, `${m} ${p}: ${r.text}`).toBe(204);
  };
  await ok("PUT", "/machine-config", { vcpu_count: 1, mem_size_mib: 16 });
  await ok("PUT", "/boot-source", { kernel_image_path: kernel, boot_args: bootArgs });
  await ok("PUT", "/drives/root", {
    drive_id: "root",
    path_on_host: "rootfs.ext4",
    is_root_device: true,
  });
  await ok("PUT", "/vsock", { guest_cid: 3, uds_path: "v.sock" });
}

/** Opens a host-side vsock connection; resolves with the first line (or "" on EOF without OK). */
function vsockConnect(path: string, port: number): Promise<{ line: string; sock: net.Socket }> {
  return new Promise((res, rej) => {
    const s = net.connect(path);
    let buf = "";
    s.on("error", rej);
    s.on("data", (c) => {
      buf += c;
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        s.removeAllListeners("data");
        res({ line: buf.slice(0, nl), sock: s });
      }
    });
    s.on("end", () => res({ line: buf, sock: s }));
    s.write(`CONNECT ${port}\n`);
  });
}

function echo(sock: net.Socket, text: string, timeoutMs = 2000): Promise<string> {
  return new Promise((res) => {
    let got = "";
    const t = setTimeout(() => res(got), timeoutMs);
    sock.on("data", (c) => {
      got += c;
      if (got.length >= text.length) {
        clearTimeout(t);
        res(got);
      }
    });
    sock.write(text);
  });
}

describe("fc-sim process", () => {
  it("boots, runs the agent with the cmdline and splices vsock; holds traffic while paused", async () => {
    const s = sandbox();
    const v = await vm(s.dir, { FC_SIM_AGENT: s.agent, AGENT_LOG: s.agentLog });
    await bootConfig(v, s.kernel);
    expect((await v.call("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    expect((await v.call("GET", "/")).body).toMatchObject({ state: "Running" });
    let c = await vsockConnect(join(s.dir, "v.sock"), 52);
    for (let i = 0; i < 50 && c.line === ""; i++) {
      await new Promise((r) => setTimeout(r, 50)); // the agent is still starting: retry like a client
      c = await vsockConnect(join(s.dir, "v.sock"), 52);
    }
    expect(c.line).toBe("OK 1073741824");
    expect(await echo(c.sock, "ping")).toBe("ping");
    const log = JSON.parse(readFileSync(s.agentLog, "utf8").trim()) as {
      dir: string;
      cmdline: string;
    };
    expect(log.cmdline).toBe("reboot=k panic=1 agent_port=52 root=/dev/vda rw");
    expect(log.dir).toBe(`/tmp/fcsim-${v.proc.pid}`);
    expect(statSync(log.dir).mode & 0o777).toBe(0o700);
    // Paused: nothing is delivered; resumed after a snapshot: the connection is reset.
    expect((await v.call("PATCH", "/vm", { state: "Paused" })).status).toBe(204);
    expect(await echo(c.sock, "held", 300)).toBe("");
    expect(
      (await v.call("PUT", "/snapshot/create", { snapshot_path: "vmstate", mem_file_path: "mem" }))
        .status,
    ).toBe(204);
    const closed = new Promise((r) => c.sock.once("close", r));
    expect((await v.call("PATCH", "/vm", { state: "Resumed" })).status).toBe(204);
    await closed;
    // Port without a listener: EOF without OK.
    const none = await vsockConnect(join(s.dir, "v.sock"), 99);
    expect(none.line).toBe("");
    none.sock.destroy();
    c.sock.destroy();
    // SendCtrlAltDel: the guest reboots → exit 0, agent gone, private dir removed, API socket left behind.
    const agentPid = (JSON.parse(readFileSync(s.agentLog, "utf8").trim()) as { pid: number }).pid;
    expect((await v.call("PUT", "/actions", { action_type: "SendCtrlAltDel" })).status).toBe(204);
    expect(await v.exited).toEqual({ code: 0, signal: null });
    await gone(agentPid);
    expect(existsSync(log.dir)).toBe(false);
    expect(existsSync(v.sock)).toBe(true);
  });

  it("without an agent, a vsock CONNECT is closed without OK", async () => {
    const s = sandbox();
    const v = await vm(s.dir, { FC_SIM_AGENT: "none" });
    await bootConfig(v, s.kernel);
    expect((await v.call("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    const c = await vsockConnect(join(s.dir, "v.sock"), 52);
    expect(c.line).toBe("");
    c.sock.destroy();
  });

  it("exits 0 when the agent (guest init) dies", async () => {
    const s = sandbox();
    const v = await vm(s.dir, { FC_SIM_AGENT: s.agent, AGENT_LOG: s.agentLog });
    await bootConfig(v, s.kernel, "reboot=k panic=1 agent_port=52 die_after_ms=100");
    expect((await v.call("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    expect(await v.exited).toEqual({ code: 0, signal: null });
  });

  it("SIGTERM kills fc-sim by the signal and takes the agent with it", async () => {
    const s = sandbox();
    const v = await vm(s.dir, { FC_SIM_AGENT: s.agent, AGENT_LOG: s.agentLog });
    await bootConfig(v, s.kernel);
    expect((await v.call("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    const agentPid = await agentPidFrom(s.agentLog);
    v.proc.kill("SIGTERM");
    expect(await v.exited).toEqual({ code: null, signal: "SIGTERM" });
    await gone(agentPid);
  });

  it("snapshot files: vmstate + sparse memory of mem_size_mib; load in another dir uses that dir's files", async () => {
    const a = sandbox();
    const v = await vm(a.dir, { FC_SIM_AGENT: "none" });
    await bootConfig(v, a.kernel);
    expect((await v.call("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    expect((await v.call("PATCH", "/vm", { state: "Paused" })).status).toBe(204);
    expect(
      (await v.call("PUT", "/snapshot/create", { snapshot_path: "vmstate", mem_file_path: "mem" }))
        .status,
    ).toBe(204);
    const mem = statSync(join(a.dir, "mem"));
    expect(mem.size).toBe(16 * 1024 * 1024);
    expect(mem.blocks).toBe(0); // sparse
    expect(readFileSync(join(a.dir, "vmstate")).subarray(0, 8).toString("latin1")).toBe(
      "FCSIMVS\0",
    );
    await v.kill();

    const b = sandbox();
    renameSync(join(a.dir, "vmstate"), join(b.dir, "vmstate"));
    renameSync(join(a.dir, "mem"), join(b.dir, "mem"));
    const w = await vm(b.dir, { FC_SIM_AGENT: "none" });
    const r = await w.call("PUT", "/snapshot/load", {
      snapshot_path: "vmstate",
      mem_backend: { backend_type: "File", backend_path: "mem" },
      resume_vm: true,
    });
    expect(r.status, r.text).toBe(204);
    expect(existsSync(join(b.dir, "v.sock"))).toBe(true); // B's own vsock socket
    expect((await w.call("GET", "/")).body).toMatchObject({ state: "Running" });
    expect((await w.call("GET", "/vm/config")).body).toMatchObject({
      drives: [{ path_on_host: "rootfs.ext4" }],
      vsock: { uds_path: "v.sock" },
    });
  });

  it.each([
    [
      "corrupt CRC",
      (d: string) => {
        const f = join(d, "vmstate");
        const buf = readFileSync(f);
        buf[20] = (buf[20] ?? 0) ^ 0xff;
        writeFileSync(f, buf);
      },
    ],
    ["missing drive", (d: string) => removeDir(join(d, "rootfs.ext4"))],
    ["vsock path busy", (d: string) => writeFileSync(join(d, "v.sock"), "")],
    ["short memory file", (d: string) => writeFileSync(join(d, "mem"), "x")],
  ] as const)("a failed load (%s) answers 400 and exits 1", async (_n, spoil) => {
    const a = sandbox();
    const v = await vm(a.dir, { FC_SIM_AGENT: "none" });
    await bootConfig(v, a.kernel);
    expect((await v.call("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    expect((await v.call("PATCH", "/vm", { state: "Paused" })).status).toBe(204);
    expect(
      (await v.call("PUT", "/snapshot/create", { snapshot_path: "vmstate", mem_file_path: "mem" }))
        .status,
    ).toBe(204);
    await v.kill();
    removeDir(join(a.dir, "v.sock"));
    removeDir(join(a.dir, "api.sock"));
    spoil(a.dir);
    const w = await vm(a.dir, { FC_SIM_AGENT: "none" });
    const r = await w.call("PUT", "/snapshot/load", {
      snapshot_path: "vmstate",
      mem_backend: { backend_type: "File", backend_path: "mem" },
    });
    expect(r.status).toBe(400);
    expect((r.body as { fault_message: string }).fault_message).toMatch(
      /^Load snapshot error: Failed to restore from snapshot: /,
    );
    expect(await w.exited).toEqual({ code: 1, signal: null });
  });

  it("boots from --config-file with --no-api", async () => {
    const s = sandbox();
    writeFileSync(
      join(s.dir, "vm.json"),
      JSON.stringify({
        "boot-source": {
          kernel_image_path: s.kernel,
          boot_args: "reboot=k panic=1 agent_port=52 die_after_ms=200",
        },
        "machine-config": { vcpu_count: 1, mem_size_mib: 16 },
        drives: [{ drive_id: "root", path_on_host: "rootfs.ext4", is_root_device: true }],
        vsock: { guest_cid: 3, uds_path: "v.sock" },
      }),
    );
    const v = await startVm({
      dir: s.dir,
      args: ["--no-api", "--config-file", "vm.json"],
      env: { FC_SIM_AGENT: s.agent, AGENT_LOG: s.agentLog },
      waitApi: false,
    });
    cleanups.push(() => v.kill());
    expect(await v.exited).toEqual({ code: 0, signal: null }); // agent died → guest reboot
    expect(existsSync(join(s.dir, "v.sock"))).toBe(true);
    expect(existsSync(join(s.dir, "api.sock"))).toBe(false);
  });

  it("a bad --config-file exits 1; an existing API socket exits 1; bad args exit 153", async () => {
    const s = sandbox();
    writeFileSync(join(s.dir, "bad.json"), "{bad");
    const bad = await startVm({
      dir: s.dir,
      args: ["--no-api", "--config-file", "bad.json"],
      waitApi: false,
    });
    expect((await bad.exited).code).toBe(1);
    writeFileSync(join(s.dir, "api.sock"), "");
    const busy = await startVm({ dir: s.dir, waitApi: false });
    expect((await busy.exited).code).toBe(1);
    const args = await startVm({ dir: s.dir, args: ["--bogus"], waitApi: false });
    expect((await args.exited).code).toBe(153);
  });
});

describe("jailer-sim", () => {
  it("builds <base>/<exec>/<id>/root, copies the exec file, writes the pid file and runs it with cwd = root", async () => {
    const base = tempDir("fcj-");
    cleanups.push(() => removeDir(base));
    const { jailerSimBin, fcSimBin } = await import("./helpers.js");
    const v = await startVm({
      bin: jailerSimBin,
      dir: base,
      waitApi: false,
      env: { FC_SIM_AGENT: "none" },
    });
    await v.exited; // started with no args: must fail
    expect((await v.exited).code).toBe(1);
    const { spawn } = await import("node:child_process");
    const p = spawn(
      jailerSimBin,
      [
        "--id",
        "vm-1",
        "--exec-file",
        fcSimBin,
        "--uid",
        "0",
        "--gid",
        "0",
        "--chroot-base-dir",
        base,
        "--",
        "--api-sock",
        "run/api.sock",
      ],
      { stdio: "ignore", env: { ...process.env, FC_SIM_AGENT: "none" } },
    );
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
      p.once("exit", (code, signal) => r({ code, signal })),
    );
    cleanups.push(async () => {
      p.kill("SIGKILL");
      await exited;
    });
    const root = join(base, "fc-sim.mjs", "vm-1", "root");
    for (let i = 0; i < 200 && !existsSync(join(root, "run/api.sock")); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(join(root, "run/api.sock"))).toBe(true);
    expect(statSync(join(root, "fc-sim.mjs")).size).toBe(statSync(fcSimBin).size);
    expect(statSync(join(root, "dev")).isDirectory()).toBe(true);
    const pid = Number(readFileSync(join(root, "fc-sim.mjs.pid"), "utf8"));
    expect(pid).toBeGreaterThan(0);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("--id\0vm-1");
    p.kill("SIGTERM"); // forwarded to fc-sim, mirrored back
    expect(await exited).toEqual({ code: null, signal: "SIGTERM" });
    await gone(pid);
  });
});

import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { AgentClient, AgentUnavailableError } from "../../src/agent/index.js";
import { AGENT_BIN, type AgentUnderTest, startAgent, startVsockProxy } from "./agent-fixture.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("Firecracker vsock CONNECT handshake", () => {
  it("health and run work through CONNECT <port> / OK <n>", async () => {
    const agent = await startAgent();
    cleanups.push(() => agent.stop());
    const uds = join(agent.dir, "v.sock");
    const proxy = await startVsockProxy(uds, 1024, () => agent.socketPath);
    cleanups.push(() => proxy.close());
    const client = new AgentClient({ endpoint: { kind: "vsock", udsPath: uds } });
    expect((await client.health()).mode).toBe("unix");
    const proc = await client.run({ argv: ["echo", "via vsock"] });
    let out = "";
    for await (const ev of proc) if ("stream" in ev) out += Buffer.from(ev.data).toString();
    expect(out).toBe("via vsock\n");
  });

  it("EOF instead of OK (no guest listener on that port) is AgentUnavailableError", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vmm-vsock-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const uds = join(dir, "v.sock");
    const proxy = await startVsockProxy(uds, 1024, () => undefined);
    cleanups.push(() => proxy.close());
    const client = new AgentClient({ endpoint: { kind: "vsock", udsPath: uds, port: 1024 } });
    const err = await client.health().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentUnavailableError);
    expect((err as Error).message).toMatch(/v\.sock port 1024: nothing listens on guest port 1024/);
  });

  it("waitReady retries while the guest boots, then succeeds", async () => {
    let agent: AgentUnderTest | undefined;
    const dir = await mkdtemp(join(tmpdir(), "vmm-vsock-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const uds = join(dir, "v.sock");
    const proxy = await startVsockProxy(uds, 1024, () => agent?.socketPath);
    cleanups.push(() => proxy.close());
    const client = new AgentClient({ endpoint: { kind: "vsock", udsPath: uds } });
    const ready = client.waitReady({ timeoutMs: 10_000 });
    await sleep(150); // the "guest" is still booting: CONNECTs get EOF
    agent = await startAgent();
    cleanups.push(() => agent!.stop());
    expect((await ready).bootId).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("simulator mode (--unix-dir DIR --cmdline ...)", () => {
  it("listens on DIR/<vmm.agent_port>.sock and exits on SIGTERM, removing it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vmm-unixdir-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const child = spawn(
      AGENT_BIN,
      ["--unix-dir", dir, "--cmdline", "console=ttyS0 reboot=k vmm.agent_port=5000 quiet"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    cleanups.push(async () => {
      child.kill("SIGKILL");
      await exited;
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const client = new AgentClient({ endpoint: { kind: "unix", path: join(dir, "5000.sock") } });
    await client.waitReady({ timeoutMs: 10_000 });
    const tag = `vmm-simterm-${process.pid}-${Date.now()}`;
    const proc = await client.run({ argv: ["sh", "-c", `sleep 3004 # ${tag}`] });
    const done = proc.wait().catch((e: unknown) => e);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    await done;
    expect(existsSync(join(dir, "5000.sock"))).toBe(false);
    expect(stdout).toBe("");
    const left = (() => {
      try {
        return execFileSync("pgrep", ["-f", tag], { encoding: "utf8" });
      } catch {
        return "";
      }
    })();
    expect(left).toBe("");
  });
});

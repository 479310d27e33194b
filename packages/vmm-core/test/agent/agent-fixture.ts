import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AgentClient } from "../../src/agent/index.js";

/** The ASan/UBSan build of the agent (built by `make -C guest/agent all` in the global setup). */
export const AGENT_BIN = resolve(
  import.meta.dirname,
  "../../../../guest/agent/build/vmm-agent-asan",
);

/** A running `vmm-agent --unix PATH` in its own temp dir; `stop()` kills it and removes the dir. */
export interface AgentUnderTest {
  readonly dir: string;
  readonly socketPath: string;
  readonly process: ChildProcess;
  readonly client: AgentClient;
  /** Everything the agent wrote to stderr (sanitizer reports land here). */
  stderr(): string;
  stop(): Promise<void>;
}

export async function startAgent(): Promise<AgentUnderTest> {
  const dir = await mkdtemp(join(tmpdir(), "vmm-agent-test-"));
  const socketPath = join(dir, "agent.sock");
  const child = spawn(AGENT_BIN, ["--unix", socketPath], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ASAN_OPTIONS: "abort_on_error=0:detect_leaks=1" },
  });
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const client = new AgentClient({ endpoint: { kind: "unix", path: socketPath } });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await client.waitReady({ timeoutMs: 10_000 });
  } catch (e) {
    await stop();
    throw e;
  }
  return { dir, socketPath, process: child, client, stderr: () => err, stop };
}

/**
 * A tiny stand-in for Firecracker's vsock UDS: reads `CONNECT <port>\n`; for
 * `port` it connects to the agent's Unix socket, answers `OK 1073741824\n`
 * and pipes bytes both ways; any other port (or no agent yet) gets EOF
 * without `OK`, like Firecracker with no guest listener (NOTES.md §5).
 */
export async function startVsockProxy(
  udsPath: string,
  port: number,
  agentSocket: () => string | undefined,
): Promise<{ server: Server; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    let line = "";
    const onData = (d: Buffer) => {
      line += d.toString("latin1");
      const nl = line.indexOf("\n");
      if (nl < 0) return;
      client.off("data", onData);
      client.pause();
      const rest = Buffer.from(line.slice(nl + 1), "latin1");
      const m = /^CONNECT (\d+)$/i.exec(line.slice(0, nl));
      const target = agentSocket();
      if (!m || Number(m[1]) !== port || !target) return client.end();
      const upstream = netConnect({ path: target });
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
      upstream.on("connect", () => {
        client.write("OK 1073741824\n");
        if (rest.length) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    client.on("data", onData);
  });
  await new Promise<void>((r, j) => {
    server.once("error", j);
    server.listen(udsPath, () => r());
  });
  return {
    server,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

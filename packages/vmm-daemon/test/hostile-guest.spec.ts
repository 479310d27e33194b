import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Code, type ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bestOfMs } from "./responsiveness.js";
import { type SimDaemon, startSimDaemon, waitForState } from "./sim-daemon.js";

// A guest that replaced our agent attacks the daemon through the agent protocol
// (issue 14): fc-sim runs a hostile agent (packages/vmm-core/test/agent/hostile-agent.mjs)
// as its guest; its RUN behaviour is chosen by the command's argv[0].

const HOSTILE_AGENT = resolve(import.meta.dirname, "../../vmm-core/test/agent/hostile-agent.mjs");

/** An executable fc-sim can start as its guest agent (fc-sim runs FC_SIM_AGENT with its argv). */
function agentWrapper(dir: string, extraArgs = ""): string {
  const path = join(dir, `hostile-agent${extraArgs ? "-x" : ""}.sh`);
  writeFileSync(
    path,
    `#!/bin/sh\nexec "${process.execPath}" "${HOSTILE_AGENT}" ${extraArgs} "$@"\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** True when `text` has a C0/C1 control character (ESC included) other than tab and newline. */
const hasControl = (text: string): boolean =>
  [...text].some((c) => {
    const n = c.codePointAt(0)!;
    return (n < 0x20 && c !== "\t" && c !== "\n") || (n >= 0x7f && n <= 0x9f);
  });

/** CPU seconds (user + system) the process `pid` used so far. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function runOutcome(d: SimDaemon, cmd: string[], timeoutSeconds = 0) {
  let stdout = 0;
  try {
    for await (const o of d.sandboxes.run({ id: "victim", cmd, timeoutSeconds })) {
      if (o.stream === "stdout") stdout += o.data.length;
      if (o.done) return { code: "ok", exitCode: o.exitCode, stdout, message: "" };
    }
    return { code: "ended without exit", stdout, message: "" };
  } catch (e) {
    const err = e as ConnectError;
    return { code: Code[err.code], stdout, message: err.rawMessage };
  }
}

describe("a hostile guest agent", () => {
  let d: SimDaemon;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "vmm-hostile-"));
    d = await startSimDaemon({
      env: {
        FC_SIM_AGENT: agentWrapper(dir),
        VMM_FIRECRACKER_START_TIMEOUT_MS: "60000",
      },
    });
    await d.sandboxes.create({ id: "victim" });
    await waitForState(d, "victim", "ready", 60_000);
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ignoring timeout_seconds: the host deadline ends the Run with DEADLINE_EXCEEDED and the sandbox is ready again", async () => {
    const started = performance.now();
    const out = await runOutcome(d, ["never-exit"], 1);
    const took = performance.now() - started;
    expect(out.code).toBe("DeadlineExceeded");
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(took).toBeLessThan(1000 + 2100 + 2000); // timeout + grace (2 s + 10 %) + slack
    await waitForState(d, "victim", "ready", 5000);
  });

  it.each([
    ["an ERROR frame of 262 KB of terminal escapes", "error-ansi"],
    ["an EXIT error text of 262 KB of terminal escapes", "exit-error-ansi"],
  ])("%s reaches the client bounded and without control characters", async (_n, behaviour) => {
    const out = await runOutcome(d, [behaviour]);
    const text = out.code === "ok" ? "" : out.message;
    expect(out.code).not.toBe("Internal");
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1200);
    expect(hasControl(text)).toBe(false);
  });

  it.each(["exit-signal-2^64", "exit-code-300", "bad-frame-type", "oversize-length", "truncated"])(
    "a protocol violation (%s) fails that Run with UNAVAILABLE; the next Run works",
    async (b) => {
      const out = await runOutcome(d, [b]);
      expect(out.code).toBe("Unavailable");
      expect(out.message).toMatch(/agent/);
      expect((await runOutcome(d, ["ok"])).code).toBe("ok");
      expect((await d.sandboxes.inspect({ id: "victim" })).state).toBe("ready");
    },
  );

  it("a 1 MiB frame in 1-byte writes costs the daemon bounded CPU and it keeps answering", async () => {
    const pid = d.child.pid!;
    const before = cpuSeconds(pid);
    const run = runOutcome(d, ["one-byte-frame"]);
    const latency = await bestOfMs(() => d.sandboxes.list({}));
    const out = await run;
    const used = cpuSeconds(pid) - before;
    expect(out).toMatchObject({ code: "ok", exitCode: 0, stdout: (1 << 20) - 1 });
    expect(latency).toBeLessThan(100);
    // Quadratic reassembly cost ~105 s here; the read budget keeps it near a second.
    expect(used).toBeLessThan(3);
  }, 120_000);
});

describe("a hostile guest agent failing the boot", () => {
  it("a 262 KB escape-laden error at boot becomes a bounded, clean failure text", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmm-hostile-"));
    try {
      await using d = await startSimDaemon({
        env: {
          FC_SIM_AGENT: agentWrapper(dir, "--health-error"),
          VMM_FIRECRACKER_START_TIMEOUT_MS: "60000",
          VMM_AGENT_BOOT_TIMEOUT_MS: "5000",
        },
      });
      await d.sandboxes.create({ id: "bad-boot" });
      const info = await waitForState(d, "bad-boot", "failed", 30_000);
      expect(Buffer.byteLength(info.error)).toBeLessThanOrEqual(1200);
      expect(hasControl(info.error)).toBe(false);
      await d.sandboxes.remove({ id: "bad-boot", force: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

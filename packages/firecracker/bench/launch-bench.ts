/**
 * Launch benchmark: spawn → configured (machine-config, boot-source, drive, vsock) → InstanceStart,
 * through the launcher vs a "raw" path doing the same HTTP calls with minimal code (spawn, poll,
 * plain node:http). Interleaved ABAB; each VM is killed right after its iteration (untimed).
 *
 *   pnpm exec tsx packages/firecracker/bench/launch-bench.ts --binary /opt/fc/firecracker --iterations 30
 *
 * Prints JSON: p50/p95/p99/mean in ms for both, and launcher/raw ratios (target ≤ 1.10).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, linkSync, mkdtempSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createDirectLauncher, MINIMAL_FIRECRACKER_ENV } from "../src/index.js";

const { values } = parseArgs({
  options: {
    binary: { type: "string" },
    iterations: { type: "string", default: "20" },
    kernel: { type: "string", default: "/root/.cache/vmm-tools/kernel/vmlinux" },
    warmup: { type: "string", default: "2" },
  },
});
if (!values.binary) {
  console.error(
    "usage: launch-bench.ts --binary <firecracker|fc-sim> [--iterations N] [--kernel path]",
  );
  process.exit(2);
}
const binary = resolve(values.binary);
const iterations = Number(values.iterations);
const warmup = Number(values.warmup);
const kernel = values.kernel;

const shared = mkdtempSync("/tmp/fcb-");
const rootfs = join(shared, "rootfs.ext4");
execFileSync("truncate", ["-s", "8M", rootfs]);
execFileSync("mkfs.ext4", ["-q", "-F", rootfs]);

function prepareDir(): string {
  const dir = mkdtempSync("/tmp/fcb-");
  linkSync(kernel, join(dir, "vmlinux"));
  linkSync(rootfs, join(dir, "rootfs.ext4"));
  return dir;
}

const bodies = {
  machine: { vcpu_count: 1, mem_size_mib: 128 },
  boot: { kernel_image_path: "vmlinux", boot_args: "console=ttyS0 reboot=k panic=1" },
  drive: {
    drive_id: "rootfs",
    path_on_host: "rootfs.ext4",
    is_root_device: true,
    is_read_only: false,
  },
  vsock: { guest_cid: 3, uds_path: "v.sock" },
  start: { action_type: "InstanceStart" },
};

const launcher = createDirectLauncher();
let seq = 0;

async function viaLauncher(): Promise<number> {
  const dir = prepareDir();
  const t0 = performance.now();
  const proc = await launcher.launch(
    {
      binaryPath: binary,
      // fc-sim is a node script: keep this node reachable.
      env: {
        ...MINIMAL_FIRECRACKER_ENV,
        PATH: `${dirname(process.execPath)}:${MINIMAL_FIRECRACKER_ENV.PATH}`,
      },
      workDir: dir,
      id: `bench-${seq++}`,
      cleanupPaths: ["v.sock"],
    },
    AbortSignal.timeout(10_000),
  );
  try {
    const fc = proc.client;
    await fc.putMachineConfiguration(bodies.machine);
    await fc.putGuestBootSource(bodies.boot);
    await fc.putGuestDriveByID(bodies.drive);
    await fc.putGuestVsock(bodies.vsock);
    await fc.createSyncAction({ action_type: "InstanceStart" });
    return performance.now() - t0;
  } finally {
    await proc[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  }
}

function rawCall(agent: Agent, socketPath: string, method: string, path: string, body?: unknown) {
  return new Promise<number>((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      {
        socketPath,
        agent,
        method,
        path,
        headers: payload
          ? { "Content-Type": "application/json", "Content-Length": payload.length }
          : {},
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function viaRaw(): Promise<number> {
  const dir = prepareDir();
  const sock = join(dir, "api.sock");
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const t0 = performance.now();
  const child: ChildProcess = spawn(binary, ["--api-sock", sock, "--id", `raw-${seq++}`], {
    cwd: dir,
    stdio: "ignore",
  });
  const exited = new Promise((r) => child.once("exit", r));
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });
  try {
    for (;;) {
      if (spawnError) throw spawnError;
      if (existsSync(sock)) {
        const ok = await rawCall(agent, sock, "GET", "/").catch(() => 0);
        if (ok === 200) break;
      }
      await new Promise((r) => setTimeout(r, 3));
    }
    const check = (s: number) => {
      if (s !== 204) throw new Error(`raw call failed with ${s}`);
    };
    check(await rawCall(agent, sock, "PUT", "/machine-config", bodies.machine));
    check(await rawCall(agent, sock, "PUT", "/boot-source", bodies.boot));
    check(await rawCall(agent, sock, "PUT", "/drives/rootfs", bodies.drive));
    check(await rawCall(agent, sock, "PUT", "/vsock", bodies.vsock));
    check(await rawCall(agent, sock, "PUT", "/actions", bodies.start));
    return performance.now() - t0;
  } finally {
    child.kill("SIGKILL");
    if (!spawnError) await exited;
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
  const r = (n: number) => Math.round(n * 100) / 100;
  return {
    n: s.length,
    p50: r(q(50)),
    p95: r(q(95)),
    p99: r(q(99)),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

const launcherMs: number[] = [];
const rawMs: number[] = [];
try {
  for (let i = 0; i < warmup; i++) {
    await viaLauncher();
    await viaRaw();
  }
  for (let i = 0; i < iterations; i++) {
    // ABAB, alternating which goes first so neither always runs on a warmer cache.
    if (i % 2 === 0) {
      launcherMs.push(await viaLauncher());
      rawMs.push(await viaRaw());
    } else {
      rawMs.push(await viaRaw());
      launcherMs.push(await viaLauncher());
    }
  }
} finally {
  rmSync(shared, { recursive: true, force: true });
}
const l = stats(launcherMs);
const r = stats(rawMs);
const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
console.log(
  JSON.stringify(
    {
      binary,
      iterations,
      unit: "ms",
      launcher: l,
      raw: r,
      ratio: { p50: ratio(l.p50, r.p50), mean: ratio(l.mean, r.mean), p95: ratio(l.p95, r.p95) },
    },
    null,
    2,
  ),
);

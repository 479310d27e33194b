import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { copyFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  createDirectLauncher,
  FirecrackerApiError,
  FirecrackerLaunchError,
  type FirecrackerProcess,
  type LaunchOptions,
} from "../src/index.js";
import {
  backends,
  isRoot,
  kvmUnusable,
  makeRootfs,
  placeKernel,
  suiteTitle,
  tempDir,
  track,
  uniqueId,
} from "./helpers.js";

const launcher = createDirectLauncher();

/** The environment of a live process, from /proc. */
function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const eq = kv.indexOf("=");
    if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}
const memSizeMib = 128;

async function configure(proc: FirecrackerProcess): Promise<void> {
  const fc = proc.client;
  await fc.putMachineConfiguration({ vcpu_count: 1, mem_size_mib: memSizeMib });
  await fc.putGuestBootSource({
    kernel_image_path: "vmlinux",
    boot_args: "console=ttyS0 reboot=k panic=1 pci=off",
  });
  await fc.putGuestDriveByID({
    drive_id: "rootfs",
    path_on_host: "rootfs.ext4",
    is_root_device: true,
    is_read_only: false,
  });
  await fc.putGuestVsock({ guest_cid: 3, uds_path: "v.sock" });
}

for (const backend of backends) {
  describe.skipIf(!backend.available)(suiteTitle("launcher-direct", backend), () => {
    const base = (dir: string, extra: Partial<LaunchOptions> = {}): LaunchOptions => ({
      binaryPath: backend.binary,
      env: backend.env,
      workDir: dir,
      id: uniqueId(),
      cleanupPaths: ["v.sock"],
      ...extra,
    });

    it("boots, pauses, snapshots with relative paths, resumes, stops and cleans up", async (ctx) => {
      // A real Firecracker starts a VM only with /dev/kvm; fc-sim needs none.
      if (backend.name === "firecracker" && kvmUnusable()) ctx.skip("needs /dev/kvm");
      const dir = tempDir();
      placeKernel(dir);
      makeRootfs(dir);
      const proc = track(await launcher.launch(base(dir), AbortSignal.timeout(10_000)));
      expect(proc.rootDir).toBe(dir);
      expect((await proc.client.describeInstance()).state).toBe("Not started");
      await configure(proc);
      expect(existsSync(join(dir, "v.sock"))).toBe(true);
      await proc.client.createSyncAction({ action_type: "InstanceStart" });
      expect((await proc.client.describeInstance()).state).toBe("Running");
      await proc.client.patchVm({ state: "Paused" });
      expect((await proc.client.describeInstance()).state).toBe("Paused");
      await proc.client.createSnapshot({ snapshot_path: "vmstate", mem_file_path: "mem" });
      expect(statSync(join(dir, "vmstate")).size).toBeGreaterThan(0);
      expect(statSync(join(dir, "mem")).size).toBe(memSizeMib * 1024 * 1024);
      await proc.client.patchVm({ state: "Resumed" });
      expect((await proc.client.describeInstance()).state).toBe("Running");
      const status = await proc.stop({ graceMs: 2000 });
      expect(status.code !== null || status.signal !== null).toBe(true);
      await proc.cleanup();
      expect(existsSync(proc.apiSocketPath)).toBe(false);
      expect(existsSync(join(dir, "v.sock"))).toBe(false);
    });

    it("loads a snapshot in another directory, using that directory's disk and vsock", async (ctx) => {
      // A real Firecracker starts a VM only with /dev/kvm; fc-sim needs none.
      if (backend.name === "firecracker" && kvmUnusable()) ctx.skip("needs /dev/kvm");
      const a = tempDir();
      placeKernel(a);
      makeRootfs(a);
      const src = track(await launcher.launch(base(a), AbortSignal.timeout(10_000)));
      await configure(src);
      await src.client.createSyncAction({ action_type: "InstanceStart" });
      await src.client.patchVm({ state: "Paused" });
      await src.client.createSnapshot({ snapshot_path: "vmstate", mem_file_path: "mem" });
      await src[Symbol.asyncDispose]();
      expect(existsSync(join(a, "v.sock"))).toBe(false);

      const b = tempDir();
      await copyFile(join(a, "vmstate"), join(b, "vmstate"));
      await copyFile(join(a, "mem"), join(b, "mem"));
      makeRootfs(b);
      const clone = track(await launcher.launch(base(b), AbortSignal.timeout(10_000)));
      await clone.client.loadSnapshot({
        snapshot_path: "vmstate",
        mem_backend: { backend_type: "File", backend_path: "mem" },
        resume_vm: true,
        network_overrides: [],
      });
      expect((await clone.client.describeInstance()).state).toBe("Running");
      expect(existsSync(join(b, "v.sock"))).toBe(true);
      expect(existsSync(join(a, "v.sock"))).toBe(false);
      const cfg = await clone.client.getExportVmConfig();
      expect(cfg.drives?.[0]?.path_on_host).toBe("rootfs.ext4");
      await clone[Symbol.asyncDispose]();
      expect(existsSync(join(b, "v.sock"))).toBe(false);
      expect(existsSync(clone.apiSocketPath)).toBe(false);
    });

    it("maps a 400 with fault_message to FirecrackerApiError", async () => {
      const dir = tempDir();
      const proc = track(await launcher.launch(base(dir), AbortSignal.timeout(10_000)));
      const err = await proc.client
        .putGuestBootSource({ kernel_image_path: "no-such-kernel" })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FirecrackerApiError);
      const apiErr = err as FirecrackerApiError;
      expect(apiErr.status).toBe(400);
      expect(apiErr.operation).toBe("putGuestBootSource");
      expect(apiErr.faultMessage.length).toBeGreaterThan(0);
      expect(apiErr.message).toMatch(
        /^firecracker putGuestBootSource \(PUT \/boot-source\) failed with 400: .+/,
      );
      // An unknown field is a hard 400 in 1.14.2.
      const unknown = await proc.client
        .putMachineConfiguration({ vcpu_count: 1, mem_size_mib: 128, bogus: 1 } as never)
        .catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(FirecrackerApiError);
      expect((unknown as FirecrackerApiError).faultMessage).toMatch(/unknown field/);
      // The client still works after errors.
      expect((await proc.client.getFirecrackerVersion()).firecracker_version).toMatch(/\d+\.\d+/);
    });

    it("rejects an API socket path over 107 bytes before spawning", async () => {
      const dir = tempDir();
      const deep = join(dir, "d".repeat(60), "e".repeat(40));
      mkdirSync(deep, { recursive: true });
      const err = await launcher.launch(base(deep), AbortSignal.timeout(5000)).catch((e) => e);
      expect(err).toBeInstanceOf(FirecrackerLaunchError);
      expect(String(err.message)).toMatch(/107-byte Unix socket limit.*shorten data_dir/);
      expect(existsSync(join(deep, "api.sock"))).toBe(false);
    });

    it("starts Firecracker with exactly the given environment, nothing of the daemon's", async () => {
      const dir = tempDir();
      const saved = { ...process.env };
      process.env.VMM_GRPC_AUTH_TOKEN = "secret-token-canary";
      process.env.VMM_TEST_CANARY = "canary-value";
      onTestFinished(() => {
        for (const k of ["VMM_GRPC_AUTH_TOKEN", "VMM_TEST_CANARY"]) {
          if (saved[k] === undefined) delete process.env[k];
          else process.env[k] = saved[k];
        }
      });
      // The default environment (no `env`). fc-sim is a `#!/usr/bin/env node` script and the minimal
      // PATH need not reach this node: run it from a script naming node by absolute path.
      let binaryPath = backend.binary;
      if (backend.name === "fc-sim") {
        binaryPath = join(dir, "fc-sim.mjs");
        writeFileSync(
          binaryPath,
          `#!${process.execPath}\nawait import(${JSON.stringify(backend.binary)});\n`,
          {
            mode: 0o755,
          },
        );
      }
      const withDefault = track(
        await launcher.launch(
          { ...base(dir), binaryPath, env: undefined },
          AbortSignal.timeout(10_000),
        ),
      );
      expect(environOf(withDefault.pid)).toEqual({
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        LANG: "C",
      });
      const dir2 = tempDir();
      const proc = track(await launcher.launch(base(dir2), AbortSignal.timeout(10_000)));
      expect(environOf(proc.pid)).toEqual(backend.env);
      expect(JSON.stringify(environOf(proc.pid))).not.toMatch(/canary/);
    });

    it("reports a process killed from outside through `exited` and cleans up", async () => {
      const dir = tempDir();
      const proc = track(await launcher.launch(base(dir), AbortSignal.timeout(10_000)));
      process.kill(proc.pid, "SIGKILL");
      expect(await proc.exited).toEqual({ code: null, signal: "SIGKILL" });
      // Firecracker leaves its socket behind (NOTES.md §9); cleanup removes it.
      await proc.cleanup();
      expect(existsSync(proc.apiSocketPath)).toBe(false);
    });

    it("removes a stale API socket but refuses one a live process owns or a non-socket", async () => {
      const dir = tempDir();
      const first = await launcher.launch(base(dir), AbortSignal.timeout(10_000));
      first.kill();
      await first.exited; // no cleanup: api.sock stays behind, stale
      expect(existsSync(first.apiSocketPath)).toBe(true);
      const second = track(await launcher.launch(base(dir), AbortSignal.timeout(10_000)));
      expect((await second.client.describeInstance()).state).toBe("Not started");
      // second is alive on api.sock now
      const third = await launcher.launch(base(dir), AbortSignal.timeout(5000)).catch((e) => e);
      expect(third).toBeInstanceOf(FirecrackerLaunchError);
      expect(String(third.message)).toMatch(/in use by a live process/);

      const other = tempDir();
      writeFileSync(join(other, "api.sock"), "not a socket");
      const fourth = await launcher.launch(base(other), AbortSignal.timeout(5000)).catch((e) => e);
      expect(String(fourth.message)).toMatch(/exists and is not a socket/);

      const listening = tempDir();
      const server = createServer();
      await new Promise<void>((r) => server.listen(join(listening, "api.sock"), r));
      onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
      const fifth = await launcher
        .launch(base(listening), AbortSignal.timeout(5000))
        .catch((e) => e);
      expect(String(fifth.message)).toMatch(/in use by a live process/);
    });

    it("fails clearly for a missing binary and for one that exits at once", async () => {
      const dir = tempDir();
      const missing = await launcher
        .launch(base(dir, { binaryPath: "/nonexistent/firecracker" }), AbortSignal.timeout(5000))
        .catch((e) => e);
      expect(missing).toBeInstanceOf(FirecrackerLaunchError);
      expect(String(missing.message)).toMatch(/cannot run firecracker .*ENOENT/);
      const quits = await launcher
        .launch(base(dir, { extraArgs: ["--no-such-flag"] }), AbortSignal.timeout(5000))
        .catch((e) => e);
      expect(quits).toBeInstanceOf(FirecrackerLaunchError);
      expect(String(quits.message)).toMatch(/exited with code \d+ before its API socket was ready/);
      expect(quits.exit?.code).not.toBe(0);
      expect(existsSync(join(dir, "api.sock"))).toBe(false);
    });

    it("keeps the console log within consoleLogMaxBytes", async () => {
      const dir = tempDir();
      const proc = track(
        await launcher.launch(
          base(dir, { logLevel: "Trace", consoleLogPath: "console.log", consoleLogMaxBytes: 300 }),
          AbortSignal.timeout(10_000),
        ),
      );
      for (let i = 0; i < 20; i++) await proc.client.describeInstance();
      await proc.stop({ graceMs: 1000 });
      await proc.cleanup();
      const size = statSync(join(dir, "console.log")).size;
      expect(size).toBeGreaterThan(0);
      expect(size).toBeLessThanOrEqual(300);
    });

    it.skipIf(!isRoot)(
      "runs inside a network namespace, and signals reach firecracker itself",
      async () => {
        const ns = uniqueId("vmmtest");
        execFileSync("ip", ["netns", "add", ns]);
        onTestFinished(() => {
          execFileSync("ip", ["netns", "del", ns]);
        });
        const dir = tempDir();
        const proc = track(
          await launcher.launch(base(dir, { netns: ns }), AbortSignal.timeout(10_000)),
        );
        const nsIno = statSync(`/run/netns/${ns}`).ino;
        expect(readlinkSync(`/proc/${proc.pid}/ns/net`)).toBe(`net:[${nsIno}]`);
        expect(readlinkSync(`/proc/self/ns/net`)).not.toBe(`net:[${nsIno}]`);
        // The pid is firecracker itself, not nsenter.
        const argv0 = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8").split("\0");
        expect(argv0.join(" ")).not.toMatch(/nsenter/);
        expect((await proc.client.describeInstance()).id).toBe(proc.id);
        const status = await proc.stop({ graceMs: 5000 });
        expect(status).toEqual({ code: null, signal: "SIGTERM" });
      },
    );
  });
}

import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  createJailerLauncher,
  type FirecrackerProcess,
  type JailerLauncherOptions,
  jailPaths,
  linkIntoJail,
  MINIMAL_FIRECRACKER_ENV,
} from "../src/index.js";
import {
  fcSimEnv,
  fcSimPath,
  jailerSimPath,
  kernelPath,
  makeRootfs,
  tempDir,
  track,
  uniqueId,
} from "./helpers.js";

interface JailerBackend {
  name: string;
  jailer: string;
  exec: string;
  env: Readonly<Record<string, string>>;
  available: boolean;
  why: string;
}

const jailerBackends: JailerBackend[] = [
  {
    name: "jailer-sim + fc-sim",
    jailer: jailerSimPath,
    exec: fcSimPath,
    env: fcSimEnv,
    available: existsSync(jailerSimPath) && existsSync(fcSimPath),
    why: `${jailerSimPath} / ${fcSimPath} not built yet`,
  },
  {
    name: "jailer + firecracker",
    jailer: process.env.JAILER_BIN ?? "",
    exec: process.env.FIRECRACKER_BIN ?? "",
    env: MINIMAL_FIRECRACKER_ENV,
    available: Boolean(process.env.JAILER_BIN && process.env.FIRECRACKER_BIN),
    why: "JAILER_BIN and FIRECRACKER_BIN not both set",
  },
];

async function bootInJail(proc: FirecrackerProcess, workDir: string): Promise<void> {
  makeRootfs(workDir);
  await linkIntoJail(proc.rootDir, [
    { source: kernelPath, target: "vmlinux" },
    { source: join(workDir, "rootfs.ext4"), target: "rootfs.ext4" },
  ]);
  const fc = proc.client;
  await fc.putMachineConfiguration({ vcpu_count: 1, mem_size_mib: 128 });
  await fc.putGuestBootSource({ kernel_image_path: "vmlinux", boot_args: "reboot=k panic=1" });
  await fc.putGuestDriveByID({
    drive_id: "rootfs",
    path_on_host: "rootfs.ext4",
    is_root_device: true,
    is_read_only: false,
  });
  await fc.putGuestVsock({ guest_cid: 3, uds_path: "v.sock" });
  await fc.createSyncAction({ action_type: "InstanceStart" });
}

for (const b of jailerBackends) {
  const title = b.available
    ? `launcher-jailer [${b.name}]`
    : `launcher-jailer [${b.name}] (skipped: ${b.why})`;
  describe.skipIf(!b.available)(title, () => {
    const setup = (extra: Partial<JailerLauncherOptions> = {}) => {
      const base = tempDir("fcj-");
      const workDir = tempDir("fcw-");
      const launcher = createJailerLauncher({
        jailerPath: b.jailer,
        uid: 0,
        gid: 0,
        chrootBaseDir: base,
        cgroupVersion: 2,
        ...extra,
      });
      return { base, workDir, launcher };
    };

    it.for([
      ["exec in place", {}],
      ["--daemonize", { daemonize: true }],
      ["--new-pid-ns", { newPidNs: true }],
    ] as const)(
      "boots and snapshots in the jail (%s), then removes the jail",
      async ([, extra]) => {
        const { base, workDir, launcher } = setup(extra);
        const id = uniqueId("j");
        const proc = track(
          await launcher.launch(
            { binaryPath: b.exec, env: b.env, workDir, id, cleanupPaths: ["v.sock"] },
            AbortSignal.timeout(10_000),
          ),
        );
        const paths = jailPaths({ chrootBaseDir: base, binaryPath: b.exec, id });
        expect(proc.rootDir).toBe(paths.rootDir);
        expect(proc.apiSocketPath).toBe(join(paths.rootDir, "run/api.sock"));
        expect((await proc.client.describeInstance()).id).toBe(id);
        // Firecracker's own pid is the one the jailer recorded.
        const pidFile = join(proc.rootDir, `${basename(b.exec)}.pid`);
        expect(readFileSync(pidFile, "utf8").trim()).toBe(String(proc.pid));
        await bootInJail(proc, workDir);
        expect((await proc.client.describeInstance()).state).toBe("Running");
        await proc.client.patchVm({ state: "Paused" });
        await proc.client.createSnapshot({ snapshot_path: "vmstate", mem_file_path: "mem" });
        expect(statSync(join(proc.rootDir, "mem")).size).toBe(128 * 1024 * 1024);
        const status = await proc.stop({ graceMs: 1000 });
        expect(status).toBeDefined();
        await proc.cleanup();
        expect(existsSync(paths.jailDir)).toBe(false);
      },
    );

    it("reports a jailed process killed from outside and removes its jail", async () => {
      const { base, workDir, launcher } = setup({ daemonize: true });
      const id = uniqueId("j");
      const proc = track(
        await launcher.launch(
          { binaryPath: b.exec, env: b.env, workDir, id },
          AbortSignal.timeout(10_000),
        ),
      );
      process.kill(proc.pid, "SIGKILL");
      await proc.exited;
      await proc.cleanup();
      expect(existsSync(jailPaths({ chrootBaseDir: base, binaryPath: b.exec, id }).jailDir)).toBe(
        false,
      );
    });

    it("rejects a chroot base that makes the API socket path too long", async () => {
      const { launcher } = setup({ chrootBaseDir: `/tmp/${"x".repeat(90)}` });
      await expect(
        launcher.launch(
          { binaryPath: b.exec, env: b.env, workDir: "/tmp", id: uniqueId("j") },
          AbortSignal.timeout(5000),
        ),
      ).rejects.toThrow(/107-byte Unix socket limit.*chroot_base_dir/);
    });
  });
}

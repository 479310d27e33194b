import { copyFileSync, existsSync, readFileSync, readlinkSync, rmdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  createJailerLauncher,
  type FirecrackerProcess,
  type JailerLauncherOptions,
  jailPaths,
  linkIntoJail,
  linkOutOfJail,
  MINIMAL_FIRECRACKER_ENV,
} from "../src/index.js";
import {
  fcSimEnv,
  fcSimPath,
  jailerSimPath,
  kernelPath,
  kvmUnusable,
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
  /** The real jailer: chroot, uid/gid drop, device nodes; booting needs /dev/kvm. */
  real: boolean;
  /** uid/gid Firecracker runs as (the stand-in cannot drop to a uid node is not reachable by). */
  jailUid: number;
  jailGid: number;
}

const jailerBackends: JailerBackend[] = [
  {
    name: "jailer-sim + fc-sim",
    jailer: jailerSimPath,
    exec: fcSimPath,
    env: fcSimEnv,
    available: existsSync(jailerSimPath) && existsSync(fcSimPath),
    why: `${jailerSimPath} / ${fcSimPath} not built yet`,
    real: false,
    jailUid: 0,
    jailGid: 0,
  },
  {
    name: "jailer + firecracker",
    jailer: process.env.JAILER_BIN ?? "",
    exec: process.env.FIRECRACKER_BIN ?? "",
    env: MINIMAL_FIRECRACKER_ENV,
    available: Boolean(process.env.JAILER_BIN && process.env.FIRECRACKER_BIN),
    why: "JAILER_BIN and FIRECRACKER_BIN not both set",
    real: true,
    jailUid: 64123,
    jailGid: 64124,
  },
];

const modes = [
  ["exec in place", {}],
  ["--daemonize", { daemonize: true }],
  ["--new-pid-ns", { newPidNs: true }],
] as const;

/** `Uid:`/`Gid:` (real ids) and the innermost pid of `/proc/<pid>/status`. */
function procIds(pid: number): { uid: number; gid: number; nsPid: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) =>
    (new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "").split(/\s+/);
  return {
    uid: Number(field("Uid")[0]),
    gid: Number(field("Gid")[0]),
    nsPid: Number(field("NSpid").at(-1)),
  };
}

/**
 * Stages a kernel and a fresh rootfs into the jail owned by the jail uid (hard links: the kernel
 * is first copied into `workDir`, so the shared test kernel keeps its owner) and configures
 * Firecracker with them: it opens both as the jail uid, inside the chroot.
 */
async function stageAndConfigure(
  proc: FirecrackerProcess,
  workDir: string,
  owner: { uid: number; gid: number },
): Promise<void> {
  makeRootfs(workDir);
  copyFileSync(kernelPath, join(workDir, "vmlinux"));
  await linkIntoJail(
    proc.rootDir,
    [
      { source: join(workDir, "vmlinux"), target: "vmlinux" },
      { source: join(workDir, "rootfs.ext4"), target: "rootfs.ext4" },
    ],
    owner,
  );
  for (const f of ["vmlinux", "rootfs.ext4"]) {
    const inJail = statSync(join(proc.rootDir, f));
    expect(inJail.ino, `${f} is a hard link, not a copy`).toBe(statSync(join(workDir, f)).ino);
    expect([inJail.uid, inJail.gid, inJail.mode & 0o777], f).toEqual([owner.uid, owner.gid, 0o600]);
  }
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
}

for (const b of jailerBackends) {
  const title = b.available
    ? `launcher-jailer [${b.name}]`
    : `launcher-jailer [${b.name}] (skipped: ${b.why})`;
  describe.skipIf(!b.available)(title, () => {
    const owner = { uid: b.jailUid, gid: b.jailGid };
    const setup = (extra: Partial<JailerLauncherOptions> = {}) => {
      const base = tempDir("fcj-");
      const workDir = tempDir("fcw-");
      const launcher = createJailerLauncher({
        jailerPath: b.jailer,
        ...owner,
        chrootBaseDir: base,
        cgroupVersion: 2,
        ...extra,
      });
      return { base, workDir, launcher };
    };
    const launchIn = async (
      launcher: ReturnType<typeof setup>["launcher"],
      workDir: string,
      id: string,
    ) =>
      track(
        await launcher.launch(
          // The host is shared: give fc-sim's start (a node process) room.
          {
            binaryPath: b.exec,
            env: b.env,
            workDir,
            id,
            cleanupPaths: ["v.sock"],
            startTimeoutMs: 10_000,
          },
          AbortSignal.timeout(20_000),
        ),
      );

    it.for(modes)(
      "jails firecracker (%s): chroot, uid/gid, PID namespace, API socket, staged files; cleanup removes the jail",
      async ([, extra]) => {
        const { base, workDir, launcher } = setup(extra);
        const id = uniqueId("j");
        const proc = await launchIn(launcher, workDir, id);
        const paths = jailPaths({ chrootBaseDir: base, binaryPath: b.exec, id });
        expect(proc.rootDir).toBe(paths.rootDir);
        expect(proc.apiSocketPath).toBe(join(paths.rootDir, "run/api.sock"));
        expect((await proc.client.describeInstance()).id).toBe(id);
        // proc.pid is Firecracker itself (started with our --id), not the jailer.
        const argv = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8").split("\0");
        expect(argv).toContain(id);
        const ids = procIds(proc.pid);
        expect([ids.uid, ids.gid]).toEqual([b.jailUid, b.jailGid]);
        if ("newPidNs" in extra) {
          expect(readFileSync(join(proc.rootDir, `${basename(b.exec)}.pid`), "utf8").trim()).toBe(
            String(proc.pid),
          );
        }
        if (b.real) {
          // The jailed copy runs chrooted: its / is the jail root, with the device nodes it needs.
          expect(argv[0]).toBe(`/${basename(b.exec)}`);
          expect(statSync(join(proc.rootDir, "dev/kvm")).isCharacterDevice()).toBe(true);
          expect(statSync(join(proc.rootDir, "dev/net/tun")).isCharacterDevice()).toBe(true);
          expect(ids.nsPid).toBe("newPidNs" in extra ? 1 : proc.pid);
          const pidNs = readlinkSync(`/proc/${proc.pid}/ns/pid`);
          expect(pidNs === readlinkSync("/proc/self/ns/pid")).toBe(!("newPidNs" in extra));
        }
        await stageAndConfigure(proc, workDir, owner);
        expect((await proc.client.describeInstance()).state).toBe("Not started");
        expect(await proc.stop({ graceMs: 1000 })).toBeDefined();
        await proc.cleanup();
        expect(existsSync(paths.jailDir)).toBe(false);
        // The staged hard links went with the jail; the sources are untouched.
        expect(existsSync(join(workDir, "rootfs.ext4"))).toBe(true);
      },
    );

    it.for(modes)(
      "boots and snapshots in the jail (%s), takes the snapshot out by hard link",
      async ([, extra], ctx) => {
        if (b.real && kvmUnusable()) ctx.skip("needs /dev/kvm");
        const { workDir, launcher } = setup(extra);
        const proc = await launchIn(launcher, workDir, uniqueId("j"));
        await stageAndConfigure(proc, workDir, owner);
        await proc.client.createSyncAction({ action_type: "InstanceStart" });
        expect((await proc.client.describeInstance()).state).toBe("Running");
        await proc.client.patchVm({ state: "Paused" });
        await proc.client.createSnapshot({ snapshot_path: "vmstate", mem_file_path: "mem" });
        expect(statSync(join(proc.rootDir, "mem")).size).toBe(128 * 1024 * 1024);
        await linkOutOfJail(proc.rootDir, [
          { source: "vmstate", target: join(workDir, "vmstate") },
          { source: "mem", target: join(workDir, "mem") },
        ]);
        for (const f of ["vmstate", "mem"]) {
          const st = statSync(join(workDir, f));
          expect(st.ino, f).toBe(statSync(join(proc.rootDir, f)).ino);
          expect([st.uid, st.gid], f).toEqual([b.jailUid, b.jailGid]);
        }
        await proc.stop({ graceMs: 1000 });
        await proc.cleanup();
      },
    );

    it.for(modes)(
      "detects a jailed firecracker killed from outside (%s) and removes its jail",
      async ([, extra]) => {
        const { base, workDir, launcher } = setup(extra);
        const id = uniqueId("j");
        const proc = await launchIn(launcher, workDir, id);
        process.kill(proc.pid, "SIGKILL");
        const status = await proc.exited;
        expect(status.signal ?? status.code).toBeDefined();
        await proc.cleanup();
        expect(existsSync(jailPaths({ chrootBaseDir: base, binaryPath: b.exec, id }).jailDir)).toBe(
          false,
        );
      },
    );

    const cgroupV2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
    it.skipIf(!cgroupV2)(
      `puts firecracker in its own cgroup under the parent and removes it${cgroupV2 ? "" : " (skipped: needs a cgroup v2 host; /sys/fs/cgroup is cgroup v1 here)"}`,
      async () => {
        const parentCgroup = uniqueId("vmm-test");
        const { workDir, launcher } = setup({ parentCgroup, cgroups: { "pids.max": "64" } });
        const parentDir = join("/sys/fs/cgroup", parentCgroup);
        onTestFinished(() => {
          if (existsSync(parentDir)) rmdirSync(parentDir);
        });
        const id = uniqueId("j");
        const proc = await launchIn(launcher, workDir, id);
        expect(readFileSync(`/proc/${proc.pid}/cgroup`, "utf8")).toContain(
          `0::/${parentCgroup}/${id}`,
        );
        expect(readFileSync(join(parentDir, id, "pids.max"), "utf8").trim()).toBe("64");
        await proc.stop({ graceMs: 1000 });
        await proc.cleanup();
        expect(existsSync(join(parentDir, id))).toBe(false);
      },
    );

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

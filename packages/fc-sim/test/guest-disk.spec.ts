import { copyFileSync, existsSync, readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { makeRootfs, removeDir, startVm, tempDir, testKernel, type Vm } from "./helpers.js";

// fc-sim's guest inside its root drive (src/guest-disk.ts), seen from the Firecracker API:
// the dev rootfs (scripts/dev-images.sh, made by the vitest global setup) with our agent as init.

const devRootfs = resolve(import.meta.dirname, "../../../.dev/data/images/rootfs.ext4");
const canLoopMount =
  process.geteuid?.() === 0 && existsSync("/dev/loop-control") && existsSync(devRootfs);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Loop devices backed by a file in `dir`. */
function loopsIn(dir: string): string[] {
  return readdirSync("/sys/block")
    .filter((n) => n.startsWith("loop"))
    .filter((n) => {
      try {
        return readFileSync(`/sys/block/${n}/loop/backing_file`, "utf8").startsWith(`${dir}/`);
      } catch {
        return false;
      }
    });
}

/** True while `pid` exists and is not a zombie. */
function runs(pid: string): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

async function until(pred: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

/** fc-sim in a fresh dir holding `rootfs` as rootfs.ext4, booted (InstanceStart) with our agent's port. */
async function boot(rootfs: "dev" | "zeros", env: NodeJS.ProcessEnv = {}): Promise<Vm> {
  const dir = tempDir("fcs-disk-");
  cleanups.push(() => removeDir(dir));
  if (rootfs === "dev") copyFileSync(devRootfs, join(dir, "rootfs.ext4"));
  else makeRootfs(join(dir, "rootfs.ext4"));
  // Not inherited from the test run: the guest is whatever the image holds.
  const v = await startVm({ dir, env: { FC_SIM_AGENT: "", ...env } });
  cleanups.push(() => v.kill());
  const ok = async (m: string, p: string, b: unknown): Promise<void> => {
    const r = await v.call(m, p, b);
    expect(r.status, `${m} ${p}: ${r.text}`).toBe(204);
  };
  await ok("PUT", "/boot-source", {
    kernel_image_path: testKernel(dir),
    boot_args: "reboot=k panic=1 vmm.agent_port=1024 vmm.hostname=disky",
  });
  await ok("PUT", "/drives/root", {
    drive_id: "root",
    path_on_host: "rootfs.ext4",
    is_root_device: true,
  });
  await ok("PUT", "/vsock", { guest_cid: 3, uds_path: "v.sock" });
  await ok("PUT", "/actions", { action_type: "InstanceStart" });
  return v;
}

describe.skipIf(!canLoopMount)("fc-sim guest inside its root drive", () => {
  it("runs the image's init chrooted into the loop-mounted drive; SIGKILL of fc-sim releases it all", async () => {
    const v = await boot("dev");
    const sock = `/tmp/fcsim-${v.proc.pid}/1024.sock`;
    expect(await until(() => existsSync(sock))).toBe(true);
    expect(v.output()).toContain("the guest runs inside its root drive rootfs.ext4");
    expect(loopsIn(v.dir)).toHaveLength(1);
    // The agent answers on the vsock splice, from inside the guest's namespaces.
    const line = await new Promise<string>((res, rej) => {
      const s = net.connect(join(v.dir, "v.sock"));
      s.on("error", rej);
      s.once("data", (c) => {
        res(c.toString());
        s.destroy();
      });
      s.write("CONNECT 1024\n");
    });
    expect(line).toMatch(/^OK \d+\n/);
    const agent = readdirSync("/proc").find((p) => {
      try {
        // This fc-sim's agent: other tests' guests may run at the same time.
        return readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith(
          `/sbin/init\0--unix-dir\0/tmp/fcsim-${v.proc.pid}\0`,
        );
      } catch {
        return false;
      }
    });
    expect(agent).toBeDefined();
    const status = readFileSync(`/proc/${agent}/status`, "utf8");
    // In its own PID namespace (a host pid and a namespace pid), whose PID 1 is the shell.
    expect(/^NSpid:\s+\d+\s+\d+$/m.test(status)).toBe(true);
    expect(readFileSync(`/proc/${agent}/root/proc/1/comm`, "utf8")).toBe("sh\n");
    expect(readFileSync(`/proc/${agent}/root/etc/hostname`, "utf8")).toBe("sandbox\n");

    v.proc.kill("SIGKILL");
    await v.exited;
    expect(await until(() => loopsIn(v.dir).length === 0)).toBe(true);
    // Gone, or a zombie nobody reaped yet (this container's PID 1 does not reap orphans):
    // either way it runs no more and holds nothing.
    expect(await until(() => !runs(agent!), 30_000)).toBe(true);
  });

  it("a root drive that is not a filesystem is a kernel panic: fc-sim exits 0, no loop device left", async () => {
    const v = await boot("zeros");
    expect(await v.exited).toEqual({ code: 0, signal: null });
    expect(v.output()).toContain("Kernel panic - not syncing: VFS: Unable to mount root fs");
    expect(loopsIn(v.dir)).toEqual([]);
  });
});

describe.skipIf(!existsSync(devRootfs))("fc-sim guest as a host process", () => {
  it("FC_SIM_GUEST=host: the agent runs on the host's filesystem and fc-sim says why", async () => {
    const v = await boot("dev", { FC_SIM_GUEST: "host" });
    expect(await until(() => existsSync(`/tmp/fcsim-${v.proc.pid}/1024.sock`))).toBe(true);
    expect(v.output()).toContain(
      "the guest runs as a host process on the host's filesystem, not inside its disk: FC_SIM_GUEST=host",
    );
    expect(loopsIn(v.dir)).toEqual([]);
  });
});

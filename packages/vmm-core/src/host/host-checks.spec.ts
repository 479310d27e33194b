import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HostCheck, type HostCheckInputs, runHostChecks } from "./host-checks.js";

describe("runHostChecks", () => {
  let dir: string;
  let base: HostCheckInputs;
  const byName = (checks: HostCheck[], name: string) => checks.find((c) => c.name === name);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "host-checks-"));
    const fc = join(dir, "firecracker");
    await writeFile(fc, "#!/bin/sh\necho 'Firecracker v1.14.2'\n");
    await chmod(fc, 0o755);
    const tree = join(dir, "tree");
    await mkdir(join(tree, "sbin"), { recursive: true });
    await writeFile(join(tree, "sbin/vmm-agent"), "x");
    await chmod(join(tree, "sbin/vmm-agent"), 0o755);
    await symlink("vmm-agent", join(tree, "sbin/init"));
    execFileSync("mkfs.ext4", ["-q", "-F", "-d", tree, join(dir, "rootfs.ext4"), "4M"]);
    const config = [
      "VIRTIO_MMIO",
      "VIRTIO_BLK",
      "EXT4_FS",
      "VSOCKETS",
      "VIRTIO_VSOCKETS",
      "SERIAL_8250_CONSOLE",
      "DEVTMPFS",
      "UNIX98_PTYS",
    ]
      .map((o) => `CONFIG_${o}=y\n`)
      .join("");
    const image = (text: string) =>
      Buffer.concat([
        Buffer.alloc(512),
        Buffer.from("IKCFG_ST"),
        gzipSync(text),
        Buffer.from("IKCFG_ED"),
      ]);
    await writeFile(join(dir, "vmlinux"), image(config));
    await writeFile(join(dir, "modular"), image(config.replace("VIRTIO_BLK=y", "VIRTIO_BLK=m")));
    await writeFile(join(dir, "plain"), Buffer.alloc(4096));
    base = {
      firecracker: { path: fc, simulated: false },
      kernel: { path: join(dir, "vmlinux") },
      rootfs: { path: join(dir, "rootfs.ext4") },
      init: "/sbin/init",
      dataDir: dir,
      network: "none",
      kvmDevice: join(dir, "no-kvm"),
    };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("reports every check, each named, with a fix on whatever is not ok", async () => {
    const checks = await runHostChecks(base);
    expect(checks.map((c) => c.name)).toEqual([
      "kvm",
      "firecracker",
      "jailer",
      "kernel",
      "rootfs",
      "network tools",
      "userfaultfd",
      "cgroup v2",
      "data_dir reflink",
      "data_dir space",
      "socket paths",
    ]);
    for (const c of checks) if (c.status !== "ok") expect(c.fix, c.name).toBeTruthy();
    expect(byName(checks, "kvm")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/open failed/),
    });
    expect(byName(checks, "firecracker")).toMatchObject({
      status: "ok",
      detail: expect.stringMatching(/1\.14\.2/),
    });
    // Off with a real Firecracker: the production recommendation, as a warning.
    expect(byName(checks, "jailer")).toMatchObject({
      status: "warn",
      detail: expect.stringMatching(/^not enabled/),
    });
    expect(byName(checks, "kernel")?.status).toBe("ok");
    expect(byName(checks, "rootfs")).toMatchObject({
      status: "ok",
      detail: expect.stringMatching(/\/sbin\/vmm-agent/),
    });
  });

  it("fails what cannot work, with the reason: not KVM, modular kernel, no init, no firecracker", async () => {
    const checks = await runHostChecks({
      ...base,
      kvmDevice: "/dev/null",
      firecracker: { error: 'firecracker.binary "nope" not found' },
      kernel: { path: join(dir, "modular") },
      rootfs: { path: join(dir, "rootfs.ext4") },
      init: "/bin/agent",
    });
    expect(byName(checks, "kvm")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/api-version failed/),
    });
    expect(byName(checks, "firecracker")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/nope/),
    });
    expect(byName(checks, "kernel")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/CONFIG_VIRTIO_BLK \(is m: no root disk\)/),
      fix: expect.stringMatching(/guest\/kernel\/build\.sh/),
    });
    expect(byName(checks, "rootfs")).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/no \/bin\/agent/),
    });
  });

  it("warns where it cannot tell or where it costs: no embedded config, fc-sim, data_dir not created", async () => {
    const checks = await runHostChecks({
      ...base,
      firecracker: { path: join(dir, "firecracker"), simulated: true },
      kernel: { path: join(dir, "plain") },
      dataDir: join(dir, "not", "yet"),
    });
    expect(byName(checks, "kernel")).toMatchObject({
      status: "warn",
      detail: expect.stringMatching(/no embedded config/),
    });
    expect(byName(checks, "firecracker")?.status).toBe("warn");
    expect(byName(checks, "kvm")).toMatchObject({
      status: "warn",
      detail: expect.stringMatching(/fc-sim in use/),
    });
    expect(byName(checks, "data_dir space")?.detail).toContain(`not created yet; checked ${dir}`);
  });

  it("judges socket paths by the ids data_dir leaves room for", async () => {
    const deep = (n: number) => join(dir, "d".repeat(n));
    const [ok, warn, fail] = await Promise.all(
      [0, 6, 90].map(async (n) =>
        byName(await runHostChecks({ ...base, dataDir: n ? deep(n) : "/v" }), "socket paths"),
      ),
    );
    expect(ok?.status).toBe("ok");
    expect(warn).toMatchObject({
      status: "warn",
      detail: expect.stringMatching(/ids longer than \d+ chars/),
    });
    expect(fail).toMatchObject({ status: "fail", detail: expect.stringMatching(/even generated/) });
  });
});

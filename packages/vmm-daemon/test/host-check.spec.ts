import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { HostService } from "@vmm/proto";
import { afterAll, describe, expect, it } from "vitest";
import { DAEMON_BIN } from "./daemon-process.js";
import { FC_SIM_BIN, IMAGES_DIR, startSimDaemon } from "./sim-daemon.js";

const run = promisify(execFile);

/** `vmm-daemon --check-host` with env overrides; never rejects (exit code in `code`). */
async function checkHost(env: Record<string, string>, args: string[] = []) {
  return run(process.execPath, [DAEMON_BIN, "--check-host", ...args], {
    env: { ...process.env, ...env },
  }).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
  );
}

describe("host checks", () => {
  const dir = mkdtempSync(join(tmpdir(), "vmm-hostcheck-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    VMM_FIRECRACKER_BINARY: FC_SIM_BIN,
    VMM_FIRECRACKER_DATA_DIR: join(dir, "data"),
    VMM_STORAGE_IMAGES_DIR: IMAGES_DIR,
    VMM_NETWORK_MODE: "none",
  };

  it("--check-host checks the configured host without a daemon: one line per check, exit 1 iff one failed", async () => {
    const { code, stdout } = await checkHost(env);
    const lines = stdout.trim().split("\n");
    const fails = lines.filter((l) => l.startsWith("FAIL"));
    expect(code).toBe(fails.length > 0 ? 1 : 0);
    expect(stdout).toMatch(
      /^WARN {2}firecracker: \S+fc-sim\.mjs is fc-sim 1\.14\.\d+, the simulator/m,
    );
    expect(stdout).toMatch(
      new RegExp(`^ok    rootfs: ${IMAGES_DIR}/rootfs\\.ext4: /sbin/init is /sbin/vmm-agent$`, "m"),
    );
    // data_dir does not exist yet: its nearest parent is checked, and nothing is created.
    expect(stdout).toContain(`${join(dir, "data")} (not created yet; checked ${dir})`);
    expect(() => mkdirSync(join(dir, "data"))).not.toThrow();
    const json = await checkHost(env, ["--json"]);
    const parsed = JSON.parse(json.stdout) as { checks: { name: string; status: string }[] };
    expect(parsed.checks.map((c) => c.name)).toContain("kvm");
    expect(parsed.checks.filter((c) => c.status === "fail").length).toBe(fails.length);
  });

  it("--check-host fails a missing default rootfs and a missing firecracker, each with its fix", async () => {
    const { code, stdout } = await checkHost({
      ...env,
      VMM_DEFAULTS_ROOTFS: "absent.ext4",
      VMM_FIRECRACKER_BINARY: join(dir, "no-firecracker"),
    });
    expect(code).toBe(1);
    expect(stdout).toMatch(
      /^FAIL {2}rootfs: defaults\.rootfs: .*"absent\.ext4" not found\n {6}fix: build it with/m,
    );
    expect(stdout).toMatch(
      /^FAIL {2}firecracker: .*no-firecracker" not found\..*\n {6}fix: install Firecracker v1\.14\.x/m,
    );
    expect(stdout).toMatch(
      /^\d+ check\(s\) failed: sandboxes cannot run as configured on this host$/m,
    );
  });

  it("--check-host says whether the jailer is configured and usable", async () => {
    const jailerBin = process.env.JAILER_BIN ?? join(dir, "jailer");
    if (!process.env.JAILER_BIN) {
      writeFileSync(jailerBin, "#!/bin/sh\necho 'Jailer v1.14.2'\n", { mode: 0o755 });
    }
    const off = await checkHost(env);
    expect(off.stdout).toMatch(/^ok {4}jailer: not enabled \(fc-sim/m);
    const jailed = {
      ...env,
      VMM_FIRECRACKER_JAILER_ENABLED: "true",
      VMM_FIRECRACKER_JAILER_BINARY: jailerBin,
      VMM_FIRECRACKER_JAILER_CHROOT_BASE_DIR: join(dir, "jail"),
    };
    const on = await checkHost(jailed);
    const line = new RegExp(
      `^(ok|WARN) +jailer: ${jailerBin}: jailer \\d+\\.\\d+\\.\\d+, uid/gid 10000/10000, chroot_base_dir ${join(dir, "jail")}`,
      "m",
    );
    expect(on.stdout).toMatch(line);
    const missing = await checkHost({
      ...jailed,
      VMM_FIRECRACKER_JAILER_BINARY: join(dir, "no-jailer"),
    });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(
      /^FAIL {2}jailer: firecracker\.jailer\.binary .*no-jailer" not found/m,
    );
  });

  it("HostService.CheckHost answers the same checks over the API, host paths redacted unless exposed", async () => {
    for (const expose of [false, true]) {
      await using d = await startSimDaemon({
        env: { VMM_GRPC_EXPOSE_HOST_DETAILS: String(expose) },
      });
      const transport = createGrpcTransport({
        baseUrl: "http://localhost",
        nodeOptions: { createConnection: () => net.connect(d.socket) },
      });
      const host = createClient(HostService, transport);
      const res = await host.checkHost({});
      const rootfs = res.checks.find((c) => c.name === "rootfs");
      expect(rootfs?.status).toBe("ok");
      expect(rootfs?.detail).toBe(
        `${expose ? IMAGES_DIR : "<images_dir>"}/rootfs.ext4: /sbin/init is /sbin/vmm-agent`,
      );
      expect(res.ok).toBe(!res.checks.some((c) => c.status === "fail"));
      for (const c of res.checks) expect(c.fix === "", c.name).toBe(c.status === "ok");
      if (!expose) for (const c of res.checks) expect(c.detail, c.name).not.toContain(d.dataDir);
    }
  });
});

import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkJailer } from "./jailer-check.js";

describe("checkJailer", () => {
  let dir: string;
  let fakeJailer: string;
  let kernel: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "jailer-check-"));
    fakeJailer = join(dir, "jailer");
    await writeFile(fakeJailer, "#!/bin/sh\necho 'Jailer v1.14.2'\n");
    await chmod(fakeJailer, 0o755);
    kernel = join(dir, "vmlinux");
    await writeFile(kernel, "k", { mode: 0o644 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const enabled = (over: Partial<Parameters<typeof checkJailer>[0]["jailer"] & object> = {}) => ({
    jailer: {
      binary: { path: fakeJailer },
      chrootBaseDir: join(dir, "jail"),
      uid: 10000,
      gid: 10000,
      ...over,
    },
    firecrackerVersion: "1.14.2",
    simulated: false,
    dataDir: join(dir, "data"),
    kernelPath: kernel,
    daemonUid: 0,
  });

  it("off: a warning with a real Firecracker (production recommendation), fine with fc-sim", async () => {
    const base = {
      jailer: undefined,
      firecrackerVersion: "1.14.2",
      dataDir: dir,
      kernelPath: kernel,
    };
    const real = await checkJailer({ ...base, simulated: false });
    expect(real.status).toBe("warn");
    expect(real.fix).toMatch(/enabled = true/);
    expect((await checkJailer({ ...base, simulated: true })).status).toBe("ok");
  });

  it("on and usable: version, uid/gid, chroot_base_dir on data_dir's filesystem", async () => {
    const f = await checkJailer(enabled());
    expect(f).toEqual({
      status: "ok",
      detail: `${fakeJailer}: jailer 1.14.2, uid/gid 10000/10000, chroot_base_dir ${join(dir, "jail")} (same filesystem as data_dir)`,
    });
  });

  it("fails a missing binary, a non-root daemon, a root jail uid and an unreadable kernel", async () => {
    const missing = await checkJailer({
      ...enabled(),
      jailer: {
        ...enabled().jailer,
        binary: { error: 'firecracker.jailer.binary "jailer" not found' },
      },
    });
    expect([missing.status, missing.detail]).toEqual([
      "fail",
      'firecracker.jailer.binary "jailer" not found',
    ]);
    expect((await checkJailer({ ...enabled(), daemonUid: 1000 })).detail).toMatch(
      /the daemon runs as uid 1000, the jailer needs root/,
    );
    expect((await checkJailer(enabled({ uid: 0 }))).status).toBe("fail");
    const secret = join(dir, "vmlinux-0600");
    await writeFile(secret, "k", { mode: 0o600 });
    const f = await checkJailer({ ...enabled(), kernelPath: secret });
    expect(f.status).toBe("fail");
    expect(f.fix).toContain(`chmod o+r ${secret}`);
  });

  it("warns about version skew and a chroot_base_dir on another filesystem", async () => {
    const skew = await checkJailer({ ...enabled(), firecrackerVersion: "1.15.0" });
    expect(skew.status).toBe("warn");
    expect(skew.detail).toMatch(/jailer 1\.14\.2 with Firecracker 1\.15\.0 \(not the same release/);
    // /proc is its own filesystem on every Linux host.
    const other = await checkJailer(enabled({ chrootBaseDir: "/proc/vmm-jail" }));
    expect(other.status).toBe("warn");
    expect(other.detail).toMatch(/not on data_dir's filesystem: .* copied into its jail/);
  });

  it.skipIf(!process.env.JAILER_BIN)(
    `the real jailer (JAILER_BIN)${process.env.JAILER_BIN ? "" : " (skipped: JAILER_BIN not set)"}: its version, and the skew with Firecracker 1.14`,
    async () => {
      const f = await checkJailer({
        ...enabled(),
        jailer: { ...enabled().jailer, binary: { path: process.env.JAILER_BIN! } },
      });
      expect(f.detail).toMatch(/: jailer \d+\.\d+\.\d+, uid\/gid 10000\/10000/);
      if (f.detail.includes("jailer 1.0.0")) expect(f.status).toBe("warn");
    },
  );
});

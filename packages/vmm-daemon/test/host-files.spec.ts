/**
 * What of the host a client reaches through files (issue 14): host files as
 * kernel/rootfs, modes of everything under data_dir, and the environment the
 * daemon hands to Firecracker and, through fc-sim, to the guest.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDaemonProcess } from "./daemon-process.js";
import { bestOfMs } from "./responsiveness.js";
import {
  IMAGES_DIR,
  processesMatching,
  type SimDaemon,
  startSimDaemon,
  waitForState,
} from "./sim-daemon.js";

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (e: unknown) => (e instanceof ConnectError ? `${Code[e.code]}: ${e.rawMessage}` : String(e)),
  );

/** Every path under `dir` (itself included) with a group/other permission bit, and its mode. */
function groupOrOtherAccessible(dir: string): string[] {
  const found: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if ((st.mode & 0o077) !== 0) found.push(`${p} ${(st.mode & 0o7777).toString(8)}`);
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(dir);
  return found;
}

function environOf(pid: number): string {
  return readFileSync(`/proc/${pid}/environ`, "utf8").replaceAll("\0", "\n");
}

describe("host files as sandbox images (gRPC, fc-sim)", () => {
  let d: SimDaemon;
  let scratch: string;
  let roots: string;
  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), "vmm-hostfiles-"));
    roots = join(scratch, "roots");
    mkdirSync(roots);
    copyFileSync(join(IMAGES_DIR, "rootfs.ext4"), join(roots, "custom.ext4"));
    copyFileSync(join(IMAGES_DIR, "vmlinux"), join(roots, "custom-vmlinux"));
    writeFileSync(join(scratch, "outside.ext4"), "secret outside the roots");
    execFileSync("mkfifo", [join(roots, "fifo.ext4")]);
    mkdirSync(join(roots, "adir"));
    // A symlink planted inside an allowed root, pointing out of it.
    symlinkSync("/etc/passwd", join(roots, "passwd.ext4"));
    d = await startSimDaemon({ env: { VMM_STORAGE_ALLOWED_IMAGE_ROOTS: roots } });
  });
  afterAll(async () => {
    await d?.[Symbol.asyncDispose]();
    rmSync(scratch, { recursive: true, force: true });
  });

  const hostile = [
    "/etc/shadow",
    "/etc/passwd",
    "/proc/self/environ",
    "/proc/1/cmdline",
    "/dev/zero",
    "/sys/kernel/notes",
    "../../etc/passwd",
    "../../../../../../etc/shadow",
    "/root/.ssh/id_rsa_vmm_absent",
    "/nonexistent/dir/file",
  ];

  it.each(["rootfs", "kernel"] as const)(
    "refuses host files as %s with one INVALID_ARGUMENT text, creating nothing",
    async (field) => {
      const texts = new Set<string>();
      // The daemon keeps answering others while it refuses them (a FIFO must not stall it).
      const attack = [...hostile, join(roots, "fifo.ext4")].map((value, i) =>
        outcome(d.sandboxes.create({ id: `hf-burst-${field}-${i}`, [field]: value })),
      );
      expect(await bestOfMs(() => d.sandboxes.list({}))).toBeLessThan(100);
      await Promise.all(attack);
      for (const value of [
        ...hostile,
        join(scratch, "outside.ext4"),
        join(roots, "passwd.ext4"),
        join(roots, "fifo.ext4").replace(roots, scratch),
      ]) {
        const id = `hf-${field}-${texts.size}`;
        const got = await outcome(d.sandboxes.create({ id, [field]: value }));
        expect(got, value).toMatch(/^InvalidArgument: /);
        texts.add(got.replace(JSON.stringify(value), "<value>"));
        await expect(outcome(d.sandboxes.inspect({ id }))).resolves.toMatch(/^NotFound/);
      }
      // Present (/etc/shadow) and absent (/root/.ssh/id_rsa…) files give the same bytes.
      expect([...texts]).toEqual([
        `InvalidArgument: ${field}: <value> is not an image under the allowed roots (images_dir, storage.allowed_image_roots) (name a regular file under images_dir (e.g. rootfs.ext4 or kernels/vmlinux), or an absolute path under a directory of storage.allowed_image_roots)`,
      ]);
    },
  );

  it("refuses a directory and a FIFO inside a root (FAILED_PRECONDITION) without hanging", async () => {
    for (const name of ["adir", "fifo.ext4"]) {
      const got = await outcome(
        d.sandboxes.create({ id: `hf-${name.slice(0, 4)}`, rootfs: join(roots, name) }),
      );
      expect(got).toMatch(/^FailedPrecondition: rootfs: image .* is not a regular file$/);
      expect(got).not.toContain(d.dataDir);
    }
  });

  it("reports a missing image inside images_dir as NOT_FOUND without host paths", async () => {
    const got = await outcome(d.sandboxes.create({ id: "hf-missing", rootfs: "missing.ext4" }));
    expect(got).toBe('NotFound: rootfs image "missing.ext4" not found');
  });

  it("boots from a kernel and rootfs under storage.allowed_image_roots", async () => {
    await d.sandboxes.create({
      id: "hf-allowed",
      rootfs: join(roots, "custom.ext4"),
      kernel: join(roots, "custom-vmlinux"),
    });
    await waitForState(d, "hf-allowed", "ready");
    await d.sandboxes.remove({ id: "hf-allowed", force: true });
  });
});

describe("image roots a daemon refuses at startup", () => {
  it.each([
    ["/proc", /storage\.allowed_image_roots: \/proc is under \/proc, \/sys, \/dev/],
    ["/dev/disk", /storage\.allowed_image_roots: \/dev\/disk is under/],
    ["relative/images", /storage\.allowed_image_roots: "relative\/images" is not an absolute path/],
    ["<data>/snapshots", /is inside firecracker\.data_dir .*private files/],
  ])("allowed_image_roots = %j", async (root, message) => {
    const dir = mkdtempSync(join(tmpdir(), "vmm-badroot-"));
    try {
      const value = root.replace("<data>", join(dir, "d"));
      const err = await startDaemonProcess("", {
        VMM_FIRECRACKER_DATA_DIR: join(dir, "d"),
        VMM_STORAGE_ALLOWED_IMAGE_ROOTS: value,
      }).then(
        async (d) => {
          await d[Symbol.asyncDispose]();
          return "started";
        },
        (e: unknown) => String(e),
      );
      expect(err).toMatch(message);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("data_dir is owner-only (gRPC, fc-sim)", () => {
  it("creates data_dir 0700 and keeps every file and directory owner-only through create, checkpoint, restore", async () => {
    await using d = await startSimDaemon();
    expect(existsSync(d.dataDir)).toBe(true);
    expect(lstatSync(d.dataDir).mode & 0o777).toBe(0o700);
    await d.sandboxes.create({ id: "modes-src" });
    await waitForState(d, "modes-src", "ready");
    const cp = await d.snapshots.checkpoint({ sandboxId: "modes-src", name: "modes" });
    await d.snapshots.restore({ snapshotId: cp.snapshotId, id: "modes-restored" });
    await waitForState(d, "modes-restored", "ready");
    // Spares are made in the background after ready/checkpoint: give them time to appear.
    await new Promise((r) => setTimeout(r, 500));
    const seen = readdirSync(join(d.dataDir, "snapshots", cp.snapshotId)).sort();
    expect(seen).toEqual(["mem", "meta.json", "rootfs.ext4", "vmstate"]);
    expect(readdirSync(join(d.dataDir, "sandboxes", "modes-restored"))).toEqual(
      expect.arrayContaining([
        "api.sock",
        "vsock.sock",
        "sandbox.json",
        "rootfs.ext4",
        "mem",
        "vmstate",
      ]),
    );
    expect(groupOrOtherAccessible(d.dataDir)).toEqual([]);
  });

  it("tightens an existing data_dir (and leftovers of an older daemon) at startup", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmm-oldmodes-"));
    try {
      const dataDir = join(dir, "d");
      mkdirSync(join(dataDir, "snapshots", "snap-old"), { recursive: true, mode: 0o755 });
      chmodSync(dataDir, 0o755);
      writeFileSync(join(dataDir, "snapshots", "snap-old", "mem"), "guest memory", { mode: 0o644 });
      chmodSync(join(dataDir, "snapshots", "snap-old", "mem"), 0o644);
      await using d = await startSimDaemon({ env: { VMM_FIRECRACKER_DATA_DIR: dataDir } });
      expect(groupOrOtherAccessible(dataDir)).toEqual([]);
      expect(d.stderr()).toContain("removed group/other permissions under data_dir");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Firecracker's environment (gRPC, fc-sim)", () => {
  it("does not inherit the daemon's environment: no token, no canary, also not in the guest", async () => {
    await using d = await startSimDaemon({
      env: { VMM_GRPC_AUTH_TOKEN: "tok-canary-0123456789", VMM_TEST_CANARY: "canary-4242" },
    });
    // The daemon itself has them (the attack needs them to be there).
    const daemonEnv = environOf(d.child.pid!);
    expect(daemonEnv).toContain("tok-canary-0123456789");
    expect(daemonEnv).toContain("canary-4242");
    await d.sandboxes.create({ id: "env-1" });
    const info = await waitForState(d, "env-1", "ready");
    const fcPid = Number(info.pid);
    expect(fcPid).toBeGreaterThan(0);
    const fcEnv = environOf(fcPid);
    expect(fcEnv).toMatch(/^PATH=/m);
    expect(fcEnv).not.toContain("canary");
    expect(fcEnv).not.toContain("VMM_");
    const agents = processesMatching(`/tmp/fcsim-${fcPid}`);
    expect(agents.length).toBeGreaterThan(0);
    for (const a of agents) {
      expect(environOf(a)).not.toContain("canary");
      expect(environOf(a)).not.toContain("VMM_");
    }
    // The guest's own view (a command run in the simulated guest) has neither either.
    let out = "";
    for await (const o of d.sandboxes.run({ id: "env-1", cmd: ["env"] })) {
      if (!o.done) out += Buffer.from(o.data).toString();
    }
    expect(out).not.toContain("canary");
    expect(out).not.toContain("VMM_GRPC_AUTH_TOKEN");
  });
});

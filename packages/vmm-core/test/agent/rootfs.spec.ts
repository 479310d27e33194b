import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../../../..");
const script = join(root, "guest/rootfs/build-rootfs.sh");
const haveTools = existsSync("/bin/busybox") && existsSync("/sbin/debugfs");

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const debugfs = (img: string, cmd: string) =>
  execFileSync("debugfs", ["-R", cmd, img], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });

describe.skipIf(!haveTools)("guest/rootfs/build-rootfs.sh", () => {
  it("builds an ext4 image with busybox, the agent as /sbin/init and the users", async () => {
    dir = await mkdtemp(join(tmpdir(), "vmm-rootfs-test-"));
    const out = execFileSync(script, ["--out", dir, "--size", "32"], { encoding: "utf8" });
    const img = join(dir, "rootfs.ext4");
    expect(out).toContain(img);
    expect((await stat(img)).size).toBe(32 * 1024 * 1024);
    const sbin = debugfs(img, "ls -l /sbin");
    expect(sbin).toMatch(/100755 .* vmm-agent/);
    expect(sbin).toMatch(/120777 .* init\b/);
    expect(debugfs(img, "stat /sbin/init")).toContain('Fast link dest: "vmm-agent"');
    expect(debugfs(img, "ls -l /bin")).toMatch(/\bsh\b/);
    expect(debugfs(img, "cat /etc/passwd")).toContain("sandbox:x:1000:1000:");
    expect(debugfs(img, "cat /etc/group")).toContain("sandbox:x:1000:");
    expect(debugfs(img, "cat /etc/hostname").trim()).toBe("sandbox");
    expect(debugfs(img, "stat /home/sandbox")).toMatch(/User:\s+1000\s+Group:\s+1000/);
  });

  it("fails with a clear message on a bad size", () => {
    expect(() =>
      execFileSync(script, ["--size", "abc", "--out", "/nonexistent"], { stdio: "pipe" }),
    ).toThrow(/--size must be a number of MiB/);
  });
});

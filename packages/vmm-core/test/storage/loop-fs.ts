/**
 * Test helper: a real filesystem on a loop device, created in a temp dir and
 * torn down (umount, losetup -d, rm) by `dispose()`, which never throws and
 * is safe to call after a partial setup.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface LoopFs {
  /** Mount point. */
  mnt: string;
  device: string;
  dispose(): void;
}

const run = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

function which(cmd: string): boolean {
  try {
    run("sh", ["-c", `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** Why loop filesystems cannot be made here, or undefined when they can. */
export function loopUnavailableReason(mkfs: string): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (losetup/mount)";
  if (!existsSync("/dev/loop-control")) return "no /dev/loop-control (loop driver missing)";
  if (!which("losetup")) return "losetup not installed";
  if (!which(mkfs)) return `${mkfs} not installed`;
  return undefined;
}

/** Creates, formats and mounts a sparse image of `sizeMib` MiB. */
export function mountLoopFs(type: "xfs" | "ext4" | "btrfs", sizeMib: number): LoopFs {
  const root = mkdtempSync(join(tmpdir(), `vmm-test-loop-${type}-`));
  const img = join(root, "fs.img");
  const mnt = join(root, "mnt");
  let device = "";
  let mounted = false;
  const dispose = (): void => {
    if (mounted) {
      try {
        run("umount", [mnt]);
      } catch {
        try {
          run("umount", ["-l", mnt]);
        } catch {}
      }
    }
    if (device) {
      try {
        run("losetup", ["-d", device]);
      } catch {}
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    run("truncate", ["-s", `${sizeMib}M`, img]);
    if (type === "xfs") run("mkfs.xfs", ["-q", "-m", "reflink=1", img]);
    else if (type === "btrfs") run("mkfs.btrfs", ["-q", img]);
    else run("mkfs.ext4", ["-q", "-F", img]);
    device = run("losetup", ["--find", "--show", img]);
    run("mkdir", [mnt]);
    run("mount", [device, mnt]);
    mounted = true;
    return { mnt, device, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}

/** `df`-style free bytes of the filesystem at `path`, after a sync. */
export function freeBytes(path: string): number {
  run("sync", ["-f", path]);
  return Number(run("df", ["--output=avail", "-B1", path]).split("\n")[1]);
}

/** Whether `filefrag -v` reports any shared extent for `path`. */
export function hasSharedExtents(path: string): boolean {
  run("sync", ["-f", path]);
  return /\bshared\b/.test(run("filefrag", ["-v", path]));
}

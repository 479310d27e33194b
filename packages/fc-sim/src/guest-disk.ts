/**
 * The simulated guest inside its own disk: the root drive loop-mounted in a
 * private mount namespace, the agent chrooted into it, in its own PID and UTS
 * namespaces (the network namespace is fc-sim's, i.e. the sandbox's).
 *
 * Process chain (every link dies with the one before it, so nothing outlives
 * fc-sim, not even after a SIGKILL):
 *
 *   fc-sim ─ setpriv --pdeathsig KILL ─ unshare --fork --kill-child ─ sh (PID 1 of the
 *   namespace: mounts, then waits) ─ chroot <root> /sbin/init --unix-dir … (the agent)
 *
 * `setpriv` makes the unshare process die with fc-sim; `--kill-child` makes the
 * namespace's PID 1 die with unshare; when PID 1 dies the kernel kills every
 * process of the PID namespace, the mount namespace loses its last member, its
 * mounts go away, and the loop device (set up by `mount -o loop`, so with
 * LO_FLAGS_AUTOCLEAR) detaches itself on its last close.
 *
 * PID 1 is the shell, not the agent: the agent refuses `--unix-dir` as PID 1
 * (it would take itself for the guest's init and remount the system).
 */
import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Host programs the disk guest needs (util-linux, coreutils). */
const requiredTools = ["setpriv", "unshare", "mount", "chroot", "cp", "fsfreeze"] as const;

/** What {@link diskGuestBlocker} looks at; the defaults are this host's. */
export type HostProbe = {
  /** Effective uid (loop devices and mounts need root). */
  uid: number | undefined;
  /** Whether `/dev/loop-control` exists (the loop driver is there). */
  loopControl: boolean;
  /** `requiredTools` not found on PATH. */
  missingTools: readonly string[];
};

/** This host's {@link HostProbe}. */
export function probeHost(): HostProbe {
  const dirs = (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(delimiter);
  const found = (tool: string): boolean =>
    dirs.some((d) => {
      try {
        accessSync(join(d, tool), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  return {
    uid: process.geteuid?.(),
    loopControl: existsSync("/dev/loop-control"),
    missingTools: requiredTools.filter((t) => !found(t)),
  };
}

/**
 * Why the guest cannot run inside its disk on this host, or undefined when it can.
 * `FC_SIM_GUEST=host` forces the host-process guest.
 */
export function diskGuestBlocker(
  probe: HostProbe = probeHost(),
  mode = process.env.FC_SIM_GUEST,
): string | undefined {
  if (mode === "host") return "FC_SIM_GUEST=host";
  if (mode !== undefined && mode !== "" && mode !== "auto")
    return `FC_SIM_GUEST=${mode} is not one of auto, host; using the host process`;
  if (probe.uid !== 0) return `not root (euid ${probe.uid ?? "unknown"}): loop mounts need root`;
  if (!probe.loopControl) return "no loop devices (/dev/loop-control is missing)";
  if (probe.missingTools.length > 0)
    return `missing host tools: ${probe.missingTools.join(", ")} (util-linux, coreutils)`;
  return undefined;
}

/**
 * PID 1 of the guest's namespaces. Mirrors what the agent does as a real guest's
 * init (guest/agent/src/init.c `init_system`), except: /dev is a tmpfs with the
 * harmless character devices copied from the host (devtmpfs would hand the guest
 * the host's disks), /sys is read-only (it is the host's), and fc-sim's socket
 * directory is bind-mounted at its host path so the vsock splice finds it.
 * A root that cannot be mounted, or has no /sbin/init, is a kernel panic.
 * Positional args: image, mountpoint, rw|ro, socket dir, hostname, init argv….
 */
export const guestInitScript = `
img=$1 root=$2 mode=$3 sock=$4 name=$5; shift 5
panic() { echo "Kernel panic - not syncing: $* (fc-sim)" >&2; exit 1; }
err=$(mount -o "loop,$mode" "$img" "$root" 2>&1) || panic "VFS: Unable to mount root fs on /dev/vda: $err"
[ -e "$root/sbin/init" ] || [ -L "$root/sbin/init" ] || panic "No working init found (/sbin/init is missing)"
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" 2>/dev/null
mount -t proc -o nosuid,nodev,noexec proc "$root/proc" &&
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys" &&
mount -t tmpfs -o nosuid,mode=0755 dev "$root/dev" &&
mkdir "$root/dev/pts" "$root/dev/shm" &&
cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty "$root/dev/" &&
ln -s pts/ptmx "$root/dev/ptmx" &&
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts "$root/dev/pts" &&
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm" &&
mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$root/tmp" &&
mount -t tmpfs -o nosuid,nodev,mode=0755 run "$root/run" &&
mkdir -p "$root$sock" && mount --bind "$sock" "$root$sock" || panic "cannot set up the guest's mounts"
echo "$name" > /proc/sys/kernel/hostname
chroot "$root" "$@"
rc=$?
exit $rc
`;

/** Where the guest's root drive is and how it is attached. */
export type RootDrive = {
  /** path_on_host of the root drive (relative paths are against fc-sim's cwd, like Firecracker's). */
  path: string;
  readOnly: boolean;
};

/** The argv (program first) that starts a disk guest. */
export function diskGuestCommand(o: {
  drive: RootDrive;
  mountpoint: string;
  unixDir: string;
  hostname: string;
  init: readonly string[];
}): string[] {
  return [
    "setpriv",
    "--pdeathsig",
    "KILL",
    "--",
    "unshare",
    "--mount",
    "--uts",
    "--pid",
    "--fork",
    "--kill-child",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    guestInitScript,
    "fc-sim-guest-init",
    o.drive.path,
    o.mountpoint,
    o.drive.readOnly ? "ro" : "rw",
    o.unixDir,
    o.hostname,
    ...o.init,
  ];
}

/** The guest hostname a kernel command line asks for (`vmm.hostname=`, as the agent reads it). */
export function hostnameFromCmdline(cmdline: string): string {
  for (const w of cmdline.split(/\s+/)) {
    if (w.startsWith("vmm.hostname=") && w.length > 13 && w.length <= 13 + 64) return w.slice(13);
  }
  return "sandbox";
}

/** The first child pid of `pid` (the namespace's PID 1 for the unshare process), if any. */
export function firstChild(pid: number): number | undefined {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    const first = Number(kids.split(" ")[0]);
    return Number.isInteger(first) && first > 0 ? first : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes everything the guest has written into the image file and leaves it
 * consistent (ext4: journal checkpointed, no recovery needed), as a clean
 * unmount would: FIFREEZE then FITHAW on the mounted root, reached through the
 * namespace's PID 1 (`/proc/<pid>/root<mountpoint>`). Both run in one detached
 * shell so a SIGKILL of fc-sim between them cannot leave the filesystem frozen.
 */
export function flushGuestDisk(nsInitPid: number, mountpoint: string): Promise<void> {
  const path = `/proc/${nsInitPid}/root${mountpoint}`;
  const script = 'fsfreeze --freeze "$1" || exit 1; fsfreeze --unfreeze "$1"';
  return new Promise((resolve, reject) => {
    // Detached: a signal to fc-sim's process group must not split the freeze from its thaw.
    const child = spawn("sh", ["-c", script, "sh", path], {
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`flushing the guest disk failed: ${stderr.trim() || `exit ${code}`}`)),
    );
  });
}

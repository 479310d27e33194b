import { execFile } from "node:child_process";
import { access, constants, stat } from "node:fs/promises";
import { promisify } from "node:util";
import { existingAncestor } from "./existing-ancestor.js";

const run = promisify(execFile);

/** `[firecracker.jailer]` as the daemon resolves it; `binary` is the resolved path or why not. */
export interface JailerCheckInputs {
  readonly binary: { readonly path: string } | { readonly error: string };
  readonly chrootBaseDir: string;
  readonly uid: number;
  readonly gid: number;
}

/** One finding, as in host-checks.ts. */
interface Finding {
  readonly status: "ok" | "warn" | "fail";
  readonly detail: string;
  readonly fix?: string;
}

const ENABLE_FIX =
  "production: set [firecracker.jailer] enabled = true, with the jailer of your Firecracker release (docs/install.md)";

/**
 * Whether the jailer is configured and usable: off (a warning with a real Firecracker: it is the
 * production recommendation), or on with a binary that runs, its version against Firecracker's,
 * a daemon running as root (the jailer chroots, creates device nodes and drops to uid/gid), a
 * uid/gid other than the daemon's, `chroot_base_dir` on data_dir's filesystem (disks and snapshots
 * are hard-linked into jails; across filesystems each is copied) and a kernel the jail uid can read.
 */
export async function checkJailer(options: {
  readonly jailer: JailerCheckInputs | undefined;
  readonly firecrackerVersion: string | undefined;
  readonly simulated: boolean;
  readonly dataDir: string;
  readonly kernelPath: string | undefined;
  /** The daemon's uid (tests pass another). Default process.getuid(). */
  readonly daemonUid?: number;
}): Promise<Finding> {
  const j = options.jailer;
  if (!j) {
    return options.simulated
      ? { status: "ok", detail: "not enabled (fc-sim: development only, nothing to jail)" }
      : {
          status: "warn",
          detail:
            "not enabled: every Firecracker runs as the daemon's user, unchrooted, in its PID namespace",
          fix: ENABLE_FIX,
        };
  }
  if ("error" in j.binary) {
    return {
      status: "fail",
      detail: j.binary.error,
      fix: "install the jailer from the Firecracker release tarball and set firecracker.jailer.binary to it",
    };
  }
  const path = j.binary.path;
  await access(path, constants.X_OK);
  const { stdout } = await run(path, ["--version"], { timeout: 10_000 });
  const version = /v?(\d+\.\d+\.\d+)/.exec(stdout)?.[1];
  if (!version) {
    return {
      status: "fail",
      detail: `${path} --version printed no version (${JSON.stringify(stdout.trim().slice(0, 80))}): not a jailer?`,
      fix: "set firecracker.jailer.binary to the jailer of the Firecracker release",
    };
  }
  const fails: string[] = [];
  const warns: string[] = [];
  const fixes: string[] = [];
  const daemonUid = options.daemonUid ?? process.getuid?.() ?? 0;
  if (daemonUid !== 0) {
    fails.push(`the daemon runs as uid ${daemonUid}, the jailer needs root`);
    fixes.push("run the daemon as root (the systemd unit of scripts/install.sh does)");
  }
  if (j.uid === 0 || j.gid === 0 || j.uid === daemonUid) {
    fails.push(`uid/gid ${j.uid}/${j.gid} would leave Firecracker privileged`);
    fixes.push("set firecracker.jailer.uid/gid to an unused unprivileged id, e.g. 10000");
  }
  const fcMinor = options.firecrackerVersion?.split(".").slice(0, 2).join(".");
  if (fcMinor && version.split(".").slice(0, 2).join(".") !== fcMinor) {
    warns.push(
      `jailer ${version} with Firecracker ${options.firecrackerVersion} (not the same release; vmm's jailer suite passes with this pair, see docs/install.md)`,
    );
    fixes.push("use the jailer from the same release tarball as firecracker");
  }
  const [baseDev, dataDev] = await Promise.all(
    [j.chrootBaseDir, options.dataDir].map(
      async (d) => (await stat(await existingAncestor(d))).dev,
    ),
  );
  if (baseDev !== dataDev) {
    warns.push(
      `chroot_base_dir ${j.chrootBaseDir} is not on data_dir's filesystem: each sandbox's disk, kernel and snapshot memory is copied into its jail instead of hard-linked`,
    );
    fixes.push("put chroot_base_dir on data_dir's filesystem (e.g. <data_dir>/jail)");
  }
  if (options.kernelPath && ((await stat(options.kernelPath)).mode & 0o004) === 0) {
    fails.push(`the default kernel ${options.kernelPath} is not readable by the jail uid`);
    fixes.push(`chmod o+r ${options.kernelPath}`);
  }
  const summary = `${path}: jailer ${version}, uid/gid ${j.uid}/${j.gid}, chroot_base_dir ${j.chrootBaseDir}`;
  if (fails.length > 0 || warns.length > 0) {
    return {
      status: fails.length > 0 ? "fail" : "warn",
      detail: `${summary}: ${[...fails, ...warns].join("; ")}`,
      fix: fixes.join("; "),
    };
  }
  return { status: "ok", detail: `${summary} (same filesystem as data_dir)` };
}

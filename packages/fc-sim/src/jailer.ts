import { spawn } from "node:child_process";
import {
  accessSync,
  chownSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { JailerArgsError, parseJailerArgs } from "./jailer-args.js";

function warn(msg: string): void {
  process.stderr.write(`jailer-sim: ${msg}\n`);
}

/** True when every directory on the way to `file` is searchable by "other" and the file is executable by it. */
function otherCanExec(file: string): boolean {
  let p = resolve(file);
  if ((statSync(p).mode & 0o001) === 0) return false;
  while (p !== "/") {
    p = dirname(p);
    if ((statSync(p).mode & 0o001) === 0) return false;
  }
  return true;
}

/** Finds the mount point of a cgroup v1 controller or the cgroup2 hierarchy. */
function cgroupMount(version: 1 | 2, controller: string): string | undefined {
  for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
    const [, mnt, type, opts] = line.split(" ");
    if (version === 2 && type === "cgroup2") return mnt;
    if (version === 1 && type === "cgroup" && opts?.split(",").includes(controller)) return mnt;
  }
  return undefined;
}

/**
 * Best-effort cgroups: creates `<mount>/<parent>/<id>`, writes each `--cgroup file=value`,
 * and moves the jailer itself in (the exec'd child inherits it). Failures are warnings.
 */
function applyCgroups(a: ReturnType<typeof parseJailerArgs>, execName: string): void {
  const parent = a.parentCgroup ?? execName;
  for (const cg of a.cgroups) {
    const eq = cg.indexOf("=");
    const file = cg.slice(0, eq);
    const controller = file.split(".")[0] ?? "";
    try {
      const mnt = cgroupMount(a.cgroupVersion, controller);
      if (!mnt) throw new Error(`no cgroup v${a.cgroupVersion} mount for ${controller}`);
      const dir = join(mnt, parent, a.id);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, file), cg.slice(eq + 1));
      writeFileSync(
        join(dir, a.cgroupVersion === 2 ? "cgroup.procs" : "tasks"),
        String(process.pid),
      );
    } catch (e) {
      warn(`cgroup ${cg} not applied (best effort): ${(e as Error).message}`);
    }
  }
}

/**
 * Runs the jailer stand-in (see README.md): builds the jail layout, then runs the
 * exec file (fc-sim) with cwd = the jail root (no chroot), as uid:gid when node is
 * reachable for that uid, inside `--netns` via nsenter, with limits via prlimit.
 * Without --new-pid-ns it behaves like `exec` (as the real jailer does, also with --daemonize,
 * which only redirects stdio): forwards signals and mirrors the child's exit code or signal.
 * With --new-pid-ns it writes the child's pid to `<root>/<exec>.pid` and exits.
 */
export async function runJailer(argv: readonly string[]): Promise<void> {
  let a: ReturnType<typeof parseJailerArgs>;
  try {
    a = parseJailerArgs(argv);
  } catch (e) {
    if (!(e instanceof JailerArgsError)) throw e;
    warn(`Arguments parsing error: ${e.message}`);
    process.exit(1);
  }
  const execName = basename(a.execFile);
  const root = join(resolve(a.chrootBaseDir), execName, a.id, "root");
  const jailedExec = join(root, execName);
  const pidFile = join(root, `${execName}.pid`);
  try {
    accessSync(a.execFile, constants.X_OK);
    mkdirSync(root, { recursive: true });
    // Copied, not hard-linked, like the real jailer (a link would share the inode's owner/mode).
    copyFileSync(a.execFile, jailedExec);
    chownSync(jailedExec, a.uid, a.gid);
    for (const d of ["dev", "dev/net", "run"]) {
      mkdirSync(join(root, d), { recursive: true });
      chownSync(join(root, d), a.uid, a.gid);
    }
    if (existsSync(pidFile)) throw new Error(`pid file ${pidFile} already exists`);
  } catch (e) {
    warn(`Failed to set up the jail: ${(e as Error).message}`);
    process.exit(1);
  }
  applyCgroups(a, execName);

  const env = { ...process.env };
  // The copy lives in the jail, so the default host agent path (relative to fc-sim) would miss.
  env.FC_SIM_HOST_AGENT ??= resolve(
    dirname(resolve(a.execFile)),
    "../../../guest/agent/build/vmm-agent",
  );
  env.FC_SIM_EXIT_WITH_PARENT = a.newPidNs ? "0" : "1";
  const limits = a.resourceLimits.length > 0 ? a.resourceLimits : ["no-file=2048"];
  let cmd: string[] = [
    jailedExec,
    "--id",
    a.id,
    "--start-time-us",
    String(Math.floor(performance.timeOrigin * 1000)),
    ...a.execArgs,
  ];
  cmd = ["prlimit", ...limits.map((l) => `--${l.replace("no-file", "nofile")}`), "--", ...cmd];
  if (a.netns) cmd = ["nsenter", `--net=${a.netns}`, "--", ...cmd];
  const dropPrivs = otherCanExec(process.execPath);
  if (!dropPrivs && (a.uid !== process.getuid?.() || a.gid !== process.getgid?.())) {
    warn(
      `node (${process.execPath}) is not reachable for uid ${a.uid}; running as the current user`,
    );
  }
  const detach = a.newPidNs;
  const child = spawn(cmd[0] ?? "", cmd.slice(1), {
    cwd: root,
    env,
    stdio: a.daemonize ? "ignore" : "inherit",
    detached: detach,
    ...(dropPrivs ? { uid: a.uid, gid: a.gid } : {}),
  });
  const spawned = await new Promise<boolean>((r) => {
    child.once("spawn", () => r(true));
    child.once("error", (e) => {
      warn(`Failed to exec ${cmd[0]}: ${e.message}`);
      r(false);
    });
  });
  if (!spawned || child.pid === undefined) process.exit(1);
  writeFileSync(pidFile, String(child.pid), { flag: "wx" });
  if (detach) {
    child.unref();
    process.exit(0);
  }
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const) {
    process.on(sig, () => child.kill(sig));
  }
  child.on("exit", (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
}

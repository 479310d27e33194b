/** Parsed `jailer` command line (v1.14.2 flag set). */
export type JailerArgs = {
  id: string;
  execFile: string;
  uid: number;
  gid: number;
  chrootBaseDir: string;
  netns: string | undefined;
  daemonize: boolean;
  newPidNs: boolean;
  cgroups: string[];
  cgroupVersion: 1 | 2;
  parentCgroup: string | undefined;
  resourceLimits: string[];
  /** Everything after `--`, passed to the exec file. */
  execArgs: string[];
};

/** A command line the jailer rejects. */
export class JailerArgsError extends Error {
  override readonly name = "JailerArgsError";
}

const single = new Set([
  "id",
  "exec-file",
  "uid",
  "gid",
  "chroot-base-dir",
  "netns",
  "cgroup-version",
  "parent-cgroup",
]);
const multi = new Set(["cgroup", "resource-limit"]);
const flags = new Set(["daemonize", "new-pid-ns"]);

/**
 * Parses the jailer's argv (`--name value`, repeatable `--cgroup`/`--resource-limit`, `--` then FC args).
 * @throws JailerArgsError
 */
export function parseJailerArgs(argv: readonly string[]): JailerArgs {
  const one = new Map<string, string>();
  const many = new Map<string, string[]>();
  const set = new Set<string>();
  let execArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--") {
      execArgs = argv.slice(i + 1);
      break;
    }
    const name = a.startsWith("--") ? a.slice(2) : "";
    if (flags.has(name)) {
      set.add(name);
      continue;
    }
    if (!single.has(name) && !multi.has(name)) {
      throw new JailerArgsError(
        `Found argument '${a}' which wasn't expected, or isn't valid in this context.`,
      );
    }
    const v = argv[++i];
    if (v === undefined)
      throw new JailerArgsError(`The argument '${name}' requires a value, but none was supplied.`);
    if (multi.has(name)) many.set(name, [...(many.get(name) ?? []), v]);
    else {
      if (one.has(name))
        throw new JailerArgsError(`The argument '${name}' was provided more than once.`);
      one.set(name, v);
    }
  }
  for (const req of ["id", "exec-file", "uid", "gid"]) {
    if (!one.has(req)) throw new JailerArgsError(`Argument '${req}' required, but not found.`);
  }
  const num = (n: string): number => {
    const v = one.get(n) ?? "";
    if (!/^\d+$/.test(v)) throw new JailerArgsError(`Invalid ${n}: ${v}`);
    return Number(v);
  };
  const id = one.get("id") ?? "";
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new JailerArgsError(`Invalid instance ID: ${id}`);
  const cv = one.get("cgroup-version") ?? "1";
  if (cv !== "1" && cv !== "2") throw new JailerArgsError(`Invalid cgroup version: ${cv}`);
  for (const rl of many.get("resource-limit") ?? []) {
    if (!/^(fsize|no-file)=\d+$/.test(rl))
      throw new JailerArgsError(`Invalid resource limit: ${rl}`);
  }
  for (const cg of many.get("cgroup") ?? []) {
    if (!/^[a-z_]+\.[a-z_.]+=.+$/.test(cg)) throw new JailerArgsError(`Invalid cgroup: ${cg}`);
  }
  return {
    id,
    execFile: one.get("exec-file") ?? "",
    uid: num("uid"),
    gid: num("gid"),
    chrootBaseDir: one.get("chroot-base-dir") ?? "/srv/jailer",
    netns: one.get("netns"),
    daemonize: set.has("daemonize"),
    newPidNs: set.has("new-pid-ns"),
    cgroups: many.get("cgroup") ?? [],
    cgroupVersion: cv === "2" ? 2 : 1,
    parentCgroup: one.get("parent-cgroup"),
    resourceLimits: many.get("resource-limit") ?? [],
    execArgs,
  };
}

/**
 * Makes an unpacked image bootable by vmm: our guest agent becomes its init.
 * The agent is PID 1 (it mounts /proc, /sys, /dev, sets the hostname and
 * serves Run/Exec over vsock), so an image's own `/sbin/init` (systemd,
 * tini, a shell script…) is replaced: `/sbin/vmm-agent` is installed and
 * `/sbin/init` becomes a symlink to it, the same layout as
 * guest/rootfs/build-rootfs.sh and what RootfsInitCheck expects. The image's
 * entrypoint and command are run by the agent as workloads instead
 * (image-defaults.ts).
 */
import {
  chmod,
  chown,
  copyFile,
  lstat,
  mkdir,
  readlink,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";

/** What injecting the agent changed in the image. */
export interface AgentInjection {
  /** What the image had at /sbin/init before (e.g. `symlink to /lib/systemd/systemd`), if anything. */
  readonly replacedInit: string | undefined;
}

/** Directories the agent mounts over; created (empty) when the image lacks them. */
const MOUNT_POINTS: readonly [string, number][] = [
  ["proc", 0o555],
  ["sys", 0o555],
  ["dev", 0o755],
  ["run", 0o755],
  ["tmp", 0o1777],
];

/**
 * Installs `agentBinary` as `/sbin/vmm-agent` and `/sbin/init` in the tree at
 * `root` (paths resolved inside the root, symlinks included: `/sbin -> usr/sbin`
 * works), adds missing mount points and a resolv.conf when the image has none.
 */
export async function injectAgent(root: string, agentBinary: string): Promise<AgentInjection> {
  const sbin = await resolveInRoot(root, "sbin");
  await mkdir(sbin, { recursive: true, mode: 0o755 });
  const init = join(sbin, "init");
  const replacedInit = await describe(init);
  await rm(init, { force: true, recursive: true });
  const agent = join(sbin, "vmm-agent");
  await rm(agent, { force: true, recursive: true });
  await copyFile(agentBinary, agent);
  await chown(agent, 0, 0);
  await chmod(agent, 0o755);
  await symlink("vmm-agent", init);
  for (const [name, mode] of MOUNT_POINTS) {
    const path = join(root, name);
    if ((await describe(path)) !== undefined) continue;
    await mkdir(path);
    await chmod(path, mode);
  }
  // Containers get one from their runtime; a guest with tap networking needs its own.
  const etc = await resolveInRoot(root, "etc");
  const resolv = join(etc, "resolv.conf");
  const st = await lstat(resolv).catch(() => undefined);
  if (st === undefined || (st.isFile() && st.size === 0)) {
    await mkdir(etc, { recursive: true, mode: 0o755 });
    await writeFile(resolv, "nameserver 1.1.1.1\nnameserver 8.8.8.8\n", { mode: 0o644 });
  }
  return { replacedInit };
}

async function describe(path: string): Promise<string | undefined> {
  const st = await lstat(path).catch(() => undefined);
  if (st === undefined) return undefined;
  if (st.isSymbolicLink()) return `symlink to ${await readlink(path)}`;
  return st.isFile() ? `file of ${st.size} bytes` : "not a regular file";
}

/**
 * The host path of `rel` inside `root`, following symlinks as the guest would
 * (absolute targets and `..` stay inside the root). Components that do not
 * exist are appended as they are.
 */
export async function resolveInRoot(root: string, rel: string): Promise<string> {
  let todo = rel.split("/");
  let out: string[] = [];
  for (let hops = 0; todo.length > 0; ) {
    const c = todo.shift() as string;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      out.pop();
      continue;
    }
    const path = join(root, ...out, c);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isSymbolicLink()) {
      out.push(c);
      continue;
    }
    if (++hops > 40) throw new Error(`${rel}: too many symbolic links in the image`);
    const target = await readlink(path);
    if (target.startsWith("/")) out = [];
    todo = [...target.split("/"), ...todo];
  }
  return join(root, ...out);
}

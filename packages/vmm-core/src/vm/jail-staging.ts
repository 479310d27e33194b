import { lstat, rm, stat, symlink, unlink } from "node:fs/promises";
import { resolve } from "node:path";
import { type FirecrackerProcess, linkIntoJail, linkOutOfJail } from "@vmm/firecracker";
import { FailedPreconditionError } from "../errors.js";
import type { SandboxDir } from "../storage/index.js";

/** The uid/gid jailed Firecrackers run as (`[firecracker.jailer] uid`/`gid`). */
export interface JailOwner {
  readonly uid: number;
  readonly gid: number;
}

/** Name of the kernel inside a jail (the host path is not visible there). */
export const JAILED_KERNEL = "vmlinux";

/** Names a jailed snapshot is written under before it is taken out of the jail. */
const JAILED_SNAPSHOT = { vmstate: "snapshot.vmstate", mem: "snapshot.mem" } as const;

/**
 * True when Firecracker runs chrooted somewhere else than the sandbox dir (the jailer): then the
 * files it opens or writes must be staged into and out of its jail root.
 */
export function isJailed(fc: FirecrackerProcess, dir: SandboxDir): boolean {
  return resolve(fc.rootDir) !== resolve(dir.path);
}

/**
 * Links the kernel into the jail as {@link JAILED_KERNEL}. The link shares the inode of a base
 * image every sandbox uses, so it is not chowned: it must be readable by others.
 */
export async function stageKernel(
  fc: FirecrackerProcess,
  kernelPath: string,
  owner: JailOwner,
): Promise<void> {
  if (((await stat(kernelPath)).mode & 0o004) === 0) {
    throw new FailedPreconditionError(
      `kernel ${kernelPath} is not readable by the jail uid ${owner.uid}; make it world-readable (chmod o+r) or run without the jailer`,
    );
  }
  await linkIntoJail(fc.rootDir, [{ source: kernelPath, target: JAILED_KERNEL }]);
}

/**
 * Stages files of the sandbox dir (paths relative to it: its rootfs clone, a snapshot's vmstate
 * and memory) at the same relative paths in the jail, owned by the jail uid, owner-only, and links
 * `<dir>/vsock.sock` to the jail's vsock socket so the agent client dials the usual path.
 */
export async function stageDiskFiles(
  fc: FirecrackerProcess,
  dir: SandboxDir,
  relativePaths: readonly string[],
  owner: JailOwner,
): Promise<void> {
  await linkIntoJail(
    fc.rootDir,
    relativePaths.map((p) => ({ source: resolve(dir.path, p), target: p })),
    owner,
  );
  await linkVsock(fc, dir);
}

/** `<dir>/vsock.sock` → the socket Firecracker creates in its jail (replacing an older link). */
async function linkVsock(fc: FirecrackerProcess, dir: SandboxDir): Promise<void> {
  const target = resolve(fc.rootDir, dir.relative.vsockSocket);
  const at = dir.absolute.vsockSocket;
  if (await lstat(at).catch(() => undefined)) await unlink(at);
  await symlink(target, at);
}

/**
 * Runs `create` (a `snapshot/create` with jail-local names), then takes the files out of the jail
 * to `target` (relative to the sandbox dir, as Firecracker would have written them unjailed) by
 * hard link, and removes the jail's names.
 */
export async function snapshotOutOfJail(
  fc: FirecrackerProcess,
  dir: SandboxDir,
  target: { readonly vmstate: string; readonly mem: string },
  create: (jailTarget: { readonly vmstate: string; readonly mem: string }) => Promise<void>,
): Promise<void> {
  const inJail = Object.values(JAILED_SNAPSHOT).map((p) => resolve(fc.rootDir, p));
  await Promise.all(inJail.map((p) => rm(p, { force: true })));
  await create(JAILED_SNAPSHOT);
  try {
    await linkOutOfJail(fc.rootDir, [
      { source: JAILED_SNAPSHOT.vmstate, target: resolve(dir.path, target.vmstate) },
      { source: JAILED_SNAPSHOT.mem, target: resolve(dir.path, target.mem) },
    ]);
  } finally {
    await Promise.all(inJail.map((p) => rm(p, { force: true })));
  }
}

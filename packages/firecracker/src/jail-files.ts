import { chmod, chown, constants, copyFile, link, lstat, mkdir, realpath } from "node:fs/promises";
import { basename, dirname, isAbsolute, relative, resolve } from "node:path";
import { FirecrackerLaunchError } from "./errors.js";

/** Where the jailer puts one instance (NOTES.md §1.2). */
export interface JailPaths {
  /** `<chrootBaseDir>/<exec basename>/<id>`: removed whole by cleanup. */
  jailDir: string;
  /** `<jailDir>/root`: Firecracker's `/` and cwd. */
  rootDir: string;
}

/** Computes the jail directories the jailer will use for `binaryPath` and `id`. */
export function jailPaths(options: {
  chrootBaseDir: string;
  binaryPath: string;
  id: string;
}): JailPaths {
  const jailDir = resolve(options.chrootBaseDir, basename(options.binaryPath), options.id);
  return { jailDir, rootDir: resolve(jailDir, "root") };
}

/** One file to place in a jail. */
export interface JailFile {
  /** Host path of the file. */
  source: string;
  /** Path inside the jail, relative to its root (e.g. `rootfs.ext4`, `images/vmlinux`). */
  target: string;
}

/**
 * Places `files` under a jail's `rootDir` (`FirecrackerProcess.rootDir`, after `launch` — the launcher
 * removes a stale jail before starting, and Firecracker opens files only at API-call time): hard link
 * when source and jail share a filesystem, else a reflink-or-copy (`COPYFILE_FICLONE`). Parent
 * directories are created owner-only (0700). With `owner`, the placed file is chowned to it and made
 * owner-only (0600), and so are the directories created for it — note that a hard link shares its
 * inode, so the source changes owner and mode too; for read-only images shared by several jails
 * give them group/other read permission instead and pass no owner. Targets may not escape the root.
 */
export async function linkIntoJail(
  rootDir: string,
  files: readonly JailFile[],
  owner?: { uid: number; gid: number },
): Promise<void> {
  for (const f of files) {
    const target = resolve(rootDir, f.target);
    const rel = relative(rootDir, target);
    if (isAbsolute(f.target) || rel.startsWith("..") || rel === "") {
      throw new FirecrackerLaunchError(
        `jail file target ${JSON.stringify(f.target)} must be a path relative to the jail root ${rootDir}`,
      );
    }
    const created = await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    if (owner && created !== undefined) {
      // Every directory mkdir made, from the first one down to the target's parent.
      for (let d = dirname(target); d.length >= created.length; d = dirname(d)) {
        await chown(d, owner.uid, owner.gid);
      }
    }
    await link(f.source, target).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "EXDEV" && err.code !== "EPERM") throw err;
      await copyFile(f.source, target, constants.COPYFILE_FICLONE);
    });
    if (owner) {
      await chown(target, owner.uid, owner.gid);
      const mode = (await lstat(target)).mode;
      if ((mode & 0o077) !== 0) await chmod(target, mode & 0o700);
    }
  }
}

/** One file to take out of a jail. */
export interface JailExport {
  /** Path inside the jail, relative to its root (e.g. `vmstate`, `snap/mem`). */
  source: string;
  /** Host path it is placed at (its directory must exist). */
  target: string;
}

/**
 * Takes files Firecracker wrote in a jail (snapshot vmstate and memory) out to host paths: hard
 * link when the jail and the target share a filesystem, else a reflink-or-copy, never through a
 * symlink. A jailed Firecracker is untrusted: a source that is not a regular file, or whose real
 * path leaves the jail root (a symlinked directory), is refused, so it cannot make the daemon
 * link or copy a host file. With `owner`, the target is chowned to it and made owner-only
 * (a hard link shares its inode: the jail's name changes owner too; take files out only after
 * Firecracker is done with them).
 */
export async function linkOutOfJail(
  rootDir: string,
  files: readonly JailExport[],
  owner?: { uid: number; gid: number },
): Promise<void> {
  const realRoot = await realpath(rootDir);
  for (const f of files) {
    const source = resolve(rootDir, f.source);
    const rel = relative(rootDir, source);
    if (isAbsolute(f.source) || rel.startsWith("..") || rel === "") {
      throw new FirecrackerLaunchError(
        `jail file source ${JSON.stringify(f.source)} must be a path relative to the jail root ${rootDir}`,
      );
    }
    const real = await realpath(source);
    const st = await lstat(source);
    if (!st.isFile() || relative(realRoot, real).startsWith("..")) {
      throw new FirecrackerLaunchError(
        `jail file ${source} is not a regular file inside the jail (a symlink or special file written by the jailed Firecracker?); refusing to take it out`,
      );
    }
    await link(real, f.target).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== "EXDEV" && err.code !== "EPERM") throw err;
      await copyFile(real, f.target, constants.COPYFILE_FICLONE);
    });
    if (owner) {
      await chown(f.target, owner.uid, owner.gid);
      const mode = (await lstat(f.target)).mode;
      if ((mode & 0o077) !== 0) await chmod(f.target, mode & 0o700);
    }
  }
}
